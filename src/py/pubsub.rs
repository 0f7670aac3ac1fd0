//! PubSub: the broker adapted to Python. Each subscription owns a bounded mailbox; its handler
//! runs on a shared pool of native dispatch threads, at most `workers` deliveries at a time (one
//! keeps the subscriber's order). Like WorkerPool's, dispatch threads attach once and let go of
//! the GIL only to wait for work.

use crate::core::broker::{Broker, SubOptions, Subscription as CoreSub};
use crate::core::mailbox::{Overflow, Push};
use crate::core::pool::{Next, Pool, Worker};
use crate::core::sync::RwLock;
use crate::core::topic;
use crate::py::errors;
use crate::py::ratelimit::TokenBucket;
use crate::py::runtime::{self, SLICE};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use pyo3::PyTraverseError;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Messages a dispatch run delivers before it lets other subscriptions have the thread.
const TURN: usize = 256;
/// Dispatch threads started as soon as work finds none idle. Handlers mostly need the GIL, so
/// more runnable threads only take turns at it (and each turn costs); more start when queued
/// subscriptions starve because the running handlers block.
const EAGER: usize = 2;
/// Starving means no dispatch thread took work for this long (at least: see starve_after).
const MIN_STARVE: Duration = Duration::from_millis(20);

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
    /// rate_limit: each handler call first takes a token. Holds no Python references.
    rate: Option<Py<TokenBucket>>,
}

pub struct Extra {
    handlers: RwLock<Handlers>,
    bus: Weak<BusInner>,
    totals: Arc<Totals>,
}

/// The bus's running totals: kept apart from the subscriptions so that they survive
/// unsubscribe() and close().
#[derive(Default)]
pub struct Totals {
    delivered: AtomicU64,
    dropped: AtomicU64,
    errors: AtomicU64,
}

impl Sub {
    fn count_delivered(&self) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.extra.totals.delivered.fetch_add(1, Ordering::Relaxed);
    }

    /// For drops the mailbox counted itself (overflow policies).
    fn count_bus_dropped(&self, n: u64) {
        self.extra.totals.dropped.fetch_add(n, Ordering::Relaxed);
    }

    fn count_dropped(&self, n: u64) {
        self.mailbox.dropped.fetch_add(n, Ordering::Relaxed);
        self.count_bus_dropped(n);
    }

    fn count_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.extra.totals.errors.fetch_add(1, Ordering::Relaxed);
    }
}

type Sub = CoreSub<Py<Message>, Extra>;
type Dispatch = Pool<Arc<Sub>>;

pub struct BusInner {
    broker: Broker<Py<Message>, Extra>,
    dispatch: Arc<Dispatch>,
    seq: AtomicU64,
    published: AtomicU64,
    discarded: AtomicU64,
    totals: Arc<Totals>,
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
                    sub.count_dropped(1);
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
                sub.count_bus_dropped(1);
                if schedule {
                    self.schedule(sub);
                }
                drop(dropped);
                true
            }
            Push::Dropped(m) => {
                sub.count_bus_dropped(1);
                drop(m);
                false
            }
            Push::Closed(_) | Push::Full(_) => false,
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

    /// Ends a subscription: no more routing, queued messages discarded (and counted). A run
    /// delivering to it finds nothing more to take, so only the call in progress completes.
    fn end(&self, sub: &Sub) {
        self.broker.unsubscribe(sub);
        sub.mailbox.close();
        let left = sub.mailbox.clear();
        sub.count_dropped(left.len() as u64);
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
        // Close every mailbox before anything can run Python (dropping messages can): no
        // handler call starts after this point.
        for sub in &subs {
            self.broker.unsubscribe(sub);
            sub.mailbox.close();
        }
        let mut left = Vec::new();
        for sub in &subs {
            let pull = sub.extra.handlers.read().handler.is_none();
            if !(drain && pull) {
                let l = sub.mailbox.clear();
                self.discarded.fetch_add(l.len() as u64, Ordering::Relaxed);
                left.push(l);
            }
        }
        self.dispatch.close();
        drop(left);
        // Handler calls in progress finish; a deadline bounds the wait for them too.
        loop {
            let Some(slice) = runtime::next_slice(deadline) else {
                return Ok(false);
            };
            if py.detach(|| self.dispatch.join(Some(slice))) {
                break;
            }
            py.check_signals()?;
        }
        Ok(complete)
    }
}

/// Interpreter exit: no dispatch thread may touch Python once finalization starts (it would
/// crash the process). One process-wide stopper, rather than one per bus, so that nothing
/// depends on the order of atexit work or on a bus still being reachable: a bus dropped
/// without close() leaves its dispatch threads delivering until its queues are empty.
mod exit {
    use super::{BusInner, Dispatch};
    use crate::core::sync::Mutex;
    use crate::py::runtime::{self, Stoppable};
    use pyo3::prelude::*;
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
    use std::sync::{Arc, OnceLock, Weak};
    use std::time::Duration;

    /// Dispatch threads that may still touch Python: process generation in the high half (a
    /// forked child inherits the count but none of the threads), count in the low half.
    static LIVE: AtomicU64 = AtomicU64::new(0);
    /// A bus and its pool (which outlives a bus dropped without close), with the generation
    /// that made them.
    type Tracked = (u64, Weak<BusInner>, Weak<Dispatch>);
    static TRACKED: Mutex<Vec<Tracked>> = Mutex::new(Vec::new());
    static STOPPER: OnceLock<Arc<dyn Stoppable>> = OnceLock::new();
    /// Generation (plus one) the stopper was last registered in.
    static REGISTERED: AtomicU64 = AtomicU64::new(0);

    fn tag(gen: u64) -> u64 {
        gen & 0xffff_ffff
    }

    fn live_add(gen: u64, delta: i64) {
        let _ = LIVE.fetch_update(SeqCst, SeqCst, |v| {
            let n = if v >> 32 == tag(gen) {
                v & 0xffff_ffff
            } else {
                0
            };
            Some((tag(gen) << 32) | (n as i64 + delta).max(0) as u64)
        });
    }

    fn live(gen: u64) -> u64 {
        let v = LIVE.load(SeqCst);
        if v >> 32 == tag(gen) {
            v & 0xffff_ffff
        } else {
            0
        }
    }

    /// Held by a dispatch thread from its start until it no longer touches Python.
    pub struct Live(u64);

    impl Live {
        /// None when the interpreter is exiting: the thread must not touch Python at all.
        pub fn enter() -> Option<Live> {
            let gen = runtime::generation();
            // Counted before looking at the flag: either the stopper waits for this thread,
            // or this thread sees the flag.
            live_add(gen, 1);
            let me = Live(gen);
            (!runtime::exiting()).then_some(me)
        }
    }

    impl Drop for Live {
        fn drop(&mut self) {
            live_add(self.0, -1);
        }
    }

    pub fn track(bus: &Arc<BusInner>) {
        let gen = runtime::generation();
        {
            let mut t = TRACKED.lock();
            t.retain(|(g, b, p)| *g == gen && (b.strong_count() > 0 || p.strong_count() > 0));
            t.push((gen, Arc::downgrade(bus), Arc::downgrade(&bus.dispatch)));
        }
        if REGISTERED.swap(gen + 1, SeqCst) != gen + 1 {
            runtime::register(STOPPER.get_or_init(|| Arc::new(Stopper)));
        }
    }

    struct Stopper;

    impl Stoppable for Stopper {
        fn stop_for_exit(&self, py: Python<'_>) {
            let gen = runtime::generation();
            let tracked: Vec<_> = TRACKED
                .lock()
                .iter()
                .filter(|(g, _, _)| *g == gen)
                .map(|(_, b, p)| (b.upgrade(), p.upgrade()))
                .collect();
            for (bus, pool) in &tracked {
                if let Some(bus) = bus {
                    // Releases blocked publishers and readers, then joins the handlers.
                    let _ = bus.shutdown(py, false, None);
                } else if let Some(pool) = pool {
                    // A bus dropped without close(): its runs stop at the next message.
                    pool.close();
                    drop(pool.drain());
                }
            }
            drop(tracked);
            while live(gen) > 0 {
                py.detach(|| std::thread::sleep(Duration::from_millis(1)));
            }
        }
    }
}

fn closed_error() -> PyErr {
    PyRuntimeError::new_err("this PubSub is closed")
}

/// Longer than the GIL's hand-over (sys.getswitchinterval()), so that dispatch threads merely
/// waiting their turn at the GIL never look like blocked ones.
fn starve_after(py: Python<'_>) -> Duration {
    let switch: f64 = py
        .import("sys")
        .and_then(|m| m.call_method0("getswitchinterval"))
        .and_then(|v| v.extract())
        .unwrap_or(0.005);
    Duration::try_from_secs_f64(switch * 4.0)
        .unwrap_or(MIN_STARVE)
        .clamp(MIN_STARVE, Duration::from_secs(1))
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn dispatch_main(w: Worker<Arc<Sub>>) {
    let Some(_live) = exit::Live::enter() else {
        return;
    };
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
    let (handler, on_error, rate) = {
        let h = sub.extra.handlers.read();
        (
            h.handler.as_ref().map(|x| x.clone_ref(py)),
            h.on_error.as_ref().map(|x| x.clone_ref(py)),
            h.rate.as_ref().map(|x| x.clone_ref(py)),
        )
    };
    let mut done = 0;
    loop {
        if runtime::exiting() {
            sub.mailbox.end_run();
            return;
        }
        // One message at a time: what is still queued can be discarded by unsubscribe or
        // close, and another run of a workers>1 subscription can take it meanwhile.
        let Some(msg) = sub.mailbox.pop_run() else {
            return; // the run has ended; the next publish schedules a new one
        };
        if let Some(bucket) = &rate {
            // Stop holding the message once the subscription ends (unsubscribed, or the bus
            // closing past any drain) or the interpreter exits.
            if !bucket
                .get()
                .pace(py, || runtime::exiting() || sub.mailbox.is_closed())
            {
                sub.count_dropped(1);
                sub.mailbox.end_run();
                return;
            }
        }
        match handler.as_ref() {
            None => sub.count_dropped(1), // cleared by the garbage collector
            Some(h) => match h.bind(py).call1((msg.bind(py),)) {
                Ok(_) => sub.count_delivered(),
                Err(e) => handler_failed(py, &sub, on_error.as_ref(), msg, e),
            },
        }
        done += 1;
        if done >= TURN {
            match pool.requeue(Arc::clone(&sub), 0) {
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
    sub.count_error();
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
    fn new(py: Python<'_>, max_workers: Option<isize>) -> PyResult<Self> {
        let max_workers = match max_workers {
            None => 32,
            Some(n) if n <= 0 => {
                return Err(PyValueError::new_err("max_workers must be greater than 0"))
            }
            Some(n) => n as usize,
        };
        let dispatch = Pool::new(max_workers, 0, "chanpool-pubsub".into(), dispatch_main);
        dispatch.set_lazy(EAGER, starve_after(py));
        dispatch.set_stack_size(runtime::thread_stack_size(py));
        let inner = Arc::new(BusInner {
            broker: Broker::new(),
            dispatch,
            seq: AtomicU64::new(0),
            published: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
            totals: Arc::default(),
            closed: AtomicBool::new(false),
        });
        exit::track(&inner);
        log::debug!(target: "chanpool", "PubSub started: max_workers={max_workers}");
        Ok(PubSub {
            inner,
            gen: runtime::generation(),
        })
    }

    /// Subscribes `handler(message)` to a NATS-style pattern; without a handler, a pull
    /// subscription to iterate or `get()` from.
    #[pyo3(signature = (pattern, handler=None, *, capacity=1024, overflow="block", workers=1, group=None, on_error=None, rate_limit=None))]
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
        rate_limit: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Subscription> {
        let me = slf.get();
        let rate = crate::py::pool::rate_limit_of(slf.py(), rate_limit)?;
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
        if handler.is_none() && rate.is_some() {
            return Err(PyValueError::new_err(
                "rate_limit needs a handler (pull subscribers pace themselves)",
            ));
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
                rate,
            }),
            bus: Arc::downgrade(&me.inner),
            totals: Arc::clone(&me.inner.totals),
        };
        let sub = me.inner.broker.subscribe(pattern, opts, extra);
        Ok(Subscription {
            sub,
            bus: slf.clone().unbind(),
            pull,
            gen: me.gen,
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

    /// Totals since the bus was made (ended subscriptions included); `subscriptions` and
    /// `pending` describe the live ones.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.check()?;
        let subs = self.inner.broker.subscriptions();
        let pending: usize = subs.iter().map(|s| s.mailbox.pending()).sum();
        let t = &self.inner.totals;
        let d = PyDict::new(py);
        d.set_item("published", self.inner.published.load(Ordering::Relaxed))?;
        d.set_item("subscriptions", subs.len())?;
        d.set_item("delivered", t.delivered.load(Ordering::Relaxed))?;
        d.set_item("dropped", t.dropped.load(Ordering::Relaxed))?;
        d.set_item("errors", t.errors.load(Ordering::Relaxed))?;
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
    /// Process generation (see runtime): after fork() its locks may be held by threads that
    /// only exist in the parent.
    gen: u64,
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
            r = py.detach(|| mb.pop_wait(slice));
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
