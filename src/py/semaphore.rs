//! Semaphore: the core semaphore adapted to Python as a drop-in for threading.Semaphore and
//! threading.BoundedSemaphore.

use crate::core::semaphore::{ReleaseError, Semaphore as CoreSemaphore};
use crate::py::aio::{self as pyaio, AioWait};
use crate::py::args::{Count, Timeout, Truthy};
use crate::py::lifecycle::Rebuilt;
use crate::py::runtime::acquire_detached;
use pyo3::exceptions::{PyOverflowError, PyValueError};
use pyo3::prelude::*;

/// A drop-in for threading.Semaphore (and BoundedSemaphore with bounded=True) whose waiters
/// are served in arrival order and wait with the GIL released.
#[pyclass(module = "chanpool", name = "Semaphore", subclass, frozen)]
pub struct Semaphore {
    /// Rebuilt on first use in a fork() child (README: keeps working there).
    core: Rebuilt<CoreSemaphore>,
}

impl Semaphore {
    /// The core, once `n` is known to be a request that can ever be served.
    fn checked(&self, n: u64) -> PyResult<&CoreSemaphore> {
        let core = self.core.get();
        if let Some(b) = core.bound().filter(|&b| n > b) {
            return Err(PyValueError::new_err(format!(
                "n={n} exceeds the bound {b}: it could never be acquired"
            )));
        }
        Ok(core)
    }
}

#[pymethods]
impl Semaphore {
    #[new]
    #[pyo3(
        signature = (value = Count::ONE, *, bounded = Truthy(false)),
        text_signature = "(value=1, *, bounded=False)"
    )]
    fn new(value: Count, bounded: Truthy) -> PyResult<Self> {
        let value = value.at_least(0, "semaphore initial value")?;
        Ok(Semaphore {
            core: Rebuilt::new(
                CoreSemaphore::new(value, bounded.0),
                CoreSemaphore::rebuilt_after_fork,
            ),
        })
    }

    /// Takes n permits (1 by default), waiting in line for them unless blocking is false;
    /// False when they could not be had in time.
    #[pyo3(
        signature = (blocking = Truthy(true), timeout = Timeout::FOREVER, *, n = Count::ONE),
        text_signature = "($self, blocking=True, timeout=None, *, n=1)"
    )]
    fn acquire(
        &self,
        py: Python<'_>,
        blocking: Truthy,
        timeout: Timeout,
        n: Count,
    ) -> PyResult<bool> {
        let n = n.at_least(1, "n")?;
        if !blocking.0 && timeout.secs.is_some() {
            return Err(PyValueError::new_err(
                "can't specify timeout for non-blocking acquire",
            ));
        }
        let deadline = timeout.deadline;
        let core = self.checked(n)?;
        if core.try_acquire(n) {
            return Ok(true);
        }
        if !blocking.0 {
            return Ok(false);
        }
        acquire_detached(py, |hook| core.acquire(n, deadline, hook))
    }

    /// Takes n permits if they are free and nobody is waiting; never blocks.
    #[pyo3(signature = (n = Count::ONE), text_signature = "($self, n=1)")]
    fn try_acquire(&self, n: Count) -> PyResult<bool> {
        let n = n.at_least(1, "n")?;
        Ok(self.checked(n)?.try_acquire(n))
    }

    /// Gives back n permits (threading's message and ValueError when below 1).
    #[pyo3(signature = (n = Count::ONE), text_signature = "($self, n=1)")]
    fn release(&self, n: Count) -> PyResult<()> {
        let n = match n.at_least(1, "n") {
            Ok(n) => n,
            Err(_) if n.below(1) => return Err(PyValueError::new_err("n must be one or more")),
            Err(e) => return Err(e),
        };
        self.core.get().release(n).map_err(|e| match e {
            ReleaseError::AboveBound => PyValueError::new_err(e.to_string()),
            ReleaseError::Overflow => PyOverflowError::new_err(e.to_string()),
        })
    }

    /// Permits free right now.
    #[getter]
    fn available(&self) -> u64 {
        self.core.get().available()
    }

    /// Threads waiting in line right now.
    #[getter]
    fn waiting(&self) -> usize {
        self.core.get().waiting()
    }

    #[getter]
    fn bounded(&self) -> bool {
        self.core.fixed().bound().is_some()
    }

    /// Like threading.Semaphore: returns acquire()'s result.
    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire(py, Truthy(true), Timeout::FOREVER, Count::ONE)
    }

    fn __exit__(
        &self,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.release(Count::ONE)?;
        Ok(false)
    }

    /// For coroutines: takes n permits, waiting on the event loop (threads already in line
    /// go first); True, or False once timeout passes. A cancelled acquire_async holds nothing.
    #[pyo3(
        signature = (n = Count::ONE, timeout = Timeout::FOREVER),
        text_signature = "($self, n=1, timeout=None)"
    )]
    fn acquire_async<'py>(
        slf: &Bound<'py, Self>,
        n: Count,
        timeout: Timeout,
    ) -> PyResult<Bound<'py, PyAny>> {
        let n = n.at_least(1, "n")?;
        slf.get().checked(n)?;
        crate::aio_coroutine!(slf.py(), "sem_acquire")?.call1((slf, n, pyaio::secs(timeout)))
    }

    fn __aenter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        crate::aio_coroutine!(slf.py(), "sem_acquire")?.call1((slf, 1, None::<f64>))
    }

    fn __aexit__<'py>(
        slf: &Bound<'py, Self>,
        _exc_type: &Bound<'py, PyAny>,
        _exc: &Bound<'py, PyAny>,
        _tb: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::aio_coroutine!(slf.py(), "sem_release")?.call1((slf,))
    }

    /// A coroutine's step: takes n permits now or registers `wait` (see chanpool._aio).
    fn _aio_acquire(&self, n: u64, wait: PyRef<'_, AioWait>, woken: bool) -> bool {
        self.core
            .get()
            .acquire_or_register(n, &wait.registration(), woken)
    }

    fn _aio_leave(&self, wait: PyRef<'_, AioWait>) {
        self.core.get().leave(&wait.registration());
    }

    /// threading's format: `<module.Class at 0x..: value=N>`, `value=N/bound` when bounded.
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let core = slf.get().core.get();
        let cls = slf.get_type();
        let value = match core.bound() {
            Some(b) => format!("{}/{b}", core.available()),
            None => core.available().to_string(),
        };
        Ok(format!(
            "<{}.{} at {:#x}: value={value}>",
            cls.module()?,
            cls.qualname()?,
            slf.as_ptr() as usize
        ))
    }
}
