//! Waiter bookkeeping, as in Go's runtime: a blocked operation (a recv, a send, or a whole
//! select) is one `Waiter`, queued on every channel it waits on, once per case. Whoever can
//! complete it (a peer operation, or close) does so exactly once, under the waiter's own lock,
//! and hands over the value in the same step. So a woken waiter always has its outcome: no
//! wake-up is ever passed on or lost, and a select completed through one channel is dead on all
//! the others (peers skip it). The owner sleeps in slices only to let its hook look at signals.
//!
//! Lock order: a channel's lock, then a waiter's. The owner never holds its waiter's lock while
//! taking a channel's, and nobody takes anything while holding a waiter's lock.

use crate::core::notify::Registration;
use crate::core::sync::{Arc, Condvar, Mutex};
use crate::core::wait::{in_slices, Hook, Stop};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How a select case (or a plain send or recv, a one-case select) was completed.
#[derive(Debug, PartialEq, Eq)]
pub enum Selected<T> {
    /// A receive case got a value.
    Received(usize, T),
    /// A receive case's channel is closed and drained.
    RecvClosed(usize),
    /// A send case delivered its value.
    Sent(usize),
    /// A send case's channel is closed (its value is given back).
    SendClosed(usize),
    /// A close-watch case: its channel was closed.
    Closed(usize),
}

#[cfg(test)]
impl<T> Selected<T> {
    pub fn index(&self) -> usize {
        match self {
            Selected::Received(i, _)
            | Selected::RecvClosed(i)
            | Selected::Sent(i)
            | Selected::SendClosed(i)
            | Selected::Closed(i) => *i,
        }
    }
}

enum Status<T> {
    Waiting,
    Done(Selected<T>),
    /// The owner gave up (timeout, interrupt): nobody may complete it any more.
    Aborted,
}

struct Slot<T> {
    status: Status<T>,
    /// The values of the waiter's send cases (case index, value) until a receiver takes one.
    sends: Vec<(usize, T)>,
}

/// The values of send cases nobody took, by case index: given back to their select.
pub type Unsent<T> = Vec<(usize, T)>;

pub struct Waiter<T> {
    slot: Mutex<Slot<T>>,
    cv: Condvar,
    /// A coroutine's parked offer (an async send on an unbuffered channel) is told here when a
    /// receiver takes it or close ends it; it never sleeps on `cv`.
    notify: Option<Registration>,
}

impl<T> Waiter<T> {
    pub fn new() -> Arc<Self> {
        Arc::new(Waiter {
            slot: Mutex::new(Slot {
                status: Status::Waiting,
                sends: Vec::new(),
            }),
            cv: Condvar::new(),
            notify: None,
        })
    }

    /// A waiter owned by a coroutine: completing it notifies `r` (see core::notify).
    pub fn notifying(r: &Registration) -> Arc<Self> {
        Arc::new(Waiter {
            slot: Mutex::new(Slot {
                status: Status::Waiting,
                sends: Vec::new(),
            }),
            cv: Condvar::new(),
            notify: Some(std::sync::Arc::clone(r)),
        })
    }

    /// Before the waiter is queued anywhere: the value of its send case `case`.
    pub fn stash(&self, case: usize, value: T) {
        self.slot.lock().sends.push((case, value));
    }

    fn complete(&self, slot: &mut Slot<T>, outcome: Selected<T>) {
        slot.status = Status::Done(outcome);
        self.cv.notify_one();
        if let Some(r) = &self.notify {
            std::sync::Arc::clone(r).notify();
        }
    }

    /// A sender completes the waiter's receive case `case` with `value`; the value comes back if
    /// the waiter is no longer waiting.
    pub fn give(&self, case: usize, value: T) -> Result<(), T> {
        let mut s = self.slot.lock();
        if !matches!(s.status, Status::Waiting) {
            return Err(value);
        }
        self.complete(&mut s, Selected::Received(case, value));
        Ok(())
    }

    /// A receiver completes the waiter's send case `case`, taking its value; None if the waiter
    /// is no longer waiting.
    pub fn take(&self, case: usize) -> Option<T> {
        let mut s = self.slot.lock();
        if !matches!(s.status, Status::Waiting) {
            return None;
        }
        let i = s.sends.iter().position(|(c, _)| *c == case)?;
        let (_, v) = s.sends.swap_remove(i);
        self.complete(&mut s, Selected::Sent(case));
        Some(v)
    }

    /// Completes the waiter with an outcome that carries no value (a close); false if it was no
    /// longer waiting.
    pub fn finish(&self, outcome: Selected<T>) -> bool {
        let mut s = self.slot.lock();
        if !matches!(s.status, Status::Waiting) {
            return false;
        }
        self.complete(&mut s, outcome);
        true
    }

    pub fn is_waiting(&self) -> bool {
        matches!(self.slot.lock().status, Status::Waiting)
    }

    /// Sleeps until completed or for `slice`; true once completed (or aborted).
    fn sleep(&self, slice: Duration) -> bool {
        let mut s = self.slot.lock();
        if matches!(s.status, Status::Waiting) {
            self.cv.wait_for(&mut s, slice);
        }
        !matches!(s.status, Status::Waiting)
    }

    /// The owner's end of the wait: the outcome, unless it gave up first (None), and the values
    /// of send cases nobody took.
    pub(super) fn settle(&self) -> (Option<Selected<T>>, Unsent<T>) {
        let mut s = self.slot.lock();
        let outcome = match std::mem::replace(&mut s.status, Status::Aborted) {
            Status::Done(o) => Some(o),
            // Still waiting only when giving up; aborted by a fork child's clean-up.
            Status::Waiting | Status::Aborted => None,
        };
        (outcome, std::mem::take(&mut s.sends))
    }

    /// In a fork child, whose threads are gone: takes a send case's value without waiting for a
    /// lock that a vanished thread may hold.
    pub fn try_take_for_fork(&self, case: usize) -> Option<T> {
        let mut s = self.slot.try_lock()?;
        let i = s.sends.iter().position(|(c, _)| *c == case)?;
        s.status = Status::Aborted;
        Some(s.sends.swap_remove(i).1)
    }

    /// For a garbage collector: visits the value of send case `case`, if the lock is free.
    pub fn try_visit<E>(
        &self,
        case: usize,
        f: &mut impl FnMut(&T) -> Result<(), E>,
    ) -> Result<(), E> {
        if let Some(s) = self.slot.try_lock() {
            for (c, v) in &s.sends {
                if *c == case {
                    f(v)?;
                }
            }
        }
        Ok(())
    }
}

/// Waits until `w` is completed, or gives up at `deadline` or when `hook` says so (then the
/// outcome is Err, unless a peer completed it meanwhile: what happened, happened). Also returns
/// the values of the send cases nobody took.
pub fn block_on<T>(
    w: &Waiter<T>,
    deadline: Option<Instant>,
    hook: Hook<'_>,
) -> (Result<Selected<T>, Stop>, Unsent<T>) {
    let waited = in_slices(deadline, hook, |slice| w.sleep(slice).then_some(()));
    let (outcome, unsent) = w.settle();
    // Woken without an outcome: aborted by a fork child's clean-up.
    let stop = waited.err().unwrap_or(Stop::Timeout);
    (outcome.ok_or(stop), unsent)
}

/// One case of a waiter, queued on a channel.
struct Entry<T> {
    waiter: Arc<Waiter<T>>,
    case: usize,
}

/// The waiters blocked on one side of a channel, oldest first. Entries of waiters completed
/// elsewhere stay until their owner removes them; peers skip (and drop) them.
pub struct WaitQueue<T> {
    entries: VecDeque<Entry<T>>,
}

impl<T> Default for WaitQueue<T> {
    fn default() -> Self {
        WaitQueue {
            entries: VecDeque::new(),
        }
    }
}

impl<T> WaitQueue<T> {
    /// No entries at all: the fast paths' one check.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn push(&mut self, waiter: &Arc<Waiter<T>>, case: usize) {
        self.entries.push_back(Entry {
            waiter: Arc::clone(waiter),
            case,
        });
    }

    /// Hands `value` to the oldest waiting receiver; gives it back if nobody is waiting.
    pub fn give(&mut self, mut value: T) -> Result<(), T> {
        while let Some(e) = self.entries.pop_front() {
            match e.waiter.give(e.case, value) {
                Ok(()) => return Ok(()),
                Err(v) => value = v,
            }
        }
        Err(value)
    }

    /// Takes the value of the oldest waiting sender.
    pub fn take(&mut self) -> Option<T> {
        while let Some(e) = self.entries.pop_front() {
            if let Some(v) = e.waiter.take(e.case) {
                return Some(v);
            }
        }
        None
    }

    /// Completes every waiting waiter (close), each with `outcome(case)`.
    pub fn finish_all(&mut self, outcome: impl Fn(usize) -> Selected<T>) {
        for e in self.entries.drain(..) {
            e.waiter.finish(outcome(e.case));
        }
    }

    pub fn remove(&mut self, waiter: &Arc<Waiter<T>>) {
        if !self.entries.is_empty() {
            self.entries.retain(|e| !Arc::ptr_eq(&e.waiter, waiter));
        }
    }

    /// Whether some waiter is still waiting here (no lock is taken when the queue is empty).
    pub fn has_waiting(&self) -> bool {
        self.entries.iter().any(|e| e.waiter.is_waiting())
    }

    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.waiter.is_waiting())
            .count()
    }

    /// In a fork child: forgets every entry, returning the send values it can reach.
    pub fn forget_for_fork(&mut self) -> Vec<T> {
        self.entries
            .drain(..)
            .filter_map(|e| e.waiter.try_take_for_fork(e.case))
            .collect()
    }

    pub fn try_visit<E>(&self, f: &mut impl FnMut(&T) -> Result<(), E>) -> Result<(), E> {
        for e in &self.entries {
            e.waiter.try_visit(e.case, f)?;
        }
        Ok(())
    }
}
