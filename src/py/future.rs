//! Creating and completing chanpool.Future objects from Rust.
//!
//! See python/chanpool/_future.py for the protocol: while `_cond` is None nobody has observed the
//! future, so a worker holding the GIL may change its state with plain attribute writes (no
//! Python code runs between the check and the writes). Otherwise it calls the locked methods.
//! Either way a result() waiter's `_signal` (a `_OneShot`) is set once the state is written.

use crate::py::args::Timeout;
use crate::py::errors;
use crate::py::futuregc::{self, store};
use crate::py::oneshot::OneShot;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyString, PyTuple, PyType};

struct Api {
    cls: Py<PyType>,
    pending: Py<PyAny>,
    running: Py<PyAny>,
    finished: Py<PyAny>,
    cancelled: Py<PyAny>,
    cancelled_notified: Py<PyAny>,
    n_state: Py<PyString>,
    n_result: Py<PyString>,
    n_cond: Py<PyString>,
    n_exception: Py<PyString>,
    n_unretrieved: Py<PyString>,
    n_settle: Py<PyString>,
    n_signal: Py<PyString>,
    unretrieved: Py<PyAny>,
    empty: Py<PyTuple>,
    /// The class's `tp_new` (object.__new__): unlike PyType_GenericNew it sets up the inline
    /// attribute values (3.11+), so the attribute writes below never build an instance dict.
    tp_new: pyo3::ffi::newfunc,
}

static API: PyOnceLock<Api> = PyOnceLock::new();

fn api(py: Python<'_>) -> PyResult<&Api> {
    API.get_or_try_init(py, || {
        let base = py.import("concurrent.futures._base")?;
        let module = py.import("chanpool._future")?;
        let cls = module.getattr("Future")?.cast_into::<PyType>()?;
        futuregc::install(&cls)?;
        let cls = cls.unbind();
        // SAFETY: reading a slot of a live heap type; a type always has a tp_new or NULL.
        let slot = unsafe { pyo3::ffi::PyType_GetSlot(cls.as_ptr().cast(), pyo3::ffi::Py_tp_new) };
        if slot.is_null() {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "chanpool._future.Future has no __new__",
            ));
        }
        // SAFETY: the Py_tp_new slot holds a newfunc.
        let tp_new =
            unsafe { std::mem::transmute::<*mut std::ffi::c_void, pyo3::ffi::newfunc>(slot) };
        Ok(Api {
            tp_new,
            cls,
            pending: base.getattr("PENDING")?.unbind(),
            running: base.getattr("RUNNING")?.unbind(),
            finished: base.getattr("FINISHED")?.unbind(),
            cancelled: base.getattr("CANCELLED")?.unbind(),
            cancelled_notified: base.getattr("CANCELLED_AND_NOTIFIED")?.unbind(),
            n_state: PyString::intern(py, "_state").unbind(),
            n_result: PyString::intern(py, "_result").unbind(),
            n_cond: PyString::intern(py, "_cond").unbind(),
            n_exception: PyString::intern(py, "_exception").unbind(),
            n_unretrieved: PyString::intern(py, "_unretrieved").unbind(),
            n_settle: PyString::intern(py, "_settle").unbind(),
            n_signal: PyString::intern(py, "_signal").unbind(),
            unretrieved: module.getattr("_UnretrievedException")?.unbind(),
            empty: PyTuple::empty(py).unbind(),
        })
    })
}

/// Looks the Future class up at module init, so no submit ever imports (an import can release
/// the GIL, which a daemon thread must not do inside a Rust frame during exit).
pub fn init(py: Python<'_>) -> PyResult<()> {
    api(py).map(|_| ())
}

/// A fresh PENDING future, built without running `__init__` (it only sets `_state`).
pub fn new_future(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let a = api(py)?;
    // SAFETY: object.__new__(cls) with no arguments, as `cls()` would call it.
    let obj = unsafe {
        let p = (a.tp_new)(
            a.cls.as_ptr().cast(),
            a.empty.as_ptr(),
            std::ptr::null_mut(),
        );
        Bound::from_owned_ptr_or_err(py, p)?
    };
    // `_state` and `_result` start as the class's defaults (PENDING, None): a worker's first
    // write of each adds the value to the instance's values array, whose keys the class shares
    // (every future has written them), so it neither allocates (an allocation can run the GC)
    // nor drops an old value (a drop can run code).
    futuregc::untrack_new(&obj);
    Ok(obj)
}

fn unobserved(a: &Api, fut: &Bound<'_, PyAny>) -> PyResult<bool> {
    // Observing a future tracks it (futuregc.rs): an untracked one is unobserved without a look.
    if !futuregc::is_tracked(fut) {
        return Ok(true);
    }
    Ok(fut.getattr(a.n_cond.bind(fut.py()))?.is_none())
}

/// After the plain writes: wakes result() waiters. A waiter installs `_signal` before it reads
/// the state, and this reads `_signal` after writing it, all under the GIL (see _future.py).
fn wake(a: &Api, fut: &Bound<'_, PyAny>) -> PyResult<()> {
    let sig = fut.getattr(a.n_signal.bind(fut.py()))?;
    if !sig.is_none() {
        OneShot::set_any(&sig);
    }
    Ok(())
}

/// PENDING -> RUNNING. False when the future was cancelled (the caller must skip the work).
pub fn start(fut: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = fut.py();
    let a = api(py)?;
    // Unobserved implies PENDING: cancel() and friends go through the condition first.
    if unobserved(a, fut)? {
        store(fut, a.n_state.bind(py), a.running.bind(py))?;
        return Ok(true);
    }
    fut.call_method0(pyo3::intern!(py, "set_running_or_notify_cancel"))?
        .is_truthy()
}

/// A result's fast path: on an unobserved future, plain writes and the wake; false (nothing
/// written) when someone observes it and the locked methods must be used.
fn finish_quietly(a: &Api, fut: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<bool> {
    if !write_result(a, fut, value)? {
        return Ok(false);
    }
    wake(a, fut)?;
    Ok(true)
}

/// `finish_quietly`'s writes, without the wake.
fn write_result(a: &Api, fut: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<bool> {
    if !unobserved(a, fut)? {
        return Ok(false);
    }
    let py = fut.py();
    store(fut, a.n_result.bind(py), value)?;
    store(fut, a.n_state.bind(py), a.finished.bind(py))?;
    Ok(true)
}

/// A pool worker's result (py/pool/task.rs). On the fast path the waiter's event is set once
/// the worker has let go of the interpreter (`OneShot::set_after_detach`; the worker loop sets
/// it before its next job), so the waiter wakes to a free GIL.
pub fn set_result(fut: &Bound<'_, PyAny>, value: Bound<'_, PyAny>) -> PyResult<()> {
    let py = fut.py();
    let a = api(py)?;
    if write_result(a, fut, &value)? {
        let sig = fut.getattr(a.n_signal.bind(py))?;
        if !sig.is_none() {
            OneShot::set_after_detach(&sig);
        }
        return Ok(());
    }
    fut.call_method1(pyo3::intern!(py, "set_result"), (value,))?;
    Ok(())
}

pub fn set_exception(fut: &Bound<'_, PyAny>, err: PyErr) -> PyResult<()> {
    let py = fut.py();
    fut.call_method1(pyo3::intern!(py, "set_exception"), (err.into_value(py),))?;
    Ok(())
}

pub fn cancel(fut: &Bound<'_, PyAny>) -> PyResult<bool> {
    fut.call_method0(pyo3::intern!(fut.py(), "cancel"))?
        .is_truthy()
}

/// Sets the outcome without running the done-callbacks (for a completer that hands them to
/// callback threads): true when there are callbacks to run (`fut._invoke_callbacks()`).
/// Everything that runs Python code happens before the unobserved check.
pub fn settle(
    fut: &Bound<'_, PyAny>,
    outcome: Result<Bound<'_, PyAny>, Bound<'_, PyAny>>,
) -> PyResult<bool> {
    let py = fut.py();
    let a = api(py)?;
    let (value, exc) = match outcome {
        Ok(value) => {
            if finish_quietly(a, fut, &value)? {
                return Ok(false);
            }
            (value, py.None().into_bound(py))
        }
        Err(exc) => {
            // Refusals can be common (every "sold out"): keep them cheap, and keep the
            // never-retrieved report.
            let unretrieved = a.unretrieved.bind(py).call1((&exc,))?;
            if unobserved(a, fut)? {
                store(fut, a.n_exception.bind(py), &exc)?;
                store(fut, a.n_unretrieved.bind(py), &unretrieved)?;
                store(fut, a.n_state.bind(py), a.finished.bind(py))?;
                wake(a, fut)?;
                return Ok(false);
            }
            // _settle makes its own report.
            unretrieved.setattr(pyo3::intern!(py, "exc"), py.None())?;
            (py.None().into_bound(py), exc)
        }
    };
    fut.call_method1(a.n_settle.bind(py), (value, exc))?
        .is_truthy()
}

/// A Python-called set_result / set_exception (`_future.py`) on a future made by `Future()`:
/// while nobody observes it and it is PENDING or RUNNING, the plain writes and the native wake
/// (so a result() waiter wakes as fast as for a worker's result). False when the stock locked
/// method must run instead (observed, already done: it raises InvalidStateError). The future's
/// `__init__` wrote every attribute set here, so no write allocates (an allocation could run the
/// GC, and with it Python code, between the check and the writes).
#[pyfunction]
#[pyo3(signature = (fut, result, exc))]
pub fn _finish_unobserved(
    py: Python<'_>,
    fut: &Bound<'_, PyAny>,
    result: &Bound<'_, PyAny>,
    exc: Option<&Bound<'_, PyAny>>,
) -> PyResult<bool> {
    let a = api(py)?;
    // Python code (the report's constructor) runs before the checks, never between them and
    // the writes.
    let unretrieved = exc
        .map(|e| a.unretrieved.bind(py).call1((e,)))
        .transpose()?;
    let state = fut.getattr(a.n_state.bind(py))?;
    let open = state.is(a.pending.bind(py)) || state.is(a.running.bind(py));
    if !(open && unobserved(a, fut)?) {
        if let Some(u) = unretrieved {
            // The stock set_exception makes its own report.
            u.setattr(pyo3::intern!(py, "exc"), py.None())?;
        }
        return Ok(false);
    }
    match (exc, unretrieved) {
        (Some(e), Some(u)) => {
            store(fut, a.n_exception.bind(py), e)?;
            store(fut, a.n_unretrieved.bind(py), &u)?;
        }
        _ => store(fut, a.n_result.bind(py), result)?,
    }
    store(fut, a.n_state.bind(py), a.finished.bind(py))?;
    wake(a, fut)?;
    Ok(true)
}

/// The waiter side, result()'s and exception()'s wait: returns once the future is FINISHED,
/// raises CancelledError once cancelled, TimeoutError when `timeout` passes first. The
/// `_OneShot` is made before the check, so nothing between reading `_signal` and installing it
/// allocates (a GC run there could let another waiter install its own); it is installed before
/// the state is read, and the completer reads it after writing the state (module docs).
#[pyfunction]
#[pyo3(signature = (fut, timeout))]
pub fn _wait_future(py: Python<'_>, fut: &Bound<'_, PyAny>, timeout: Timeout) -> PyResult<()> {
    let a = api(py)?;
    let fresh = Bound::new(py, OneShot::new())?;
    let sig = fut.getattr(a.n_signal.bind(py))?;
    let sig = match sig.cast_into::<OneShot>() {
        Ok(sig) => sig,
        Err(_) => {
            // A _OneShot holds no Python objects: the future may stay untracked.
            futuregc::store_leaf(fut, a.n_signal.bind(py), &fresh)?;
            fresh
        }
    };
    let done =
        |state: &Bound<'_, PyAny>| !(state.is(a.pending.bind(py)) || state.is(a.running.bind(py)));
    let mut state = fut.getattr(a.n_state.bind(py))?;
    if !done(&state) {
        sig.get().wait_detached(py, timeout.deadline)?;
        state = fut.getattr(a.n_state.bind(py))?;
    }
    if state.is(a.finished.bind(py)) {
        Ok(())
    } else if state.is(a.cancelled.bind(py)) || state.is(a.cancelled_notified.bind(py)) {
        Err(errors::cancelled_error(py))
    } else {
        Err(errors::timeout_error(py))
    }
}
