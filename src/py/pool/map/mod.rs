//! WorkerPool.map: ordered fan-in of results without a Future per item.
//!
//! Items are cut into chunks of `chunksize`, the unit of parallel work. A worker runs every item
//! of a chunk (an exception stays attached to its own item, as with ThreadPoolExecutor) and
//! publishes each `(item index, outcome)` to this map's inbox as soon as the item is done; the
//! iterator swaps the inbox out and puts the outcomes back in order.
//!
//! Eager maps (no buffersize) queue at most `max_workers` runner jobs instead of one job per
//! chunk: runners claim chunks from a shared cursor, so a chunk costs an atomic increment rather
//! than a queue round trip. Lazy maps queue one job per chunk as the input is read. Dropping a
//! started iterator or failing it, and shutdown(cancel_futures=True), make work that has not
//! started skip.

use crate::core::pool::Counters;
use crate::core::sync::{Condvar, Mutex};
use crate::py::errors;
use crate::py::pool::{enqueue, CorePool, Ext, Task};
use crate::py::runtime;
use pyo3::prelude::*;
use pyo3::types::{PyIterator, PyTuple};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

enum Outcome {
    Value(Py<PyAny>),
    Error(PyErr),
    Cancelled,
}

type Item = (usize, Outcome);

/// Where workers leave outcomes for the iterator. Publishers hold the GIL and the iterator
/// only takes the lock attached or for an instant while detached, so it is never contended
/// for long; no Python object is ever dropped while it is held (a `__del__` could switch
/// threads and deadlock on it).
struct Inbox {
    items: Vec<Item>,
    /// The consumer sleeps on the condvar: the next publisher wakes it.
    waiting: bool,
    /// The iterator is gone or finished: outcomes are dropped instead of kept.
    closed: bool,
    /// The last eager runner has stopped: whatever has not arrived never will.
    runners_done: bool,
}

struct MapShared {
    /// The iterator was closed or failed after iteration began.
    cancelled: AtomicBool,
    ext: Arc<Ext>,
    inbox: Mutex<Inbox>,
    wake: Condvar,
}

impl MapShared {
    /// Whether items that have not started must be skipped (iterator gone, or the pool is
    /// discarding its pending work: cancel_futures, exit, broken).
    fn stopped(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed) || self.ext.discarding()
    }

    fn publish(&self, i: usize, o: Outcome) {
        let rejected = {
            let mut g = self.inbox.lock();
            if g.closed {
                Some(o)
            } else {
                g.items.push((i, o));
                if g.waiting {
                    g.waiting = false;
                    self.wake.notify_one();
                }
                None
            }
        };
        drop(rejected);
    }

    fn publish_all(&self, items: Vec<Item>) {
        let rejected = {
            let mut g = self.inbox.lock();
            if g.closed {
                Some(items)
            } else {
                g.items.extend(items);
                if g.waiting {
                    g.waiting = false;
                    self.wake.notify_one();
                }
                None
            }
        };
        drop(rejected);
    }

    fn runners_done(&self) {
        let mut g = self.inbox.lock();
        g.runners_done = true;
        if g.waiting {
            g.waiting = false;
            self.wake.notify_one();
        }
    }

    /// Stops accepting outcomes; returns the ones not taken, for the caller to drop unlocked.
    fn close(&self) -> Vec<Item> {
        let mut g = self.inbox.lock();
        g.closed = true;
        std::mem::take(&mut g.items)
    }
}

/// Runs items in order, publishing each outcome as soon as it is known; returns how many ran.
fn call_items<'py>(
    counters: &Counters,
    shared: &MapShared,
    func: &Bound<'py, PyAny>,
    star: bool,
    first: usize,
    items: impl Iterator<Item = Bound<'py, PyAny>>,
) -> usize {
    let mut items = items.peekable();
    // One running task per chunk: per-item counting would cost atomics on the hot path.
    let mut running = items.peek().is_some();
    if running {
        counters.running.fetch_add(1, Ordering::Relaxed);
    }
    let mut ran = 0;
    while let Some(item) = items.next() {
        if shared.stopped() || !shared.ext.pace(func.py()) {
            break;
        }
        let r = if star {
            func.call1(item.cast_into::<PyTuple>().expect("map args are tuples"))
        } else {
            func.call1((item,))
        };
        // Counters first, so stats() never lags behind a result the consumer has seen.
        if items.peek().is_none() {
            counters.running.fetch_sub(1, Ordering::Relaxed);
            running = false;
        }
        let o = match r {
            Ok(v) => {
                Counters::add(&counters.completed, 1);
                Outcome::Value(v.unbind())
            }
            Err(e) => {
                Counters::add(&counters.failed, 1);
                Outcome::Error(e)
            }
        };
        shared.publish(first + ran, o);
        ran += 1;
    }
    if running {
        counters.running.fetch_sub(1, Ordering::Relaxed);
    }
    ran
}

/// Publishes `Cancelled` for items `from..to` that were claimed but will not run.
fn cancel_items(counters: &Counters, shared: &MapShared, from: usize, to: usize) {
    if from < to {
        Counters::add(&counters.cancelled, (to - from) as u64);
        shared.publish_all((from..to).map(|i| (i, Outcome::Cancelled)).collect());
    }
}

/// An eager map's whole input, shared by its runner jobs.
struct EagerWork {
    shared: Arc<MapShared>,
    func: Py<PyAny>,
    items: Vec<Py<PyAny>>,
    star: bool,
    chunksize: usize,
    n_chunks: usize,
    cursor: AtomicUsize,
    runners: AtomicUsize,
}

impl EagerWork {
    /// Cancels every chunk nobody claimed. The iterator reaches them only after every claimed
    /// item, so it learns of them from `runners_done`.
    fn claim_rest(&self, counters: &Counters) {
        let from = self
            .cursor
            .swap(self.n_chunks, Ordering::AcqRel)
            .min(self.n_chunks);
        let cancelled = self.items.len().saturating_sub(from * self.chunksize);
        Counters::add(&counters.cancelled, cancelled as u64);
    }

    fn runner_exit(&self) {
        if self.runners.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.runners_done();
        }
    }
}

/// One queued runner of an eager map.
pub struct Runner(Arc<EagerWork>);

pub fn run_runner(py: Python<'_>, counters: &Counters, runner: Runner) {
    let w = &runner.0;
    let func = w.func.bind(py);
    while !w.shared.stopped() {
        let i = w.cursor.fetch_add(1, Ordering::AcqRel);
        if i >= w.n_chunks {
            break;
        }
        let lo = i * w.chunksize;
        let hi = (lo + w.chunksize).min(w.items.len());
        let items = w.items[lo..hi].iter().map(|x| x.bind(py).clone());
        let ran = call_items(counters, &w.shared, func, w.star, lo, items);
        cancel_items(counters, &w.shared, lo + ran, hi);
    }
    w.claim_rest(counters);
    w.runner_exit();
}

/// A runner that will never run (shutdown with cancel_futures, or a broken pool).
pub fn cancel_runner(counters: &Counters, runner: Runner) {
    let w = &runner.0;
    w.claim_rest(counters);
    w.runner_exit();
}

/// One chunk of a lazy map.
pub struct ChunkJob {
    shared: Arc<MapShared>,
    first: usize,
    func: Py<PyAny>,
    items: Vec<Py<PyAny>>,
    star: bool,
}

pub fn run_chunk(py: Python<'_>, counters: &Counters, job: ChunkJob) {
    let n = job.items.len();
    let func = job.func.bind(py);
    let items = job.items.into_iter().map(|x| x.into_bound(py));
    let ran = call_items(counters, &job.shared, func, job.star, job.first, items);
    cancel_items(counters, &job.shared, job.first + ran, job.first + n);
}

pub fn cancel_chunk(counters: &Counters, job: ChunkJob) {
    let n = job.items.len();
    cancel_items(counters, &job.shared, job.first, job.first + n);
}

pub fn fail_chunk(counters: &Counters, job: ChunkJob, make: impl Fn() -> PyErr) {
    let n = job.items.len();
    Counters::add(&counters.failed, n as u64);
    let out = (job.first..job.first + n)
        .map(|i| (i, Outcome::Error(make())))
        .collect();
    job.shared.publish_all(out);
}

struct Source {
    iter: Py<PyIterator>,
    buffersize: usize,
}

/// The iterator WorkerPool.map returns. Like a generator, one thread at a time: a second
/// thread calling in while the first is inside gets a ValueError instead of waiting.
#[pyclass(module = "chanpool", name = "MapIterator", frozen)]
pub struct MapIterator {
    state: std::mem::ManuallyDrop<Mutex<MapState>>,
    /// Fork generation: in a child the state (and its locks) belong to the parent's threads.
    gen: u64,
}

pub struct MapState {
    shared: Arc<MapShared>,
    /// The inbox's previous buffer, swapped back in to keep its allocation.
    spare: Vec<Item>,
    /// Outcomes from `next_item` on; None where a result has not arrived yet.
    ready: VecDeque<Option<Outcome>>,
    next_item: usize,
    submitted_items: usize,
    submitted_chunks: usize,
    /// Lazy input (buffersize given); None once exhausted, and always in eager mode.
    source: Option<Source>,
    func: Py<PyAny>,
    star: bool,
    chunksize: usize,
    core: Weak<CorePool>,
    deadline: Option<Instant>,
    done: bool,
    /// Like a generator's `finally`, cancelling only happens once iteration has begun: a map
    /// whose results are never read still runs every item (CPython #11777).
    started: bool,
}

#[allow(clippy::too_many_arguments)]
pub fn start(
    py: Python<'_>,
    core: &Arc<CorePool>,
    ext: &Arc<Ext>,
    func: &Bound<'_, PyAny>,
    iterables: &Bound<'_, PyTuple>,
    deadline: Option<Instant>,
    chunksize: usize,
    buffersize: Option<usize>,
) -> PyResult<MapIterator> {
    Ok(MapIterator {
        state: std::mem::ManuallyDrop::new(Mutex::new(start_state(
            py, core, ext, func, iterables, deadline, chunksize, buffersize,
        )?)),
        gen: runtime::generation(),
    })
}

#[allow(clippy::too_many_arguments)]
fn start_state(
    py: Python<'_>,
    core: &Arc<CorePool>,
    ext: &Arc<Ext>,
    func: &Bound<'_, PyAny>,
    iterables: &Bound<'_, PyTuple>,
    deadline: Option<Instant>,
    chunksize: usize,
    buffersize: Option<usize>,
) -> PyResult<MapState> {
    let star = iterables.len() != 1;
    let iter = if star {
        py.import("builtins")?
            .getattr("zip")?
            .call1(iterables)?
            .try_iter()?
    } else {
        iterables.get_item(0)?.try_iter()?
    };
    let mut it = MapState {
        shared: Arc::new(MapShared {
            cancelled: AtomicBool::new(false),
            ext: Arc::clone(ext),
            inbox: Mutex::new(Inbox {
                items: Vec::new(),
                waiting: false,
                closed: false,
                runners_done: false,
            }),
            wake: Condvar::new(),
        }),
        spare: Vec::new(),
        ready: VecDeque::new(),
        next_item: 0,
        submitted_items: 0,
        submitted_chunks: 0,
        source: None,
        func: func.clone().unbind(),
        star,
        chunksize,
        core: Arc::downgrade(core),
        deadline,
        done: false,
        started: false,
    };
    match buffersize {
        None => it.start_eager(py, core, iter)?,
        Some(b) => {
            for _ in 0..b {
                if !it.submit_chunk(py, &iter)? {
                    return Ok(it);
                }
            }
            it.source = Some(Source {
                iter: iter.unbind(),
                buffersize: b,
            });
        }
    }
    Ok(it)
}

impl MapState {
    /// Like Executor.map: all input is read and queued before map() returns.
    fn start_eager(
        &mut self,
        py: Python<'_>,
        core: &Arc<CorePool>,
        iter: Bound<'_, PyIterator>,
    ) -> PyResult<()> {
        let mut items = Vec::new();
        for item in iter {
            items.push(item?.unbind());
        }
        let n_items = items.len();
        let n_chunks = n_items.div_ceil(self.chunksize);
        if n_chunks == 0 {
            return Ok(());
        }
        let runners = n_chunks.min(core.max_workers());
        let work = Arc::new(EagerWork {
            shared: Arc::clone(&self.shared),
            func: self.func.clone_ref(py),
            items,
            star: self.star,
            chunksize: self.chunksize,
            n_chunks,
            cursor: AtomicUsize::new(0),
            runners: AtomicUsize::new(runners),
        });
        self.submitted_items = n_items;
        self.submitted_chunks = n_chunks;
        for r in 0..runners {
            let weight = if r == 0 { n_items as u64 } else { 0 };
            let task = Task::Runner(Runner(Arc::clone(&work)));
            if let Err(e) = enqueue(py, core, &self.shared.ext, task, weight) {
                // Runners that were never queued must still be accounted for.
                for _ in r..runners {
                    work.runner_exit();
                }
                self.finish();
                return Err(e);
            }
        }
        Ok(())
    }

    /// Reads up to chunksize items and queues them. False when the input is exhausted.
    fn submit_chunk(&mut self, py: Python<'_>, iter: &Bound<'_, PyIterator>) -> PyResult<bool> {
        let mut items = Vec::with_capacity(self.chunksize.min(1024));
        for item in iter.clone() {
            items.push(item?.unbind());
            if items.len() == self.chunksize {
                break;
            }
        }
        if items.is_empty() {
            return Ok(false);
        }
        // Like 3.14's map, which holds the executor weakly: no executor, no more submissions.
        let Some(core) = self.core.upgrade() else {
            return Ok(false);
        };
        let n = items.len();
        let job = ChunkJob {
            shared: Arc::clone(&self.shared),
            first: self.submitted_items,
            func: self.func.clone_ref(py),
            items,
            star: self.star,
        };
        enqueue(py, &core, &self.shared.ext, Task::Chunk(job), n as u64)?;
        self.submitted_items += n;
        self.submitted_chunks += 1;
        Ok(true)
    }

    /// Keeps `buffersize` chunks ahead of the one being consumed (3.14's buffersize rule).
    fn refill(&mut self, py: Python<'_>) -> PyResult<()> {
        let Some(src) = self.source.as_ref() else {
            return Ok(());
        };
        let iter = src.iter.bind(py).clone();
        let want = self.next_item / self.chunksize + 1 + src.buffersize;
        while self.submitted_chunks < want {
            if !self.submit_chunk(py, &iter)? {
                self.source = None;
                break;
            }
        }
        Ok(())
    }

    /// Takes every published outcome; returns whether the last eager runner had stopped.
    fn take_inbox(&mut self) -> bool {
        let mut got = std::mem::take(&mut self.spare);
        let runners_done = {
            let mut g = self.shared.inbox.lock();
            std::mem::swap(&mut g.items, &mut got);
            g.runners_done
        };
        for (i, o) in got.drain(..) {
            let Some(pos) = i.checked_sub(self.next_item) else {
                continue;
            };
            if self.ready.len() <= pos {
                self.ready.resize_with(pos + 1, || None);
            }
            self.ready[pos] = Some(o);
        }
        self.spare = got;
        runners_done
    }

    /// Waits until the next item's outcome is in; detached, in slices, honouring the deadline.
    fn wait_next(&mut self, py: Python<'_>) -> PyResult<Outcome> {
        loop {
            if let Some(Some(_)) = self.ready.front() {
                self.next_item += 1;
                return Ok(self.ready.pop_front().flatten().expect("checked"));
            }
            let runners_done = self.take_inbox();
            if let Some(Some(_)) = self.ready.front() {
                continue;
            }
            if runners_done {
                // Every runner stopped before reaching this item.
                return Ok(Outcome::Cancelled);
            }
            let Some(slice) = runtime::next_slice(self.deadline) else {
                return Err(errors::timeout_error(py));
            };
            let shared = &self.shared;
            runtime::detach(py, || {
                let mut g = shared.inbox.lock();
                if g.items.is_empty() && !g.runners_done {
                    g.waiting = true;
                    shared.wake.wait_for(&mut g, slice);
                    g.waiting = false;
                }
            });
            py.check_signals()?;
        }
    }

    fn step(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.refill(py)?;
        if self.next_item >= self.submitted_items {
            return Ok(None);
        }
        match self.wait_next(py)? {
            Outcome::Value(v) => Ok(Some(v)),
            Outcome::Error(e) => Err(e),
            Outcome::Cancelled => Err(match self.shared.ext.broken() {
                Some(msg) => errors::broken_thread_pool(py, &msg),
                None => errors::cancelled_error(py),
            }),
        }
    }

    fn finish(&mut self) {
        self.done = true;
        if self.started {
            self.shared.cancelled.store(true, Ordering::Relaxed);
        }
        self.source = None;
        self.ready.clear();
        drop(self.shared.close());
    }
}

impl MapState {
    fn next(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        if self.done {
            return Ok(None);
        }
        self.started = true;
        match self.step(py) {
            Ok(Some(v)) => Ok(Some(v)),
            Ok(None) => {
                self.finish();
                Ok(None)
            }
            Err(e) => {
                // Like the generator's `finally`: what has not started is cancelled.
                self.finish();
                Err(e)
            }
        }
    }
}

impl MapIterator {
    /// The state, for the one thread inside; never waits for it while attached.
    fn enter(&self) -> PyResult<crate::core::sync::MutexGuard<'_, MapState>> {
        runtime::check_process(self.gen, "map iterator")?;
        self.state
            .try_lock()
            .ok_or_else(|| pyo3::exceptions::PyValueError::new_err("MapIterator already executing"))
    }
}

#[pymethods]
impl MapIterator {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.enter()?.next(py)
    }

    /// Stops the iteration and cancels the items that have not started.
    fn close(&self) -> PyResult<()> {
        self.enter()?.finish();
        Ok(())
    }

    fn __traverse__(&self, visit: pyo3::gc::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        if self.gen != runtime::generation() {
            return Ok(());
        }
        if let Some(st) = self.state.try_lock() {
            visit.call(&st.func)?;
            if let Some(s) = &st.source {
                visit.call(&s.iter)?;
            }
        }
        Ok(())
    }
}

impl Drop for MapIterator {
    fn drop(&mut self) {
        if self.gen == runtime::generation() {
            // SAFETY: dropped exactly once, here, and never used after.
            unsafe { std::mem::ManuallyDrop::drop(&mut self.state) }
        }
        // Otherwise created before fork(): its locks may be held by the parent's threads, so
        // the state is leaked rather than touched.
    }
}

impl Drop for MapState {
    fn drop(&mut self) {
        if self.started {
            self.shared.cancelled.store(true, Ordering::Relaxed);
        }
        drop(self.shared.close());
    }
}
