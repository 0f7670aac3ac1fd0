//! The Python-facing handle on one subscription: push or pull (iterate it or call get()).

use super::aio;
use super::bus::PubSub;
use super::dispatch::handler_failed;
use super::message::Message;
use super::{Sub, IN_DISPATCH};
use crate::core::wait::next_slice;
use crate::py::aio::{self as pyaio, LoopWaker};
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

impl Subscription {
    fn pull_only(&self, what: &str) -> PyResult<()> {
        if self.pull {
            return Ok(());
        }
        Err(PyTypeError::new_err(format!(
            "{what} is for pull subscriptions (subscribe without a handler)"
        )))
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

    /// Stops delivery; messages still queued for this subscription are discarded. (A no-op in
    /// a child process: the subscription belongs to the parent.)
    /// An async handler's subscription, unsubscribed off its loop's thread, also waits for
    /// the coroutines in progress (while that loop runs).
    fn unsubscribe(&self, py: Python<'_>) -> PyResult<()> {
        if self.born.inherited() {
            return Ok(());
        }
        self.bus.get().inner.end(&self.sub);
        let aio_loop = self
            .sub
            .extra
            .handlers
            .read()
            .aio_loop
            .as_ref()
            .map(|l| l.clone_ref(py));
        if let Some(l) = aio_loop {
            aio::wait_handled(py, &self.sub, l.bind(py))?;
        }
        Ok(())
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

    // asyncio (see py/pubsub/aio.rs and chanpool/_aio_pubsub.py).

    /// Pull subscriptions, from a coroutine: the next message, waiting on the event loop up to
    /// `timeout` seconds (queue.Empty, chanpool.Closed as get()); a cancelled get consumes
    /// nothing.
    #[pyo3(signature = (timeout=Timeout::FOREVER), text_signature = "($self, timeout=None)")]
    fn get_async<'py>(slf: &Bound<'py, Self>, timeout: Timeout) -> PyResult<Bound<'py, PyAny>> {
        slf.get().pull_only("get_async()")?;
        aio::coroutine(slf.py(), "get")?.call1((slf, pyaio::secs(timeout)))
    }

    fn __aiter__(slf: PyRef<'_, Self>) -> PyResult<PyRef<'_, Self>> {
        slf.pull_only("async for")?;
        Ok(slf)
    }

    /// `async for` gets until the subscription has ended and nothing is left, like iteration.
    fn __anext__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        aio::coroutine(slf.py(), "anext")?.call1((slf,))
    }

    fn _aio_get(
        &self,
        py: Python<'_>,
        waker: PyRef<'_, LoopWaker>,
        fut: Py<PyAny>,
        handle: bool,
    ) -> PyResult<(Py<PyAny>, bool)> {
        self.born.check("Subscription")?;
        let r = aio::get(py, &self.sub, &waker, fut, handle)?;
        if r.1 && !handle {
            self.sub.count_delivered();
        }
        Ok(r)
    }

    /// The next message if one is queued (None if not); chanpool.Closed once ended and empty.
    fn _aio_try(&self, py: Python<'_>, handle: bool) -> PyResult<Option<Py<Message>>> {
        self.born.check("Subscription")?;
        match self.sub.mailbox.try_pop_handled(handle) {
            Ok(m) => {
                if !handle {
                    self.sub.count_delivered();
                }
                Ok(Some(m))
            }
            Err(false) => Ok(None),
            Err(true) => Err(errors::closed(py, "the subscription has ended")),
        }
    }

    fn _aio_leave(&self, wait: PyRef<'_, aio::SubWait>) {
        aio::leave(&self.sub, &wait);
    }

    /// An async handler finished `msg` (`error`: what it raised, to on_error / dead letters).
    fn _aio_done(&self, py: Python<'_>, msg: Py<Message>, error: Option<Bound<'_, PyAny>>) {
        match error {
            None => self.sub.count_delivered(),
            Some(e) => {
                let on_error = self
                    .sub
                    .extra
                    .handlers
                    .read()
                    .on_error
                    .as_ref()
                    .map(|x| x.clone_ref(py));
                // As on a dispatch thread: a dead letter never waits for room (the loop
                // waiting for itself), and is accepted while close(drain=True) delivers.
                let was = IN_DISPATCH.with(|c| c.replace(true));
                handler_failed(py, &self.sub, on_error.as_ref(), msg, PyErr::from_value(e));
                IN_DISPATCH.with(|c| c.set(was));
            }
        }
        self.sub.mailbox.handled();
    }

    /// An async handler's call was cancelled (its loop is going away): the message counts as
    /// dropped.
    fn _aio_dropped(&self) {
        self.sub.count_dropped(1);
        self.sub.mailbox.handled();
    }

    /// The consumers of an async subscription are gone (their loop stopped or closed): the
    /// subscription ends; what is still queued is discarded and counted (returned).
    fn _aio_abandon(&self) -> usize {
        let bus = &self.bus.get().inner;
        let n = self.sub.mailbox.pending();
        bus.end(&self.sub);
        bus.discarded.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(&self, py: Python<'_>, _t: ExitArg, _e: ExitArg, _tb: ExitArg) -> PyResult<bool> {
        self.unsubscribe(py)?;
        Ok(false)
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
