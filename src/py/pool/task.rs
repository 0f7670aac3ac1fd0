//! What a WorkerPool queues, and the three ends a queued task can meet (like CPython's
//! `_WorkItem`): `run` on a worker, `cancel` (shutdown with cancel_futures, exit) or `fail`
//! (a broken pool). The pool never looks inside a task; map work plugs in as a [`Batch`].

use crate::core::pool::{Counters, Pool, Worker};
use crate::py::errors;
use crate::py::future;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use std::sync::atomic::Ordering;

pub type CorePool = Pool<Task>;

/// One submit(): fn(*args, **kwargs) completing a Future.
pub struct CallJob {
    pub fut: Py<PyAny>,
    pub func: Py<PyAny>,
    pub args: Py<PyTuple>,
    pub kwargs: Option<Py<PyDict>>,
}

/// Work that publishes to a map iterator (a lazy map's chunk, an eager map's runner). Boxed:
/// one allocation per chunk, never per item.
pub trait Batch: Send {
    fn run(self: Box<Self>, py: Python<'_>, counters: &Counters);
    fn cancel(self: Box<Self>, counters: &Counters);
    fn fail(self: Box<Self>, counters: &Counters, make: &dyn Fn() -> PyErr);
}

pub enum Task {
    Call(CallJob),
    Batch(Box<dyn Batch>),
}

/// The pool's rate limit, as a task sees it.
pub trait Pace {
    fn limited(&self) -> bool;
    /// Waits for the next token; false when the pool started discarding work meanwhile.
    fn pace(&self, py: Python<'_>) -> bool;
}

impl Task {
    /// Runs on worker `w`, counting the outcome.
    pub fn run(self, py: Python<'_>, w: &Worker<Task>, pace: &impl Pace) {
        let counters = &w.pool().counters;
        match self {
            Task::Call(job) => job.run(py, w, counters, pace),
            Task::Batch(b) => b.run(py, counters),
        }
    }

    /// Will never run: its future (or items) end cancelled.
    pub fn cancel(self, py: Python<'_>, counters: &Counters) {
        match self {
            Task::Call(job) => {
                let _ = future::cancel(job.fut.bind(py));
                Counters::add(&counters.cancelled, 1);
            }
            Task::Batch(b) => b.cancel(counters),
        }
    }

    /// Will never run because the pool broke: its future (or items) fail with `make()`.
    pub fn fail(self, py: Python<'_>, counters: &Counters, make: &dyn Fn() -> PyErr) {
        match self {
            Task::Call(job) => {
                let _ = future::set_exception(job.fut.bind(py), make());
                Counters::add(&counters.failed, 1);
            }
            Task::Batch(b) => b.fail(counters, make),
        }
    }
}

impl CallJob {
    fn run(self, py: Python<'_>, w: &Worker<Task>, counters: &Counters, pace: &impl Pace) {
        let fut = self.fut.bind(py);
        if pace.limited() {
            // No token is spent on a future cancelled while it was queued.
            let cancelled = fut
                .call_method0("cancelled")
                .and_then(|c| c.is_truthy())
                .unwrap_or(false);
            if !cancelled && !pace.pace(py) {
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
        let r = self
            .func
            .bind(py)
            .call(self.args.bind(py), self.kwargs.as_ref().map(|k| k.bind(py)));
        counters.running.fetch_sub(1, Ordering::Relaxed);
        // Drop the callable and arguments before publishing the result (TPE frees them too).
        drop((self.func, self.args, self.kwargs));
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
}
