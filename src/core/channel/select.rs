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
pub(super) trait SelectHandle<T> {
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
            Op::Recv => {
                st.receivers.push(w, i);
                st.receiver_queued();
            }
            Op::Send(slot) => {
                if let Some(v) = slot.take() {
                    w.stash(i, v);
                    st.senders.push(w, i);
                    st.sender_queued();
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
    let Some(first) = cases.first().map(|c| c.chan) else {
        return wait_without_cases(block, deadline, hook);
    };
    // The bookkeeping lives on the stack for the usual few cases (no allocation per select).
    if n <= SMALL {
        let mut scratch = Scratch {
            order: [0; SMALL],
            chans: [first; SMALL],
            lock_of: [0; SMALL],
            guards: [None, None, None, None],
        };
        let Scratch {
            order,
            chans,
            lock_of,
            guards,
        } = &mut scratch;
        run(
            cases,
            &mut order[..n],
            &mut chans[..n],
            &mut lock_of[..n],
            &mut guards[..n],
            block,
            deadline,
            hook,
        )
    } else {
        let mut order = vec![0; n];
        let mut chans = vec![first; n];
        let mut lock_of = vec![0; n];
        let mut guards: Vec<Option<MutexGuard<'_, State<T>>>> = (0..n).map(|_| None).collect();
        run(
            cases,
            &mut order,
            &mut chans,
            &mut lock_of,
            &mut guards,
            block,
            deadline,
            hook,
        )
    }
}

const SMALL: usize = 4;

struct Scratch<'c, T> {
    order: [usize; SMALL],
    chans: [&'c Channel<T>; SMALL],
    lock_of: [usize; SMALL],
    guards: [Option<MutexGuard<'c, State<T>>>; SMALL],
}

/// select's body; every slice has one entry per case.
#[allow(clippy::too_many_arguments)]
fn run<'c, T>(
    cases: &mut [Case<'c, T>],
    order: &mut [usize],
    chans: &mut [&'c Channel<T>],
    lock_of: &mut [usize],
    guards: &mut [Option<MutexGuard<'c, State<T>>>],
    block: bool,
    deadline: Option<Instant>,
    hook: Hook<'_>,
) -> Result<Option<Selected<T>>, Stop> {
    let n = cases.len();
    poll_order(order);
    // Every channel once, in address order.
    for (slot, c) in chans.iter_mut().zip(cases.iter()) {
        *slot = c.chan;
    }
    chans.sort_unstable_by_key(|c| *c as *const Channel<T> as usize);
    let mut m = 0;
    for k in 0..n {
        if m == 0 || !std::ptr::eq(chans[m - 1], chans[k]) {
            chans[m] = chans[k];
            m += 1;
        }
    }
    let chans = &chans[..m];
    // Each case's index into `chans` (and so into the guards).
    for (slot, c) in lock_of.iter_mut().zip(cases.iter()) {
        *slot = chans
            .iter()
            .position(|x| std::ptr::eq(*x, c.chan))
            .unwrap_or(0);
    }
    for (g, c) in guards.iter_mut().zip(chans) {
        *g = Some(c.state.lock());
    }
    let mut ready = None;
    for &i in order.iter() {
        if let Some(st) = guards[lock_of[i]].as_deref_mut() {
            if let Some(s) = cases[i].try_now(st, i) {
                ready = Some(s);
                break;
            }
        }
    }
    if ready.is_some() || !block || expired(deadline) {
        unlock(guards);
        return match ready {
            Some(s) => Ok(Some(s)),
            None if block => Err(Stop::Timeout),
            None => Ok(None),
        };
    }
    let w = Waiter::new();
    for &i in order.iter() {
        if let Some(st) = guards[lock_of[i]].as_deref_mut() {
            cases[i].enqueue(st, &w, i);
        }
    }
    unlock(guards);
    let (r, unsent) = block_on(&w, deadline, hook);
    for (i, v) in unsent {
        cases[i].give_back(v);
    }
    // The peer that completed a case took that entry off its queue; with one case there is
    // nothing else to leave.
    if n > 1 || r.is_err() {
        for c in chans {
            let mut st = c.state.lock();
            st.receivers.remove(&w);
            st.senders.remove(&w);
            st.watchers.remove(&w);
        }
    }
    r.map(Some)
}

fn unlock<T>(guards: &mut [Option<MutexGuard<'_, State<T>>>]) {
    for g in guards.iter_mut() {
        *g = None;
    }
}

/// A select with no cases: nothing can happen but the deadline or the hook.
fn wait_without_cases<T>(
    block: bool,
    deadline: Option<Instant>,
    hook: Hook<'_>,
) -> Result<Option<Selected<T>>, Stop> {
    if !block {
        return Ok(None);
    }
    let w = Waiter::<T>::new();
    block_on(&w, deadline, hook).0.map(Some)
}

/// The order cases are tried (and queued) in: a random permutation, so that every ready case
/// is equally likely to be chosen, as in Go.
#[cfg(not(loom))]
pub(super) fn poll_order(order: &mut [usize]) {
    for (k, slot) in order.iter_mut().enumerate() {
        *slot = k;
    }
    for k in (1..order.len()).rev() {
        order.swap(k, random_below(k + 1));
    }
}

/// Under the model checker every execution must be repeatable: cases are tried in order.
#[cfg(loom)]
pub(super) fn poll_order(order: &mut [usize]) {
    for (k, slot) in order.iter_mut().enumerate() {
        *slot = k;
    }
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
