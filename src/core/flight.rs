//! One load in flight (Go's singleflight call): the caller that starts it runs the load, every
//! other caller of the same key waits for its outcome instead of loading again. The outcome is
//! stored before the event is set, so a woken waiter always finds it; a waiter that gives up
//! (deadline, Ctrl-C) just stops waiting, and the load goes on for the others.

use crate::core::oneshot::OneShot;
use crate::core::sync::atomic::{AtomicUsize, Ordering};
use crate::core::sync::Mutex;
use crate::core::wait::{Hook, Stop};
use std::time::Instant;

pub struct Flight<T> {
    done: OneShot,
    outcome: Mutex<Option<T>>,
    /// Callers that joined this load instead of starting one (Go's `dups`).
    joined: AtomicUsize,
}

impl<T> Default for Flight<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Flight<T> {
    pub fn new() -> Self {
        Flight {
            done: OneShot::new(),
            outcome: Mutex::new(None),
            joined: AtomicUsize::new(0),
        }
    }

    /// Counts a caller that waits for this load.
    pub fn join(&self) {
        self.joined.fetch_add(1, Ordering::Relaxed);
    }

    pub fn joined(&self) -> usize {
        self.joined.load(Ordering::Relaxed)
    }

    pub fn is_done(&self) -> bool {
        self.done.is_set()
    }

    /// Publishes the outcome and wakes every waiter; a second call is ignored (and handed back).
    pub fn finish(&self, outcome: T) -> Option<T> {
        let refused = {
            let mut g = self.outcome.lock();
            if g.is_some() || self.done.is_set() {
                Some(outcome)
            } else {
                *g = Some(outcome);
                None
            }
        };
        self.done.set();
        refused
    }

    /// Waits until the load finished (Ok), the deadline passed or the hook stopped the wait.
    pub fn wait(&self, deadline: Option<Instant>, hook: Hook<'_>) -> Result<(), Stop> {
        self.done.wait(deadline, hook)
    }

    /// Reads the outcome of a finished load through `f` (None while it runs).
    pub fn read<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        if !self.done.is_set() {
            return None;
        }
        self.outcome.lock().as_ref().map(f)
    }

    /// Takes the outcome out (the garbage collector's clear); the caller drops it unlocked.
    pub fn take(&self) -> Option<T> {
        self.outcome.try_lock().and_then(|mut g| g.take())
    }

    /// The outcome without blocking, for the garbage collector's traversal.
    pub fn peek<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        self.outcome.try_lock().and_then(|g| g.as_ref().map(f))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::core::wait::never;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn every_waiter_sees_the_one_outcome() {
        for _ in 0..50 {
            let f = Arc::new(Flight::<u64>::new());
            let waiters: Vec<_> = (0..4)
                .map(|_| {
                    let f = Arc::clone(&f);
                    f.join();
                    std::thread::spawn(move || {
                        f.wait(None, &mut never()).unwrap();
                        f.read(|v| *v).unwrap()
                    })
                })
                .collect();
            assert_eq!(f.finish(7), None);
            assert_eq!(f.finish(8), Some(8));
            for w in waiters {
                assert_eq!(w.join().unwrap(), 7);
            }
            assert_eq!(f.joined(), 4);
        }
    }

    #[test]
    fn a_waiter_that_gives_up_leaves_the_load_running() {
        let f = Flight::<u64>::new();
        let soon = Instant::now() + Duration::from_millis(5);
        assert_eq!(f.wait(Some(soon), &mut never()), Err(Stop::Timeout));
        assert_eq!(f.wait(None, &mut || true), Err(Stop::Interrupted));
        assert!(f.read(|v| *v).is_none());
        f.finish(3);
        assert_eq!(f.wait(Some(Instant::now()), &mut never()), Ok(()));
        assert_eq!(f.read(|v| *v), Some(3));
    }
}
