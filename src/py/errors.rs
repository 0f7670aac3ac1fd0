//! Python exception types chanpool raises that live in the standard library, and logging of
//! exceptions nobody else will see (they go to the `chanpool` logger with their traceback).

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `importable!(fn name = "module"."Attr")`: the class, imported once and cached.
macro_rules! importable {
    ($($(#[$doc:meta])* fn $name:ident = $module:literal . $attr:literal;)*) => {$(
        $(#[$doc])*
        pub fn $name(py: Python<'_>) -> PyResult<Bound<'_, PyType>> {
            static TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
            TYPE.import(py, $module, $attr).map(|t| t.clone())
        }
    )*};
}

importable! {
    /// concurrent.futures.thread.BrokenThreadPool, so `except BrokenExecutor` keeps working.
    fn broken_thread_pool_type = "concurrent.futures.thread"."BrokenThreadPool";
    /// concurrent.futures.TimeoutError (distinct from the builtin before Python 3.11).
    fn timeout_error_type = "concurrent.futures"."TimeoutError";
    fn cancelled_error_type = "concurrent.futures"."CancelledError";
    /// chanpool.QueueFull (a queue.Full): a subscriber's queue is full under overflow="error".
    fn queue_full_type = "chanpool._errors"."QueueFull";
    fn queue_full_plain_type = "queue"."Full";
    fn queue_empty_type = "queue"."Empty";
    /// chanpool.Closed: the subscription or channel has ended and nothing is left.
    fn closed_type = "chanpool._errors"."Closed";
}

/// An instance of `ty` (with `msg`, if given), or the error that importing the class raised.
fn raise(ty: PyResult<Bound<'_, PyType>>, msg: Option<&str>) -> PyErr {
    match (ty, msg) {
        (Ok(t), Some(m)) => PyErr::from_type(t, m.to_string()),
        (Ok(t), None) => PyErr::from_type(t, ()),
        (Err(e), _) => e,
    }
}

pub fn broken_thread_pool(py: Python<'_>, msg: &str) -> PyErr {
    raise(broken_thread_pool_type(py), Some(msg))
}

pub fn timeout_error(py: Python<'_>) -> PyErr {
    raise(timeout_error_type(py), None)
}

pub fn cancelled_error(py: Python<'_>) -> PyErr {
    raise(cancelled_error_type(py), None)
}

pub fn queue_full(py: Python<'_>, msg: &str) -> PyErr {
    raise(queue_full_type(py), Some(msg))
}

/// queue.Full: a put() found no room.
pub fn queue_full_plain(py: Python<'_>) -> PyErr {
    raise(queue_full_plain_type(py), None)
}

/// queue.Empty: a get() with a timeout found nothing.
pub fn queue_empty(py: Python<'_>) -> PyErr {
    raise(queue_empty_type(py), None)
}

pub fn closed(py: Python<'_>, msg: &str) -> PyErr {
    raise(closed_type(py), Some(msg))
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
