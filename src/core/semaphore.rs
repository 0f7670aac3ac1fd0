//! A counting semaphore that serves its waiters first come, first served (the line in
//! [`crate::core::line`]).
//!
//! Locks come from `crate::core::sync` (std's futex-based locks, loom's under `--cfg loom`),
//! never parking_lot's: its global table of parked threads would still list the parent's
//! waiters in a fork()ed child. The count is an atomic written only under the lock, so a fork
//! child can still read it when another thread held the lock at the instant of fork() (see
//! [`Semaphore::rebuilt_after_fork`]).

use crate::core::line::{wait_in_line, Line};
use crate::core::notify::{NotifyQueue, Registration};
use crate::core::sync::atomic::{AtomicU64, Ordering};
use crate::core::sync::{Condvar, Mutex};
use crate::core::wait::{Hook, Stop};
use std::fmt;
use std::time::Instant;

/// Who waits: threads in line, and coroutines (notify-only registrations, core::notify).
/// Threads in line go first: a coroutine takes only when the line is empty, and is woken when
/// permits come back with the line empty, or when the line empties with permits free.
#[derive(Default)]
struct Waiters {
    line: Line,
    aio: NotifyQueue,
}

fn the_line(w: &mut Waiters) -> &mut Line {
    &mut w.line
}

/// Why a release was refused; the count is left unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseError {
    /// A bounded semaphore would hold more than its initial value.
    AboveBound,
    /// The count would not fit in a u64.
    Overflow,
}

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReleaseError::AboveBound => "Semaphore released too many times",
            ReleaseError::Overflow => "semaphore value would overflow",
        })
    }
}

pub struct Semaphore {
    /// The line; the lock also guards every change of `permits`.
    state: Mutex<Waiters>,
    /// Free permits. Written only with `state` locked (relaxed: the lock orders it); read
    /// without it for snapshots and by a fork child.
    permits: AtomicU64,
    turn: Condvar,
    bound: Option<u64>,
}

impl Semaphore {
    /// `bounded`: releasing above `permits` is an error (threading.BoundedSemaphore).
    pub fn new(permits: u64, bounded: bool) -> Self {
        Self::with_bound(permits, bounded.then_some(permits))
    }

    fn with_bound(permits: u64, bound: Option<u64>) -> Self {
        Semaphore {
            state: Mutex::new(Waiters::default()),
            permits: AtomicU64::new(permits),
            turn: Condvar::new(),
            bound,
        }
    }

    pub fn bound(&self) -> Option<u64> {
        self.bound
    }

    pub fn available(&self) -> u64 {
        self.permits.load(Ordering::Relaxed)
    }

    /// Threads in line right now; a snapshot for monitoring and tests.
    pub fn waiting(&self) -> usize {
        self.state.lock().line.len()
    }

    /// Takes `n` permits if there are that many. Call with `state` locked.
    fn take(&self, n: u64) -> bool {
        let free = self.permits.load(Ordering::Relaxed);
        if free >= n {
            self.permits.store(free - n, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// Takes `n` permits if they are free and nobody is waiting (never jumps the line).
    pub fn try_acquire(&self, n: u64) -> bool {
        let w = self.state.lock();
        w.line.is_empty() && w.aio.is_empty() && self.take(n)
    }

    /// A coroutine's acquire: takes `n` permits now (the line and the coroutines registered
    /// before it permitting), or registers `r` to be woken when they may be free. `woken`: `r`
    /// was just woken and failed, so it keeps its place at the front (first come, first
    /// served among coroutines too).
    pub fn acquire_or_register(&self, n: u64, r: &Registration, woken: bool) -> bool {
        let mut w = self.state.lock();
        if w.line.is_empty() && (woken || w.aio.is_empty()) && self.take(n) {
            // Permits left over: the next coroutine may be able to take too.
            if !w.aio.is_empty() && self.available() > 0 {
                w.aio.wake_one();
            }
            return true;
        }
        if woken {
            w.aio.push_front(r);
        } else {
            w.aio.push(r);
        }
        false
    }

    /// A coroutine gives up; a wake-up it got and cannot use goes to the next one.
    pub fn leave(&self, r: &Registration) {
        self.state.lock().aio.leave(r);
    }

    /// Coroutines waiting right now (tests).
    #[cfg(test)]
    fn aio_waiting(&self) -> usize {
        self.state.lock().aio.len()
    }

    /// Takes `n` permits, waiting in line for them. For a bounded semaphore an `n` above the
    /// bound can only end by deadline or hook: callers reject it up front.
    pub fn acquire(&self, n: u64, deadline: Option<Instant>, hook: Hook<'_>) -> Result<(), Stop> {
        let w = self.state.lock();
        if w.line.is_empty() && w.aio.is_empty() && self.take(n) {
            return Ok(());
        }
        let r = wait_in_line(
            &self.state,
            w,
            &self.turn,
            the_line,
            |_| if self.take(n) { Ok(()) } else { Err(None) },
            deadline,
            hook,
        );
        // The line may have emptied with permits free: the coroutines' turn.
        let mut w = self.state.lock();
        if w.line.is_empty() && !w.aio.is_empty() && self.available() > 0 {
            w.aio.wake_one();
        }
        r
    }

    pub fn release(&self, n: u64) -> Result<(), ReleaseError> {
        let mut w = self.state.lock();
        let free = self.permits.load(Ordering::Relaxed);
        let after = free.checked_add(n).ok_or(ReleaseError::Overflow)?;
        if self.bound.is_some_and(|b| after > b) {
            return Err(ReleaseError::AboveBound);
        }
        self.permits.store(after, Ordering::Relaxed);
        if !w.line.is_empty() {
            self.turn.notify_all();
        } else if !w.aio.is_empty() {
            w.aio.wake_one();
        }
        Ok(())
    }

    /// The same semaphore for a fork() child: the count as it stands, an empty line (the
    /// threads in it exist only in the parent) and a lock nobody holds. Never waits, even when
    /// a thread that is gone held the lock at the instant of fork(): the count is then the one
    /// before or after that thread's change, as if it had happened just before the fork.
    /// Permits held by the parent's threads stay taken, as with threading.Semaphore.
    pub fn rebuilt_after_fork(&self) -> Self {
        Self::with_bound(self.permits.load(Ordering::Relaxed), self.bound)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::core::wait::{self, on_threads, spin_until as wait_for, SLICE};
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};
    use std::thread;
    use std::time::Duration;

    #[test]
    fn try_acquire_and_release_count_exactly() {
        let s = Semaphore::new(3, false);
        assert!(s.try_acquire(2));
        assert!(!s.try_acquire(2));
        assert!(s.try_acquire(1));
        assert!(!s.try_acquire(1));
        assert_eq!(s.available(), 0);
        s.release(5).unwrap();
        assert_eq!(s.available(), 5);
        assert!(s.try_acquire(0));
        assert_eq!(s.release(u64::MAX), Err(ReleaseError::Overflow));
        assert_eq!(s.available(), 5);
    }

    #[test]
    fn bounded_refuses_release_above_initial() {
        let s = Semaphore::new(2, true);
        assert_eq!(s.bound(), Some(2));
        assert_eq!(s.release(1), Err(ReleaseError::AboveBound));
        assert!(s.try_acquire(2));
        assert_eq!(s.release(3), Err(ReleaseError::AboveBound));
        assert_eq!(s.available(), 0);
        s.release(2).unwrap();
        assert_eq!(s.release(1), Err(ReleaseError::AboveBound));
        assert_eq!(s.available(), 2);
    }

    #[test]
    fn timeout_leaves_the_line() {
        let s = Semaphore::new(0, false);
        let start = Instant::now();
        let deadline = start + Duration::from_millis(30);
        let r = s.acquire(1, Some(deadline), &mut wait::never());
        assert_eq!(r, Err(Stop::Timeout));
        assert!(Instant::now() >= deadline);
        assert_eq!(s.waiting(), 0);
        // An expired deadline still takes what is free.
        s.release(1).unwrap();
        assert_eq!(s.acquire(1, Some(start), &mut wait::never()), Ok(()));
    }

    #[test]
    fn hook_interrupts_and_runs_every_slice() {
        let s = Semaphore::new(0, false);
        let mut calls = 0;
        let start = Instant::now();
        let r = s.acquire(1, None, &mut || {
            calls += 1;
            calls == 3
        });
        assert_eq!(r, Err(Stop::Interrupted));
        assert_eq!(calls, 3);
        assert!(start.elapsed() >= SLICE * 3);
        assert_eq!(s.waiting(), 0);
    }

    #[test]
    fn release_wakes_a_waiter() {
        let s = Arc::new(Semaphore::new(0, false));
        let s2 = Arc::clone(&s);
        let h = thread::spawn(move || s2.acquire(2, None, &mut wait::never()));
        wait_for(|| s.waiting() == 1);
        s.release(1).unwrap();
        assert_eq!(s.available(), 1);
        s.release(1).unwrap();
        assert_eq!(h.join().unwrap(), Ok(()));
        assert_eq!(s.available(), 0);
    }

    #[test]
    fn big_waiter_is_not_overtaken() {
        // The head wants 2; later arrivals want 1. Permits arrive one at a time, so without a
        // line the small ones would take every single permit.
        let s = Arc::new(Semaphore::new(0, false));
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut hs = Vec::new();
        let spawn = |id: u64, n: u64| {
            let (s, order) = (Arc::clone(&s), Arc::clone(&order));
            thread::spawn(move || {
                s.acquire(n, None, &mut wait::never()).unwrap();
                order.lock().unwrap().push(id);
            })
        };
        hs.push(spawn(0, 2));
        wait_for(|| s.waiting() == 1);
        for id in 1..=4 {
            hs.push(spawn(id, 1));
            wait_for(|| s.waiting() == id as usize + 1);
        }
        assert!(!s.try_acquire(1));
        // One at a time, each taken before the next arrives: the order seen is the order of
        // taking, not of the threads getting to record it.
        s.release(1).unwrap();
        assert!(!s.try_acquire(1));
        assert_eq!(s.available(), 1);
        for served in 1..=5 {
            s.release(1).unwrap();
            wait_for(|| order.lock().unwrap().len() == served);
        }
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(s.available(), 0);
    }

    #[test]
    fn never_more_holders_than_permits() {
        const PERMITS: u64 = 3;
        const THREADS: usize = 12;
        const ROUNDS: usize = 2000;
        let s = Semaphore::new(PERMITS, true);
        let inside = AtomicU64::new(0);
        let max = AtomicU64::new(0);
        let done = AtomicUsize::new(0);
        let start = Barrier::new(THREADS);
        on_threads(THREADS, |i| {
            start.wait();
            for r in 0..ROUNDS {
                if (i + r) % 3 == 0 {
                    while !s.try_acquire(1) {
                        thread::yield_now();
                    }
                } else {
                    s.acquire(1, None, &mut wait::never()).unwrap();
                }
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                // Hold on until the limit has been reached once, so the exact maximum is
                // observed, not just an upper bound.
                while max.load(Ordering::SeqCst) < PERMITS {
                    thread::yield_now();
                }
                for _ in 0..(r % 4) {
                    thread::yield_now();
                }
                inside.fetch_sub(1, Ordering::SeqCst);
                s.release(1).unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
        assert_eq!(done.load(Ordering::Relaxed), THREADS * ROUNDS);
        assert_eq!(max.load(Ordering::SeqCst), PERMITS);
        assert_eq!(s.available(), PERMITS);
        assert_eq!(s.waiting(), 0);
    }

    #[test]
    fn leaving_head_lets_the_next_one_in() {
        // The head (wants 3) times out; the one behind it (wants 1) must then get the free
        // permit without any further release.
        let s = Arc::new(Semaphore::new(1, false));
        assert!(s.try_acquire(1));
        s.release(1).unwrap();
        let s2 = Arc::clone(&s);
        let release_head = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&release_head);
        let head = thread::spawn(move || s2.acquire(3, None, &mut || flag.load(Ordering::SeqCst)));
        wait_for(|| s.waiting() == 1);
        let s3 = Arc::clone(&s);
        let small = thread::spawn(move || s3.acquire(1, None, &mut wait::never()));
        wait_for(|| s.waiting() == 2);
        release_head.store(true, Ordering::SeqCst);
        assert_eq!(head.join().unwrap(), Err(Stop::Interrupted));
        assert_eq!(small.join().unwrap(), Ok(()));
        assert_eq!(s.available(), 0);
    }

    /// Waiters that time out and waiters whose hook interrupts them race releases and each
    /// other: a wait that gave up took nothing, holders never exceed the permits, every
    /// permit comes back.
    #[test]
    fn timeouts_and_interruptions_racing_keep_exact_counts() {
        const PERMITS: u64 = 3;
        const THREADS: u64 = 8;
        const ROUNDS: u64 = 1500;
        let s = Semaphore::new(PERMITS, true);
        let inside = AtomicU64::new(0);
        let took = AtomicU64::new(0);
        let gave_up = AtomicU64::new(0);
        on_threads(THREADS as usize, |k| {
            let k = k as u64;
            for r in 0..ROUNDS {
                let n = 1 + (k + r) % 2;
                let mut asked = 0u64;
                // Some waits end by interruption after a few asks, some by a short deadline,
                // some only when served.
                let mut hook = || {
                    asked += 1;
                    (k + r).is_multiple_of(3) && asked > r % 3
                };
                let deadline = ((k + r) % 3 == 1)
                    .then(|| Instant::now() + Duration::from_micros(50 + r % 200));
                match s.acquire(n, deadline, &mut hook) {
                    Ok(()) => {
                        let now = inside.fetch_add(n, Ordering::SeqCst) + n;
                        assert!(now <= PERMITS, "{now} permits held of {PERMITS}");
                        thread::yield_now();
                        inside.fetch_sub(n, Ordering::SeqCst);
                        took.fetch_add(1, Ordering::Relaxed);
                        s.release(n).unwrap();
                    }
                    Err(Stop::Timeout | Stop::Interrupted) => {
                        gave_up.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(Stop::Closed) => unreachable!(),
                }
            }
        });
        let (took, gave_up) = (
            took.load(Ordering::Relaxed),
            gave_up.load(Ordering::Relaxed),
        );
        assert_eq!(took + gave_up, THREADS * ROUNDS);
        assert!(took > 0);
        assert_eq!((s.available(), s.waiting()), (PERMITS, 0));
    }

    #[test]
    fn rebuilt_after_fork_keeps_the_count_and_drops_the_line() {
        let s = Arc::new(Semaphore::new(3, true));
        assert!(s.try_acquire(2));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s2, flag) = (Arc::clone(&s), Arc::clone(&stop));
        let ghost = thread::spawn(move || s2.acquire(3, None, &mut || flag.load(Ordering::SeqCst)));
        wait_for(|| s.waiting() == 1);
        let child = s.rebuilt_after_fork();
        assert_eq!(
            (child.available(), child.waiting(), child.bound()),
            (1, 0, Some(3))
        );
        assert!(child.try_acquire(1));
        child.release(3).unwrap();
        assert_eq!(child.release(1), Err(ReleaseError::AboveBound));
        stop.store(true, Ordering::SeqCst);
        assert_eq!(ghost.join().unwrap(), Err(Stop::Interrupted));
    }

    #[test]
    fn rebuilt_after_fork_never_waits_for_a_held_lock() {
        // A thread that holds the lock for good stands in for one that does not exist in the
        // child: rebuilding must not wait for it.
        let s = Semaphore::new(5, false);
        assert!(s.try_acquire(1));
        let held = s.state.lock();
        let child = s.rebuilt_after_fork();
        assert_eq!((child.available(), child.waiting()), (4, 0));
        assert_eq!(child.acquire(4, None, &mut wait::never()), Ok(()));
        drop(held);
    }

    #[test]
    fn coroutines_are_woken_one_per_release_and_keep_their_place() {
        use crate::core::notify::testing::Counter;
        let s = Semaphore::new(0, false);
        let (a, ra) = Counter::new();
        let (b, rb) = Counter::new();
        assert!(!s.acquire_or_register(2, &ra, false));
        assert!(!s.acquire_or_register(1, &rb, false));
        // A thread's try never jumps the coroutines' queue.
        s.release(1).unwrap();
        assert!(!s.try_acquire(1));
        assert_eq!((a.woken(), b.woken()), (1, 0));
        // a needs 2: it goes back to the front, b is not woken past it.
        assert!(!s.acquire_or_register(2, &ra, true));
        s.release(1).unwrap();
        assert_eq!(a.woken(), 2);
        assert!(s.acquire_or_register(2, &ra, true));
        s.release(1).unwrap();
        assert_eq!(b.woken(), 1);
        assert!(s.acquire_or_register(1, &rb, true));
        assert_eq!((s.available(), s.aio_waiting()), (0, 0));
    }

    #[test]
    fn a_cancelled_coroutine_passes_its_wakeup_on() {
        use crate::core::notify::testing::Counter;
        let s = Semaphore::new(0, false);
        let (_a, ra) = Counter::new();
        let (b, rb) = Counter::new();
        s.acquire_or_register(1, &ra, false);
        s.acquire_or_register(1, &rb, false);
        s.release(1).unwrap();
        s.leave(&ra);
        assert_eq!(b.woken(), 1);
        assert!(s.acquire_or_register(1, &rb, true));
    }

    #[test]
    fn threads_in_line_go_first_then_coroutines_are_woken() {
        use crate::core::notify::testing::Counter;
        let s = Arc::new(Semaphore::new(0, false));
        let (a, ra) = Counter::new();
        let s2 = Arc::clone(&s);
        let t = thread::spawn(move || s2.acquire(1, None, &mut wait::never()));
        wait_for(|| s.waiting() == 1);
        assert!(!s.acquire_or_register(1, &ra, false));
        s.release(2).unwrap();
        assert_eq!(t.join().unwrap(), Ok(()));
        // The thread left the line with a permit free: the coroutine's turn.
        assert_eq!(a.woken(), 1);
        assert!(s.acquire_or_register(1, &ra, true));
    }
}

/// Model checks (`make loom`) of the hand-off between releasers, waiters in line and waiters
/// that give up. Waits are untimed (loom's timed waits never time out) and the hook is asked
/// before every nap, so a lost wake-up shows up as a deadlock.
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::core::sync::Arc;
    use loom::thread;

    fn never() -> impl FnMut() -> bool {
        || false
    }

    /// Permits released one at a time reach a waiter for 2 and a waiter for 1; try_acquire
    /// never jumps the line; nothing is left over or lost.
    #[test]
    fn loom_semaphore_fifo_hand_off() {
        loom::model(|| {
            let s = Arc::new(Semaphore::new(0, false));
            let waiters: Vec<_> = [2u64, 1]
                .into_iter()
                .map(|n| {
                    let s = Arc::clone(&s);
                    thread::spawn(move || s.acquire(n, None, &mut never()))
                })
                .collect();
            s.release(1).unwrap();
            s.release(2).unwrap();
            for w in waiters {
                assert_eq!(w.join().unwrap(), Ok(()));
            }
            assert_eq!((s.available(), s.waiting()), (0, 0));
            assert!(!s.try_acquire(1));
        });
    }

    /// Three threads share two permits: never more than two holders at once, and every
    /// permit comes back.
    #[test]
    fn loom_semaphore_n_permits() {
        use crate::core::sync::atomic::AtomicUsize;
        loom::model(|| {
            let s = Arc::new(Semaphore::new(2, true));
            let inside = Arc::new(AtomicUsize::new(0));
            let ts: Vec<_> = (0..3)
                .map(|_| {
                    let (s, inside) = (Arc::clone(&s), Arc::clone(&inside));
                    thread::spawn(move || {
                        s.acquire(1, None, &mut never()).unwrap();
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(now <= 2, "{now} holders of 2 permits");
                        inside.fetch_sub(1, Ordering::SeqCst);
                        s.release(1).unwrap();
                    })
                })
                .collect();
            for t in ts {
                t.join().unwrap();
            }
            assert_eq!((s.available(), s.waiting()), (2, 0));
        });
    }

    /// A release races a waiter that gives up (its hook interrupts it) and a waiter that does
    /// not: the permit goes to exactly one of them, and if the quitter was ahead in line its
    /// leaving must wake the other.
    #[test]
    fn loom_semaphore_release_races_acquire_and_interruption() {
        loom::model(|| {
            let s = Arc::new(Semaphore::new(0, false));
            let s1 = Arc::clone(&s);
            let quitter = thread::spawn(move || s1.acquire(1, None, &mut || true));
            let s2 = Arc::clone(&s);
            let stayer = thread::spawn(move || s2.acquire(1, None, &mut never()));
            s.release(1).unwrap();
            let quit = quitter.join().unwrap();
            if quit == Ok(()) {
                // It took the permit after all: the other one needs another.
                s.release(1).unwrap();
            } else {
                assert_eq!(quit, Err(Stop::Interrupted));
            }
            assert_eq!(stayer.join().unwrap(), Ok(()));
            assert_eq!((s.available(), s.waiting()), (0, 0));
        });
    }

    /// A coroutine registered while a release happens is either served at once or woken;
    /// a woken coroutine that gives up hands the permit's wake-up to the next one.
    #[test]
    fn loom_semaphore_async_wake_passed_on() {
        use crate::core::notify::testing::Counter;
        loom::model(|| {
            let s = Arc::new(Semaphore::new(0, false));
            let (_a, ra) = Counter::new();
            let (b, rb) = Counter::new();
            assert!(!s.acquire_or_register(1, &rb, false));
            let s1 = Arc::clone(&s);
            let t = thread::spawn(move || s1.release(1).unwrap());
            let took = s.acquire_or_register(1, &ra, false);
            if !took {
                // a gives up (woken or not): b must end up woken.
                s.leave(&ra);
            }
            t.join().unwrap();
            if !took {
                assert_eq!(b.woken(), 1);
                assert!(s.acquire_or_register(1, &rb, true));
            }
            assert_eq!(s.available(), 0);
        });
    }
}
