//! The inventory manager's workers: they run operations without ever attaching to the
//! interpreter (the core's batching loop) and hand finished ones over to the completer a batch
//! at a time; shutting down waits for all of it, in order: workers, completer, callbacks, events.

use super::complete::{self, CompPool, Completion, Done};
use super::events::{EvPool, Events};
use crate::core::inventory::{self, Inventory, Op};
use crate::core::pool::{Pool, Worker};
use crate::py::runtime::{self, Stoppable};
use crate::py::worker::join_all;
use pyo3::prelude::*;
use std::sync::{Arc, OnceLock, Weak};

pub type OpJob = Op<Py<PyAny>>;

pub(super) type OpPool = Pool<OpJob>;

/// What the workers share with the Python object.
pub(super) struct Shared {
    pub(super) inv: Inventory,
    pub(super) events: Option<Arc<Events>>,
    /// The publisher's pool; held here, since the publisher itself holds its Events.
    pub(super) ev_pool: Option<Arc<EvPool>>,
    pub(super) core: OnceLock<Weak<OpPool>>,
    pub(super) done: Arc<CompPool>,
    pub(super) completion: Arc<Completion>,
}

crate::py::gc::gc_fields!(Shared { events });

impl Shared {
    fn run(&self, job: OpJob) -> Done {
        self.inv.apply(job, |e| {
            if let (Some(ev), Some(pool)) = (&self.events, &self.ev_pool) {
                ev.emit(pool, e);
            }
        })
    }

    /// Queues a batch for the completers, waiting while their backlog is full.
    fn hand_over(&self, batch: Vec<Done>) {
        if let Err(b) = inventory::hand_over(&self.done, batch) {
            lost(b);
        }
    }

    /// Runs what is still queued on the calling thread (a pool closed before a worker could
    /// start for a last submit leaves it there) and completes it.
    pub(super) fn run_leftovers(&self, py: Python<'_>, core: &OpPool) {
        let left = core.drain();
        if left.is_empty() {
            return;
        }
        let out: Vec<Done> =
            runtime::detach(py, || left.into_iter().map(|j| self.run(j)).collect());
        self.completion.complete(py, out);
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
        join_all(py, &self.done, self.completion.on_completer_thread())?;
        let left: Vec<Done> = self.done.drain().into_iter().flatten().collect();
        self.completion.complete(py, left);
        // Every future is complete: what is left are their callbacks.
        let callbacks = &self.completion.callbacks;
        callbacks.close();
        join_all(py, callbacks, self.completion.on_callback_thread())?;
        complete::run_callbacks(py, callbacks.drain().into_iter().flatten().collect());
        if let Some(ev) = &self.events {
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
        if let Some(pool) = &self.ev_pool {
            pool.close();
        }
    }
}

/// A worker's life, detached throughout.
pub(super) fn worker_main(sh: Arc<Shared>, w: Worker<OpJob>) {
    inventory::serve_batches(&w, |j| sh.run(j), |b| sh.hand_over(b));
}
