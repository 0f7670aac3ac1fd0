//! A token bucket: `rate` tokens a second refill it, up to `burst`; it starts full.
//!
//! Tokens are whole, so the state is kept in integers: `spent` tokens taken since `anchor`, the
//! last instant the bucket was seen full. What has been earned since is computed from the time
//! elapsed since that fixed anchor, never accumulated step by step, so float rounding cannot
//! drift over long windows. The anchor only moves when the bucket is full, where the state is
//! exact (`burst` tokens) and the unused refill is discarded anyway.
//!
//! Waiters are served in arrival order (the line shared with the semaphore): the head of the
//! line sleeps exactly until its tokens have been earned, and nobody takes while someone waits,
//! so a request for many tokens is not starved by a stream of small ones.
//!
//! Locks come from `crate::core::sync` (fork-safe; loom's under `--cfg loom`). A fork() child
//! rebuilds the bucket ([`TokenBucket::rebuilt_after_fork`]) instead of waiting on a lock that a
//! thread of the parent may have held.

use crate::core::line::{wait_in_line, Line};
use crate::core::notify::{NotifyQueue, Registration};
use crate::core::sync::{Condvar, Mutex};
use crate::core::wait::{Hook, PreciseTimers, Stop};
use std::fmt;
use std::time::{Duration, Instant};

/// A rejected parameter or request size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Invalid {
    Rate(f64),
    Burst(u64),
    Count { n: u64, burst: u64 },
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Invalid::Rate(r) => write!(f, "rate must be a finite number > 0, got {r}"),
            Invalid::Burst(b) => write!(f, "burst must be >= 1, got {b}"),
            Invalid::Count { n: 0, .. } => f.write_str("n must be >= 1, got 0"),
            Invalid::Count { n, burst } => write!(
                f,
                "n={n} exceeds burst={burst}: the bucket never holds that many tokens"
            ),
        }
    }
}

struct State {
    /// Nanoseconds after `origin` when the bucket was last seen full.
    anchor: u64,
    /// Tokens taken since `anchor`. u128: it only resets when the bucket refills.
    spent: u128,
    line: Line,
    /// Coroutines waiting for the line to empty (core::notify). A coroutine with the line
    /// empty never registers: it knows when its tokens will be there and sleeps until then.
    aio: NotifyQueue,
}

pub struct TokenBucket {
    rate: f64,
    burst: u64,
    origin: Instant,
    state: Mutex<State>,
    turn: Condvar,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: u64) -> Result<Self, Invalid> {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(Invalid::Rate(rate));
        }
        if burst == 0 {
            return Err(Invalid::Burst(burst));
        }
        Ok(TokenBucket {
            rate,
            burst,
            origin: Instant::now(),
            state: Mutex::new(State {
                anchor: 0,
                spent: 0,
                line: Line::default(),
                aio: NotifyQueue::default(),
            }),
            turn: Condvar::new(),
        })
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Whether `n` tokens can ever be taken at once.
    pub fn check(&self, n: u64) -> Result<(), Invalid> {
        if n == 0 || n > self.burst {
            return Err(Invalid::Count {
                n,
                burst: self.burst,
            });
        }
        Ok(())
    }

    /// Tokens in the bucket now, fractions included.
    pub fn available(&self) -> f64 {
        let mut st = self.state.lock();
        let now = self.now_ns();
        self.settle(&mut st, now);
        let earned = now.saturating_sub(st.anchor) as f64 * self.rate / 1e9;
        (self.burst as f64 - st.spent as f64 + earned).min(self.burst as f64)
    }

    /// Threads in line right now; a snapshot for monitoring and tests.
    pub fn waiting(&self) -> usize {
        self.state.lock().line.len()
    }

    /// Takes `n` tokens if they are there and nobody is waiting (never jumps the line).
    ///
    /// # Panics
    /// If `n` fails [`TokenBucket::check`].
    pub fn try_acquire(&self, n: u64) -> bool {
        self.assert_count(n);
        let mut st = self.state.lock();
        st.line.is_empty() && self.take(&mut st, n, None).is_ok()
    }

    /// Takes `n` tokens, waiting in line exactly as long as it takes to earn them.
    ///
    /// # Panics
    /// If `n` fails [`TokenBucket::check`]: such a request could never be served.
    pub fn acquire(&self, n: u64, deadline: Option<Instant>, hook: Hook<'_>) -> Result<(), Stop> {
        self.assert_count(n);
        let mut st = self.state.lock();
        if st.line.is_empty() && self.take(&mut st, n, None).is_ok() {
            return Ok(());
        }
        let joined = Some(self.now_ns());
        // The head sleeps until its tokens are due: that instant is the wake-up itself, so the
        // kernel's timer slack (50 us) would be pure latency.
        let _precise = PreciseTimers::new();
        let r = wait_in_line(
            &self.state,
            st,
            &self.turn,
            |s| &mut s.line,
            |s| {
                self.take(s, n, joined)
                    .map_err(|at| self.origin.checked_add(at))
            },
            deadline,
            hook,
        );
        // The line may have emptied: coroutines waiting for that try again.
        let mut st = self.state.lock();
        if st.line.is_empty() && !st.aio.is_empty() {
            st.aio.wake_all();
        }
        r
    }

    /// A coroutine's acquire: takes `n` tokens now; or, with the line empty, tells how long
    /// until they will have been earned (the coroutine sleeps that long and tries again); or,
    /// with threads in line (they go first), registers `r` to be woken when the line empties.
    ///
    /// # Panics
    /// If `n` fails [`TokenBucket::check`].
    pub fn acquire_or_register(&self, n: u64, r: &Registration) -> Result<(), Option<Duration>> {
        self.assert_count(n);
        let mut st = self.state.lock();
        if !st.line.is_empty() {
            st.aio.push(r);
            return Err(None);
        }
        self.take(&mut st, n, None).map_err(|at| {
            let now = Duration::from_nanos(self.now_ns());
            Some(at.saturating_sub(now))
        })
    }

    /// A registered coroutine gives up.
    pub fn leave(&self, r: &Registration) {
        self.state.lock().aio.leave(r);
    }

    /// The same bucket for a fork() child: the same tokens, an empty line (the threads in it
    /// exist only in the parent) and a lock nobody holds. Never waits: if a thread that is gone
    /// held the lock at the instant of fork(), its change may be half done, so the child's
    /// bucket starts empty instead (refilling at `rate`): it may under-grant, never over-grant.
    pub fn rebuilt_after_fork(&self) -> Self {
        let (anchor, spent) = match self.state.try_lock() {
            Some(st) => (st.anchor, st.spent),
            None => (self.now_ns(), u128::from(self.burst)),
        };
        TokenBucket {
            rate: self.rate,
            burst: self.burst,
            origin: self.origin,
            state: Mutex::new(State {
                anchor,
                spent,
                line: Line::default(),
                aio: NotifyQueue::default(),
            }),
            turn: Condvar::new(),
        }
    }

    fn assert_count(&self, n: u64) {
        if let Err(e) = self.check(n) {
            panic!("{e}");
        }
    }

    fn now_ns(&self) -> u64 {
        let ns = Instant::now()
            .saturating_duration_since(self.origin)
            .as_nanos();
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    /// Time to earn `tokens`, rounded up so that "earned by then" is never early. Saturates
    /// for absurdly slow rates (a wait of centuries).
    fn ns_for(&self, tokens: u128) -> u64 {
        (tokens as f64 * 1e9 / self.rate).ceil() as u64
    }

    /// Moves the anchor to `now` if the bucket is full. Also when nothing was spent: a take
    /// must count from the moment the bucket was full, not from an older anchor whose refill
    /// would then seem to cover it.
    fn settle(&self, st: &mut State, now: u64) {
        if now.saturating_sub(st.anchor) >= self.ns_for(st.spent) {
            st.anchor = now;
            st.spent = 0;
        }
    }

    /// Takes `n` tokens, or tells when (time since origin) they will have been earned.
    ///
    /// `joined`: when a waiter joined the line. A waiter takes its tokens as of the moment they
    /// were there for it (earned, and it was waiting), not when its thread got to run again:
    /// otherwise every wake-up's latency would be lost refill whenever the bucket is full by
    /// then (always, with burst 1), and the long-run rate would fall short of `rate`.
    fn take(&self, st: &mut State, n: u64, joined: Option<u64>) -> Result<(), Duration> {
        let now = self.now_ns();
        // The earliest instant since the anchor with n tokens in the bucket. Valid before
        // settling too: it is never later than the instant the bucket filled up.
        let short = (st.spent + u128::from(n)).saturating_sub(u128::from(self.burst));
        let ready = st.anchor.saturating_add(self.ns_for(short));
        if now < ready {
            return Err(Duration::from_nanos(ready));
        }
        // Never before the anchor: that would credit refill twice.
        let at = joined.map_or(now, |j| ready.max(j).min(now));
        self.settle(st, at);
        st.spent += u128::from(n);
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::core::wait::{self, spin_until as wait_for, SLICE};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::thread;

    /// A bucket whose clock started `ago` in the past: lets tests look at long windows quickly.
    fn aged(rate: f64, burst: u64, ago: Duration) -> TokenBucket {
        let mut b = TokenBucket::new(rate, burst).unwrap();
        b.origin -= ago;
        b.state.get_mut().anchor = 0;
        b
    }

    #[test]
    fn rejects_bad_parameters() {
        for r in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(matches!(TokenBucket::new(r, 1), Err(Invalid::Rate(_))));
        }
        assert_eq!(TokenBucket::new(1.0, 0).err(), Some(Invalid::Burst(0)));
        let b = TokenBucket::new(1.0, 3).unwrap();
        assert!(b.check(1).is_ok() && b.check(3).is_ok());
        assert_eq!(b.check(0), Err(Invalid::Count { n: 0, burst: 3 }));
        assert_eq!(b.check(4), Err(Invalid::Count { n: 4, burst: 3 }));
        assert!(b
            .check(4)
            .unwrap_err()
            .to_string()
            .contains("exceeds burst"));
    }

    #[test]
    #[should_panic(expected = "exceeds burst")]
    fn acquiring_more_than_burst_panics() {
        let b = TokenBucket::new(1.0, 2).unwrap();
        let _ = b.acquire(3, None, &mut wait::never());
    }

    #[test]
    fn starts_full_and_try_acquire_is_exact() {
        // Slow enough that nothing refills during the test.
        let b = TokenBucket::new(1e-3, 5).unwrap();
        assert!((b.available() - 5.0).abs() < 1e-6);
        assert!(b.try_acquire(2));
        assert!(b.try_acquire(3));
        assert!(!b.try_acquire(1));
        assert!(b.available() < 0.01);
    }

    #[test]
    fn refill_is_capped_at_burst() {
        let b = aged(1.0, 4, Duration::from_secs(3600));
        assert_eq!(b.available(), 4.0);
        for _ in 0..4 {
            assert!(b.try_acquire(1));
        }
        assert!(!b.try_acquire(1));
    }

    #[test]
    fn no_drift_over_a_long_window() {
        // A week of 3 tokens/s, all taken as fast as they come: the count at the end is exact.
        let week = Duration::from_secs(7 * 24 * 3600);
        let b = TokenBucket::new(3.0, 10).unwrap();
        let mut st = b.state.lock();
        st.spent = u128::from(3 * week.as_secs()) + 10;
        // Just before the last token is earned it is not there; at that instant it is.
        assert_eq!(b.ns_for(st.spent - 10), week.as_nanos() as u64);
        drop(st);
        let taken = |at: Duration| {
            let mut b2 = aged(3.0, 10, at);
            b2.state.get_mut().spent = u128::from(3 * week.as_secs()) + 10;
            b2.try_acquire(1)
        };
        assert!(!taken(week));
        assert!(taken(week + Duration::from_millis(334)));
    }

    #[test]
    fn acquire_waits_as_long_as_needed() {
        let b = TokenBucket::new(100.0, 1).unwrap();
        assert!(b.try_acquire(1));
        let start = Instant::now();
        for _ in 0..20 {
            b.acquire(1, None, &mut wait::never()).unwrap();
        }
        let took = start.elapsed().as_secs_f64();
        // Never early (the tokens are earned by 0.2 s after the drain); the upper bound only
        // catches a wait that is held back, generously for a loaded machine.
        assert!(
            (0.19..5.0).contains(&took),
            "20 tokens at 100/s took {took}s"
        );
    }

    #[test]
    fn threads_share_the_rate() {
        let b = Arc::new(TokenBucket::new(400.0, 1).unwrap());
        assert!(b.try_acquire(1));
        let got = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let (b, got) = (Arc::clone(&b), Arc::clone(&got));
                thread::spawn(move || {
                    for _ in 0..50 {
                        b.acquire(1, None, &mut wait::never()).unwrap();
                        got.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let took = start.elapsed().as_secs_f64();
        assert_eq!(got.load(Ordering::Relaxed), 200);
        assert!(
            (0.49..5.0).contains(&took),
            "200 tokens at 400/s took {took}s"
        );
    }

    /// A waiter sleeps with precise timers (its wake-up is a timer, not a peer's notify) and
    /// gets its own timer slack back afterwards.
    #[cfg(target_os = "linux")]
    #[test]
    fn waits_with_precise_timers_and_restores_the_slack() {
        use crate::core::wait::timer_slack_of;
        let b = Arc::new(TokenBucket::new(2.0, 1).unwrap());
        assert!(b.try_acquire(1));
        let tid = Arc::new(AtomicU64::new(0));
        let (b2, tid2) = (Arc::clone(&b), Arc::clone(&tid));
        let h = thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            let me = unsafe { libc::gettid() };
            let before = timer_slack_of(me);
            tid2.store(me as u64, Ordering::SeqCst);
            b2.acquire(1, None, &mut wait::never()).unwrap();
            (before, timer_slack_of(me))
        });
        wait_for(|| b.waiting() == 1);
        assert_eq!(timer_slack_of(tid.load(Ordering::SeqCst) as i32), 1);
        let (before, after) = h.join().unwrap();
        assert!(before > 1);
        assert_eq!(after, before);
    }

    #[test]
    fn timeout_gives_up_and_leaves_the_line() {
        let b = TokenBucket::new(1.0, 1).unwrap();
        assert!(b.try_acquire(1));
        let start = Instant::now();
        let r = b.acquire(
            1,
            Some(start + Duration::from_millis(30)),
            &mut wait::never(),
        );
        assert_eq!(r, Err(Stop::Timeout));
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert_eq!(b.waiting(), 0);
    }

    #[test]
    fn hook_interrupts() {
        let b = TokenBucket::new(0.01, 1).unwrap();
        assert!(b.try_acquire(1));
        let mut calls = 0;
        let start = Instant::now();
        let r = b.acquire(1, None, &mut || {
            calls += 1;
            calls == 2
        });
        assert_eq!(r, Err(Stop::Interrupted));
        assert!(start.elapsed() >= SLICE * 2);
        assert_eq!(b.waiting(), 0);
    }

    #[test]
    fn big_request_is_not_starved() {
        // 200 tokens/s, burst 10. A stream of 1-token takers would always find a token; the
        // 10-token request that arrived first must still be served before the later ones.
        let b = Arc::new(TokenBucket::new(200.0, 10).unwrap());
        assert!(b.try_acquire(10));
        let b2 = Arc::clone(&b);
        let big = thread::spawn(move || {
            b2.acquire(10, None, &mut wait::never()).unwrap();
            Instant::now()
        });
        wait_for(|| b.waiting() == 1);
        let stop = Arc::new(AtomicBool::new(false));
        let smalls: Vec<_> = (0..3)
            .map(|_| {
                let (b, stop) = (Arc::clone(&b), Arc::clone(&stop));
                thread::spawn(move || {
                    let mut first = None;
                    while !stop.load(Ordering::SeqCst) {
                        let d = Instant::now() + Duration::from_millis(5);
                        if b.try_acquire(1) || b.acquire(1, Some(d), &mut wait::never()).is_ok() {
                            first.get_or_insert_with(Instant::now);
                        }
                    }
                    first
                })
            })
            .collect();
        let big_at = big.join().unwrap();
        stop.store(true, Ordering::SeqCst);
        for s in smalls {
            if let Some(t) = s.join().unwrap() {
                assert!(
                    t >= big_at,
                    "a later 1-token request overtook the 10-token one"
                );
            }
        }
    }

    #[test]
    fn absurd_rates_do_not_overflow() {
        let slow = TokenBucket::new(1e-300, 1).unwrap();
        assert!(slow.try_acquire(1));
        assert!(!slow.try_acquire(1));
        let r = slow.acquire(1, Some(Instant::now()), &mut wait::never());
        assert_eq!(r, Err(Stop::Timeout));
        let fast = TokenBucket::new(1e300, u64::MAX).unwrap();
        assert!(fast.try_acquire(u64::MAX));
        // Refilled within a nanosecond or so.
        wait_for(|| fast.try_acquire(u64::MAX));
        wait_for(|| fast.available() == u64::MAX as f64);
    }

    #[test]
    fn rebuilt_after_fork_keeps_the_tokens_and_drops_the_line() {
        let b = Arc::new(TokenBucket::new(1e-3, 5).unwrap());
        assert!(b.try_acquire(2));
        let stop = Arc::new(AtomicBool::new(false));
        let (b2, flag) = (Arc::clone(&b), Arc::clone(&stop));
        let ghost = thread::spawn(move || b2.acquire(5, None, &mut || flag.load(Ordering::SeqCst)));
        wait_for(|| b.waiting() == 1);
        let child = b.rebuilt_after_fork();
        assert_eq!(child.waiting(), 0);
        assert!((child.available() - 3.0).abs() < 1e-3);
        assert!(child.try_acquire(3));
        assert!(!child.try_acquire(1));
        stop.store(true, Ordering::SeqCst);
        assert_eq!(ghost.join().unwrap(), Err(Stop::Interrupted));
    }

    #[test]
    fn rebuilt_after_fork_with_the_lock_held_starts_empty_without_waiting() {
        let b = TokenBucket::new(1e-3, 5).unwrap();
        let held = b.state.lock();
        let child = b.rebuilt_after_fork();
        assert!(child.available() < 1e-3);
        assert!(!child.try_acquire(1));
        drop(held);
        // Refilling from then on, at the bucket's rate.
        let fast = TokenBucket::new(1e6, 1).unwrap();
        let held = fast.state.lock();
        let child = fast.rebuilt_after_fork();
        drop(held);
        assert_eq!(child.acquire(1, None, &mut wait::never()), Ok(()));
    }
}

/// Model check (`make loom`) of the waiting line on a bucket that never refills in time: loom's
/// timed waits never time out, so every waiter gives up through its hook (asked before every
/// nap under loom) when its tokens are not there.
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::core::sync::Arc;
    use loom::thread;

    /// Two waiters and a try race for 2 tokens: never more than 2 granted, the bucket's books
    /// match what was granted, and the line ends empty.
    #[test]
    fn loom_token_bucket_line_never_over_grants() {
        loom::model(|| {
            let b = Arc::new(TokenBucket::new(1e-9, 2).unwrap());
            let ts: Vec<_> = [2u64, 1]
                .into_iter()
                .map(|n| {
                    let b = Arc::clone(&b);
                    thread::spawn(move || match b.acquire(n, None, &mut || true) {
                        Ok(()) => n,
                        Err(e) => {
                            assert_eq!(e, Stop::Interrupted);
                            0
                        }
                    })
                })
                .collect();
            let mut granted = u64::from(b.try_acquire(1));
            for t in ts {
                granted += t.join().unwrap();
            }
            assert!(granted <= 2, "{granted} tokens granted from a bucket of 2");
            assert!((b.available() - (2 - granted) as f64).abs() < 1e-6);
            assert_eq!(b.waiting(), 0);
        });
    }
}
