//! How blocking core operations wait: until an optional deadline, in slices, asking a caller
//! hook between slices whether to give up. The Python binding's hook checks for Ctrl-C, so a
//! wait keeps its place in line (a queued offer, a reservation) instead of being restarted.

use std::time::{Duration, Instant};

/// The longest a blocking operation sleeps before it asks the hook again.
pub const SLICE: Duration = Duration::from_millis(20);

/// Why a blocking operation returned without doing its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Timeout,
    /// The hook asked to stop (e.g. a signal is pending).
    Interrupted,
    Closed,
}

/// Returns true when the waiting should stop.
pub type Hook<'a> = &'a mut dyn FnMut() -> bool;

/// A hook that never interrupts, for plain-Rust callers and tests.
pub fn never() -> impl FnMut() -> bool {
    || false
}

/// The next instant to wake at: the deadline or one slice from now, whichever comes first.
/// None once the deadline has passed.
pub fn next_wake(deadline: Option<Instant>) -> Option<Instant> {
    let now = Instant::now();
    let slice_end = now + SLICE;
    match deadline {
        None => Some(slice_end),
        Some(d) if d <= now => None,
        Some(d) => Some(d.min(slice_end)),
    }
}

/// `now + timeout`, or None when that is beyond what the clock can represent (a timeout of
/// centuries): callers treat None as "no deadline" instead of panicking on overflow.
pub fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Time left until `deadline`, capped at one slice; None once it has passed.
pub fn next_slice(deadline: Option<Instant>) -> Option<Duration> {
    let now = Instant::now();
    match deadline {
        None => Some(SLICE),
        Some(d) if d <= now => None,
        Some(d) => Some((d - now).min(SLICE)),
    }
}

/// While alive, the calling thread's timed waits end at their instant instead of up to the
/// kernel's timer slack later (50 us by default on Linux, more than a whole futex wake-up): for
/// waits whose deadline is the event itself, such as a token bucket's next token. Drop restores
/// the thread's own slack. A no-op elsewhere and under loom.
pub struct PreciseTimers {
    #[cfg(all(target_os = "linux", not(loom)))]
    previous: Option<libc::c_ulong>,
}

impl PreciseTimers {
    #[cfg(all(target_os = "linux", not(loom)))]
    pub fn new() -> Self {
        // SAFETY: PR_GET_TIMERSLACK reads a value of the calling thread only.
        let previous = unsafe { libc::prctl(libc::PR_GET_TIMERSLACK) };
        // SAFETY: PR_SET_TIMERSLACK sets a value of the calling thread only.
        let ok = previous > 1
            && unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) } == 0;
        PreciseTimers {
            previous: ok.then_some(previous as libc::c_ulong),
        }
    }

    #[cfg(not(all(target_os = "linux", not(loom))))]
    pub fn new() -> Self {
        PreciseTimers {}
    }
}

impl Default for PreciseTimers {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PreciseTimers {
    fn drop(&mut self) {
        #[cfg(all(target_os = "linux", not(loom)))]
        if let Some(slack) = self.previous {
            // SAFETY: as in new().
            unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, slack) };
        }
    }
}

/// Tests: this thread's timer slack in nanoseconds (Linux).
#[cfg(all(test, not(loom), target_os = "linux"))]
pub(crate) fn timer_slack_of(tid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{tid}/timerslack_ns"))
        .expect("timerslack_ns")
        .trim()
        .parse()
        .expect("a number")
}

/// Tests: spins until `pred` holds (failing after 30 s), to wait for another thread to reach a
/// state without sleeping.
#[cfg(all(test, not(loom)))]
pub(crate) fn spin_until(pred: impl Fn() -> bool) {
    let end = Instant::now() + Duration::from_secs(30);
    while !pred() {
        assert!(Instant::now() < end, "condition never became true");
        std::thread::yield_now();
    }
}

/// Tests: runs `body(i)` on `n` threads at once and waits for them all (scoped: the threads
/// borrow the test's state, no `Arc` clones).
#[cfg(all(test, not(loom)))]
pub(crate) fn on_threads(n: usize, body: impl Fn(usize) + Sync) {
    std::thread::scope(|s| {
        for i in 0..n {
            let body = &body;
            s.spawn(move || body(i));
        }
    });
}

/// Drives a wait built from a timed step (a join, a queue's timed pop): `step(slice)` until it
/// yields a value, the deadline passes (Timeout) or the hook asks to stop (Interrupted). The
/// one loop behind every blocking call whose core primitive only knows timeouts.
pub fn in_slices<R>(
    deadline: Option<Instant>,
    hook: Hook<'_>,
    mut step: impl FnMut(Duration) -> Option<R>,
) -> Result<R, Stop> {
    loop {
        let Some(slice) = next_slice(deadline) else {
            return Err(Stop::Timeout);
        };
        if let Some(r) = step(slice) {
            return Ok(r);
        }
        if hook() {
            return Err(Stop::Interrupted);
        }
    }
}

#[cfg(all(test, not(loom), target_os = "linux"))]
mod tests {
    use super::*;

    /// The guard makes this thread's timed waits precise and gives the old slack back.
    #[test]
    fn precise_timers_set_and_restore_the_slack() {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let before = timer_slack_of(tid);
        assert!(before > 1, "the default slack is larger than 1 ns");
        {
            let _g = PreciseTimers::new();
            assert_eq!(timer_slack_of(tid), 1);
        }
        assert_eq!(timer_slack_of(tid), before);
    }
}
