//! PubSub: the broker adapted to Python. Each subscription owns a bounded mailbox; its handler
//! runs on a shared pool of native dispatch threads, at most `workers` deliveries at a time (one
//! keeps the subscriber's order). Like WorkerPool's, dispatch threads attach once and let go of
//! the GIL only to wait for work.

use crate::core::broker::{Broker, SubOptions, Subscription as CoreSub};
use crate::core::mailbox::{Overflow, Push};
use crate::core::pool::{Next, Pool, Worker};
use crate::core::topic;
use crate::py::errors;
use crate::py::runtime::{self, Stoppable, SLICE};
use parking_lot::RwLock;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use pyo3::PyTraverseError;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

/// Messages a dispatch run delivers before it lets other subscriptions have the thread.
const TURN: usize = 256;
const BATCH: usize = 64;

thread_local! {
    /// True on dispatch threads: a publish from a handler must never wait for room.
    static IN_DISPATCH: Cell<bool> = const { Cell::new(false) };
}

/// One published message, shared by every subscription it reaches.
#[pyclass(module = "chanpool", name = "Message", frozen)]
pub struct Message {
    #[pyo3(get)]
    topic: Py<PyString>,
    #[pyo3(get)]
    data: Py<PyAny>,
    /// The bus's publish counter: increases with every publish.
    #[pyo3(get)]
    seq: u64,
    /// time.time() when it was published.
    #[pyo3(get)]
    timestamp: f64,
}

#[pymethods]
impl Message {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Message(topic={}, data={}, seq={})",
            self.topic.bind(py).repr()?,
            self.data.bind(py).repr()?,
            self.seq
        ))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.data)
    }
}

#[derive(Default)]
struct Handlers {
    handler: Option<Py<PyAny>>,
    on_error: Option<Py<PyAny>>,
}

pub struct Extra {
    handlers: RwLock<Handlers>,
    bus: Weak<BusInner>,
}

type Sub = CoreSub<Py<Message>, Extra>;
type Dispatch = Pool<Arc<Sub>>;

pub struct BusInner {
    broker: Broker<Py<Message>, Extra>,
    dispatch: Arc<Dispatch>,
    seq: AtomicU64,
    published: AtomicU64,
    discarded: AtomicU64,
    closed: AtomicBool,
}

impl BusInner {
    fn schedule(&self, sub: &Arc<Sub>) {
        // The dispatch queue is unbounded: this never waits. A refusal means the bus is closing.
        let _ = self.dispatch.try_submit(Arc::clone(sub), 0);
    }

    /// Queues `msg` for `sub`; true if it was queued.
    fn deliver(&self, py: Python<'_>, sub: &Arc<Sub>, msg: Py<Message>) -> PyResult<bool> {
        let mb = &sub.mailbox;
        let in_handler = IN_DISPATCH.with(Cell::get);
        let mut r = mb.push(msg);
        if let Push::Full(m) = r {
            r = match mb.overflow() {
                Overflow::Error => {
                    mb.dropped.fetch_add(1, Ordering::Relaxed);
                    return Err(errors::queue_full(
                        py,
                        &format!(
                            "subscription {} is full ({} messages queued, overflow='error')",
                            sub.name(),
                            mb.capacity()
                        ),
                    ));
                }
                // Waiting here could mean waiting for ourselves (or for the thread we hold).
                _ if in_handler => mb.push_force(m),
                _ => {
                    let mut m = m;
                    loop {
                        match py.detach(|| mb.push_timeout(m, SLICE)) {
                            Push::Full(back) => {
                                m = back;
                                py.check_signals()?;
                                if self.closed.load(Ordering::Acquire) {
                                    return Err(closed_error());
                                }
                            }
                            other => break other,
                        }
                    }
                }
            };
        }
        Ok(match r {
            Push::Queued { schedule } => {
                if schedule {
                    self.schedule(sub);
                }
                true
            }
            Push::Replaced { schedule, dropped } => {
                drop(dropped);
                if schedule {
                    self.schedule(sub);
                }
                true
            }
            Push::Dropped(_) | Push::Closed(_) | Push::Full(_) => false,
        })
    }

    fn publish(
        &self,
        py: Python<'_>,
        topic: &Bound<'_, PyString>,
        data: Py<PyAny>,
    ) -> PyResult<usize> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed_error());
        }
        let t = topic.to_cow()?;
        let t: &str = &t;
        topic::validate_topic(t).map_err(|e| PyValueError::new_err(e.0))?;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.published.fetch_add(1, Ordering::Relaxed);
        let route = self.broker.route(t);
        if route.is_empty() {
            return Ok(0);
        }
        let msg = Py::new(
            py,
            Message {
                topic: topic.clone().unbind(),
                data,
                seq,
                timestamp: now(),
            },
        )?;
        let mut n = 0;
        for sub in route.targets() {
            if self.deliver(py, &sub, msg.clone_ref(py))? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Ends a subscription: no more routing, queued messages discarded (and counted).
    fn end(&self, sub: &Sub) {
        self.broker.unsubscribe(sub);
        sub.mailbox.close();
        let left = sub.mailbox.clear();
        sub.mailbox
            .dropped
            .fetch_add(left.len() as u64, Ordering::Relaxed);
        drop(left);
    }

    fn shutdown(
        &self,
        py: Python<'_>,
        drain: bool,
        deadline: Option<std::time::Instant>,
    ) -> PyResult<bool> {
        let first = !self.closed.swap(true, Ordering::AcqRel);
        let mut complete = true;
        let subs = self.broker.subscriptions();
        if drain && first {
            for sub in subs.iter().filter(|s| s.is_active()) {
                if sub.extra.handlers.read().handler.is_none() {
                    continue; // pull subscriptions keep what is queued for their reader
                }
                loop {
                    let Some(slice) = runtime::next_slice(deadline) else {
                        complete = false;
                        break;
                    };
                    if py.detach(|| sub.mailbox.wait_idle(slice)) {
                        break;
                    }
                    py.check_signals()?;
                }
            }
        }
        for sub in &subs {
            self.broker.unsubscribe(sub);
            sub.mailbox.close();
            let pull = sub.extra.handlers.read().handler.is_none();
            if !(drain && pull) {
                let left = sub.mailbox.clear();
                self.discarded
                    .fetch_add(left.len() as u64, Ordering::Relaxed);
                drop(left);
            }
        }
        self.dispatch.close();
        while !py.detach(|| self.dispatch.join(Some(SLICE))) {
            py.check_signals()?;
        }
        Ok(complete)
    }
}

impl Stoppable for BusInner {
    fn stop_for_exit(&self, py: Python<'_>) {
        let _ = self.shutdown(py, false, None);
    }
}

fn closed_error() -> PyErr {
    PyRuntimeError::new_err("this PubSub is closed")
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn dispatch_main(w: Worker<Arc<Sub>>) {
    if runtime::exiting() {
        return;
    }
    IN_DISPATCH.with(|c| c.set(true));
    Python::attach(|py| loop {
        let sub = match w.try_next() {
            Next::Job(s) => s,
            Next::Empty => match py.detach(|| w.wait_next()) {
                Some(s) => s,
                None => break,
            },
            Next::Closed => break,
        };
        run_turn(py, w.pool(), sub);
    });
}

/// Delivers up to TURN messages of one subscription, then requeues it if more are waiting.
fn run_turn(py: Python<'_>, pool: &Arc<Dispatch>, sub: Arc<Sub>) {
    let mut buf = Vec::with_capacity(BATCH);
    let mut done = 0;
    loop {
        buf.clear();
        sub.mailbox.take(BATCH, &mut buf);
        if buf.is_empty() {
            return; // the run has ended; the next publish schedules a new one
        }
        let (handler, on_error) = {
            let h = sub.extra.handlers.read();
            (
                h.handler.as_ref().map(|x| x.clone_ref(py)),
                h.on_error.as_ref().map(|x| x.clone_ref(py)),
            )
        };
        for msg in buf.drain(..) {
            let Some(handler) = handler.as_ref() else {
                sub.mailbox.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            match handler.bind(py).call1((msg.bind(py),)) {
                Ok(_) => {
                    sub.delivered.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => handler_failed(py, &sub, on_error.as_ref(), msg, e),
            }
        }
        done += BATCH;
        if done >= TURN {
            match pool.try_submit(Arc::clone(&sub), 0) {
                Ok(()) => return,
                Err(_) => done = 0, // closing: finish the queue here
            }
        }
    }
}

fn handler_failed(
    py: Python<'_>,
    sub: &Sub,
    on_error: Option<&Py<PyAny>>,
    msg: Py<Message>,
    e: PyErr,
) {
    sub.errors.fetch_add(1, Ordering::Relaxed);
    let exc = e.value(py).clone();
    if let Some(cb) = on_error {
        if let Err(e2) = cb.bind(py).call1((exc, msg.bind(py))) {
            errors::log_exception(
                py,
                &format!("on_error of subscription {} failed", sub.name()),
                e2,
            );
        }
        return;
    }
    let topic = msg.get().topic.bind(py).to_string();
    errors::log_exception(
        py,
        &format!(
            "handler of subscription {} failed on topic {topic:?}",
            sub.name()
        ),
        e,
    );
    // Dead letters, unless this already is one (no loops).
    if topic.starts_with("_errors.") {
        return;
    }
    let Some(bus) = sub.extra.bus.upgrade() else {
        return;
    };
    let dead = format!("_errors.{topic}");
    if bus.closed.load(Ordering::Acquire) || bus.broker.route(&dead).is_empty() {
        return;
    }
    let letter = PyDict::new(py);
    let ok = letter.set_item("topic", &topic).is_ok()
        && letter.set_item("message", msg.bind(py)).is_ok()
        && letter.set_item("error", exc).is_ok()
        && letter.set_item("subscription", sub.name()).is_ok();
    if ok {
        let t = PyString::new(py, &dead);
        if let Err(e3) = bus.publish(py, &t, letter.into_any().unbind()) {
            errors::log_exception(py, "could not publish a dead letter", e3);
        }
    }
}

/// A broker where each subscriber has its own bounded queue and handlers run on native threads.
#[pyclass(module = "chanpool", name = "PubSub", frozen, subclass)]
pub struct PubSub {
    inner: Arc<BusInner>,
    gen: u64,
}

impl PubSub {
    fn check(&self) -> PyResult<()> {
        runtime::check_process(self.gen, "PubSub")
    }
}

#[pymethods]
impl PubSub {
    #[new]
    #[pyo3(signature = (*, max_workers=None))]
    fn new(max_workers: Option<isize>) -> PyResult<Self> {
        let max_workers = match max_workers {
            None => 32,
            Some(n) if n <= 0 => {
                return Err(PyValueError::new_err("max_workers must be greater than 0"))
            }
            Some(n) => n as usize,
        };
        let dispatch = Pool::new(max_workers, 0, "chanpool-pubsub".into(), dispatch_main);
        let inner = Arc::new(BusInner {
            broker: Broker::new(),
            dispatch,
            seq: AtomicU64::new(0),
            published: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        let stoppable: Arc<dyn Stoppable> = inner.clone();
        runtime::register(&stoppable);
        log::debug!(target: "chanpool", "PubSub started: max_workers={max_workers}");
        Ok(PubSub {
            inner,
            gen: runtime::generation(),
        })
    }

    /// Subscribes `handler(message)` to a NATS-style pattern; without a handler, a pull
    /// subscription to iterate or `get()` from.
    #[pyo3(signature = (pattern, handler=None, *, capacity=1024, overflow="block", workers=1, group=None, on_error=None))]
    #[allow(clippy::too_many_arguments)]
    fn subscribe(
        slf: &Bound<'_, Self>,
        pattern: &str,
        handler: Option<Bound<'_, PyAny>>,
        capacity: isize,
        overflow: &str,
        workers: isize,
        group: Option<String>,
        on_error: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Subscription> {
        let me = slf.get();
        me.check()?;
        if me.inner.closed.load(Ordering::Acquire) {
            return Err(closed_error());
        }
        topic::validate_pattern(pattern).map_err(|e| PyValueError::new_err(e.0))?;
        if capacity < 1 {
            return Err(PyValueError::new_err("capacity must be >= 1"));
        }
        if workers < 1 {
            return Err(PyValueError::new_err("workers must be >= 1"));
        }
        let overflow: Overflow = overflow.parse().map_err(PyValueError::new_err)?;
        if let Some(g) = &group {
            if g.is_empty() {
                return Err(PyValueError::new_err("group must be a non-empty string"));
            }
        }
        let handler = handler.filter(|h| !h.is_none());
        let on_error = on_error.filter(|h| !h.is_none());
        for (what, f) in [("handler", &handler), ("on_error", &on_error)] {
            if let Some(f) = f {
                if !f.is_callable() {
                    return Err(PyTypeError::new_err(format!(
                        "{what} must be callable, got {}",
                        f.get_type().name()?
                    )));
                }
            }
        }
        if handler.is_none() && on_error.is_some() {
            return Err(PyValueError::new_err("on_error needs a handler"));
        }
        let pull = handler.is_none();
        let opts = SubOptions {
            capacity: capacity as usize,
            overflow,
            workers: if pull { 0 } else { workers as usize },
            group,
        };
        let extra = Extra {
            handlers: RwLock::new(Handlers {
                handler: handler.map(Bound::unbind),
                on_error: on_error.map(Bound::unbind),
            }),
            bus: Arc::downgrade(&me.inner),
        };
        let sub = me.inner.broker.subscribe(pattern, opts, extra);
        Ok(Subscription {
            sub,
            bus: slf.clone().unbind(),
            pull,
        })
    }

    /// Publishes `data` on `topic`; returns how many subscriptions it was queued to.
    #[pyo3(signature = (topic, data=None))]
    fn publish(
        &self,
        py: Python<'_>,
        topic: &Bound<'_, PyString>,
        data: Option<Py<PyAny>>,
    ) -> PyResult<usize> {
        self.check()?;
        let data = data.unwrap_or_else(|| py.None());
        self.inner.publish(py, topic, data)
    }

    /// Stops the bus. With drain, waits (up to timeout seconds) until every handler has seen
    /// what was queued; without, queued messages are discarded. Returns False if the timeout
    /// cut the drain short.
    #[pyo3(signature = (drain=true, timeout=None))]
    fn close(&self, py: Python<'_>, drain: bool, timeout: Option<f64>) -> PyResult<bool> {
        if self.gen != runtime::generation() {
            return Ok(false);
        }
        if drain && IN_DISPATCH.with(Cell::get) {
            return Err(PyRuntimeError::new_err(
                "close(drain=True) from inside a handler would wait for that handler; \
                 use close(drain=False) or close from another thread",
            ));
        }
        let deadline = runtime::deadline_from(timeout)?;
        let r = self.inner.shutdown(py, drain, deadline);
        log::debug!(target: "chanpool", "PubSub closed");
        r
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let subs = self.inner.broker.subscriptions();
        let (mut delivered, mut dropped, mut errors_, mut pending) = (0u64, 0u64, 0u64, 0usize);
        for s in &subs {
            delivered += s.delivered.load(Ordering::Relaxed);
            dropped += s.mailbox.dropped.load(Ordering::Relaxed);
            errors_ += s.errors.load(Ordering::Relaxed);
            pending += s.mailbox.pending();
        }
        let d = PyDict::new(py);
        d.set_item("published", self.inner.published.load(Ordering::Relaxed))?;
        d.set_item("subscriptions", subs.len())?;
        d.set_item("delivered", delivered)?;
        d.set_item("dropped", dropped)?;
        d.set_item("errors", errors_)?;
        d.set_item("pending", pending)?;
        d.set_item("discarded", self.inner.discarded.load(Ordering::Relaxed))?;
        d.set_item("workers", self.inner.dispatch.snapshot().workers)?;
        Ok(d)
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
    ) -> PyResult<bool> {
        self.close(py, true, None)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "<chanpool.PubSub subscriptions={}{}>",
            self.inner.broker.len(),
            if self.closed() { " closed" } else { "" }
        )
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // Never block here: skip what is locked (the GC tolerates a partial view).
        let Some(subs) = self.inner.broker.try_subscriptions() else {
            return Ok(());
        };
        for s in subs {
            if let Some(h) = s.extra.handlers.try_read() {
                if let Some(x) = &h.handler {
                    visit.call(x)?;
                }
                if let Some(x) = &h.on_error {
                    visit.call(x)?;
                }
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let Some(subs) = self.inner.broker.try_subscriptions() else {
            return;
        };
        for s in subs {
            let taken = s
                .extra
                .handlers
                .try_write()
                .map(|mut h| std::mem::take(&mut *h));
            drop(taken);
        }
    }
}

impl Drop for PubSub {
    fn drop(&mut self) {
        if self.gen != runtime::generation() {
            std::mem::forget(Arc::clone(&self.inner));
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

/// A handle on one subscription (push, with a handler, or pull: iterate it or call get()).
#[pyclass(module = "chanpool", name = "Subscription", frozen)]
pub struct Subscription {
    sub: Arc<Sub>,
    bus: Py<PubSub>,
    pull: bool,
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
    fn unsubscribe(&self, py: Python<'_>) {
        let _ = py;
        self.bus.get().inner.end(&self.sub);
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
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
        let deadline = runtime::deadline_from(timeout)?;
        let mb = &self.sub.mailbox;
        if let Some(m) = mb.try_pop() {
            self.sub.delivered.fetch_add(1, Ordering::Relaxed);
            return Ok(m);
        }
        loop {
            let Some(slice) = runtime::next_slice(deadline) else {
                return Err(errors::queue_empty(py));
            };
            match py.detach(|| mb.pop_wait(slice)) {
                Ok(m) => {
                    self.sub.delivered.fetch_add(1, Ordering::Relaxed);
                    return Ok(m);
                }
                Err(true) => return Err(errors::closed(py, "the subscription has ended")),
                Err(false) => py.check_signals()?,
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
        self.unsubscribe(py);
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
