//! Python exception types chanpool raises that live in the standard library, and logging of
//! exceptions nobody else will see (they go to the `chanpool` logger with their traceback).

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

static BROKEN: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static TIMEOUT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CANCELLED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static QUEUE_FULL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static QUEUE_EMPTY: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CLOSED: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static PLAIN_FULL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn make(
    py: Python<'_>,
    cell: &'static PyOnceLock<Py<PyType>>,
    module: &str,
    name: &str,
    msg: Option<&str>,
) -> PyErr {
    let ty = cell.get_or_try_init(py, || -> PyResult<_> {
        Ok(py
            .import(module)?
            .getattr(name)?
            .cast_into::<PyType>()?
            .unbind())
    });
    match ty {
        Ok(t) => match msg {
            Some(m) => PyErr::from_type(t.bind(py).clone(), m.to_string()),
            None => PyErr::from_type(t.bind(py).clone(), ()),
        },
        Err(e) => e,
    }
}

/// concurrent.futures.thread.BrokenThreadPool, so `except BrokenExecutor` keeps working.
pub fn broken_thread_pool(py: Python<'_>, msg: &str) -> PyErr {
    make(
        py,
        &BROKEN,
        "concurrent.futures.thread",
        "BrokenThreadPool",
        Some(msg),
    )
}

/// concurrent.futures.TimeoutError (distinct from the builtin before Python 3.11).
pub fn timeout_error(py: Python<'_>) -> PyErr {
    make(py, &TIMEOUT, "concurrent.futures", "TimeoutError", None)
}

/// concurrent.futures.CancelledError.
pub fn cancelled_error(py: Python<'_>) -> PyErr {
    make(py, &CANCELLED, "concurrent.futures", "CancelledError", None)
}

/// chanpool.QueueFull (a queue.Full): a subscriber's queue is full under overflow="error".
pub fn queue_full(py: Python<'_>, msg: &str) -> PyErr {
    make(py, &QUEUE_FULL, "chanpool._errors", "QueueFull", Some(msg))
}

/// queue.Full: a put() found no room.
pub fn queue_full_plain(py: Python<'_>) -> PyErr {
    make(py, &PLAIN_FULL, "queue", "Full", None)
}

/// queue.Empty: a get() with a timeout found nothing.
pub fn queue_empty(py: Python<'_>) -> PyErr {
    make(py, &QUEUE_EMPTY, "queue", "Empty", None)
}

/// chanpool.Closed: the subscription or channel has ended and nothing is left.
pub fn closed(py: Python<'_>, msg: &str) -> PyErr {
    make(py, &CLOSED, "chanpool._errors", "Closed", Some(msg))
}

pub fn closed_type(py: Python<'_>) -> PyResult<Bound<'_, PyType>> {
    Ok(CLOSED
        .get_or_try_init(py, || -> PyResult<_> {
            Ok(py
                .import("chanpool._errors")?
                .getattr("Closed")?
                .cast_into::<PyType>()?
                .unbind())
        })?
        .bind(py)
        .clone())
}

/// Reports an exception with its traceback on the `chanpool` logger.
pub fn log_exception(py: Python<'_>, msg: &str, err: PyErr) {
    let logger = LOGGER.get_or_try_init(py, || -> PyResult<_> {
        Ok(py
            .import("logging")?
            .call_method1("getLogger", ("chanpool",))?
            .unbind())
    });
    let ok = logger.ok().map(|l| {
        let kw = pyo3::types::PyDict::new(py);
        let _ = kw.set_item("exc_info", err.value(py));
        l.bind(py).call_method("error", (msg,), Some(&kw)).is_ok()
    });
    if ok != Some(true) {
        err.print(py);
    }
}
