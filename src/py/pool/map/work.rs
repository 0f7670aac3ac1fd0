//! The worker side of WorkerPool.map: the inbox where workers leave each item's outcome for
//! the iterator, and the two kinds of queued map work (a lazy map's chunk, an eager map's
//! runner that claims chunks from a shared cursor), each a [`Batch`] task.

use super::super::task::Batch;
use super::super::worker::Ext;
use crate::core::pool::Counters;
use crate::core::sync::{Condvar, Mutex};
use crate::py::call;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub(super) enum Outcome {
    Value(Py<PyAny>),
    /// Boxed: errors are rare, and a small outcome keeps every per-item move short.
    Error(Box<PyErr>),
    Cancelled,
}

/// The outcomes of one chunk, in item order (a chunk runs its items in order on one worker).
pub(super) type Run = VecDeque<Outcome>;

/// Emptied runs kept for reuse, so a chunk's first outcome does not allocate in steady state.
const SPARE_RUNS: usize = 64;

/// Where workers leave outcomes for the iterator, one run per chunk, so the iterator takes a
/// chunk's outcomes in order, many at once, without sorting them. Publishers hold the GIL and
/// the iterator only takes the lock attached or for an instant while detached, so it is never
/// contended for long; no Python object is ever dropped while it is held (a `__del__` could
/// switch threads and deadlock on it).
struct Inbox {
    /// Runs of chunks `base..`: the iterator's current chunk first.
    runs: VecDeque<Run>,
    base: usize,
    spare: Vec<Run>,
    /// The consumer sleeps on the condvar for this chunk: a publisher to it wakes it.
    waiting: Option<usize>,
    /// The iterator is gone or finished: outcomes are dropped instead of kept.
    closed: bool,
    /// The last eager runner has stopped: whatever has not arrived never will.
    runners_done: bool,
    /// Items run so far (not the cancelled ones), for the `progress` hook.
    done: usize,
}

impl Inbox {
    /// The run of `chunk` (at or after `base`: the iterator leaves a chunk only once every
    /// outcome of it was taken, so nobody publishes to it afterwards).
    /// `len` (the chunk's size) sizes a fresh run once instead of growing it item by item.
    fn run(&mut self, chunk: usize, len: usize) -> &mut Run {
        let at = chunk - self.base;
        while self.runs.len() <= at {
            let run = self.spare.pop().unwrap_or_default();
            self.runs.push_back(run);
        }
        let run = &mut self.runs[at];
        if run.capacity() == 0 {
            run.reserve_exact(len);
        }
        run
    }

    fn wake_for(&mut self, chunk: usize, wake: &Condvar) {
        if self.waiting == Some(chunk) {
            self.waiting = None;
            wake.notify_one();
        }
    }
}

pub(super) struct MapShared {
    /// The iterator was closed or failed after iteration began.
    cancelled: AtomicBool,
    /// map_unordered: every outcome goes to one run (run 0) in the order it was published, so
    /// the iterator takes them in completion order with the same inbox and wake protocol.
    unordered: bool,
    ext: Arc<Ext>,
    inbox: Mutex<Inbox>,
    wake: Condvar,
}

impl MapShared {
    pub(super) fn new(ext: Arc<Ext>, unordered: bool) -> Self {
        MapShared {
            cancelled: AtomicBool::new(false),
            unordered,
            ext,
            inbox: Mutex::new(Inbox {
                runs: VecDeque::new(),
                base: 0,
                spare: Vec::new(),
                waiting: None,
                closed: false,
                runners_done: false,
                done: 0,
            }),
            wake: Condvar::new(),
        }
    }

    pub(super) fn ext(&self) -> &Ext {
        &self.ext
    }

    /// The iterator stopped after iteration began: items that have not started skip.
    pub(super) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// Swaps the outcomes published so far for `chunk` into `buf` (an empty run, whose
    /// allocation is kept); returns whether the last eager runner had stopped, and how many
    /// items have run so far.
    pub(super) fn take(&self, chunk: usize, buf: &mut Run) -> (bool, usize) {
        let mut g = self.inbox.lock();
        while g.base < chunk {
            // Every outcome of an earlier chunk was taken: its run is empty.
            if let Some(run) = g.runs.pop_front() {
                if g.spare.len() < SPARE_RUNS && run.is_empty() && run.capacity() > 0 {
                    g.spare.push(run);
                }
            }
            g.base += 1;
        }
        if let Some(run) = g.runs.front_mut() {
            std::mem::swap(run, buf);
        }
        (g.runners_done, g.done)
    }

    /// One wait slice for the consumer (detached): true once `chunk` has something to take.
    pub(super) fn wait(&self, chunk: usize, slice: Duration) -> bool {
        let mut g = self.inbox.lock();
        let ready = |g: &mut Inbox| {
            g.runners_done
                || (chunk >= g.base && g.runs.get(chunk - g.base).is_some_and(|r| !r.is_empty()))
        };
        if !ready(&mut g) {
            g.waiting = Some(chunk);
            self.wake.wait_for(&mut g, slice);
            g.waiting = None;
        }
        ready(&mut g)
    }

    /// Whether items that have not started must be skipped (iterator gone, or the pool is
    /// discarding its pending work: cancel_futures, exit, broken).
    fn stopped(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed) || self.ext.discarding()
    }

    /// The run a chunk's outcomes go to: its own, or the single completion-order run.
    pub(super) fn run_of(&self, chunk: usize) -> usize {
        if self.unordered {
            0
        } else {
            chunk
        }
    }

    fn publish(&self, chunk: usize, len: usize, o: Outcome) {
        let chunk = self.run_of(chunk);
        let rejected = {
            let mut g = self.inbox.lock();
            if g.closed {
                Some(o)
            } else {
                g.done += usize::from(!matches!(o, Outcome::Cancelled));
                g.run(chunk, len).push_back(o);
                g.wake_for(chunk, &self.wake);
                None
            }
        };
        drop(rejected);
    }

    /// `items` must not run Python while iterated (the lock is held); rejected ones are
    /// dropped after it is released (parameters outlive the guard). `ran` of them ran.
    fn publish_all(&self, chunk: usize, ran: usize, items: impl IntoIterator<Item = Outcome>) {
        let chunk = self.run_of(chunk);
        let mut g = self.inbox.lock();
        if !g.closed {
            g.done += ran;
            g.run(chunk, 0).extend(items);
            g.wake_for(chunk, &self.wake);
        }
    }

    fn runners_done(&self) {
        let mut g = self.inbox.lock();
        g.runners_done = true;
        if g.waiting.take().is_some() {
            self.wake.notify_one();
        }
    }

    /// Stops accepting outcomes; returns the ones not taken, for the caller to drop unlocked.
    pub(super) fn close(&self) -> VecDeque<Run> {
        let mut g = self.inbox.lock();
        g.closed = true;
        g.spare.clear();
        std::mem::take(&mut g.runs)
    }
}

/// Runs a chunk's items in order, publishing each outcome as soon as it is known; returns how
/// many ran.
fn call_items<'py>(
    counters: &Counters,
    shared: &MapShared,
    func: &Bound<'py, PyAny>,
    star: bool,
    chunk: usize,
    items: impl ExactSizeIterator<Item = Bound<'py, PyAny>>,
) -> usize {
    let len = items.len();
    let mut items = items.peekable();
    // One running task per chunk: per-item counting would cost atomics on the hot path.
    let mut running = items.peek().is_some();
    if running {
        counters.running.fetch_add(1, Ordering::Relaxed);
    }
    let mut ran = 0;
    let limited = shared.ext.rate.is_some();
    while let Some(item) = items.next() {
        if shared.stopped() || (limited && !shared.ext.pace(func.py())) {
            break;
        }
        let r = if star {
            func.call1(item.cast_into::<PyTuple>().expect("map args are tuples"))
        } else {
            call::call1(func, &item)
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
                Outcome::Error(Box::new(e))
            }
        };
        shared.publish(chunk, len, o);
        ran += 1;
    }
    if running {
        counters.running.fetch_sub(1, Ordering::Relaxed);
    }
    ran
}

/// Publishes `Cancelled` for the last `n` items of `chunk`, claimed but never run.
fn cancel_items(counters: &Counters, shared: &MapShared, chunk: usize, n: usize) {
    if n > 0 {
        Counters::add(&counters.cancelled, n as u64);
        shared.publish_all(chunk, 0, (0..n).map(|_| Outcome::Cancelled));
    }
}

/// An eager map's whole input, shared by its runner jobs.
pub(super) struct EagerWork {
    pub(super) shared: Arc<MapShared>,
    pub(super) func: Py<PyAny>,
    pub(super) items: Vec<Py<PyAny>>,
    pub(super) star: bool,
    pub(super) chunksize: usize,
    pub(super) n_chunks: usize,
    pub(super) cursor: AtomicUsize,
    pub(super) runners: AtomicUsize,
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

    pub(super) fn runner_exit(&self) {
        if self.runners.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.runners_done();
        }
    }
}

/// One queued runner of an eager map.
pub(super) struct Runner(pub(super) Arc<EagerWork>);

impl Batch for Runner {
    fn run(self: Box<Self>, py: Python<'_>, counters: &Counters) {
        let w = &self.0;
        let func = w.func.bind(py);
        while !w.shared.stopped() {
            let i = w.cursor.fetch_add(1, Ordering::AcqRel);
            if i >= w.n_chunks {
                break;
            }
            let lo = i * w.chunksize;
            let hi = (lo + w.chunksize).min(w.items.len());
            let items = w.items[lo..hi].iter().map(|x| x.bind(py).clone());
            let ran = call_items(counters, &w.shared, func, w.star, i, items);
            cancel_items(counters, &w.shared, i, hi - lo - ran);
        }
        w.claim_rest(counters);
        w.runner_exit();
    }

    /// A runner that will never run (shutdown with cancel_futures, or a broken pool).
    fn cancel(self: Box<Self>, counters: &Counters) {
        self.0.claim_rest(counters);
        self.0.runner_exit();
    }

    /// A broken pool's runner: its unclaimed items end like cancelled ones (the iterator
    /// reports them as BrokenThreadPool).
    fn fail(self: Box<Self>, counters: &Counters, _make: &dyn Fn() -> PyErr) {
        self.cancel(counters);
    }
}

/// One chunk of a lazy map.
pub(super) struct ChunkJob {
    pub(super) shared: Arc<MapShared>,
    pub(super) chunk: usize,
    pub(super) func: Py<PyAny>,
    pub(super) items: Vec<Py<PyAny>>,
    pub(super) star: bool,
}

impl Batch for ChunkJob {
    fn run(self: Box<Self>, py: Python<'_>, counters: &Counters) {
        let job = *self;
        let n = job.items.len();
        let func = job.func.bind(py);
        let items = job.items.into_iter().map(|x| x.into_bound(py));
        let ran = call_items(counters, &job.shared, func, job.star, job.chunk, items);
        cancel_items(counters, &job.shared, job.chunk, n - ran);
    }

    fn cancel(self: Box<Self>, counters: &Counters) {
        cancel_items(counters, &self.shared, self.chunk, self.items.len());
    }

    fn fail(self: Box<Self>, counters: &Counters, make: &dyn Fn() -> PyErr) {
        let n = self.items.len();
        Counters::add(&counters.failed, n as u64);
        // Built before the lock is taken: making an exception runs Python.
        let out: Vec<_> = (0..n).map(|_| Outcome::Error(Box::new(make()))).collect();
        self.shared.publish_all(self.chunk, 0, out);
    }
}
