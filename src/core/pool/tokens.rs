//! Idle tokens (ThreadPoolExecutor's idle semaphore): a worker adds one before it waits for a
//! job, a submit takes one instead of starting a thread. A worker that finds work without
//! waiting takes its own token back, so tokens never outnumber the workers that will wait.

use crate::core::sync::atomic::{AtomicUsize, Ordering};

#[derive(Default)]
pub struct IdleTokens(AtomicUsize);

impl IdleTokens {
    pub fn new() -> Self {
        IdleTokens(AtomicUsize::new(0))
    }

    pub fn give(&self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }

    /// Takes one if there is one.
    pub fn take(&self) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    pub fn count(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}
