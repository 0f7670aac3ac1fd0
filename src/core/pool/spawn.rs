//! Starting worker threads: on demand, up to a limit, each with its first job handed over
//! (so a failed spawn gives the job back and nothing is lost).

use super::{Pool, Worker};
use crate::core::sync::Mutex;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;

/// What an attempt to start a worker did; the first job comes back unless it was started.
pub(super) enum Spawn<J> {
    Started,
    AtLimit(Option<J>),
    Failed(Option<J>, std::io::Error),
}

impl<J: Send + 'static> Pool<J> {
    /// Starts a worker with no first job, unless the pool is closed.
    pub(super) fn spawn_idle(self: &Arc<Self>, limit: usize) -> std::io::Result<bool> {
        let Some(_open) = self.tx.enter() else {
            return Ok(false);
        };
        match self.spawn_locked(limit, None) {
            Spawn::Started => Ok(true),
            Spawn::AtLimit(_) => Ok(false),
            Spawn::Failed(_, e) => Err(e),
        }
    }

    /// Starts a worker (running `first` before anything queued) if below `limit`. The caller
    /// holds the sender lock with the queue open, so close() cannot pass a spawn and join()
    /// always finds the new thread. Spawn failure hands the job back: nothing is lost.
    pub(super) fn spawn_locked(self: &Arc<Self>, limit: usize, first: Option<J>) -> Spawn<J> {
        let limit = limit.min(self.max_workers);
        let mut n = self.spawned.load(Ordering::Acquire);
        loop {
            if n >= limit {
                return Spawn::AtLimit(first);
            }
            match self
                .spawned
                .compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(cur) => n = cur,
            }
        }
        let mut handles = self.handles.lock();
        let index = handles.len();
        let name = if self.name_prefix.is_empty() {
            format!("chanpool-worker_{index}")
        } else {
            format!("{}_{index}", self.name_prefix)
        };
        let mut builder = thread::Builder::new().name(thread_name(name));
        let stack = self.stack_size.load(Ordering::Relaxed);
        if stack > 0 {
            builder = builder.stack_size(stack);
        }
        // The job travels in a slot the thread takes it from, so a failed spawn can give it
        // back (the closure, and anything moved into it, is dropped on failure).
        let slot = Arc::new(Mutex::new(first));
        let theirs = Arc::clone(&slot);
        let pool = Arc::clone(self);
        self.live.enter();
        let spawned = builder.spawn(move || {
            // Counted out last, even if the body panics: join() waits for this.
            struct Out<J: Send + 'static>(Arc<Pool<J>>);
            impl<J: Send + 'static> Drop for Out<J> {
                fn drop(&mut self) {
                    self.0.live.exit();
                }
            }
            let _out = Out(Arc::clone(&pool));
            let first = theirs.lock().take();
            drop(theirs);
            let worker = Worker::new(Arc::clone(&pool), first);
            (pool.body)(worker)
        });
        match spawned {
            Ok(h) => {
                handles.push((h.thread().id(), h));
                Spawn::Started
            }
            Err(e) => {
                drop(handles);
                self.live.exit();
                self.spawned.fetch_sub(1, Ordering::AcqRel);
                Spawn::Failed(slot.lock().take(), e)
            }
        }
    }
}

/// A thread name std accepts: spawn panics on an interior NUL, so such names are cut there
/// (the bindings refuse them earlier, with an error naming the parameter).
pub(super) fn thread_name(name: String) -> String {
    match name.find('\0') {
        Some(i) => name[..i].to_string(),
        None => name,
    }
}
