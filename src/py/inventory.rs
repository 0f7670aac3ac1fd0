//! InventoryManager: the stock table on a native worker pool.
//!
//! Workers run operations detached from the interpreter and attach only to complete futures.
//! Completions are combined: a worker appends its finished operations to a shared list and
//! only the one thread that takes the "completer" role attaches, completing everything listed
//! so far in one go. Threshold events go to a separate single-thread publisher, so a subscriber
//! whose queue is full (overflow="block") slows only event delivery, never the operations or
//! their futures (a handler that restocks and waits for the result cannot deadlock us).

use crate::core::inventory::{Event, EventKind, Inventory, StockError};
use crate::core::pool::{Next, Pool, Rejected, Worker};
use crate::py::errors;
use crate::py::future;
use crate::py::runtime::{self, Stoppable, SLICE};
use parking_lot::{Mutex, RwLock};
use pyo3::exceptions::{PyOverflowError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyInt, PyString, PyType};
use pyo3::PyTraverseError;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

/// Operations a worker runs before it hands their results over for completion.
const BATCH: usize = 256;

thread_local! {
    /// On a worker thread: the address of the Shared it works for (a done-callback may call
    /// shutdown(wait=True) there, which must not wait for its own thread).
    static WORKER_OF: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

static INSUFFICIENT: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// What a refusal needs from chanpool._future for its lock-free path.
struct FutApi {
    unretrieved: Py<PyAny>,
    finished: Py<PyAny>,
}

static FUT_API: PyOnceLock<FutApi> = PyOnceLock::new();

fn fut_api(py: Python<'_>) -> PyResult<&FutApi> {
    FUT_API.get_or_try_init(py, || {
        Ok(FutApi {
            unretrieved: py
                .import("chanpool._future")?
                .getattr("_UnretrievedException")?
                .unbind(),
            finished: py
                .import("concurrent.futures._base")?
                .getattr("FINISHED")?
                .unbind(),
        })
    })
}

/// Fails a future with `exc`. Refusals are common in an inventory (every "sold out"), so an
/// unobserved future is finished with plain attribute writes, as future::set_result does; the
/// never-retrieved report is kept. Everything that runs Python code happens before the check.
fn fail_future(py: Python<'_>, fut: &Bound<'_, PyAny>, exc: Bound<'_, PyAny>) -> PyResult<()> {
    let api = fut_api(py)?;
    let unretrieved = api.unretrieved.bind(py).call1((&exc,))?;
    if fut.getattr(pyo3::intern!(py, "_cond"))?.is_none() {
        fut.setattr(pyo3::intern!(py, "_exception"), &exc)?;
        fut.setattr(pyo3::intern!(py, "_unretrieved"), unretrieved)?;
        fut.setattr(pyo3::intern!(py, "_state"), api.finished.bind(py))?;
        return Ok(());
    }
    // Observed: the locked method (it makes its own never-retrieved report).
    unretrieved.setattr(pyo3::intern!(py, "exc"), py.None())?;
    future::set_exception(fut, PyErr::from_value(exc))
}

fn insufficient_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    Ok(INSUFFICIENT
        .get_or_try_init(py, || -> PyResult<_> {
            Ok(py
                .import("chanpool.inventory")?
                .getattr("InsufficientStock")?
                .cast_into::<PyType>()?
                .unbind())
        })?
        .bind(py))
}

#[derive(Clone, Copy)]
enum Kind {
    Add,
    Remove,
    Check,
}

pub struct OpJob {
    kind: Kind,
    product: String,
    qty: i64,
    fut: Py<PyAny>,
}

struct Done {
    fut: Py<PyAny>,
    product: String,
    outcome: Result<i64, StockError>,
}

type OpPool = Pool<OpJob>;

struct EvJob {
    product: String,
    kind: EventKind,
    stock: i64,
}

type EvPool = Pool<EvJob>;

/// The event side, shared with its publisher thread.
struct Events {
    bus: RwLock<Option<Py<PyAny>>>,
    prefix: String,
    threshold: Option<i64>,
    pool: OnceLock<Weak<EvPool>>,
    /// Exit or a closed bus: pending events are counted as dropped instead of published.
    discard: AtomicBool,
    emitted: AtomicU64,
    published: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

impl Events {
    fn publish(&self, py: Python<'_>, ev: EvJob) {
        let bus = self.bus.read().as_ref().map(|b| b.clone_ref(py));
        let Some(bus) = bus.filter(|_| !self.discard.load(Ordering::Acquire)) else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let r = (|| -> PyResult<()> {
            let topic = format!("{}.{}.{}", self.prefix, ev.product, ev.kind.as_str());
            let data = PyDict::new(py);
            data.set_item(pyo3::intern!(py, "product"), &ev.product)?;
            data.set_item(pyo3::intern!(py, "event"), ev.kind.as_str())?;
            data.set_item(pyo3::intern!(py, "stock"), ev.stock)?;
            data.set_item(pyo3::intern!(py, "threshold"), self.threshold)?;
            bus.bind(py)
                .call_method1(pyo3::intern!(py, "publish"), (topic, data))?;
            Ok(())
        })();
        match r {
            Ok(()) => {
                self.published.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let closed = bus
                    .bind(py)
                    .getattr(pyo3::intern!(py, "closed"))
                    .and_then(|c| c.is_truthy())
                    .unwrap_or(false);
                if closed {
                    // Say it once; everything after this would fail the same way.
                    self.discard.store(true, Ordering::Release);
                    log::warn!(target: "chanpool", "InventoryManager: the PubSub is closed; stock events are dropped from now on");
                } else {
                    errors::log_exception(
                        py,
                        "InventoryManager: publishing a stock event failed",
                        e,
                    );
                }
            }
        }
    }

    /// Stops the publisher; pending events are dropped when `discard`, else published first.
    fn stop(&self, py: Python<'_>, discard: bool) -> PyResult<()> {
        let Some(pool) = self.pool.get().and_then(Weak::upgrade) else {
            return Ok(());
        };
        if discard {
            self.discard.store(true, Ordering::Release);
        }
        pool.close();
        if discard {
            let left = pool.drain();
            self.dropped.fetch_add(left.len() as u64, Ordering::Relaxed);
        }
        while !py.detach(|| pool.join(Some(SLICE))) {
            py.check_signals()?;
        }
        Ok(())
    }

    fn pending(&self) -> u64 {
        let handled = self.published.load(Ordering::Relaxed)
            + self.failed.load(Ordering::Relaxed)
            + self.dropped.load(Ordering::Relaxed);
        self.emitted.load(Ordering::Relaxed).saturating_sub(handled)
    }
}

impl Stoppable for Events {
    fn stop_for_exit(&self, py: Python<'_>) {
        let _ = self.stop(py, true);
    }
}

fn publisher_main(ev: Arc<Events>, w: Worker<EvJob>) {
    if runtime::exiting() {
        return;
    }
    Python::attach(|py| loop {
        let job = match w.try_next() {
            Next::Job(j) => j,
            Next::Empty => match py.detach(|| w.wait_next()) {
                Some(j) => j,
                None => break,
            },
            Next::Closed => break,
        };
        ev.publish(py, job);
    });
}

/// What the workers share with the Python object.
struct Shared {
    inv: Inventory,
    done: Mutex<Vec<Done>>,
    /// Held by the one thread that is attaching (or about to) to complete `done`.
    completing: AtomicBool,
    events: Option<(Arc<Events>, Arc<EvPool>)>,
    core: OnceLock<Weak<OpPool>>,
    completed: AtomicU64,
    refused: AtomicU64,
    overflowed: AtomicU64,
    batches: AtomicU64,
}

enum Step {
    /// This thread holds the completer role: attach and complete.
    Complete,
    Exit,
}

impl Shared {
    fn emit(&self, e: Event<'_>) {
        let Some((ev, pool)) = &self.events else {
            return;
        };
        ev.emitted.fetch_add(1, Ordering::Relaxed);
        let job = EvJob {
            product: e.product.to_owned(),
            kind: e.kind,
            stock: e.stock,
        };
        // Unbounded queue: never waits. Closed only at exit or after the workers stopped.
        if pool.try_submit(job, 1).is_err() {
            ev.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn run(&self, job: OpJob, out: &mut Vec<Done>) {
        let outcome = match job.kind {
            Kind::Add => self.inv.add(&job.product, job.qty),
            Kind::Remove => self.inv.remove(&job.product, job.qty, |e| self.emit(e)),
            Kind::Check => Ok(self.inv.check(&job.product)),
        };
        out.push(Done {
            fut: job.fut,
            product: job.product,
            outcome,
        });
    }

    /// The detached part of a worker: runs operations until it holds the completer role or the
    /// pool is closed and drained.
    fn work(&self, w: &Worker<OpJob>, local: &mut Vec<Done>) -> Step {
        loop {
            let mut closed = false;
            loop {
                match w.try_next() {
                    Next::Job(j) => {
                        self.run(j, local);
                        if local.len() >= BATCH {
                            break;
                        }
                    }
                    Next::Empty => {
                        if !local.is_empty() {
                            // About to complete and then wait: let a submit that a completion
                            // triggers reuse this worker.
                            w.finishing();
                            break;
                        }
                        match w.wait_next() {
                            Some(j) => self.run(j, local),
                            None => {
                                closed = true;
                                break;
                            }
                        }
                    }
                    Next::Closed => {
                        closed = true;
                        break;
                    }
                }
            }
            if !local.is_empty() {
                self.done.lock().append(local);
                if !self.completing.swap(true, Ordering::SeqCst) {
                    return Step::Complete;
                }
                // Someone else holds the role and will see what we listed.
            }
            if closed {
                return Step::Exit;
            }
        }
    }

    /// Completes everything listed. Call attached, holding the completer role. The role is
    /// given back before any future is completed: a done-callback may wait for another of our
    /// futures, which another worker must then be able to complete.
    fn complete(&self, py: Python<'_>) {
        loop {
            let items = std::mem::take(&mut *self.done.lock());
            self.completing.store(false, Ordering::SeqCst);
            if !items.is_empty() {
                self.batches.fetch_add(1, Ordering::Relaxed);
                for d in items {
                    self.finish(py, d);
                }
            }
            // Whatever was listed after our take, by a worker that saw the role taken.
            if self.done.lock().is_empty() || self.completing.swap(true, Ordering::SeqCst) {
                return;
            }
        }
    }

    fn finish(&self, py: Python<'_>, d: Done) {
        let fut = d.fut.bind(py);
        let r = match d.outcome {
            Ok(stock) => future::set_result(fut, stock.into_pyobject(py).unwrap().into_any()),
            Err(StockError::Insufficient {
                requested,
                available,
            }) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                match insufficient_type(py)
                    .and_then(|t| t.call1((&d.product, requested, available)))
                {
                    Ok(exc) => fail_future(py, fut, exc),
                    Err(e) => future::set_exception(fut, e),
                }
            }
            Err(StockError::Overflow { stock, requested }) => {
                self.overflowed.fetch_add(1, Ordering::Relaxed);
                future::set_exception(
                    fut,
                    PyOverflowError::new_err(format!(
                        "adding {requested} to {:?} (stock {stock}) would exceed the maximum \
                         stock of {}",
                        d.product,
                        i64::MAX
                    )),
                )
            }
            Err(e @ StockError::InvalidQuantity(_)) => {
                future::set_exception(fut, PyValueError::new_err(e.to_string()))
            }
        };
        self.completed.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = r {
            errors::log_exception(py, "InventoryManager: could not complete a future", e);
        }
    }

    /// Runs what is still queued on the calling thread (a pool closed before a worker could
    /// start for a last submit leaves it there).
    fn run_leftovers(&self, py: Python<'_>, core: &OpPool) {
        let left = core.drain();
        if left.is_empty() {
            return;
        }
        let mut out = Vec::with_capacity(left.len());
        py.detach(|| {
            for j in left {
                self.run(j, &mut out);
            }
        });
        for d in out {
            self.finish(py, d);
        }
    }

    /// Closes the queue and waits (detached, Ctrl-C honoured) until every queued operation
    /// has completed; then the publisher finishes (or, at exit, drops) the pending events.
    fn stop(&self, py: Python<'_>, exit: bool) -> PyResult<()> {
        if let Some(core) = self.core.get().and_then(Weak::upgrade) {
            core.close();
            loop {
                while !py.detach(|| core.join(Some(SLICE))) {
                    py.check_signals()?;
                }
                // Pool::join skips the calling thread: a worker shutting down from a callback
                // counts itself.
                let me = WORKER_OF.with(|c| c.get()) == self as *const Shared as usize;
                if core.snapshot().workers <= usize::from(me) {
                    break;
                }
            }
            self.run_leftovers(py, &core);
        }
        if let Some((ev, _)) = &self.events {
            ev.stop(py, exit)?;
        }
        Ok(())
    }
}

impl Stoppable for Shared {
    fn stop_for_exit(&self, py: Python<'_>) {
        let _ = self.stop(py, true);
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last worker is gone and so is the manager: nothing can emit any more.
        if let Some((_, pool)) = &self.events {
            pool.close();
        }
    }
}

fn worker_main(sh: Arc<Shared>, w: Worker<OpJob>) {
    WORKER_OF.with(|c| c.set(Arc::as_ptr(&sh) as usize));
    Python::attach(|py| {
        let mut local = Vec::with_capacity(BATCH);
        while let Step::Complete = py.detach(|| sh.work(&w, &mut local)) {
            sh.complete(py);
        }
    });
}

fn closed_error() -> PyErr {
    if runtime::exiting() {
        PyRuntimeError::new_err(
            "cannot schedule new inventory operations after interpreter shutdown",
        )
    } else {
        PyRuntimeError::new_err("cannot schedule new inventory operations after shutdown")
    }
}

fn int_arg(v: &Bound<'_, PyAny>, what: &str) -> PyResult<Option<i64>> {
    if !v.is_instance_of::<PyInt>() || v.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be an int, got {}",
            v.get_type().name()?
        )));
    }
    // None: beyond i64 either way.
    Ok(v.extract::<i64>().ok())
}

fn positive_int(v: &Bound<'_, PyAny>, what: &str) -> PyResult<i64> {
    match int_arg(v, what)? {
        Some(n) if n > 0 => Ok(n),
        Some(_) => Err(PyValueError::new_err(format!(
            "{what} must be > 0, got {v}"
        ))),
        None if v.gt(0)? => Err(PyValueError::new_err(format!(
            "{what} must be at most {}, got {v}",
            i64::MAX
        ))),
        None => Err(PyValueError::new_err(format!(
            "{what} must be > 0, got {v}"
        ))),
    }
}

fn non_negative_int(v: &Bound<'_, PyAny>, what: &str) -> PyResult<i64> {
    match int_arg(v, what)? {
        Some(n) if n >= 0 => Ok(n),
        Some(_) => Err(PyValueError::new_err(format!(
            "{what} must be >= 0, got {v}"
        ))),
        None if v.gt(0)? => Err(PyValueError::new_err(format!(
            "{what} must be at most {}, got {v}",
            i64::MAX
        ))),
        None => Err(PyValueError::new_err(format!(
            "{what} must be >= 0, got {v}"
        ))),
    }
}

/// A product becomes one token of an event topic, so with a bus it must be one.
fn topic_token_error(p: &str) -> Option<&'static str> {
    if p.chars().any(char::is_whitespace) {
        Some("whitespace")
    } else if p.contains('.') {
        Some("'.'")
    } else if p.contains('*') || p.contains('>') {
        Some("a wildcard ('*' or '>')")
    } else {
        None
    }
}

/// Stock kept in Rust and changed by a native worker pool; every operation returns a future.
#[pyclass(
    module = "chanpool.inventory",
    name = "InventoryManager",
    subclass,
    frozen
)]
pub struct InventoryManager {
    core: Arc<OpPool>,
    shared: Arc<Shared>,
    gen: u64,
}

impl InventoryManager {
    fn check(&self) -> PyResult<()> {
        runtime::check_process(self.gen, "InventoryManager")?;
        if self.core.is_closed() || runtime::exiting() {
            return Err(closed_error());
        }
        Ok(())
    }

    fn product(&self, product: &Bound<'_, PyAny>) -> PyResult<String> {
        let s = product.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!(
                "product must be a str, got {}",
                product
                    .get_type()
                    .name()
                    .map_or_else(|_| "?".to_string(), |n| n.to_string())
            ))
        })?;
        let p = s.to_cow()?;
        if p.is_empty() {
            return Err(PyValueError::new_err("product must be a non-empty str"));
        }
        if self.shared.events.is_some() {
            if let Some(bad) = topic_token_error(&p) {
                return Err(PyValueError::new_err(format!(
                    "product {p:?} contains {bad}: with a bus, product names become one token \
                     of the event topic"
                )));
            }
        }
        Ok(p.into_owned())
    }

    fn submit(
        &self,
        py: Python<'_>,
        kind: Kind,
        product: &Bound<'_, PyAny>,
        qty: i64,
    ) -> PyResult<Py<PyAny>> {
        let product = self.product(product)?;
        self.check()?;
        let fut = future::new_future(py)?;
        // Running from the start: an accepted operation cannot be cancelled, so a future's
        // outcome always says whether the stock changed.
        future::start(&fut)?;
        let fut = fut.unbind();
        let job = OpJob {
            kind,
            product,
            qty,
            fut: fut.clone_ref(py),
        };
        let mut job = match self.core.try_submit(job, 1) {
            Ok(()) => return Ok(fut),
            Err(Rejected::Closed(_)) => return Err(closed_error()),
            Err(Rejected::Full(j)) => j,
        };
        loop {
            match py.detach(|| self.core.submit_timeout(job, 1, SLICE)) {
                Ok(()) => {
                    if self.core.is_closed() {
                        // Shutdown may have finished before our job got in.
                        self.shared.run_leftovers(py, &self.core);
                    }
                    return Ok(fut);
                }
                Err(Rejected::Closed(_)) => return Err(closed_error()),
                Err(Rejected::Full(j)) => {
                    job = j;
                    py.check_signals()?;
                }
            }
        }
    }
}

#[pymethods]
impl InventoryManager {
    #[new]
    #[pyo3(signature = (workers=10, queue_size=0, *, bus=None, low_threshold=None, topic_prefix="inventory"))]
    fn new(
        py: Python<'_>,
        workers: isize,
        queue_size: isize,
        bus: Option<Bound<'_, PyAny>>,
        low_threshold: Option<&Bound<'_, PyAny>>,
        topic_prefix: &str,
    ) -> PyResult<Self> {
        if workers < 1 {
            return Err(PyValueError::new_err(format!(
                "workers must be > 0, got {workers}"
            )));
        }
        if queue_size < 0 {
            return Err(PyValueError::new_err(format!(
                "queue_size must be >= 0 (0 means unbounded), got {queue_size}"
            )));
        }
        let (workers, queue_size) = (workers as usize, queue_size as usize);
        let bus = bus.filter(|b| !b.is_none());
        if let Some(b) = &bus {
            let ok = b
                .getattr(pyo3::intern!(py, "publish"))
                .map(|p| p.is_callable())
                .unwrap_or(false);
            if !ok {
                return Err(PyTypeError::new_err(format!(
                    "bus must be a chanpool.PubSub (something with publish(topic, data)), got {}",
                    b.get_type().name()?
                )));
            }
        }
        let low_threshold = match low_threshold.filter(|t| !t.is_none()) {
            None => None,
            Some(t) => {
                let n = non_negative_int(t, "low_threshold")?;
                if bus.is_none() {
                    return Err(PyValueError::new_err(
                        "low_threshold needs a bus: low-stock events are published on it",
                    ));
                }
                Some(n)
            }
        };
        if bus.is_some() {
            crate::core::topic::validate_topic(topic_prefix)
                .map_err(|e| PyValueError::new_err(format!("topic_prefix: {}", e.0)))?;
        }
        if runtime::exiting() {
            return Err(closed_error());
        }
        // Resolved now so that workers never import.
        insufficient_type(py)?;
        fut_api(py)?;

        let events = bus.map(|b| {
            let ev = Arc::new(Events {
                bus: RwLock::new(Some(b.unbind())),
                prefix: topic_prefix.to_string(),
                threshold: low_threshold,
                pool: OnceLock::new(),
                discard: AtomicBool::new(false),
                emitted: AtomicU64::new(0),
                published: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
            });
            let body_ev = Arc::clone(&ev);
            let pool = Pool::new(1, 0, "chanpool-ims-events".into(), move |w| {
                publisher_main(Arc::clone(&body_ev), w)
            });
            let _ = ev.pool.set(Arc::downgrade(&pool));
            (ev, pool)
        });
        let shared = Arc::new(Shared {
            inv: Inventory::new(low_threshold),
            done: Mutex::new(Vec::new()),
            completing: AtomicBool::new(false),
            events,
            core: OnceLock::new(),
            completed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            overflowed: AtomicU64::new(0),
            batches: AtomicU64::new(0),
        });
        let body = Arc::clone(&shared);
        let core = Pool::new(workers, queue_size, "chanpool-ims".into(), move |w| {
            worker_main(Arc::clone(&body), w)
        });
        let _ = shared.core.set(Arc::downgrade(&core));
        // Workers first: at exit they must stop before the publisher they feed.
        let stoppable: Arc<dyn Stoppable> = shared.clone();
        runtime::register(&stoppable);
        if let Some((ev, _)) = &shared.events {
            let stoppable: Arc<dyn Stoppable> = ev.clone();
            runtime::register(&stoppable);
        }
        Ok(InventoryManager {
            core,
            shared,
            gen: runtime::generation(),
        })
    }

    /// Adds qty units; the future's result is the new stock.
    fn add_stock(
        &self,
        py: Python<'_>,
        product: &Bound<'_, PyAny>,
        qty: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let qty = positive_int(qty, "qty")?;
        self.submit(py, Kind::Add, product, qty)
    }

    /// Removes qty units if that many are in stock; the future's result is the new stock, or
    /// it raises InsufficientStock and nothing changed.
    fn remove_stock(
        &self,
        py: Python<'_>,
        product: &Bound<'_, PyAny>,
        qty: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let qty = positive_int(qty, "qty")?;
        self.submit(py, Kind::Remove, product, qty)
    }

    /// The stock when the operation runs (0 for an unknown product).
    fn check_stock(&self, py: Python<'_>, product: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.submit(py, Kind::Check, product, 0)
    }

    /// Every product's stock at one instant, read now on the calling thread.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        runtime::check_process(self.gen, "InventoryManager")?;
        let items = py.detach(|| self.shared.inv.snapshot());
        let d = PyDict::new(py);
        for (k, v) in items {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// Counters: operations (submitted, completed, refused, overflowed, queued), how many
    /// times the workers attached to complete futures, and the event publisher's books.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        runtime::check_process(self.gen, "InventoryManager")?;
        let s = self.core.snapshot();
        let sh = &self.shared;
        let products = py.detach(|| sh.inv.products());
        let d = PyDict::new(py);
        d.set_item("workers", s.workers)?;
        d.set_item("idle", s.idle)?;
        d.set_item("queued", s.queued)?;
        d.set_item("submitted", s.submitted)?;
        d.set_item("completed", sh.completed.load(Ordering::Relaxed))?;
        d.set_item("refused", sh.refused.load(Ordering::Relaxed))?;
        d.set_item("overflowed", sh.overflowed.load(Ordering::Relaxed))?;
        d.set_item("completion_batches", sh.batches.load(Ordering::Relaxed))?;
        d.set_item("products", products)?;
        let (emitted, published, failed, dropped, pending) = match &sh.events {
            None => (0, 0, 0, 0, 0),
            Some((ev, _)) => (
                ev.emitted.load(Ordering::Relaxed),
                ev.published.load(Ordering::Relaxed),
                ev.failed.load(Ordering::Relaxed),
                ev.dropped.load(Ordering::Relaxed),
                ev.pending(),
            ),
        };
        d.set_item("events_emitted", emitted)?;
        d.set_item("events_published", published)?;
        d.set_item("events_failed", failed)?;
        d.set_item("events_dropped", dropped)?;
        d.set_item("events_pending", pending)?;
        d.set_item("max_workers", self.core.max_workers())?;
        d.set_item("queue_size", self.core.capacity())?;
        Ok(d)
    }

    /// Stops accepting operations. Queued ones still run; with wait, returns once they have
    /// all completed and their events have been published.
    #[pyo3(signature = (wait=true))]
    fn shutdown(&self, py: Python<'_>, wait: bool) -> PyResult<()> {
        if self.gen != runtime::generation() {
            return Ok(());
        }
        if wait {
            self.shared.stop(py, false)
        } else {
            self.core.close();
            Ok(())
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.shutdown(py, true)?;
        Ok(false)
    }

    #[getter]
    fn bus(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        let (ev, _) = self.shared.events.as_ref()?;
        let b = ev.bus.read().as_ref().map(|b| b.clone_ref(py));
        b
    }

    #[getter]
    fn low_threshold(&self) -> Option<i64> {
        self.shared.inv.low_threshold()
    }

    #[getter]
    fn topic_prefix(&self) -> Option<&str> {
        self.shared
            .events
            .as_ref()
            .map(|(ev, _)| ev.prefix.as_str())
    }

    #[getter]
    fn max_workers(&self) -> usize {
        self.core.max_workers()
    }

    #[getter]
    fn queue_size(&self) -> usize {
        self.core.capacity()
    }

    #[getter]
    fn closed(&self) -> bool {
        self.core.is_closed()
    }

    fn __repr__(&self) -> String {
        let s = self.core.snapshot();
        format!(
            "<chanpool.inventory.InventoryManager workers={} queue_size={} queued={}{}>",
            self.core.max_workers(),
            self.core.capacity(),
            s.queued,
            if self.core.is_closed() {
                " shutdown"
            } else {
                ""
            }
        )
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some((ev, _)) = &self.shared.events {
            if let Some(b) = ev.bus.try_read() {
                if let Some(b) = b.as_ref() {
                    visit.call(b)?;
                }
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        if let Some((ev, _)) = &self.shared.events {
            let taken = ev.bus.try_write().and_then(|mut g| g.take());
            drop(taken);
        }
    }
}

impl Drop for InventoryManager {
    fn drop(&mut self) {
        if self.gen != runtime::generation() {
            // Created before fork(): its threads and locks belong to the parent.
            std::mem::forget(Arc::clone(&self.core));
            std::mem::forget(Arc::clone(&self.shared));
            return;
        }
        // Like an unreferenced executor: queued operations still run, then workers exit.
        self.core.close();
    }
}
