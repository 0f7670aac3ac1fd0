//! Notify-only waiters, for coroutines (asyncio.Queue's protocol): an async waiter holds no
//! value and no permit in the core; it is a registration that says "try again, it may succeed
//! now". Whoever makes an operation possible wakes the oldest registration (under the object's
//! own lock, FIFO); the woken coroutine then commits with the non-blocking operation on its own
//! loop thread, where no cancellation can race it. A registration that was woken and cannot use
//! the wake-up (cancelled, timed out, its loop gone) passes it on with `leave`, so none is lost.
//!
//! Rules: `Notify::notify` is called inside a core lock, so it never blocks and never calls
//! Python (the binding's only pushes onto its loop's pending queue and writes one byte to the
//! loop's wake-up pipe). It answers false when its waiter no longer listens (its loop is gone):
//! the queue then wakes the next one.

use std::collections::VecDeque;
// Registrations are plain std Arcs: their reference counts are not part of what loom checks
// (the protocol around them is, through the owner's lock).
use std::sync::Arc;

/// The waking end of a registration.
pub trait Notify: Send + Sync {
    /// Tells the waiter to try again; false if it no longer listens.
    fn notify(self: Arc<Self>) -> bool;

    /// Whether it still listens; false once its loop is gone (it may then be dropped unwoken).
    fn listening(&self) -> bool {
        true
    }
}

/// Bumped whenever registrations stop listening (a loop closed): a queue then sweeps them out
/// at its next push, so those of loops closed with coroutines still waiting (and the futures,
/// tasks and loops they hold) are not kept for as long as their object lives.
static DEATHS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Registrations stopped listening (see `Notify::listening`).
pub fn registrations_died() {
    DEATHS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

pub type Registration = Arc<dyn Notify>;

fn same(a: &Registration, b: &Registration) -> bool {
    std::ptr::eq(Arc::as_ptr(a) as *const (), Arc::as_ptr(b) as *const ())
}

/// Registrations waiting for one kind of progress (a value, room, permits), oldest first.
/// Lives inside its owner's lock; a registration is in it until it is woken or leaves.
#[derive(Default)]
pub struct NotifyQueue {
    queue: VecDeque<Registration>,
    /// `DEATHS` at the last sweep.
    swept: usize,
}

impl NotifyQueue {
    /// The fast paths' one check.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn push(&mut self, r: &Registration) {
        self.sweep();
        self.queue.push_back(Arc::clone(r));
    }

    /// A registration that was woken and could not proceed keeps its place at the front.
    pub fn push_front(&mut self, r: &Registration) {
        self.sweep();
        self.queue.push_front(Arc::clone(r));
    }

    /// Drops the registrations that no longer listen, once after each death. (Only their
    /// references go: a dead loop's future is still held by its task, so no Python code runs.)
    fn sweep(&mut self) {
        let deaths = DEATHS.load(std::sync::atomic::Ordering::SeqCst);
        if deaths != self.swept {
            self.swept = deaths;
            self.queue.retain(|r| r.listening());
        }
    }

    /// Wakes the oldest registration that still listens; false if none did.
    pub fn wake_one(&mut self) -> bool {
        while let Some(r) = self.queue.pop_front() {
            if r.notify() {
                return true;
            }
        }
        false
    }

    /// Wakes every registration (close; a change that may let all of them through).
    pub fn wake_all(&mut self) {
        for r in self.queue.drain(..) {
            r.notify();
        }
    }

    /// A registration gives up. If it was still queued it leaves quietly; if it had been woken
    /// (it is no longer queued), the wake-up it cannot use goes to the next one. Returns
    /// whether it had been woken.
    pub fn leave(&mut self, r: &Registration) -> bool {
        if let Some(i) = self.queue.iter().position(|q| same(q, r)) {
            self.queue.remove(i);
            return false;
        }
        self.wake_one();
        true
    }

    /// Takes `r` out if it is still queued (true); false if it was woken meanwhile, waking
    /// nobody. For a registration queued in several queues at once (an async select), which
    /// decides itself where a wake-up it got and did not use goes, and for owners that wake
    /// every registration at once (a wait group at zero), where an unused wake-up is owed to
    /// no one.
    pub fn remove(&mut self, r: &Registration) -> bool {
        match self.queue.iter().position(|q| same(q, r)) {
            Some(i) => {
                self.queue.remove(i);
                true
            }
            None => false,
        }
    }

    /// In a fork child: the registrations belong to event loops of threads that are gone.
    pub fn forget(&mut self) {
        // Not dropped here: their destructors may need an interpreter lock the child cannot
        // take yet; leaking a few registrations of a dead parent is harmless.
        for r in self.queue.drain(..) {
            std::mem::forget(r);
        }
    }
}

#[cfg(test)]
pub mod testing {
    //! A registration for tests: counts its wake-ups; can stop listening.
    use super::{Notify, Registration};
    use crate::core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    #[derive(Default)]
    pub struct Counter {
        pub woken: AtomicUsize,
        pub deaf: AtomicBool,
    }

    impl Notify for Counter {
        fn notify(self: Arc<Self>) -> bool {
            if self.deaf.load(Ordering::SeqCst) {
                return false;
            }
            self.woken.fetch_add(1, Ordering::SeqCst);
            true
        }

        fn listening(&self) -> bool {
            !self.deaf.load(Ordering::SeqCst)
        }
    }

    impl Counter {
        pub fn new() -> (Arc<Counter>, Registration) {
            let c = Arc::new(Counter::default());
            let r: Registration = c.clone();
            (c, r)
        }

        pub fn woken(&self) -> usize {
            self.woken.load(Ordering::SeqCst)
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::testing::Counter;
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn wakes_oldest_first_and_skips_deaf() {
        let mut q = NotifyQueue::default();
        let (a, ra) = Counter::new();
        let (b, rb) = Counter::new();
        let (c, rc) = Counter::new();
        q.push(&ra);
        q.push(&rb);
        q.push(&rc);
        a.deaf.store(true, Ordering::SeqCst);
        assert!(q.wake_one());
        assert_eq!((a.woken(), b.woken(), c.woken()), (0, 1, 0));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn leave_passes_a_used_wake_on() {
        let mut q = NotifyQueue::default();
        let (_a, ra) = Counter::new();
        let (b, rb) = Counter::new();
        q.push(&ra);
        q.push(&rb);
        assert!(q.wake_one());
        // ra was woken and gives up: rb gets the wake-up.
        assert!(q.leave(&ra));
        assert_eq!(b.woken(), 1);
        assert!(q.is_empty());
    }

    #[test]
    fn a_push_after_a_death_sweeps_the_deaf_out() {
        let mut q = NotifyQueue::default();
        let (a, ra) = Counter::new();
        let (_b, rb) = Counter::new();
        q.push(&ra);
        a.deaf.store(true, Ordering::SeqCst);
        registrations_died();
        q.push(&rb);
        assert_eq!(q.len(), 1);
        assert_eq!(Arc::strong_count(&a), 2);
    }

    #[test]
    fn leave_while_queued_wakes_nobody() {
        let mut q = NotifyQueue::default();
        let (_a, ra) = Counter::new();
        let (b, rb) = Counter::new();
        q.push(&ra);
        q.push(&rb);
        assert!(!q.leave(&ra));
        assert_eq!(b.woken(), 0);
        assert_eq!(q.len(), 1);
    }
}
