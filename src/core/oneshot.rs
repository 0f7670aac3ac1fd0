//! A one-shot event: set once, waited on by any number of threads. A waited-on Future uses one
//! (`py/future.rs`) so result() sleeps on a futex the completing worker wakes, instead of
//! threading.Condition's Python-level lock dance.
//!
//! Setting costs two atomic operations while nobody sleeps: a waiter registers itself
//! (`sleepers`) before it looks at the flag, and the setter sets the flag before it looks at
//! `sleepers`. Both touch `sleepers` with read-modify-writes, which are totally ordered: if the
//! setter's comes first, the waiter's reads from it and so sees the flag; otherwise the setter
//! sees the sleeper, passes through the lock and notifies, and a sleeper checks the flag under
//! that same lock before it sleeps. No wake-up is lost (`loom_oneshot_*`).

use crate::core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::core::sync::{Condvar, Mutex};
use crate::core::wait::{in_slices, Hook, Stop};
use std::time::Instant;

pub struct OneShot {
    set: AtomicBool,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Default for OneShot {
    fn default() -> Self {
        Self::new()
    }
}

impl OneShot {
    pub fn new() -> Self {
        OneShot {
            set: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            cv: Condvar::new(),
        }
    }

    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::Acquire)
    }

    /// Sets the event and wakes every sleeper; later calls do nothing.
    pub fn set(&self) {
        if self.set.swap(true, Ordering::AcqRel) {
            return;
        }
        // A read-modify-write, not a load: it reads the latest registration (see the top).
        if self.sleepers.fetch_add(0, Ordering::AcqRel) != 0 {
            // Passing through the lock orders this notify after any sleeper's flag check (a
            // sleeper checks and starts waiting under it, atomically). Notifying after the
            // unlock lets the woken thread take the lock at once instead of finding it held.
            drop(self.lock.lock());
            self.cv.notify_all();
        }
    }

    /// Waits until set (Ok), the deadline passes (Timeout) or the hook asks to stop between
    /// slices (Interrupted). A set event always wins over a timeout.
    pub fn wait(&self, deadline: Option<Instant>, hook: Hook<'_>) -> Result<(), Stop> {
        if self.is_set() {
            return Ok(());
        }
        self.sleepers.fetch_add(1, Ordering::AcqRel);
        let r = in_slices(deadline, hook, |slice| {
            let mut g = self.lock.lock();
            if !self.is_set() {
                self.cv.wait_for(&mut g, slice);
            }
            self.is_set().then_some(())
        });
        self.sleepers.fetch_sub(1, Ordering::AcqRel);
        match r {
            Err(_) if self.is_set() => Ok(()),
            r => r,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::core::wait::{never, on_threads, spin_until};
    use std::time::Duration;

    #[test]
    fn set_before_wait_returns_at_once() {
        let e = OneShot::new();
        e.set();
        e.set();
        assert_eq!(e.wait(Some(Instant::now()), &mut never()), Ok(()));
    }

    #[test]
    fn times_out_when_never_set() {
        let e = OneShot::new();
        let d = Instant::now() + Duration::from_millis(30);
        assert_eq!(e.wait(Some(d), &mut never()), Err(Stop::Timeout));
        assert!(Instant::now() >= d);
        assert_eq!(e.sleepers.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn hook_interrupts_between_slices() {
        let e = OneShot::new();
        let mut calls = 0;
        let mut hook = || {
            calls += 1;
            calls == 2
        };
        assert_eq!(e.wait(None, &mut hook), Err(Stop::Interrupted));
        assert_eq!(calls, 2);
    }

    /// Every sleeper wakes once the event is set, for many rounds.
    #[test]
    fn wakes_every_sleeper() {
        for _ in 0..200 {
            let e = OneShot::new();
            let woke = AtomicUsize::new(0);
            on_threads(4, |i| {
                if i == 0 {
                    spin_until(|| e.sleepers.load(Ordering::SeqCst) > 0);
                    e.set();
                } else {
                    assert_eq!(e.wait(None, &mut never()), Ok(()));
                    woke.fetch_add(1, Ordering::SeqCst);
                }
            });
            assert_eq!(woke.load(Ordering::SeqCst), 3);
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::core::sync::Arc;
    use crate::core::wait::never;

    /// A set racing with a wait is never lost (loom's timed waits never time out, so a lost
    /// wake-up is a deadlock here).
    #[test]
    fn loom_oneshot_set_wakes_waiter() {
        loom::model(|| {
            let e = Arc::new(OneShot::new());
            let e2 = Arc::clone(&e);
            let t = loom::thread::spawn(move || e2.wait(None, &mut never()));
            e.set();
            assert_eq!(t.join().unwrap(), Ok(()));
        });
    }

    /// Two waiters, one set: both wake.
    #[test]
    fn loom_oneshot_two_waiters() {
        loom::model(|| {
            let e = Arc::new(OneShot::new());
            let (a, b) = (Arc::clone(&e), Arc::clone(&e));
            let t = loom::thread::spawn(move || a.wait(None, &mut never()));
            let u = loom::thread::spawn(move || b.set());
            assert_eq!(e.wait(None, &mut never()), Ok(()));
            u.join().unwrap();
            assert_eq!(t.join().unwrap(), Ok(()));
        });
    }
}
