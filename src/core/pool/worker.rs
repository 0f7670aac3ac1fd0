//! A worker thread's view of its pool: where it takes jobs from (its first job, then the
//! queue), and the idle bookkeeping that lets a submit rely on it instead of starting a thread.

use super::{Next, Pool};
use crate::core::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A worker's view of its pool.
pub struct Worker<J: Send + 'static> {
    pool: Arc<Pool<J>>,
    /// An idle token granted early by [`Worker::finishing`], not yet matched by a wait.
    early_token: AtomicBool,
    /// The job whose submit started this thread: handed over directly, so the thread starts
    /// on it at once (as ThreadPoolExecutor's do) and a cancel_futures drain cannot take it.
    first: Mutex<Option<J>>,
    /// Whether `first` still holds the job (a plain load on the hot path instead of a lock).
    has_first: AtomicBool,
}

impl<J: Send + 'static> Worker<J> {
    pub(super) fn new(pool: Arc<Pool<J>>, first: Option<J>) -> Self {
        IN_POOL_THREAD.with(|f| f.set(true));
        Worker {
            pool,
            early_token: AtomicBool::new(false),
            has_first: AtomicBool::new(first.is_some()),
            first: Mutex::new(first),
        }
    }

    /// The job this thread was started with, if it has not been taken yet.
    pub fn take_first(&self) -> Option<J> {
        if !self.has_first.load(Ordering::Relaxed) {
            return None;
        }
        self.has_first.store(false, Ordering::Relaxed);
        let j = self.first.lock().take();
        if j.is_some() {
            self.pool.taken.fetch_add(1, Ordering::Relaxed);
        }
        j
    }

    pub fn pool(&self) -> &Arc<Pool<J>> {
        &self.pool
    }

    /// Takes a job if one is queued; never blocks, so it is safe while holding the GIL.
    pub fn try_next(&self) -> Next<J> {
        if let Some(j) = self.take_first() {
            return Next::Job(j);
        }
        match self.pool.rx.try_recv() {
            Ok(j) => {
                self.pool.taken.fetch_add(1, Ordering::Relaxed);
                if self.early_token.swap(false, Ordering::Relaxed) {
                    // Busy again after all: take back the token if no submit used it.
                    self.pool.take_idle_token();
                }
                Next::Job(j)
            }
            Err(crossbeam_channel::TryRecvError::Empty) => Next::Empty,
            Err(crossbeam_channel::TryRecvError::Disconnected) => Next::Closed,
        }
    }

    /// Call just before publishing a job's result: when nothing is queued this worker is about
    /// to wait, and a submit that the result triggers must reuse it, not start another thread.
    pub fn finishing(&self) {
        if !self.early_token.load(Ordering::Relaxed) && self.pool.rx.is_empty() {
            self.early_token.store(true, Ordering::Relaxed);
            self.pool.idle_tokens.give();
        }
    }

    /// Blocks until a job arrives; None once the pool is shut down and drained.
    /// Call it only with the GIL released.
    pub fn wait_next(&self) -> Option<J> {
        let p = &self.pool;
        if let Some(j) = self.take_first() {
            return Some(j);
        }
        p.counters.waits.fetch_add(1, Ordering::Relaxed);
        // Token first: whoever sees this worker idle must also find its token.
        if !self.early_token.swap(false, Ordering::Relaxed) {
            p.idle_tokens.give();
        }
        p.idle.fetch_add(1, Ordering::AcqRel);
        let r = p.rx.recv().ok();
        p.idle.fetch_sub(1, Ordering::AcqRel);
        if r.is_some() {
            p.taken.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    /// The next job, blocking while the queue is empty; None once the pool is closed and
    /// drained. For plain-Rust bodies: a body that runs Python uses `try_next` attached and
    /// `wait_next` detached (py/worker.rs).
    pub fn next(&self) -> Option<J> {
        match self.try_next() {
            Next::Job(j) => Some(j),
            Next::Empty => self.wait_next(),
            Next::Closed => None,
        }
    }
}

impl<J: Send + 'static> Drop for Worker<J> {
    fn drop(&mut self) {
        self.pool.spawned.fetch_sub(1, Ordering::AcqRel);
    }
}

thread_local! {
    static IN_POOL_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the calling thread is a worker of some Pool (the runtime lets those finish their
/// work during interpreter exit, where other threads are parked).
pub fn in_pool_thread() -> bool {
    IN_POOL_THREAD.with(|f| f.get())
}

/// Convenience for tests and plain-Rust users: a worker body that runs boxed closures.
pub fn closure_body(w: Worker<Box<dyn FnOnce() + Send>>) {
    let counters = &w.pool().counters;
    while let Some(job) = w.next() {
        counters.running.fetch_add(1, Ordering::Relaxed);
        job();
        counters.running.fetch_sub(1, Ordering::Relaxed);
        super::Counters::add(&counters.completed, 1);
    }
}
