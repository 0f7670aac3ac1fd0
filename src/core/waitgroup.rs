//! Go's sync.WaitGroup: a counter of outstanding work that waiters wait to see at zero.
//!
//! Rules: the counter changes only under the lock, and a change that brings it to zero wakes
//! every waiter (threads on the condition, coroutines through `core::notify`) inside that same
//! critical section, so a waiter that checked the counter under the lock and went to sleep
//! cannot miss it. A change that would make the counter negative is refused and changes
//! nothing (Go panics; the binding raises ValueError). The counter is mirrored in an atomic
//! for lock-free snapshots (`count`) and for the fast `wait` when it is already zero.

use crate::core::notify::{NotifyQueue, Registration};
use crate::core::sync::atomic::{AtomicI64, Ordering};
use crate::core::sync::{Condvar, Mutex};
use crate::core::wait::{self, Hook, Stop};
use std::fmt;
use std::time::Instant;

/// Why `add` was refused; the counter is left unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddError {
    /// The counter would go below zero (more `done` than `add`).
    Negative,
    /// The counter would not fit in an i64.
    Overflow,
}

impl fmt::Display for AddError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddError::Negative => "negative WaitGroup counter",
            AddError::Overflow => "WaitGroup counter would overflow",
        })
    }
}

#[derive(Default)]
struct State {
    count: i64,
    /// Coroutines waiting for zero (notify-only: each re-checks on its loop).
    aio: NotifyQueue,
}

#[derive(Default)]
pub struct WaitGroup {
    state: Mutex<State>,
    /// `state.count`, written only under the lock.
    mirror: AtomicI64,
    zero: Condvar,
}

impl WaitGroup {
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter right now (a snapshot).
    pub fn count(&self) -> i64 {
        self.mirror.load(Ordering::Acquire)
    }

    /// Adds `delta` (negative: that much work is done). Reaching zero wakes every waiter.
    pub fn add(&self, delta: i64) -> Result<i64, AddError> {
        let mut s = self.state.lock();
        let after = s.count.checked_add(delta).ok_or(AddError::Overflow)?;
        if after < 0 {
            return Err(AddError::Negative);
        }
        s.count = after;
        self.mirror.store(after, Ordering::Release);
        if after == 0 && delta != 0 {
            self.zero.notify_all();
            s.aio.wake_all();
        }
        Ok(after)
    }

    pub fn done(&self) -> Result<i64, AddError> {
        self.add(-1)
    }

    /// Waits until the counter is zero (Ok), the deadline passes (Timeout) or the hook asks to
    /// stop between slices (Interrupted). A counter at zero wins over an expired deadline.
    pub fn wait(&self, deadline: Option<Instant>, hook: Hook<'_>) -> Result<(), Stop> {
        if self.count() == 0 {
            return Ok(());
        }
        let mut s = self.state.lock();
        loop {
            if s.count == 0 {
                return Ok(());
            }
            let Some(wake) = wait::next_wake(deadline) else {
                return Err(Stop::Timeout);
            };
            self.zero.wait_until(&mut s, wake);
            if s.count == 0 {
                return Ok(());
            }
            drop(s);
            if hook() {
                return Err(Stop::Interrupted);
            }
            s = self.state.lock();
        }
    }

    /// A coroutine's wait: true if the counter is zero now, else `r` is registered (in the
    /// same critical section) to be woken when it reaches zero.
    pub fn zero_or_register(&self, r: &Registration) -> bool {
        let mut s = self.state.lock();
        if s.count == 0 {
            return true;
        }
        s.aio.push(r);
        false
    }

    /// A coroutine gives up (cancelled, timed out).
    pub fn leave(&self, r: &Registration) {
        // Every registration is woken at zero: a wake-up left unused needs no passing on.
        self.state.lock().aio.remove(r);
    }

    /// Coroutines registered right now (tests).
    #[cfg(all(test, not(loom)))]
    fn aio_waiting(&self) -> usize {
        self.state.lock().aio.len()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::core::notify::testing::Counter;
    use crate::core::wait::{never, on_threads, spin_until, SLICE};
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn counts_and_refuses_negative() {
        let wg = WaitGroup::new();
        assert_eq!(wg.add(3), Ok(3));
        assert_eq!(wg.done(), Ok(2));
        assert_eq!(wg.add(-3), Err(AddError::Negative));
        assert_eq!(wg.count(), 2);
        assert_eq!(wg.add(-2), Ok(0));
        assert_eq!(wg.done(), Err(AddError::Negative));
        assert_eq!(wg.count(), 0);
        assert_eq!(wg.add(i64::MAX), Ok(i64::MAX));
        assert_eq!(wg.add(1), Err(AddError::Overflow));
        assert_eq!(wg.count(), i64::MAX);
    }

    #[test]
    fn wait_at_zero_returns_even_with_expired_deadline() {
        let wg = WaitGroup::new();
        assert_eq!(wg.wait(Some(Instant::now()), &mut never()), Ok(()));
    }

    #[test]
    fn times_out_and_hook_interrupts() {
        let wg = WaitGroup::new();
        wg.add(1).unwrap();
        let d = Instant::now() + Duration::from_millis(30);
        assert_eq!(wg.wait(Some(d), &mut never()), Err(Stop::Timeout));
        assert!(Instant::now() >= d);
        let mut calls = 0;
        let start = Instant::now();
        let r = wg.wait(None, &mut || {
            calls += 1;
            calls == 3
        });
        assert_eq!(r, Err(Stop::Interrupted));
        assert_eq!(calls, 3);
        assert!(start.elapsed() >= SLICE * 2);
    }

    /// Many rounds: workers finish in any order, every waiter returns only once all are done.
    #[test]
    fn waiters_see_every_done() {
        for round in 0..300 {
            let wg = WaitGroup::new();
            let finished = AtomicUsize::new(0);
            const WORKERS: usize = 4;
            wg.add(WORKERS as i64).unwrap();
            on_threads(WORKERS + 2, |i| {
                if i < WORKERS {
                    for _ in 0..(i + round) % 5 {
                        std::thread::yield_now();
                    }
                    finished.fetch_add(1, Ordering::SeqCst);
                    wg.done().unwrap();
                } else {
                    assert_eq!(wg.wait(None, &mut never()), Ok(()));
                    assert_eq!(finished.load(Ordering::SeqCst), WORKERS);
                }
            });
            assert_eq!(wg.count(), 0);
        }
    }

    #[test]
    fn reusable_after_zero() {
        let wg = WaitGroup::new();
        for n in 1..50 {
            wg.add(n).unwrap();
            on_threads(n as usize, |_| {
                wg.done().unwrap();
            });
            assert_eq!(wg.wait(None, &mut never()), Ok(()));
        }
        spin_until(|| wg.count() == 0);
    }

    #[test]
    fn coroutines_are_all_woken_at_zero() {
        let wg = WaitGroup::new();
        let (a, ra) = Counter::new();
        let (b, rb) = Counter::new();
        assert!(wg.zero_or_register(&ra));
        wg.add(2).unwrap();
        assert!(!wg.zero_or_register(&ra));
        assert!(!wg.zero_or_register(&rb));
        wg.done().unwrap();
        assert_eq!((a.woken(), b.woken()), (0, 0));
        wg.leave(&rb);
        assert_eq!(wg.aio_waiting(), 1);
        wg.done().unwrap();
        assert_eq!((a.woken(), b.woken()), (1, 0));
        assert_eq!(wg.aio_waiting(), 0);
        wg.leave(&ra);
        assert!(wg.zero_or_register(&ra));
    }
}

/// Model checks (`make loom`): a wait racing the last done never sleeps through it; a
/// refused negative add changes nothing. Waits are untimed under loom's clock-free timed
/// waits, so a lost wake-up shows up as a deadlock.
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::core::sync::Arc;
    use loom::thread;

    #[test]
    fn loom_waitgroup_done_wakes_waiter() {
        loom::model(|| {
            let wg = Arc::new(WaitGroup::new());
            wg.add(2).unwrap();
            let dones: Vec<_> = (0..2)
                .map(|_| {
                    let wg = Arc::clone(&wg);
                    thread::spawn(move || wg.done().unwrap())
                })
                .collect();
            assert_eq!(wg.wait(None, &mut || false), Ok(()));
            assert_eq!(wg.count(), 0);
            for d in dones {
                d.join().unwrap();
            }
        });
    }

    #[test]
    fn loom_waitgroup_add_done_negative() {
        loom::model(|| {
            let wg = Arc::new(WaitGroup::new());
            wg.add(1).unwrap();
            let (a, b) = (Arc::clone(&wg), Arc::clone(&wg));
            // Two dones race for one unit: exactly one is refused, the counter ends at zero.
            let ta = thread::spawn(move || a.done().is_ok());
            let tb = thread::spawn(move || b.done().is_ok());
            let waiter = {
                let wg = Arc::clone(&wg);
                thread::spawn(move || wg.wait(None, &mut || false))
            };
            let ok = [ta.join().unwrap(), tb.join().unwrap()];
            assert_eq!(ok.iter().filter(|&&x| x).count(), 1);
            assert_eq!(waiter.join().unwrap(), Ok(()));
            assert_eq!(wg.count(), 0);
        });
    }
}
