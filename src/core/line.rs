//! The line of waiters shared by the semaphore and the token bucket: first come, first served.
//!
//! Only the head of the line may take, and nobody (not even a non-blocking try) takes while
//! someone is in line, so a waiter for many permits or tokens cannot be overtaken forever by a
//! stream of small requests. A waiter that gives up only leaves the line: nothing was set aside
//! for it, so there is nothing to hand back. Whoever leaves wakes the others, since the new head
//! may be able to take at once.

use crate::core::sync::{Condvar, Mutex, MutexGuard};
use crate::core::wait::{self, Hook, Stop, SLICE};
use std::collections::VecDeque;
use std::time::Instant;

/// Waiters in arrival order. Lives inside its owner's mutex.
#[derive(Debug, Default)]
pub(crate) struct Line {
    tickets: VecDeque<u64>,
    next: u64,
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
}

/// Whether to ask the hook before the next nap: once a slice has passed since it was last
/// asked. Under loom, once before every nap instead: its timed waits never time out, so
/// interruption would otherwise go unexplored.
fn time_to_ask(asked: Instant, asked_since_nap: bool) -> bool {
    if cfg!(loom) {
        !asked_since_nap
    } else {
        Instant::now() >= asked + SLICE
    }
}

/// Joins the line and waits until it is this caller's turn and `take` succeeds.
///
/// `take` runs under the lock, for the head of the line only: Ok when it took, otherwise the
/// instant it can succeed if it knows one (it is asked again then, or on any notify). The hook
/// runs with the lock released, at most one SLICE apart, so it may block (e.g. on the GIL).
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
    let mut asked_since_nap = false;
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
        if time_to_ask(asked, asked_since_nap) {
            drop(guard);
            let stop = hook();
            guard = state.lock();
            asked = Instant::now();
            asked_since_nap = true;
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
        turn.wait_for(&mut guard, until.saturating_duration_since(Instant::now()));
        asked_since_nap = false;
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
