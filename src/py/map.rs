//! WorkerPool.map: ordered fan-in of results without a Future per item.
//!
//! Items are cut into chunks of `chunksize`, the unit of parallel work. A worker runs every item
//! of a chunk (an exception stays attached to its own item, as with ThreadPoolExecutor) and sends
//! `(item index, outcome)` pairs to this map's channel; the iterator puts them back in order.
//!
//! Eager maps (no buffersize) queue at most `max_workers` runner jobs instead of one job per
//! chunk: runners claim chunks from a shared cursor, so a chunk costs an atomic increment rather
//! than a queue round trip, and they batch results until the consumer is waiting. Lazy maps queue
//! one job per chunk as the input is read. Dropping a started iterator or failing it sets a flag that makes
//! work that has not started skip.

use crate::core::pool::Counters;
use crate::py::errors;
use crate::py::pool::{enqueue, CorePool, Ext, Task};
use crate::py::runtime;
use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};
use pyo3::prelude::*;
use pyo3::types::{PyIterator, PyTuple};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

/// A runner sends its batch once it holds this many results, or sooner if the consumer waits.
const FLUSH: usize = 256;

enum Outcome {
    Value(Py<PyAny>),
    Error(PyErr),
    Cancelled,
}

enum Msg {
    Items(Vec<(usize, Outcome)>),
    /// The last eager runner has stopped: whatever has not arrived never will.
    RunnersDone,
}

struct MapShared {
    cancelled: AtomicBool,
    /// Set while the consumer is blocked, so runners flush instead of batching.
    waiting: AtomicBool,
    tx: Sender<Msg>,
}

fn call_items<'py>(
    counters: &Counters,
    shared: &MapShared,
    func: &Bound<'py, PyAny>,
    star: bool,
    first: usize,
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    out: &mut Vec<(usize, Outcome)>,
) {
    let (mut ok, mut failed) = (0u64, 0u64);
    counters.running.fetch_add(1, Ordering::Relaxed);
    for (k, item) in items.enumerate() {
        if shared.cancelled.load(Ordering::Relaxed) {
            break;
        }
        let r = if star {
            func.call1(item.cast_into::<PyTuple>().expect("map args are tuples"))
        } else {
            func.call1((item,))
        };
        out.push((
            first + k,
            match r {
                Ok(v) => {
                    ok += 1;
                    Outcome::Value(v.unbind())
                }
                Err(e) => {
                    failed += 1;
                    Outcome::Error(e)
                }
            },
        ));
    }
    counters.running.fetch_sub(1, Ordering::Relaxed);
    Counters::add(&counters.completed, ok);
    Counters::add(&counters.failed, failed);
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
    /// Marks every chunk nobody claimed as cancelled; returns how many items that was.
    fn claim_rest(&self) -> u64 {
        let from = self
            .cursor
            .swap(self.n_chunks, Ordering::AcqRel)
            .min(self.n_chunks);
        self.items.len().saturating_sub(from * self.chunksize) as u64
    }

    fn runner_exit(&self) {
        if self.runners.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _ = self.shared.tx.send(Msg::RunnersDone);
        }
    }
}

/// One queued runner of an eager map.
pub struct Runner(Arc<EagerWork>);

pub fn run_runner(py: Python<'_>, counters: &Counters, runner: Runner) {
    let w = &runner.0;
    let func = w.func.bind(py);
    let mut batch = Vec::new();
    loop {
        if w.shared.cancelled.load(Ordering::Relaxed) {
            break;
        }
        let i = w.cursor.fetch_add(1, Ordering::AcqRel);
        if i >= w.n_chunks {
            break;
        }
        let lo = i * w.chunksize;
        let hi = (lo + w.chunksize).min(w.items.len());
        let items = w.items[lo..hi].iter().map(|x| x.bind(py).clone());
        let before = batch.len();
        call_items(counters, &w.shared, func, w.star, lo, items, &mut batch);
        Counters::add(
            &counters.cancelled,
            ((hi - lo) - (batch.len() - before)) as u64,
        );
        if batch.len() >= FLUSH || w.shared.waiting.load(Ordering::Relaxed) {
            let _ = w.shared.tx.send(Msg::Items(std::mem::take(&mut batch)));
        }
    }
    if !batch.is_empty() {
        let _ = w.shared.tx.send(Msg::Items(batch));
    }
    Counters::add(&counters.cancelled, w.claim_rest());
    w.runner_exit();
}

/// A runner that will never run (shutdown with cancel_futures, or a broken pool).
pub fn cancel_runner(counters: &Counters, runner: Runner) {
    let w = &runner.0;
    w.shared.cancelled.store(true, Ordering::Relaxed);
    Counters::add(&counters.cancelled, w.claim_rest());
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
    let mut out = Vec::with_capacity(n);
    let func = job.func.bind(py);
    let items = job.items.into_iter().map(|x| x.into_bound(py));
    call_items(
        counters,
        &job.shared,
        func,
        job.star,
        job.first,
        items,
        &mut out,
    );
    Counters::add(&counters.cancelled, (n - out.len()) as u64);
    for k in out.len()..n {
        out.push((job.first + k, Outcome::Cancelled));
    }
    // The iterator may be gone; its results are then simply dropped (attached, here).
    let _ = job.shared.tx.send(Msg::Items(out));
}

pub fn cancel_chunk(counters: &Counters, job: ChunkJob) {
    let n = job.items.len();
    Counters::add(&counters.cancelled, n as u64);
    let out = (0..n)
        .map(|k| (job.first + k, Outcome::Cancelled))
        .collect();
    let _ = job.shared.tx.send(Msg::Items(out));
}

pub fn fail_chunk(counters: &Counters, job: ChunkJob, make: impl Fn() -> PyErr) {
    let n = job.items.len();
    Counters::add(&counters.failed, n as u64);
    let out = (0..n)
        .map(|k| (job.first + k, Outcome::Error(make())))
        .collect();
    let _ = job.shared.tx.send(Msg::Items(out));
}

struct Source {
    iter: Py<PyIterator>,
    buffersize: usize,
}

/// The iterator WorkerPool.map returns.
#[pyclass(module = "chanpool", name = "MapIterator")]
pub struct MapIterator {
    shared: Arc<MapShared>,
    rx: Receiver<Msg>,
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
    ext: Arc<Ext>,
    deadline: Option<Instant>,
    runners_done: bool,
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
    let star = iterables.len() != 1;
    let iter = if star {
        py.import("builtins")?
            .getattr("zip")?
            .call1(iterables)?
            .try_iter()?
    } else {
        iterables.get_item(0)?.try_iter()?
    };
    let (tx, rx) = unbounded();
    let mut it = MapIterator {
        shared: Arc::new(MapShared {
            cancelled: AtomicBool::new(false),
            waiting: AtomicBool::new(false),
            tx,
        }),
        rx,
        ready: VecDeque::new(),
        next_item: 0,
        submitted_items: 0,
        submitted_chunks: 0,
        source: None,
        func: func.clone().unbind(),
        star,
        chunksize,
        core: Arc::downgrade(core),
        ext: Arc::clone(ext),
        deadline,
        runners_done: false,
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

impl MapIterator {
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
            if let Err(e) = enqueue(py, core, &self.ext, task, weight) {
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
        enqueue(py, &core, &self.ext, Task::Chunk(job), n as u64)?;
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

    fn accept(&mut self, msg: Msg) {
        match msg {
            Msg::RunnersDone => self.runners_done = true,
            Msg::Items(items) => {
                for (i, o) in items {
                    let Some(pos) = i.checked_sub(self.next_item) else {
                        continue;
                    };
                    if self.ready.len() <= pos {
                        self.ready.resize_with(pos + 1, || None);
                    }
                    self.ready[pos] = Some(o);
                }
            }
        }
    }

    /// Receives until the next item's outcome is in; detached, in slices, honouring the deadline.
    fn wait_next(&mut self, py: Python<'_>) -> PyResult<Outcome> {
        loop {
            if let Some(Some(_)) = self.ready.front() {
                self.next_item += 1;
                return Ok(self.ready.pop_front().flatten().expect("checked"));
            }
            if let Ok(m) = self.rx.try_recv() {
                self.accept(m);
                continue;
            }
            if self.runners_done {
                // Every runner stopped before reaching this item.
                return Err(match self.ext.broken() {
                    Some(msg) => errors::broken_thread_pool(py, &msg),
                    None => errors::cancelled_error(py),
                });
            }
            let Some(slice) = runtime::next_slice(self.deadline) else {
                return Err(errors::timeout_error(py));
            };
            let (rx, shared) = (&self.rx, &self.shared);
            let got = py.detach(|| {
                shared.waiting.store(true, Ordering::Relaxed);
                let r = rx.recv_timeout(slice);
                shared.waiting.store(false, Ordering::Relaxed);
                r
            });
            match got {
                Ok(m) => self.accept(m),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => unreachable!("the iterator holds a sender"),
            }
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
            Outcome::Cancelled => Err(match self.ext.broken() {
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
    }
}

#[pymethods]
impl MapIterator {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
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

    /// Stops the iteration and cancels the items that have not started.
    fn close(&mut self) {
        self.finish();
    }

    fn __traverse__(&self, visit: pyo3::gc::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.func)?;
        if let Some(s) = &self.source {
            visit.call(&s.iter)?;
        }
        Ok(())
    }
}

impl Drop for MapIterator {
    fn drop(&mut self) {
        if self.started {
            self.shared.cancelled.store(true, Ordering::Relaxed);
        }
    }
}
