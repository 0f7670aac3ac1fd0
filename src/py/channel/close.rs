//! What a closed channel raises, and the errors of failed waits.
//!
//! One close error reaches every receiver, the same instance (as Go hands on one error value).
//! Raising one instance again and again would grow its traceback by every receiver's frames and
//! keep them all alive; so the channel keeps the traceback and context the error had when it
//! was closed with it and puts them back before each raise (Context does the same for its
//! errors): each receiver sees the error as it was given plus its own frames, nothing more.

use crate::py::errors;
use pyo3::exceptions::{PyBaseException, PyRuntimeError, PyTimeoutError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyTuple, PyType};

use crate::core::wait::Stop;

/// What raising (or re-raising) an exception instance changes on it.
const CHAINED: &[&str] = &[
    "__traceback__",
    "__context__",
    "__cause__",
    "__suppress_context__",
];

/// The close reason the core keeps: an exception class, or an instance with what raising it
/// changes (traceback, context, cause, suppress_context) as they were when it was closed.
pub fn close_reason(error: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let py = error.py();
    if error
        .cast::<PyType>()
        .is_ok_and(|t| t.is_subclass_of::<PyBaseException>().unwrap_or(false))
    {
        return Ok(error.clone().unbind());
    }
    if !error.is_instance_of::<PyBaseException>() {
        return Err(PyTypeError::new_err(format!(
            "error must be an exception instance or class, got {}",
            error.get_type().name()?
        )));
    }
    let mut parts = vec![error.clone()];
    for name in CHAINED {
        parts.push(error.getattr(*name)?);
    }
    Ok(PyTuple::new(py, parts)?.into_any().unbind())
}

/// The exception for a receive on a closed, drained channel.
pub fn ended(py: Python<'_>, reason: Option<&Py<PyAny>>) -> PyErr {
    let Some(reason) = reason else {
        return errors::closed(py, "the channel is closed");
    };
    let reason = reason.bind(py);
    let Ok(t) = reason.cast::<PyTuple>() else {
        // An exception class: a fresh instance for each receiver.
        return PyErr::from_value(reason.clone());
    };
    let fresh = || -> PyResult<PyErr> {
        let exc = t.get_item(0)?;
        for (i, name) in CHAINED.iter().enumerate() {
            exc.setattr(*name, t.get_item(i + 1)?)?;
        }
        Ok(PyErr::from_value(exc))
    };
    fresh().unwrap_or_else(|e| e)
}

pub fn send_closed(py: Python<'_>) -> PyErr {
    errors::closed(py, "send on a closed channel")
}

pub fn put_closed(py: Python<'_>) -> PyErr {
    errors::closed(py, "put() on a shut-down queue")
}

/// The error for a wait that stopped: the signal's exception when interrupted.
pub fn stopped(stop: Stop, signal: Option<PyErr>, what: &str) -> PyErr {
    match (stop, signal) {
        (_, Some(e)) => e,
        (Stop::Interrupted, None) => PyTimeoutError::new_err("interrupted"),
        (Stop::Timeout, None) => PyTimeoutError::new_err(format!("{what} timed out")),
        (Stop::Closed, None) => PyRuntimeError::new_err(format!("{what}: the channel is closed")),
    }
}
