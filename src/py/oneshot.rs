//! The one-shot event a waited-on chanpool.Future sleeps on (`_future.py`): result() waits
//! detached, in slices (Ctrl-C, deadlines), and whoever completes the future sets it, so a
//! waiter is woken by a futex instead of threading.Condition's Python-level lock hand-over.

use crate::core::oneshot::OneShot as CoreOneShot;
use crate::py::args::Timeout;
use crate::py::runtime::acquire_detached;
use pyo3::prelude::*;
use std::sync::Arc;
use std::time::Instant;

#[pyclass(module = "chanpool._core", name = "_OneShot", frozen)]
pub struct OneShot {
    inner: Arc<CoreOneShot>,
}

impl Default for OneShot {
    fn default() -> Self {
        Self::new()
    }
}

impl OneShot {
    pub fn new() -> Self {
        OneShot {
            inner: Arc::new(CoreOneShot::new()),
        }
    }

    /// Waits detached until set: Ok(true), Ok(false) at the deadline, the signal's error on
    /// Ctrl-C.
    pub fn wait_detached(&self, py: Python<'_>, deadline: Option<Instant>) -> PyResult<bool> {
        let inner = &self.inner;
        if inner.is_set() {
            return Ok(true);
        }
        acquire_detached(py, |hook| inner.wait(deadline, hook))
    }

    /// Sets `obj` if it is a `_OneShot` (the worker's completion path; anything else is ignored).
    pub fn set_any(obj: &Bound<'_, PyAny>) {
        if let Ok(e) = obj.cast::<OneShot>() {
            e.get().inner.set();
        }
    }
}

#[pymethods]
impl OneShot {
    #[new]
    fn py_new() -> Self {
        Self::new()
    }

    /// Sets the event: every waiter wakes, later waits return at once.
    fn set(&self) {
        self.inner.set();
    }

    fn is_set(&self) -> bool {
        self.inner.is_set()
    }

    /// Waits (GIL released) until set: True, or False once `timeout` passes.
    #[pyo3(signature = (timeout = Timeout::FOREVER), text_signature = "($self, timeout=None)")]
    fn wait(&self, py: Python<'_>, timeout: Timeout) -> PyResult<bool> {
        self.wait_detached(py, timeout.deadline)
    }
}

/// Hands the class and the wait to `chanpool._future` (which cannot import `_core`: that would
/// be a circle).
pub fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let future = m.py().import("chanpool._future")?;
    future.setattr("_OneShot", m.getattr("_OneShot")?)?;
    future.setattr("_wait_future", m.getattr("_wait_future")?)?;
    future.setattr("_finish_unobserved", m.getattr("_finish_unobserved")?)
}
