//! The Python-facing handle on one subscription: push or pull (iterate it or call get()).

use super::bus::PubSub;
use super::message::Message;
use super::Sub;
use crate::py::errors;
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
    /// Process generation (see runtime): after fork() its locks may be held by threads that
    /// only exist in the parent.
    pub(super) gen: u64,
}

impl Subscription {
    fn check(&self) -> PyResult<()> {
        runtime::check_process(self.gen, "Subscription")
    }
}

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

    /// Stops delivery; messages still queued for this subscription are discarded.
    /// Stops delivery; messages still queued for this subscription are discarded. (A no-op in
    /// a child process: the subscription belongs to the parent.)
    fn unsubscribe(&self) {
        if self.check().is_ok() {
            self.bus.get().inner.end(&self.sub);
        }
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.check()?;
        let d = PyDict::new(py);
        d.set_item("delivered", self.sub.delivered.load(Ordering::Relaxed))?;
        d.set_item("dropped", self.sub.mailbox.dropped.load(Ordering::Relaxed))?;
        d.set_item("pending", self.sub.mailbox.pending())?;
        d.set_item("errors", self.sub.errors.load(Ordering::Relaxed))?;
        d.set_item("active", self.sub.is_active())?;
        Ok(d)
    }

    /// Pull subscriptions: the next message, waiting up to `timeout` seconds (queue.Empty when
    /// it runs out, chanpool.Closed once the subscription has ended and nothing is left).
    #[pyo3(signature = (timeout=None))]
    fn get(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<Message>> {
        if !self.pull {
            return Err(PyTypeError::new_err(
                "get() is for pull subscriptions (subscribe without a handler)",
            ));
        }
        self.check()?;
        let deadline = runtime::deadline_from(timeout)?;
        let mb = &self.sub.mailbox;
        let mut r = mb.try_pop();
        loop {
            match r {
                Ok(m) => {
                    self.sub.count_delivered();
                    return Ok(m);
                }
                Err(true) => return Err(errors::closed(py, "the subscription has ended")),
                Err(false) => {}
            }
            let Some(slice) = runtime::next_slice(deadline) else {
                return Err(errors::queue_empty(py));
            };
            r = runtime::detach(py, || mb.pop_wait(slice));
            if matches!(r, Err(false)) {
                py.check_signals()?;
            }
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
        match self.get(py, None) {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.is_instance(py, errors::closed_type(py)?.as_any()) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _t: Option<&Bound<'_, PyAny>>,
        _e: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> bool {
        let _ = py;
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
        visit.call(&self.bus)
    }
}
