//! The Python-facing handle on one subscription: push or pull (iterate it or call get()).

use super::bus::PubSub;
use super::message::Message;
use super::Sub;
use crate::core::wait::next_slice;
use crate::py::args::Timeout;
use crate::py::errors;
use crate::py::gc::{gc_fields, Traverse};
use crate::py::lifecycle::{stats_dict, Born, ExitArg};
use crate::py::runtime;
use pyo3::exceptions::PyTypeError;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::PyTraverseError;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A handle on one subscription (push, with a handler, or pull: iterate it or call get()).
#[pyclass(module = "chanpool", name = "Subscription", frozen)]
pub struct Subscription {
    pub(super) sub: Arc<Sub>,
    pub(super) bus: Py<PubSub>,
    pub(super) pull: bool,
    /// After fork() its locks may be held by threads that only exist in the parent.
    pub(super) born: Born,
}

gc_fields!(Subscription { bus });

#[pymethods]
impl Subscription {
    #[getter]
    fn pattern(&self) -> &str {
        &self.sub.pattern
    }

    #[getter]
    fn group(&self) -> Option<&str> {
        self.sub.group.as_deref()
    }

    #[getter]
    fn active(&self) -> bool {
        self.sub.is_active()
    }

    /// Stops delivery; messages still queued for this subscription are discarded. (A no-op in
    /// a child process: the subscription belongs to the parent.)
    fn unsubscribe(&self) {
        if !self.born.inherited() {
            self.bus.get().inner.end(&self.sub);
        }
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.born.check("Subscription")?;
        let s = &self.sub;
        stats_dict!(py, {
            "delivered" => s.delivered.load(Ordering::Relaxed),
            "dropped" => s.mailbox.dropped.load(Ordering::Relaxed),
            "pending" => s.mailbox.pending(),
            "errors" => s.errors.load(Ordering::Relaxed),
            "active" => s.is_active(),
        })
    }

    /// Pull subscriptions: the next message, waiting up to `timeout` seconds (queue.Empty when
    /// it runs out, chanpool.Closed once the subscription has ended and nothing is left).
    #[pyo3(signature = (timeout=Timeout::FOREVER), text_signature = "($self, timeout=None)")]
    fn get(&self, py: Python<'_>, timeout: Timeout) -> PyResult<Py<Message>> {
        if !self.pull {
            return Err(PyTypeError::new_err(
                "get() is for pull subscriptions (subscribe without a handler)",
            ));
        }
        self.born.check("Subscription")?;
        let mb = &self.sub.mailbox;
        // Taken at once if queued (no detaching); past the deadline, no wait at all.
        let r = match mb.try_pop() {
            Err(false) if next_slice(timeout.deadline).is_some() => {
                let step = |slice| match mb.pop_wait(slice) {
                    Err(false) => None,
                    r => Some(r),
                };
                runtime::slices_detached(py, timeout.deadline, step)?.unwrap_or(Err(false))
            }
            r => r,
        };
        match r {
            Ok(m) => {
                self.sub.count_delivered();
                Ok(m)
            }
            Err(true) => Err(errors::closed(py, "the subscription has ended")),
            Err(false) => Err(errors::queue_empty(py)),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyResult<PyRef<'_, Self>> {
        if !slf.pull {
            return Err(PyTypeError::new_err(
                "only pull subscriptions (subscribe without a handler) are iterable",
            ));
        }
        Ok(slf)
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<Message>>> {
        match self.get(py, Timeout::FOREVER) {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.is_instance(py, errors::closed_type(py)?.as_any()) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(&self, _t: ExitArg, _e: ExitArg, _tb: ExitArg) -> bool {
        self.unsubscribe();
        false
    }

    fn __repr__(&self) -> String {
        format!(
            "<chanpool.Subscription {}{}{}>",
            self.sub.name(),
            if self.pull { " pull" } else { "" },
            if self.sub.is_active() { "" } else { " ended" }
        )
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.traverse(&visit)
    }
}
