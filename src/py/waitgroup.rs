//! WaitGroup: the core wait group (Go's sync.WaitGroup) adapted to Python; the counter under
//! chanpool.Group.

use crate::core::waitgroup::{AddError, WaitGroup as CoreWaitGroup};
use crate::py::aio::{self as pyaio, AioWait};
use crate::py::args::{Count, Timeout};
use crate::py::lifecycle::Born;
use crate::py::runtime::acquire_detached;
use pyo3::exceptions::{PyOverflowError, PyValueError};
use pyo3::prelude::*;
use std::sync::Arc;

/// Go's sync.WaitGroup: add(n) work, done() as each piece finishes, wait() until none is left
/// (GIL released, Ctrl-C and timeouts honoured). A counter that would go negative is a
/// ValueError and stays as it was.
#[pyclass(module = "chanpool", name = "WaitGroup", subclass, frozen)]
pub struct WaitGroup {
    core: Arc<CoreWaitGroup>,
    /// A wait group inherited by a fork() child refuses to be used there: the work it counts
    /// runs on threads the child does not have, so its counter could never reach zero.
    born: Born,
}

impl WaitGroup {
    fn core(&self) -> PyResult<&CoreWaitGroup> {
        self.born.check("WaitGroup")?;
        Ok(&self.core)
    }

    fn added(r: Result<i64, AddError>) -> PyResult<()> {
        match r {
            Ok(_) => Ok(()),
            Err(e @ AddError::Negative) => Err(PyValueError::new_err(e.to_string())),
            Err(e @ AddError::Overflow) => Err(PyOverflowError::new_err(e.to_string())),
        }
    }
}

impl Drop for WaitGroup {
    fn drop(&mut self) {
        if self.born.inherited() {
            crate::py::lifecycle::leak(&self.core);
        }
    }
}

#[pymethods]
impl WaitGroup {
    #[new]
    fn new() -> Self {
        WaitGroup {
            core: Arc::new(CoreWaitGroup::new()),
            born: Born::now(),
        }
    }

    /// Adds n (1 by default; negative takes away) to the counter; reaching zero wakes every
    /// waiter.
    #[pyo3(signature = (n = Count::ONE), text_signature = "($self, n=1)")]
    fn add(&self, n: Count) -> PyResult<()> {
        let delta = n
            .signed()
            .ok_or_else(|| PyOverflowError::new_err("n is out of range for a WaitGroup"))?;
        Self::added(self.core()?.add(delta))
    }

    /// One piece of work is finished: add(-1).
    fn done(&self) -> PyResult<()> {
        Self::added(self.core()?.done())
    }

    /// Waits until the counter is zero: True, or False once `timeout` passes.
    #[pyo3(signature = (timeout = Timeout::FOREVER), text_signature = "($self, timeout=None)")]
    fn wait(&self, py: Python<'_>, timeout: Timeout) -> PyResult<bool> {
        let core = self.core()?;
        if core.count() == 0 {
            return Ok(true);
        }
        acquire_detached(py, |hook| core.wait(timeout.deadline, hook))
    }

    /// The counter right now.
    #[getter]
    fn count(&self) -> PyResult<i64> {
        Ok(self.core()?.count())
    }

    /// For coroutines: waits on the event loop until the counter is zero; True, or False once
    /// `timeout` passes.
    #[pyo3(signature = (timeout = Timeout::FOREVER), text_signature = "($self, timeout=None)")]
    fn wait_async<'py>(slf: &Bound<'py, Self>, timeout: Timeout) -> PyResult<Bound<'py, PyAny>> {
        slf.get().core()?;
        crate::aio_coroutine!(slf.py(), "wg_wait")?.call1((slf, pyaio::secs(timeout)))
    }

    /// A coroutine's step: True if zero now, else `wait` is registered (see chanpool._aio).
    fn _aio_zero(&self, wait: PyRef<'_, AioWait>) -> PyResult<bool> {
        Ok(self.core()?.zero_or_register(&wait.registration()))
    }

    fn _aio_leave(&self, wait: PyRef<'_, AioWait>) -> PyResult<()> {
        self.core()?.leave(&wait.registration());
        Ok(())
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let cls = slf.get_type();
        Ok(format!(
            "<{}.{} at {:#x}: count={}>",
            cls.module()?,
            cls.qualname()?,
            slf.as_ptr() as usize,
            slf.get().core.count()
        ))
    }
}
