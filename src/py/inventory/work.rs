//! The inventory manager's workers: they run operations without ever attaching to the
//! interpreter and hand finished ones over to the completer a batch at a time; shutting down
//! waits for all of it, in order: workers, completer, callbacks, events.

use super::complete::{self, CompPool, Completion, Done};
use super::events::{EvPool, Events};
use crate::core::inventory::Inventory;
use crate::core::pool::{Next, Pool, Rejected, Worker};
use crate::py::runtime::{Stoppable, SLICE};
use pyo3::prelude::*;
use std::sync::{Arc, OnceLock, Weak};

/// Operations a worker runs before it hands their results over for completion.
const BATCH: usize = 256;

#[derive(Clone, Copy)]
pub(super) enum Kind {
    Add,
    Remove,
    Check,
}

pub struct OpJob {
    pub(super) kind: Kind,
    pub(super) product: String,
    pub(super) qty: i64,
    pub(super) fut: Py<PyAny>,
}

pub(super) type OpPool = Pool<OpJob>;

/// What the workers share with the Python object.
pub(super) struct Shared {
    pub(super) inv: Inventory,
    pub(super) events: Option<(Arc<Events>, Arc<EvPool>)>,
    pub(super) core: OnceLock<Weak<OpPool>>,
    pub(super) done: Arc<CompPool>,
    pub(super) books: Arc<Completion>,
}

impl Shared {
    fn run(&self, job: OpJob, out: &mut Vec<Done>) {
        let outcome = match job.kind {
            Kind::Add => self.inv.add(&job.product, job.qty),
            Kind::Remove => self.inv.remove(&job.product, job.qty, |e| {
                if let Some((ev, pool)) = &self.events {
                    ev.emit(pool, e);
                }
            }),
            Kind::Check => Ok(self.inv.check(&job.product)),
        };
        out.push(Done {
            fut: job.fut,
            product: job.product,
            outcome,
        });
    }

    /// A worker's life, detached throughout: runs operations and hands them over for
    /// completion a batch at a time (as soon as the queue runs dry, so nothing waits on a
    /// batch that is not full), until the pool is closed and drained.
    fn work(&self, w: &Worker<OpJob>) {
        let mut local = Vec::with_capacity(BATCH);
        loop {
            let closed = match w.try_next() {
                Next::Job(j) => {
                    self.run(j, &mut local);
                    if local.len() < BATCH {
                        continue;
                    }
                    false
                }
                Next::Empty if local.is_empty() => match w.wait_next() {
                    Some(j) => {
                        self.run(j, &mut local);
                        continue;
                    }
                    None => true,
                },
                Next::Empty => {
                    // About to wait: a submit that a completion triggers should reuse this
                    // worker, not start another.
                    w.finishing();
                    false
                }
                Next::Closed => true,
            };
            if !local.is_empty() {
                self.hand_over(std::mem::replace(&mut local, Vec::with_capacity(BATCH)));
            }
            if closed {
                return;
            }
        }
    }

    /// Queues a batch for the completers, waiting while their backlog is full.
    fn hand_over(&self, batch: Vec<Done>) {
        let n = batch.len() as u64;
        let mut batch = match self.done.try_submit(batch, n) {
            Ok(()) => return,
            Err(Rejected::Full(b)) => b,
            Err(Rejected::Closed(b)) => return lost(b),
        };
        loop {
            match self.done.submit_timeout(batch, n, SLICE) {
                Ok(()) => return,
                Err(Rejected::Full(b)) => batch = b,
                Err(Rejected::Closed(b)) => return lost(b),
            }
        }
    }

    /// Runs what is still queued on the calling thread (a pool closed before a worker could
    /// start for a last submit leaves it there) and completes it.
    pub(super) fn run_leftovers(&self, py: Python<'_>, core: &OpPool) {
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
        self.books.complete(py, out);
    }

    /// Closes the queue and waits (detached, Ctrl-C honoured) until every queued operation
    /// has run and its future completed; then the publisher finishes (or, at exit, drops) the
    /// pending events. From a done-callback, the calling thread runs the rest of its batch of
    /// callbacks itself.
    pub(super) fn stop(&self, py: Python<'_>, exit: bool) -> PyResult<()> {
        if let Some(core) = self.core.get().and_then(Weak::upgrade) {
            core.close();
            join_all(py, &core, false)?;
            self.run_leftovers(py, &core);
        }
        // Every worker is gone: nothing more is handed over.
        self.done.close();
        join_all(py, &self.done, self.books.on_completer_thread())?;
        let left: Vec<Done> = self.done.drain().into_iter().flatten().collect();
        self.books.complete(py, left);
        // Every future is complete: what is left are their callbacks.
        let callbacks = &self.books.callbacks;
        callbacks.close();
        join_all(py, callbacks, self.books.on_callback_thread())?;
        complete::run_callbacks(py, callbacks.drain().into_iter().flatten().collect());
        if let Some((ev, _)) = &self.events {
            ev.stop(py, exit)?;
        }
        Ok(())
    }
}

/// A batch the completers can no longer take: only if they were closed before the workers
/// finished, which stop() and Drop rule out. Said loudly rather than lost silently.
fn lost(batch: Vec<Done>) {
    log::error!(target: "chanpool", "InventoryManager: {} finished operations could not be completed", batch.len());
}

/// Waits (detached, Ctrl-C honoured) until every thread of a closed pool has exited, except
/// the calling one when `me` (Pool::join skips it).
fn join_all<J: Send + 'static>(py: Python<'_>, pool: &Pool<J>, me: bool) -> PyResult<()> {
    loop {
        while !py.detach(|| pool.join(Some(SLICE))) {
            py.check_signals()?;
        }
        // A thread that was being started as the pool closed is joined on the next round.
        if pool.snapshot().workers <= usize::from(me) {
            return Ok(());
        }
    }
}

impl Stoppable for Shared {
    fn stop_for_exit(&self, py: Python<'_>) {
        let _ = self.stop(py, true);
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last worker is gone and so is the manager: nothing can be handed over or
        // emitted any more; the completers finish what they have and exit.
        self.done.close();
        if let Some((_, pool)) = &self.events {
            pool.close();
        }
    }
}

pub(super) fn worker_main(sh: Arc<Shared>, w: Worker<OpJob>) {
    sh.work(&w);
}
