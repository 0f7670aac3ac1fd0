//! The worker side of WorkerPool.map: the inbox where workers leave each item's outcome for
//! the iterator, and the two kinds of queued map work (a lazy map's chunk, an eager map's
//! runner that claims chunks from a shared cursor), each a [`Batch`] task.

use super::super::task::Batch;
use super::super::worker::Ext;
use crate::core::pool::Counters;
use crate::core::sync::{Condvar, Mutex};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub(super) enum Outcome {
    Value(Py<PyAny>),
    Error(PyErr),
    Cancelled,
}

pub(super) type Item = (usize, Outcome);

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

pub(super) struct MapShared {
    /// The iterator was closed or failed after iteration began.
    cancelled: AtomicBool,
    ext: Arc<Ext>,
    inbox: Mutex<Inbox>,
    wake: Condvar,
}

impl MapShared {
    pub(super) fn new(ext: Arc<Ext>) -> Self {
        MapShared {
            cancelled: AtomicBool::new(false),
            ext,
            inbox: Mutex::new(Inbox {
                items: Vec::new(),
                waiting: false,
                closed: false,
                runners_done: false,
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

    /// Swaps the published outcomes into `buf` (an empty buffer, whose allocation is kept);
    /// returns whether the last eager runner had stopped.
    pub(super) fn swap(&self, buf: &mut Vec<Item>) -> bool {
        let mut g = self.inbox.lock();
        std::mem::swap(&mut g.items, buf);
        g.runners_done
    }

    /// One wait slice for the consumer (detached): true once there is something to take.
    pub(super) fn wait(&self, slice: Duration) -> bool {
        let mut g = self.inbox.lock();
        if g.items.is_empty() && !g.runners_done {
            g.waiting = true;
            self.wake.wait_for(&mut g, slice);
            g.waiting = false;
        }
        !g.items.is_empty() || g.runners_done
    }

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
    pub(super) fn close(&self) -> Vec<Item> {
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
            let ran = call_items(counters, &w.shared, func, w.star, lo, items);
            cancel_items(counters, &w.shared, lo + ran, hi);
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
    pub(super) first: usize,
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
        let ran = call_items(counters, &job.shared, func, job.star, job.first, items);
        cancel_items(counters, &job.shared, job.first + ran, job.first + n);
    }

    fn cancel(self: Box<Self>, counters: &Counters) {
        let n = self.items.len();
        cancel_items(counters, &self.shared, self.first, self.first + n);
    }

    fn fail(self: Box<Self>, counters: &Counters, make: &dyn Fn() -> PyErr) {
        let n = self.items.len();
        Counters::add(&counters.failed, n as u64);
        let out = (self.first..self.first + n)
            .map(|i| (i, Outcome::Error(make())))
            .collect();
        self.shared.publish_all(out);
    }
}
