//! select, as Go's `selectgo`: lock every channel of the select (in address order, so two
//! selects never deadlock), try the cases in a random order (so the choice is uniform among the
//! ready ones, and it is made on the state of all channels at one moment), and if none is ready
//! queue one waiter on every case before unlocking. A peer that completes any case completes
//! the whole select (waker.rs); the select then leaves the other queues.

use super::chan::{expired, Channel};
use super::state::{State, TryRecv, TrySend};
use super::waker::{block_on, Selected, Waiter};
use crate::core::sync::{Arc, MutexGuard};
use crate::core::wait::{Hook, Stop};
use std::time::Instant;

pub enum Op<T> {
    Recv,
    /// The value to send; taken out when the case is chosen.
    Send(Option<T>),
    /// Ready once the channel is closed (nothing is received).
    Closed,
}

/// One case of a select.
pub struct Case<'a, T> {
    pub chan: &'a Channel<T>,
    pub op: Op<T>,
}

impl<'a, T> Case<'a, T> {
    pub fn recv(chan: &'a Channel<T>) -> Self {
        Case { chan, op: Op::Recv }
    }

    pub fn send(chan: &'a Channel<T>, value: T) -> Self {
        Case {
            chan,
            op: Op::Send(Some(value)),
        }
    }

    pub fn closed(chan: &'a Channel<T>) -> Self {
        Case {
            chan,
            op: Op::Closed,
        }
    }

    /// A send case's value, if it was not sent.
    pub fn take_value(&mut self) -> Option<T> {
        match &mut self.op {
            Op::Send(v) => v.take(),
            _ => None,
        }
    }
}

/// What select needs from a case, with the case's channel locked: try it, queue a waiter on it,
/// and get back a send case's value afterwards.
trait SelectHandle<T> {
    fn try_now(&mut self, st: &mut State<T>, index: usize) -> Option<Selected<T>>;
    fn enqueue(&mut self, st: &mut State<T>, waiter: &Arc<Waiter<T>>, index: usize);
    fn give_back(&mut self, value: T);
}

impl<T> SelectHandle<T> for Case<'_, T> {
    fn try_now(&mut self, st: &mut State<T>, i: usize) -> Option<Selected<T>> {
        match &mut self.op {
            Op::Recv => match st.try_recv() {
                Ok(v) => Some(Selected::Received(i, v)),
                Err(TryRecv::Closed) => Some(Selected::RecvClosed(i)),
                Err(TryRecv::Empty) => None,
            },
            Op::Send(slot) => {
                let v = slot.take()?;
                match st.try_send(v) {
                    Ok(()) => Some(Selected::Sent(i)),
                    Err(TrySend::Closed(v)) => {
                        *slot = Some(v);
                        Some(Selected::SendClosed(i))
                    }
                    Err(TrySend::Full(v)) => {
                        *slot = Some(v);
                        None
                    }
                }
            }
            Op::Closed => st.closed.then_some(Selected::Closed(i)),
        }
    }

    fn enqueue(&mut self, st: &mut State<T>, w: &Arc<Waiter<T>>, i: usize) {
        match &mut self.op {
            Op::Recv => st.receivers.push(w, i),
            Op::Send(slot) => {
                if let Some(v) = slot.take() {
                    w.stash(i, v);
                    st.senders.push(w, i);
                }
            }
            Op::Closed => st.watchers.push(w, i),
        }
    }

    fn give_back(&mut self, value: T) {
        if let Op::Send(slot) = &mut self.op {
            *slot = Some(value);
        }
    }
}

/// Waits until one case can proceed and performs it. With `block == false` returns Ok(None) at
/// once when none is ready (Go's `default:`). Send values of cases not chosen stay in their
/// cases. With no cases a blocking select waits for its deadline or its hook.
pub fn select<T>(
    cases: &mut [Case<'_, T>],
    block: bool,
    deadline: Option<Instant>,
    hook: Hook<'_>,
) -> Result<Option<Selected<T>>, Stop> {
    let n = cases.len();
    let order = poll_order(n);
    // Every channel once, in address order.
    let mut chans: Vec<&Channel<T>> = cases.iter().map(|c| c.chan).collect();
    chans.sort_unstable_by_key(|c| *c as *const Channel<T> as usize);
    chans.dedup_by(|a, b| std::ptr::eq(*a, *b));
    // Each case's index into `chans` (and so into the guards).
    let lock_of: Vec<usize> = cases
        .iter()
        .map(|c| {
            chans
                .iter()
                .position(|x| std::ptr::eq(*x, c.chan))
                .unwrap_or(0)
        })
        .collect();
    let w = {
        let mut guards: Vec<MutexGuard<'_, State<T>>> =
            chans.iter().map(|c| c.state.lock()).collect();
        for &i in &order {
            if let Some(s) = cases[i].try_now(&mut guards[lock_of[i]], i) {
                return Ok(Some(s));
            }
        }
        if !block {
            return Ok(None);
        }
        if expired(deadline) {
            return Err(Stop::Timeout);
        }
        let w = Waiter::new();
        for &i in &order {
            cases[i].enqueue(&mut guards[lock_of[i]], &w, i);
        }
        w
    };
    let (r, unsent) = block_on(&w, deadline, hook);
    for (i, v) in unsent {
        cases[i].give_back(v);
    }
    // The peer that completed a case took that entry off its queue; with one case there is
    // nothing else to leave.
    if n > 1 || r.is_err() {
        for c in &chans {
            let mut st = c.state.lock();
            st.receivers.remove(&w);
            st.senders.remove(&w);
            st.watchers.remove(&w);
        }
    }
    r.map(Some)
}

/// The order cases are tried (and queued) in: a random permutation, so that every ready case
/// is equally likely to be chosen, as in Go.
#[cfg(not(loom))]
fn poll_order(n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for k in (1..n).rev() {
        order.swap(k, random_below(k + 1));
    }
    order
}

/// Under the model checker every execution must be repeatable: cases are tried in order.
#[cfg(loom)]
fn poll_order(n: usize) -> Vec<usize> {
    (0..n).collect()
}

/// A per-thread xorshift64* generator (no shared state to contend on).
#[cfg(not(loom))]
fn random_below(n: usize) -> usize {
    use crate::core::sync::atomic::{AtomicU64, Ordering};
    use std::cell::Cell;
    static SEEDS: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            SEEDS.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) | 1,
        );
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as usize % n
    })
}
