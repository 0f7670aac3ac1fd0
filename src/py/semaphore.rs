//! Semaphore: the core semaphore adapted to Python as a drop-in for threading.Semaphore and
//! threading.BoundedSemaphore, plus what the token bucket's binding shares with it: argument
//! conversion for counts and the detached, interruptible wait.

use crate::core::semaphore::{ReleaseError, Semaphore as CoreSemaphore};
use crate::core::wait::{Hook, Stop};
use crate::py::runtime::{self, deadline_from};
use pyo3::exceptions::{PyKeyboardInterrupt, PyOverflowError, PyValueError};
use pyo3::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

/// A whole-number argument. Ints too big for an i64 are kept as out-of-range markers so a
/// bad count is always a ValueError, never an OverflowError; non-ints are a TypeError.
#[derive(Debug, Clone, Copy)]
pub struct Count(i128);

impl Count {
    pub const ONE: Count = Count(1);

    pub fn at_least(self, min: u64, what: &str) -> PyResult<u64> {
        if self.0 < i128::from(min) {
            return Err(PyValueError::new_err(match i64::try_from(self.0) {
                Ok(v) => format!("{what} must be >= {min}, got {v}"),
                Err(_) => format!("{what} must be >= {min}"),
            }));
        }
        u64::try_from(self.0).map_err(|_| PyValueError::new_err(format!("{what} is too large")))
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for Count {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        match obj.extract::<i64>() {
            Ok(v) => Ok(Count(i128::from(v))),
            Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => {
                Ok(Count(if obj.gt(0)? { i128::MAX } else { i128::MIN }))
            }
            Err(e) => Err(e),
        }
    }
}

/// Any object, read by truth value like threading's `blocking` (so `acquire(0)` works).
#[derive(Debug, Clone, Copy)]
pub struct Truthy(bool);

impl<'a, 'py> FromPyObject<'a, 'py> for Truthy {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Ok(Truthy(obj.is_truthy()?))
    }
}

fn on_main_thread(py: Python<'_>) -> PyResult<bool> {
    let main = py
        .import("threading")?
        .call_method0("main_thread")?
        .getattr("ident")?;
    let me = py.import("_thread")?.call_method0("get_ident")?;
    main.eq(me)
}

/// Runs a blocking core wait detached; Ok(false) on timeout.
///
/// Only the main thread runs signal handlers, so only there does the hook attach (each
/// slice) to let Ctrl-C raise KeyboardInterrupt. Elsewhere it never touches the GIL: a waiter
/// whose turn comes must not first queue for the GIL behind busy Python threads.
pub fn wait_detached<F>(py: Python<'_>, op: F) -> PyResult<bool>
where
    F: Send + FnOnce(Hook<'_>) -> Result<(), Stop>,
{
    let main = on_main_thread(py)?;
    let mut err: Option<PyErr> = None;
    let r = py.detach(|| {
        let mut hook = || {
            main && Python::attach(|py| match py.check_signals() {
                Ok(()) => false,
                Err(e) => {
                    err = Some(e);
                    true
                }
            })
        };
        op(&mut hook)
    });
    match r {
        Ok(()) => Ok(true),
        Err(Stop::Interrupted) => {
            Err(err.unwrap_or_else(|| PyKeyboardInterrupt::new_err("wait interrupted")))
        }
        Err(Stop::Timeout | Stop::Closed) => Ok(false),
    }
}

/// Tracks the fork generation an object was last used in (see `Line::forget_before`).
pub struct ForkEpoch(AtomicU64);

impl ForkEpoch {
    pub fn new() -> Self {
        ForkEpoch(AtomicU64::new(runtime::generation()))
    }

    /// Calls `forget` once per new generation, before the object is used there.
    pub fn check(&self, forget: impl FnOnce(u64)) {
        let gen = runtime::generation();
        if self.0.load(Ordering::Acquire) != gen {
            forget(gen);
            self.0.store(gen, Ordering::Release);
        }
    }
}

/// A drop-in for threading.Semaphore (and BoundedSemaphore with bounded=True) whose waiters
/// are served in arrival order and wait with the GIL released.
#[pyclass(module = "chanpool", name = "Semaphore", subclass, frozen)]
pub struct Semaphore {
    core: CoreSemaphore,
    epoch: ForkEpoch,
}

impl Semaphore {
    fn core(&self) -> &CoreSemaphore {
        self.epoch.check(|gen| self.core.forget_waiters_before(gen));
        &self.core
    }
}

#[pymethods]
impl Semaphore {
    #[new]
    #[pyo3(
        signature = (value = Count::ONE, *, bounded = false),
        text_signature = "(value=1, *, bounded=False)"
    )]
    fn new(value: Count, bounded: bool) -> PyResult<Self> {
        let value = value
            .at_least(0, "value")
            .map_err(|_| PyValueError::new_err("semaphore initial value must be >= 0"))?;
        Ok(Semaphore {
            core: CoreSemaphore::new(value, bounded),
            epoch: ForkEpoch::new(),
        })
    }

    /// Takes n permits (1 by default), waiting in line for them unless blocking is false;
    /// False when they could not be had in time.
    #[pyo3(
        signature = (blocking = Truthy(true), timeout = None, *, n = Count::ONE),
        text_signature = "($self, blocking=True, timeout=None, *, n=1)"
    )]
    fn acquire(
        &self,
        py: Python<'_>,
        blocking: Truthy,
        timeout: Option<f64>,
        n: Count,
    ) -> PyResult<bool> {
        let n = n.at_least(1, "n")?;
        if !blocking.0 && timeout.is_some() {
            return Err(PyValueError::new_err(
                "can't specify timeout for non-blocking acquire",
            ));
        }
        let core = self.core();
        if let Some(b) = core.bound().filter(|&b| n > b) {
            return Err(PyValueError::new_err(format!(
                "n={n} exceeds the bound {b}: it could never be acquired"
            )));
        }
        if core.try_acquire(n) {
            return Ok(true);
        }
        if !blocking.0 {
            return Ok(false);
        }
        let deadline = deadline_from(timeout)?;
        wait_detached(py, |hook| core.acquire(n, deadline, hook))
    }

    /// Takes n permits if they are free and nobody is waiting; never blocks.
    #[pyo3(signature = (n = Count::ONE), text_signature = "($self, n=1)")]
    fn try_acquire(&self, n: Count) -> PyResult<bool> {
        Ok(self.core().try_acquire(n.at_least(1, "n")?))
    }

    #[pyo3(signature = (n = Count::ONE), text_signature = "($self, n=1)")]
    fn release(&self, n: Count) -> PyResult<()> {
        let n = n
            .at_least(1, "n")
            .map_err(|_| PyValueError::new_err("n must be one or more"))?;
        self.core().release(n).map_err(|e| match e {
            ReleaseError::AboveBound => PyValueError::new_err(e.to_string()),
            ReleaseError::Overflow => PyOverflowError::new_err(e.to_string()),
        })
    }

    /// Permits free right now.
    #[getter]
    fn available(&self) -> u64 {
        self.core().available()
    }

    /// Threads waiting in line right now.
    #[getter]
    fn waiting(&self) -> usize {
        self.core().waiting()
    }

    #[getter]
    fn bounded(&self) -> bool {
        self.core.bound().is_some()
    }

    /// Like threading.Semaphore: returns acquire()'s result.
    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire(py, Truthy(true), None, Count::ONE)
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

    fn __repr__(&self) -> String {
        let core = self.core();
        let value = match core.bound() {
            Some(b) => format!("{}/{b} bounded", core.available()),
            None => core.available().to_string(),
        };
        format!(
            "<chanpool.Semaphore value={value} waiting={}>",
            core.waiting()
        )
    }
}
