//! The Python-facing bus: subscribe, publish, close, stats, and its garbage-collector hooks.

use super::delivery::{BusInner, Extra, Handlers};
use super::dispatch::dispatch_main;
use super::routes::Routes;
use super::subscription::Subscription;
use super::{aio, closed_error, exit, Sub, EAGER, IN_DISPATCH};
use crate::core::broker::{Broker, SubOptions};
use crate::core::mailbox::{Mailbox, Overflow};
use crate::core::pool::Pool;
use crate::core::sync::RwLock;
use crate::core::topic;
use crate::py::args::{Callback, Count, Group, Timeout, Truthy};
use crate::py::gc::{self, gc_fields, Clear, Traverse};
use crate::py::lifecycle::{self, stats_dict, Born, ExitArg};
use crate::py::ratelimit::RateLimit;
use crate::py::runtime;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use pyo3::PyTraverseError;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// A broker where each subscriber has its own bounded queue and handlers run on native threads.
#[pyclass(module = "chanpool", name = "PubSub", frozen, subclass)]
pub struct PubSub {
    pub(super) inner: Arc<BusInner>,
    born: Born,
}

gc_fields!(PubSub { inner });

impl PubSub {
    fn check(&self) -> PyResult<()> {
        self.born.check("PubSub")
    }

    /// Publishes `data` on `topic`; returns how many subscriptions it was queued to.
    pub(super) fn publish(
        &self,
        py: Python<'_>,
        topic: &Bound<'_, PyString>,
        data: Py<PyAny>,
    ) -> PyResult<usize> {
        self.check()?;
        self.inner.publish(py, topic, data)
    }
}

#[pymethods]
impl PubSub {
    #[new]
    #[pyo3(signature = (*, max_workers=None))]
    fn new(py: Python<'_>, max_workers: Option<Count>) -> PyResult<Self> {
        // No cap by default: handlers that block (on each other, on I/O) get more threads.
        let cap = match max_workers {
            None => None,
            Some(n) => Some(n.size(1, "max_workers")?),
        };
        let max_workers = cap.unwrap_or(usize::MAX);
        let dispatch = Pool::new(max_workers, 0, "chanpool-pubsub".into(), dispatch_main);
        dispatch.set_lazy(EAGER, runtime::starve_after(py, super::MIN_STARVE));
        dispatch.set_stack_size(runtime::thread_stack_size(py));
        if let Some(max) = cap {
            let logged = AtomicBool::new(false);
            dispatch.set_on_limit(Box::new(move || {
                // Counted as live, so exit waits for this log call or it never starts.
                if let Some(_live) = exit::Live::enter() {
                    if !logged.swap(true, Ordering::AcqRel) {
                        log::warn!(
                            target: "chanpool",
                            "PubSub reached max_workers={max}: queued messages wait for a \
                             dispatch thread while every one is in a handler (handlers that \
                             wait on each other deadlock); raise max_workers or leave it unset"
                        );
                    }
                }
            }));
        }
        let inner = Arc::new(BusInner {
            broker: Broker::new(),
            dispatch,
            seq: AtomicU64::new(0),
            unrouted: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
            pushes: AtomicU64::new(0),
            totals: Arc::default(),
            closed: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            routes: Routes::default(),
        });
        exit::track(&inner);
        log::debug!(target: "chanpool", "PubSub started: max_workers={cap:?}");
        Ok(PubSub {
            inner,
            born: Born::now(),
        })
    }

    /// Subscribes `handler(message)` to a NATS-style pattern; without a handler, a pull
    /// subscription to iterate or `get()` from.
    #[pyo3(
        signature = (pattern, handler=Callback(None), *, capacity=Count::of(1024), overflow=Overflow::Block, workers=Count::ONE, group=Group(None), on_error=Callback(None), rate_limit=RateLimit(None), r#loop=None),
        text_signature = "($self, pattern, handler=None, *, capacity=1024, overflow='block', workers=1, group=None, on_error=None, rate_limit=None, loop=None)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn subscribe(
        slf: &Bound<'_, Self>,
        pattern: &str,
        handler: Callback,
        capacity: Count,
        overflow: Overflow,
        workers: Count,
        group: Group,
        on_error: Callback,
        rate_limit: RateLimit,
        r#loop: Option<Py<PyAny>>,
    ) -> PyResult<Py<Subscription>> {
        let me = slf.get();
        let py = slf.py();
        let (handler, on_error, group, rate) = (handler.0, on_error.0, group.0, rate_limit.0);
        me.check()?;
        if me.inner.closed.load(Ordering::Acquire) {
            return Err(closed_error());
        }
        topic::validate_pattern(pattern).map_err(|e| PyValueError::new_err(e.0))?;
        let capacity = capacity.size(1, "capacity")?;
        let workers = workers.size(1, "workers")?;
        if handler.is_none() && on_error.is_some() {
            return Err(PyValueError::new_err("on_error needs a handler"));
        }
        if handler.is_none() && rate.is_some() {
            return Err(PyValueError::new_err(
                "rate_limit needs a handler (pull subscribers pace themselves)",
            ));
        }
        let pull = handler.is_none();
        // An async handler: the loop its consumers run on (None: a plain handler). Its
        // mailbox is read like a pull one, by `workers` consumer tasks on that loop.
        let aio_loop = match &handler {
            Some(h) => aio::handler_loop(py, h, r#loop)?,
            None if r#loop.is_some() => {
                return Err(PyValueError::new_err("loop= is for async handlers"))
            }
            None => None,
        };
        let opts = SubOptions {
            capacity,
            overflow,
            workers: if pull || aio_loop.is_some() {
                0
            } else {
                workers
            },
            group,
        };
        let start = aio_loop.as_ref().map(|l| {
            let h = handler.as_ref().map(|h| h.clone_ref(py));
            let r = rate.as_ref().map(|r| r.clone_ref(py));
            (l.clone_ref(py), h, r)
        });
        let extra = Extra {
            handlers: RwLock::new(Handlers {
                handler,
                on_error,
                rate,
                aio_loop,
            }),
            bus: Arc::downgrade(&me.inner),
            totals: Arc::clone(&me.inner.totals),
        };
        let sub = me.inner.broker.subscribe(pattern, opts, extra);
        let s = Subscription {
            sub,
            bus: slf.clone().unbind(),
            pull,
            born: Born::now(),
        };
        let Some((l, h, r)) = start else {
            return Py::new(py, s);
        };
        let s = Bound::new(py, s)?;
        let started = aio::coroutine(py, "start").and_then(|f| f.call1((&s, l, h, workers, r)));
        if let Err(e) = started {
            me.inner.end(&s.get().sub);
            return Err(e);
        }
        Ok(s.unbind())
    }

    /// Publishes from a coroutine: as publish, but under overflow="block" it waits for room
    /// on the event loop (registered, not blocking it). Cancelled: not published to the
    /// subscriptions it had not reached yet.
    #[pyo3(signature = (topic, data=None))]
    fn publish_async<'py>(
        slf: &Bound<'py, Self>,
        topic: &Bound<'py, PyString>,
        data: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        slf.get().check()?;
        aio::coroutine(py, "publish")?.call1((slf, topic, data))
    }

    fn _aio_publish(
        &self,
        py: Python<'_>,
        topic: &Bound<'_, PyString>,
        data: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.check()?;
        let data = data.unwrap_or_else(|| py.None());
        aio::publish(py, &self.inner, topic, data)
    }

    // publish(topic, data=None): see entry.rs.

    /// Stops the bus. With drain, waits (up to timeout seconds) until every handler has seen
    /// what was queued; without, queued messages are discarded. Returns False if the timeout
    /// cut the drain short.
    #[pyo3(signature = (drain=Truthy(true), timeout=Timeout::FOREVER), text_signature = "($self, drain=True, timeout=None)")]
    fn close(&self, py: Python<'_>, drain: Truthy, timeout: Timeout) -> PyResult<bool> {
        let drain = drain.0;
        if self.born.inherited() {
            return Ok(false);
        }
        if drain && aio::on_a_handlers_loop(py, &self.inner)? {
            return Err(PyRuntimeError::new_err(
                "close(drain=True) on the event loop of an async handler would wait for that \
                 loop; use await bus.close_async() or close(drain=False)",
            ));
        }
        if drain && IN_DISPATCH.with(Cell::get) {
            return Err(PyRuntimeError::new_err(
                "close(drain=True) from inside a handler would wait for that handler; \
                 use close(drain=False) or close from another thread",
            ));
        }
        let r = self.inner.shutdown(py, drain, drain, timeout.deadline);
        log::debug!(target: "chanpool", "PubSub closed");
        r
    }

    /// close() from a coroutine: the drain waits on a thread of the loop's default executor
    /// while the loop keeps running the async handlers it waits for.
    #[pyo3(signature = (drain=true, timeout=None))]
    fn close_async<'py>(
        slf: &Bound<'py, Self>,
        drain: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        aio::coroutine(slf.py(), "close")?.call1((slf, drain, timeout))
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Totals since the bus was made (ended subscriptions included); `subscriptions` and
    /// `pending` describe the live ones.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.check()?;
        let subs = self.inner.broker.subscriptions();
        let pending: usize = subs.iter().map(|s| s.mailbox.pending()).sum();
        let (me, t) = (&self.inner, &self.inner.totals);
        stats_dict!(py, {
            "published" => me.seq.load(Ordering::Relaxed),
            "unrouted" => me.unrouted.load(Ordering::Relaxed),
            "subscriptions" => subs.len(),
            "delivered" => t.delivered.load(Ordering::Relaxed),
            "dropped" => t.dropped.load(Ordering::Relaxed),
            "errors" => t.errors.load(Ordering::Relaxed),
            "pending" => pending,
            "discarded" => me.discarded.load(Ordering::Relaxed),
            "workers" => me.dispatch.snapshot().workers,
        })
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(&self, py: Python<'_>, _t: ExitArg, _e: ExitArg, _tb: ExitArg) -> PyResult<bool> {
        self.close(py, Truthy(true), Timeout::FOREVER)
            .map(|_| false)
    }

    fn __repr__(&self) -> String {
        if self.check().is_err() {
            return "<chanpool.PubSub from the parent process>".into();
        }
        format!(
            "<chanpool.PubSub subscriptions={}{}>",
            self.inner.broker.len(),
            if self.closed() { " closed" } else { "" }
        )
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.traverse(&visit)
    }

    fn __clear__(&self) {
        gc::clear(&[&*self.inner]);
    }
}

impl Drop for PubSub {
    fn drop(&mut self) {
        if self.born.inherited() {
            lifecycle::leak(&self.inner);
            return;
        }
        // Nobody can publish any more; stop the dispatch threads once they are done.
        self.inner.closed.store(true, Ordering::Release);
        for s in self.inner.broker.subscriptions() {
            s.mailbox.close();
        }
        self.inner.dispatch.close();
    }
}

/// What the collector sees of a bus: each live subscription's callables and queued messages
/// (which can refer back to the bus, or to a subscription of it). Locked parts are skipped.
impl Traverse for BusInner {
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.broker.try_subscriptions().traverse(visit)
    }
}

impl Traverse for Sub {
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.extra.handlers.traverse(visit)?;
        self.mailbox.traverse(visit)
    }
}

impl<M: Traverse> Traverse for Mailbox<M> {
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.try_visit(|m| m.traverse(visit))
    }
}

gc_fields!(Handlers {
    handler,
    on_error,
    aio_loop
});

/// `__clear__` takes every subscription's callables and queued messages (those counted as
/// discarded), skipping what is locked.
impl Clear for BusInner {
    fn take(&self) -> Vec<Py<PyAny>> {
        let mut taken = Vec::new();
        for s in self.broker.try_subscriptions().unwrap_or_default() {
            if let Some(mut h) = s.extra.handlers.try_write() {
                let h = std::mem::take(&mut *h);
                taken.extend(h.handler.into_iter().chain(h.on_error).chain(h.aio_loop));
                taken.extend(h.rate.map(Py::into_any));
            }
            if let Some(left) = s.mailbox.try_clear() {
                let n = left.len() as u64;
                self.discarded.fetch_add(n, Ordering::Relaxed);
                s.mailbox.dropped.fetch_add(n, Ordering::Relaxed);
                taken.extend(left.into_iter().map(Py::into_any));
            }
        }
        taken
    }
}
