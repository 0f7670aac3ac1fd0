//! A counting semaphore that serves its waiters first come, first served, and the line of
//! waiters it shares with the token bucket.
//!
//! Only the head of the line may take, and nobody (not even a non-blocking try) takes while
//! someone is in line, so a waiter for many permits cannot be overtaken forever by a stream of
//! small requests. A waiter that gives up only leaves the line: nothing was set aside for it,
//! so there is nothing to hand back.
//!
//! std's futex-based Mutex and Condvar, not parking_lot's: these objects stay usable in a
//! fork()ed child, and parking_lot's global table of parked threads would still list the
//! parent's waiters there, whose stacks glibc hands to the child's new threads (heap
//! corruption, reproduced).

use crate::core::wait::{self, Hook, Stop, SLICE};
use std::collections::VecDeque;
use std::fmt;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// Locks, ignoring poisoning: no critical section here leaves the state half-changed.
pub(crate) fn lock<S>(m: &Mutex<S>) -> MutexGuard<'_, S> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waiters in arrival order. Lives inside its owner's mutex.
#[derive(Debug, Default)]
pub(crate) struct Line {
    tickets: VecDeque<u64>,
    next: u64,
    epoch: u64,
}

impl Line {
    pub(crate) fn is_empty(&self) -> bool {
        self.tickets.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.tickets.len()
    }

    fn join(&mut self) -> u64 {
        let t = self.next;
        self.next += 1;
        self.tickets.push_back(t);
        t
    }

    fn is_head(&self, ticket: u64) -> bool {
        self.tickets.front() == Some(&ticket)
    }

    fn leave(&mut self, ticket: u64) {
        if self.is_head(ticket) {
            self.tickets.pop_front();
        } else {
            self.tickets.retain(|&t| t != ticket);
        }
    }

    /// After fork() the child has only the forking thread: tickets that other threads held in
    /// the parent would block the line forever. Callers pass a fork generation; the first use
    /// in a new one empties the line, before any waiter of that generation can join it.
    pub(crate) fn forget_before(&mut self, epoch: u64) {
        if self.epoch != epoch {
            self.tickets.clear();
            self.epoch = epoch;
        }
    }
}

/// Joins the line and waits until it is this caller's turn and `take` succeeds.
///
/// `take` runs under the lock, for the head of the line only: Ok when it took, otherwise the
/// instant it can succeed if it knows one (it is asked again then, or on any notify). The hook
/// runs with the lock released, at most one SLICE apart, so it may block (e.g. on the GIL).
/// Whoever leaves the line wakes the others, since the new head may be able to take at once.
pub(crate) fn wait_in_line<'m, S>(
    state: &'m Mutex<S>,
    mut guard: MutexGuard<'m, S>,
    turn: &Condvar,
    line: fn(&mut S) -> &mut Line,
    mut take: impl FnMut(&mut S) -> Result<(), Option<Instant>>,
    deadline: Option<Instant>,
    hook: Hook<'_>,
) -> Result<(), Stop> {
    let ticket = line(&mut guard).join();
    let mut asked = Instant::now();
    let stop = loop {
        let mut ready = None;
        if line(&mut guard).is_head(ticket) {
            match take(&mut guard) {
                Ok(()) => break None,
                Err(at) => ready = at,
            }
        }
        // Checked after `take`, so a turn that comes exactly at the deadline is not lost.
        let Some(mut until) = wait::next_wake(deadline) else {
            break Some(Stop::Timeout);
        };
        if Instant::now() >= asked + SLICE {
            drop(guard);
            let stop = hook();
            guard = lock(state);
            asked = Instant::now();
            if stop {
                break Some(Stop::Interrupted);
            }
            // The line may have moved while unlocked.
            continue;
        }
        until = until.min(asked + SLICE);
        if let Some(r) = ready {
            until = until.min(r);
        }
        let nap = until.saturating_duration_since(Instant::now());
        guard = turn
            .wait_timeout(guard, nap)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    };
    line(&mut guard).leave(ticket);
    if !line(&mut guard).is_empty() {
        turn.notify_all();
    }
    match stop {
        None => Ok(()),
        Some(s) => Err(s),
    }
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

struct State {
    permits: u64,
    line: Line,
}

impl State {
    fn take(&mut self, n: u64) -> bool {
        if self.permits >= n {
            self.permits -= n;
            true
        } else {
            false
        }
    }
}

pub struct Semaphore {
    state: Mutex<State>,
    turn: Condvar,
    bound: Option<u64>,
}

impl Semaphore {
    /// `bounded`: releasing above `permits` is an error (threading.BoundedSemaphore).
    pub fn new(permits: u64, bounded: bool) -> Self {
        Semaphore {
            state: Mutex::new(State {
                permits,
                line: Line::default(),
            }),
            turn: Condvar::new(),
            bound: bounded.then_some(permits),
        }
    }

    pub fn bound(&self) -> Option<u64> {
        self.bound
    }

    pub fn available(&self) -> u64 {
        lock(&self.state).permits
    }

    /// Threads in line right now; a snapshot for monitoring and tests.
    pub fn waiting(&self) -> usize {
        lock(&self.state).line.len()
    }

    /// Takes `n` permits if they are free and nobody is waiting (never jumps the line).
    pub fn try_acquire(&self, n: u64) -> bool {
        let mut st = lock(&self.state);
        st.line.is_empty() && st.take(n)
    }

    /// Takes `n` permits, waiting in line for them. For a bounded semaphore an `n` above the
    /// bound can only end by deadline or hook: callers reject it up front.
    pub fn acquire(&self, n: u64, deadline: Option<Instant>, hook: Hook<'_>) -> Result<(), Stop> {
        let mut st = lock(&self.state);
        if st.line.is_empty() && st.take(n) {
            return Ok(());
        }
        wait_in_line(
            &self.state,
            st,
            &self.turn,
            |s| &mut s.line,
            |s| if s.take(n) { Ok(()) } else { Err(None) },
            deadline,
            hook,
        )
    }

    pub fn release(&self, n: u64) -> Result<(), ReleaseError> {
        let mut st = lock(&self.state);
        let after = st.permits.checked_add(n).ok_or(ReleaseError::Overflow)?;
        if self.bound.is_some_and(|b| after > b) {
            return Err(ReleaseError::AboveBound);
        }
        st.permits = after;
        if !st.line.is_empty() {
            self.turn.notify_all();
        }
        Ok(())
    }

    /// See [`Line::forget_before`].
    pub fn forget_waiters_before(&self, epoch: u64) {
        lock(&self.state).line.forget_before(epoch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};
    use std::thread;
    use std::time::Duration;

    fn wait_for(pred: impl Fn() -> bool) {
        let end = Instant::now() + Duration::from_secs(30);
        while !pred() {
            assert!(Instant::now() < end, "condition never became true");
            thread::yield_now();
        }
    }

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
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut hs = Vec::new();
        let spawn = |id: u64, n: u64| {
            let (s, order) = (Arc::clone(&s), Arc::clone(&order));
            thread::spawn(move || {
                s.acquire(n, None, &mut wait::never()).unwrap();
                lock(&order).push(id);
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
            wait_for(|| lock(&order).len() == served);
        }
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*lock(&order), vec![0, 1, 2, 3, 4]);
        assert_eq!(s.available(), 0);
    }

    #[test]
    fn never_more_holders_than_permits() {
        const PERMITS: u64 = 3;
        const THREADS: usize = 12;
        const ROUNDS: usize = 2000;
        let s = Arc::new(Semaphore::new(PERMITS, true));
        let inside = Arc::new(AtomicU64::new(0));
        let max = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(THREADS));
        let hs: Vec<_> = (0..THREADS)
            .map(|i| {
                let (s, inside, max, done, start) = (
                    Arc::clone(&s),
                    Arc::clone(&inside),
                    Arc::clone(&max),
                    Arc::clone(&done),
                    Arc::clone(&start),
                );
                thread::spawn(move || {
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
                        // Hold on until the limit has been reached once, so the exact maximum
                        // is observed, not just an upper bound.
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
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
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

    #[test]
    fn fork_generation_forgets_ghost_waiters() {
        let s = Arc::new(Semaphore::new(0, false));
        let s2 = Arc::clone(&s);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let ghost = thread::spawn(move || s2.acquire(1, None, &mut || flag.load(Ordering::SeqCst)));
        wait_for(|| s.waiting() == 1);
        // Pretend to be a child process: the waiter's ticket belongs to the old generation.
        s.forget_waiters_before(1);
        assert_eq!(s.waiting(), 0);
        s.release(1).unwrap();
        assert!(s.try_acquire(1));
        s.forget_waiters_before(1);
        stop.store(true, Ordering::SeqCst);
        let _ = ghost.join();
    }
}
