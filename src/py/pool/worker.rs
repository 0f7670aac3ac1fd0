//! The worker side of WorkerPool: the tasks it queues, what the worker threads run, how a
//! task gets in (waiting detached while a bounded queue is full), and exit-time stopping.

use crate::core::pool::{Counters, Offer, Pool, Rejected, Worker};
use crate::core::sync::{Mutex, RwLock};
use crate::py::errors;
use crate::py::future;
use crate::py::map::{self, ChunkJob, Runner};
use crate::py::ratelimit::TokenBucket;
use crate::py::runtime::{self, Stoppable, SLICE};
use crate::py::worker;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};

pub struct CallJob {
    pub(super) fut: Py<PyAny>,
    pub(super) func: Py<PyAny>,
    pub(super) args: Py<PyTuple>,
    pub(super) kwargs: Option<Py<PyDict>>,
}

pub enum Task {
    Call(CallJob),
    /// One chunk of a lazy map.
    Chunk(ChunkJob),
    /// A runner of an eager map (claims chunks until none are left).
    Runner(Runner),
}

pub type CorePool = Pool<Task>;

pub(super) struct Init {
    pub(super) func: Py<PyAny>,
    pub(super) args: Py<PyTuple>,
}

/// What the workers share with the Python object besides the queue.
pub struct Ext {
    pub(super) init: RwLock<Option<Init>>,
    pub(super) is_broken: AtomicBool,
    pub(super) broken: Mutex<Option<String>>,
    /// Queued work is being thrown away (broken pool, cancel_futures, exit): a submit that was
    /// blocked on a full queue and got in after the purge must purge again.
    pub(super) discard: AtomicBool,
    pub(super) core: OnceLock<Weak<CorePool>>,
    /// rate_limit: every call (and every map item) first takes a token.
    pub(super) rate: Option<Py<TokenBucket>>,
}

impl Ext {
    /// Waits (GIL released) for the rate limit's next token. False when the pool started
    /// discarding its pending work meanwhile: the caller cancels instead of running.
    pub fn pace(&self, py: Python<'_>) -> bool {
        match &self.rate {
            None => true,
            Some(bucket) => bucket.get().pace(py, || self.discarding()),
        }
    }

    /// Pending work is being cancelled: map runners stop claiming items.
    pub fn discarding(&self) -> bool {
        self.discard.load(Ordering::Acquire)
    }

    pub fn broken(&self) -> Option<String> {
        if !self.is_broken.load(Ordering::Acquire) {
            return None;
        }
        self.broken.lock().clone()
    }

    /// TPE semantics: the pool is unusable and everything queued fails with BrokenThreadPool.
    fn initializer_failed(&self, py: Python<'_>, w: &Worker<Task>, err: PyErr) {
        let msg = "A thread initializer failed, the thread pool is not usable anymore".to_string();
        errors::log_exception(py, "Exception in initializer:", err);
        *self.broken.lock() = Some(msg.clone());
        self.is_broken.store(true, Ordering::Release);
        self.discard.store(true, Ordering::Release);
        let pool = w.pool();
        py.detach(|| pool.close());
        // The job this thread was started with fails like the queued ones.
        if let Some(task) = w.take_first() {
            fail_task(py, &pool.counters, task, || {
                errors::broken_thread_pool(py, &msg)
            });
        }
        self.purge(py, pool);
    }

    /// Empties the queue of a pool whose queued work is being discarded.
    fn purge(&self, py: Python<'_>, core: &CorePool) {
        match self.broken() {
            Some(msg) => {
                for task in core.drain() {
                    fail_task(py, &core.counters, task, || {
                        errors::broken_thread_pool(py, &msg)
                    });
                }
            }
            None => cancel_queued(py, core),
        }
    }
}

impl Stoppable for Ext {
    fn stop_for_exit(&self, py: Python<'_>) {
        let Some(core) = self.core.get().and_then(Weak::upgrade) else {
            return;
        };
        // Like ThreadPoolExecutor at exit: no new work, what is queued still runs.
        py.detach(|| core.close());
        if runtime::exit_join(py, |slice| core.join(Some(slice))) {
            return;
        }
        // Ctrl-C during the exit join: what has not started is cancelled, counted and logged.
        self.discard.store(true, Ordering::Release);
        let before = core.snapshot().cancelled;
        cancel_queued(py, &core);
        let dropped = core.snapshot().cancelled - before;
        if dropped > 0 {
            log::warn!(target: "chanpool", "exit interrupted: {dropped} queued task(s) cancelled");
        }
    }

    fn stops_early(&self) -> bool {
        true
    }
}

pub(super) fn cancel_queued(py: Python<'_>, core: &CorePool) {
    for task in core.drain() {
        match task {
            Task::Call(job) => {
                let _ = future::cancel(job.fut.bind(py));
                Counters::add(&core.counters.cancelled, 1);
            }
            Task::Chunk(c) => map::cancel_chunk(&core.counters, c),
            Task::Runner(r) => map::cancel_runner(&core.counters, r),
        }
    }
}

fn fail_task(py: Python<'_>, counters: &Counters, task: Task, make: impl Fn() -> PyErr) {
    match task {
        Task::Call(job) => {
            let _ = future::set_exception(job.fut.bind(py), make());
            Counters::add(&counters.failed, 1);
        }
        Task::Chunk(c) => map::fail_chunk(counters, c, make),
        Task::Runner(r) => map::cancel_runner(counters, r),
    }
}

fn run_call(py: Python<'_>, ext: &Ext, w: &Worker<Task>, counters: &Counters, job: CallJob) {
    let fut = job.fut.bind(py);
    if ext.rate.is_some() {
        // No token is spent on a future cancelled while it was queued.
        let cancelled = fut
            .call_method0("cancelled")
            .and_then(|c| c.is_truthy())
            .unwrap_or(false);
        if !cancelled && !ext.pace(py) {
            let _ = future::cancel(fut);
        }
    }
    match future::start(fut) {
        Ok(true) => {}
        Ok(false) => {
            Counters::add(&counters.cancelled, 1);
            return;
        }
        Err(e) => {
            errors::log_exception(py, "chanpool: could not start a future", e);
            return;
        }
    }
    counters.running.fetch_add(1, Ordering::Relaxed);
    let r = job
        .func
        .bind(py)
        .call(job.args.bind(py), job.kwargs.as_ref().map(|k| k.bind(py)));
    counters.running.fetch_sub(1, Ordering::Relaxed);
    // Drop the callable and arguments before publishing the result (TPE frees them too).
    drop((job.func, job.args, job.kwargs));
    w.finishing();
    let done = match r {
        Ok(v) => {
            Counters::add(&counters.completed, 1);
            future::set_result(fut, v)
        }
        Err(e) => {
            Counters::add(&counters.failed, 1);
            future::set_exception(fut, e)
        }
    };
    if let Err(e) = done {
        errors::log_exception(py, "chanpool: could not complete a future", e);
    }
}

pub(super) fn worker_main(ext: Arc<Ext>, w: Worker<Task>) {
    let ran = worker::attached(&w, |py, w| {
        let init = ext
            .init
            .read()
            .as_ref()
            .map(|i| (i.func.clone_ref(py), i.args.clone_ref(py)));
        if let Some((func, args)) = init {
            if let Err(e) = func.bind(py).call1(args.bind(py)) {
                ext.initializer_failed(py, w, e);
                return;
            }
        }
        let counters = &w.pool().counters;
        worker::serve_attached(py, w, |py, task| match task {
            Task::Call(job) => run_call(py, &ext, w, counters, job),
            Task::Chunk(c) => map::run_chunk(py, counters, c),
            Task::Runner(r) => map::run_runner(py, counters, r),
        });
    });
    if ran.is_none() {
        // Started too late in the exit to run Python: its first job cannot even be dropped
        // (that takes the interpreter), so it is leaked with the process about to end.
        std::mem::forget(w);
    }
}

/// Queues a task, waiting detached (in slices, watching for Ctrl-C) while the queue is full.
pub fn enqueue(
    py: Python<'_>,
    core: &Arc<CorePool>,
    ext: &Ext,
    task: Task,
    weight: u64,
) -> PyResult<()> {
    let task = match core.offer(task, weight) {
        Ok(()) => return Ok(()),
        Err(Offer::Closed(_)) => return Err(closed_error(py, ext)),
        Err(Offer::NoThread(_, e)) => {
            return Err(PyRuntimeError::new_err(format!(
                "can't start new thread: {e}"
            )))
        }
        Err(Offer::Full(t)) => t,
    };
    let (r, err) = runtime::wait_detached(py, |hook| {
        let mut task = task;
        loop {
            match core.submit_timeout(task, weight, SLICE) {
                Ok(()) => return Ok(()),
                Err(Rejected::Closed(_)) => return Err(None),
                Err(Rejected::Full(t)) => {
                    if hook() {
                        // Handed back so it is dropped attached.
                        return Err(Some(t));
                    }
                    task = t;
                }
            }
        }
    });
    match r {
        Ok(()) => {
            if core.is_closed() && ext.discard.load(Ordering::Acquire) {
                ext.purge(py, core);
            }
            Ok(())
        }
        Err(None) => Err(closed_error(py, ext)),
        Err(Some(_task)) => Err(err.unwrap_or_else(|| {
            pyo3::exceptions::PyKeyboardInterrupt::new_err("submit interrupted")
        })),
    }
}

pub(super) fn closed_error(py: Python<'_>, ext: &Ext) -> PyErr {
    match ext.broken() {
        Some(msg) => errors::broken_thread_pool(py, &msg),
        None if runtime::interpreter_shutdown() => {
            PyRuntimeError::new_err("cannot schedule new futures after interpreter shutdown")
        }
        None => PyRuntimeError::new_err("cannot schedule new futures after shutdown"),
    }
}

pub(super) fn default_workers() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cpus + 4).min(32)
}
