//! The worker side of WorkerPool: what the pool's threads share (initializer, broken state,
//! rate limit), what they run, how a task gets in (waiting detached while a bounded queue is
//! full), and exit-time stopping.

use super::pythread;
use super::task::{CorePool, Pace, Task};
use crate::core::pool::{Offer, Rejected, Worker};
use crate::core::sync::{Mutex, RwLock};
use crate::core::wait::in_slices;
use crate::py::errors;
use crate::py::gc::{gc_fields, Clear};
use crate::py::ratelimit::TokenBucket;
use crate::py::runtime::{self, Stoppable};
use crate::py::worker;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};

pub(super) struct Init {
    pub(super) func: Py<PyAny>,
    pub(super) args: Py<PyTuple>,
}

gc_fields!(Init { func, args });

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
        runtime::detach(py, || pool.close());
        // The job this thread was started with fails like the queued ones.
        if let Some(task) = w.take_first() {
            task.fail(py, &pool.counters, &|| errors::broken_thread_pool(py, &msg));
        }
        self.purge(py, pool);
    }

    /// Empties the queue of a pool whose queued work is being discarded.
    fn purge(&self, py: Python<'_>, core: &CorePool) {
        match self.broken() {
            Some(msg) => {
                for task in core.drain() {
                    task.fail(py, &core.counters, &|| errors::broken_thread_pool(py, &msg));
                }
            }
            None => cancel_queued(py, core),
        }
    }
}

// The initializer is the only Python object the GC may find in a cycle through the pool.
gc_fields!(Ext { init });

impl Clear for Ext {
    fn take(&self) -> Vec<Py<PyAny>> {
        match self.init.try_write().and_then(|mut g| g.take()) {
            Some(i) => vec![i.func, i.args.into_any()],
            None => Vec::new(),
        }
    }
}

impl Pace for Ext {
    fn limited(&self) -> bool {
        self.rate.is_some()
    }

    fn pace(&self, py: Python<'_>) -> bool {
        Ext::pace(self, py)
    }
}

impl Stoppable for Ext {
    fn stop_for_exit(&self, py: Python<'_>) {
        let Some(core) = self.core.get().and_then(Weak::upgrade) else {
            return;
        };
        // Like ThreadPoolExecutor at exit: no new work, what is queued still runs.
        runtime::detach(py, || core.close());
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
        task.cancel(py, &core.counters);
    }
}

pub(super) fn worker_main(ext: Arc<Ext>, w: Worker<Task>) {
    let ran = worker::attached(&w, |py, w| {
        // Named before the initializer runs: TPE's initializer runs in the named thread too.
        let adopted = pythread::adopt(py);
        let init = ext
            .init
            .read()
            .as_ref()
            .map(|i| (i.func.clone_ref(py), i.args.clone_ref(py)));
        if let Some((func, args)) = init {
            if let Err(e) = func.bind(py).call1(args.bind(py)) {
                ext.initializer_failed(py, w, e);
                if let Some(a) = adopted {
                    a.release(py);
                }
                return;
            }
        }
        worker::serve_attached(py, w, |py, task| task.run(py, w, &*ext));
        if let Some(a) = adopted {
            a.release(py);
        }
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
    // Waits in slices; on Ctrl-C the task is handed back so it is dropped attached.
    let mut task = Some(task);
    let (r, err) = runtime::wait_detached(py, |hook| {
        let r = in_slices(None, hook, |slice| {
            let t = task.take().expect("task kept between slices");
            match core.submit_timeout(t, weight, slice) {
                Ok(()) => Some(true),
                Err(Rejected::Closed(_)) => Some(false),
                Err(Rejected::Full(t)) => {
                    task = Some(t);
                    None
                }
            }
        });
        (r, task)
    });
    match r {
        (Ok(true), _) => {
            if core.is_closed() && ext.discarding() {
                ext.purge(py, core);
            }
            Ok(())
        }
        (Ok(false), _) => Err(closed_error(py, ext)),
        (Err(_), _task) => Err(err.unwrap_or_else(|| {
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
