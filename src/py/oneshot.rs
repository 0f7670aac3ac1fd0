//! The one-shot event a waited-on chanpool.Future sleeps on (`_future.py`): result() waits
//! detached, in slices (Ctrl-C, deadlines), and whoever completes the future sets it, so a
//! waiter is woken by a futex instead of threading.Condition's Python-level lock hand-over.

use crate::core::oneshot::OneShot as CoreOneShot;
use crate::py::args::Timeout;
use crate::py::runtime::acquire_detached;
use pyo3::prelude::*;
use std::cell::Cell;
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

    /// `set_any`, but left for this thread's next [`set_handed_off`]: a pool worker completing
    /// its task's future sets the event only once it has let go of the interpreter, so the
    /// woken waiter finds the GIL free instead of waking only to wait for it.
    pub fn set_after_detach(obj: &Bound<'_, PyAny>) {
        if let Ok(e) = obj.cast::<OneShot>() {
            let inner = Arc::clone(&e.get().inner);
            if let Some(earlier) = HANDOFF.with(|h| h.0.replace(Some(inner))) {
                earlier.set();
            }
        }
    }
}

/// The event a worker completed and has not set yet (at most one: a task completes one
/// future). A thread that ends with one still held sets it as it goes.
struct Handoff(Cell<Option<Arc<CoreOneShot>>>);

impl Drop for Handoff {
    fn drop(&mut self) {
        set_taken(self.0.take());
    }
}

thread_local! {
    static HANDOFF: Handoff = const { Handoff(Cell::new(None)) };
}

fn set_taken(e: Option<Arc<CoreOneShot>>) {
    if let Some(e) = e {
        e.set();
    }
}

/// Sets the event this thread's last completion left (see `set_after_detach`), if any: called
/// by the worker loop before every next job, detached when it has to wait for one.
#[inline]
pub fn set_handed_off() {
    set_taken(HANDOFF.try_with(|h| h.0.take()).ok().flatten());
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
    future.setattr("_track", m.getattr("_track")?)?;
    future.setattr("_finish_unobserved", m.getattr("_finish_unobserved")?)
}
