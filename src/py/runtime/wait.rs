//! The one way a binding blocks: detached (through [`super::detach`], so a thread never
//! re-attaches when that is unsafe at exit), in slices, with Ctrl-C checked between them on the
//! main thread, until a deadline that saturates instead of overflowing.

use super::exit::detach;
use super::threads::on_main_thread;
use pyo3::prelude::*;
use std::time::{Duration, Instant};

/// A Python timeout as a deadline: None waits forever, NaN is a ValueError, a timeout too far
/// away for the clock (inf, 1e19) means no deadline at all rather than a panic.
pub fn deadline_from(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_nan() => Err(pyo3::exceptions::PyValueError::new_err(
            "timeout must be a number, not NaN",
        )),
        Some(t) if t <= 0.0 => Ok(Some(Instant::now())),
        Some(t) => Ok(Duration::try_from_secs_f64(t)
            .ok()
            .and_then(|d| Instant::now().checked_add(d))),
    }
}

/// Runs a blocking core operation with the GIL released. Between its wait slices the hook
/// checks for Ctrl-C (on the main thread, where signals arrive); the error that stopped the
/// wait, if any, is returned for the caller to raise.
pub fn wait_detached<R, F>(py: Python<'_>, f: F) -> (R, Option<PyErr>)
where
    R: Send,
    F: FnOnce(crate::core::wait::Hook<'_>) -> R + Send,
{
    let main = on_main_thread();
    let mut err: Option<PyErr> = None;
    let r = detach(py, || {
        let mut hook = || {
            if !main {
                return false;
            }
            match Python::attach(|py| py.check_signals()) {
                Ok(()) => false,
                Err(e) => {
                    err = Some(e);
                    true
                }
            }
        };
        f(&mut hook)
    });
    (r, err)
}

/// `wait_detached` for waits that either take what they wait for or give up: Ok(true) when
/// taken, Ok(false) on timeout (or close), the signal's exception when interrupted.
pub fn acquire_detached<F>(py: Python<'_>, f: F) -> PyResult<bool>
where
    F: FnOnce(crate::core::wait::Hook<'_>) -> Result<(), crate::core::wait::Stop> + Send,
{
    use crate::core::wait::Stop;
    match wait_detached(py, f) {
        (Ok(()), _) => Ok(true),
        (Err(Stop::Interrupted), err) => Err(err
            .unwrap_or_else(|| pyo3::exceptions::PyKeyboardInterrupt::new_err("wait interrupted"))),
        (Err(Stop::Timeout | Stop::Closed), _) => Ok(false),
    }
}

/// `core::wait::in_slices` detached (PubSub's get, drain and join): Ok(Some(r)) once `step`
/// yields r, Ok(None) when the deadline passes, the signal's exception when Ctrl-C stops it.
pub fn slices_detached<R, F>(
    py: Python<'_>,
    deadline: Option<Instant>,
    step: F,
) -> PyResult<Option<R>>
where
    R: Send,
    F: FnMut(Duration) -> Option<R> + Send,
{
    use crate::core::wait::{in_slices, Stop};
    match wait_detached(py, |hook| in_slices(deadline, hook, step)) {
        (Ok(r), _) => Ok(Some(r)),
        (Err(Stop::Interrupted), err) => Err(err
            .unwrap_or_else(|| pyo3::exceptions::PyKeyboardInterrupt::new_err("wait interrupted"))),
        (Err(Stop::Timeout | Stop::Closed), _) => Ok(None),
    }
}
