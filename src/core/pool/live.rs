//! The pool's count of live worker threads, which every joiner waits on.
//!
//! Joining by taking JoinHandles out of a list lets a second joiner find the list empty while
//! the first is still waiting, and return while workers still run (at interpreter exit that is
//! a worker running Python during finalization). Here each thread counts itself out as the
//! last thing it does, and every joiner waits for the count, so concurrent joins all wait.

use crate::core::sync::{Condvar, Mutex};
use std::time::Instant;

#[derive(Default)]
pub struct Live {
    count: Mutex<usize>,
    changed: Condvar,
}

impl Live {
    pub fn new() -> Self {
        Live {
            count: Mutex::new(0),
            changed: Condvar::new(),
        }
    }

    /// A thread is about to start (undo with [`Live::exit`] if it does not).
    pub fn enter(&self) {
        *self.count.lock() += 1;
    }

    /// The thread is done with everything the joiners care about.
    pub fn exit(&self) {
        let mut n = self.count.lock();
        *n -= 1;
        self.changed.notify_all();
    }

    /// Waits until at most `keep` threads are live (the caller's own, if it is one), or the
    /// deadline passes. True when they are.
    pub fn wait_until_at_most(&self, keep: usize, deadline: Option<Instant>) -> bool {
        let mut n = self.count.lock();
        while *n > keep {
            if self.changed.wait_deadline(&mut n, deadline).timed_out() {
                return *n <= keep;
            }
        }
        true
    }
}
