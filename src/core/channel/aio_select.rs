//! select for coroutines (see core::notify and aio.rs). A waiting async select holds one
//! notify-only registration, queued on every case's channel at once: in `aio_recv` for a
//! receive, in `aio_send` for a send on a buffered channel. Send cases on unbuffered channels
//! need a rendezvous, so their values are parked, all in ONE withdrawable offer (a `Waiter`
//! that notifies the same registration) queued in each channel's senders: a receiver that takes
//! one completes the whole offer, and the others are dead at once, as a blocking select's.
//!
//! Each round (`step`) runs with every channel of the select locked (address order, as
//! select.rs): it ends the previous round's registration (the offer is settled: a taken one is
//! the select's outcome), tries the cases in random order and, if none is ready, registers the
//! new round's registration, all in one critical section, so no wake-up falls in between. A
//! wake-up the select got from a channel and did not use (it chose another case, or gave up) is
//! passed on to that channel's next coroutine, so none is lost and a cancelled select consumes
//! nothing; only an offer a receiver already took cannot be undone (it is reported).

use super::select::{poll_order, Case, Op, SelectHandle};
use super::state::{Capacity, State};
use super::waker::{Selected, Waiter};
use crate::core::notify::Registration;
use crate::core::sync::{Arc, MutexGuard};

/// Where a case waits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Wait {
    /// For a value (or close): the channel's `aio_recv`.
    Value,
    /// For room in a buffered channel: `aio_send`.
    Room,
    /// In the select's offer (a send on an unbuffered channel).
    Offer,
}

/// Where a case of this kind on a channel of this capacity waits.
pub fn wait_of<T>(op: &Op<T>, cap: Capacity) -> Wait {
    match op {
        Op::Send(_) if cap == Capacity::Rendezvous => Wait::Offer,
        Op::Send(_) => Wait::Room,
        Op::Recv | Op::Closed => Wait::Value,
    }
}

/// An async select's registrations between rounds.
pub struct AsyncSelect<T> {
    /// The round in progress, queued on every case's channel (None: not registered).
    reg: Option<Registration>,
    /// The parked values of the send cases on unbuffered channels.
    offer: Option<Arc<Waiter<T>>>,
}

impl<T> Default for AsyncSelect<T> {
    fn default() -> Self {
        AsyncSelect {
            reg: None,
            offer: None,
        }
    }
}

/// The select's channels locked, each once, and each case's index into the guards.
struct Locked<'c, T> {
    guards: Vec<MutexGuard<'c, State<T>>>,
    lock_of: Vec<usize>,
    waits: Vec<Wait>,
}

fn lock_all<'c, T>(cases: &[Case<'c, T>]) -> Locked<'c, T> {
    let mut chans: Vec<_> = cases.iter().map(|c| c.chan).collect();
    chans.sort_unstable_by_key(|c| *c as *const _ as usize);
    chans.dedup_by(|a, b| std::ptr::eq(*a, *b));
    let lock_of = cases
        .iter()
        .map(|c| {
            chans
                .iter()
                .position(|x| std::ptr::eq(*x, c.chan))
                .unwrap_or(0)
        })
        .collect::<Vec<_>>();
    let guards: Vec<_> = chans.iter().map(|c| c.state.lock()).collect();
    let waits = cases
        .iter()
        .zip(&lock_of)
        .map(|(c, &l)| wait_of(&c.op, guards[l].cap))
        .collect();
    Locked {
        guards,
        lock_of,
        waits,
    }
}

impl<T> AsyncSelect<T> {
    pub fn is_registered(&self) -> bool {
        self.reg.is_some() || self.offer.is_some()
    }

    /// How many references to the round's registration this select itself holds (its own,
    /// and its offer's), for the binding's GC rule.
    pub fn holders(&self) -> usize {
        usize::from(self.reg.is_some()) + usize::from(self.offer.is_some())
    }

    /// One round. Ends the previous round (its offer taken: that is the outcome), tries every
    /// case and, if none is ready and `next` is given, registers `next` on every case. Returns
    /// the chosen case, or None (registered if `next` was given). Values of send cases not
    /// chosen stay in `cases`.
    pub fn step(
        &mut self,
        cases: &mut [Case<'_, T>],
        next: Option<&Registration>,
    ) -> Option<Selected<T>> {
        let mut l = lock_all(cases);
        let (woken, taken) = self.end_round(cases, &mut l);
        let chosen = taken.or_else(|| {
            let mut order = vec![0; cases.len()];
            poll_order(&mut order);
            order.iter().find_map(|&i| {
                let st = &mut *l.guards[l.lock_of[i]];
                cases[i].try_now(st, i)
            })
        });
        if let Some(s) = chosen {
            // A wake-up from the chosen case's queue was used; any other goes on.
            let used = match &s {
                Selected::Received(i, _) | Selected::RecvClosed(i) | Selected::Closed(i) => {
                    Some((l.lock_of[*i], Wait::Value))
                }
                Selected::Sent(i) | Selected::SendClosed(i) => Some((l.lock_of[*i], l.waits[*i])),
            };
            pass_on(&mut l, &woken, used);
            return Some(s);
        }
        // Nothing is ready: whatever woke us has been used up by someone else.
        if let Some(r) = next {
            self.register(cases, &mut l, r, &woken);
        }
        None
    }

    /// The select gives up (cancelled, timed out): its registrations leave, wake-ups it got go
    /// on. Returns the send case whose offer a receiver had already taken (it was delivered).
    pub fn leave(&mut self, cases: &mut [Case<'_, T>]) -> Option<Selected<T>> {
        if !self.is_registered() {
            return None;
        }
        let mut l = lock_all(cases);
        let (woken, taken) = self.end_round(cases, &mut l);
        pass_on(&mut l, &woken, None);
        taken
    }

    /// Takes the round's registration off every queue (noting those it had been woken from)
    /// and settles the offer: Some(Sent) if a receiver took it, else its values go back.
    fn end_round(
        &mut self,
        cases: &mut [Case<'_, T>],
        l: &mut Locked<'_, T>,
    ) -> (Vec<(usize, Wait)>, Option<Selected<T>>) {
        let mut woken = Vec::new();
        if let Some(r) = self.reg.take() {
            for (lk, w) in distinct(l, Wait::Offer) {
                let q = match w {
                    Wait::Value => &mut l.guards[lk].aio_recv,
                    _ => &mut l.guards[lk].aio_send,
                };
                if !q.remove(&r) {
                    woken.push((lk, w));
                }
            }
        }
        let mut taken = None;
        if let Some(w) = self.offer.take() {
            for (lk, _) in distinct(l, Wait::Value)
                .into_iter()
                .filter(|&(_, w)| w == Wait::Offer)
            {
                l.guards[lk].senders.remove(&w);
            }
            let (outcome, unsent) = w.settle();
            for (i, v) in unsent {
                cases[i].give_back(v);
            }
            // Closed first: the retry sees the close like any other ready case.
            if let Some(Selected::Sent(i)) = outcome {
                taken = Some(Selected::Sent(i));
            }
        }
        (woken, taken)
    }

    fn register(
        &mut self,
        cases: &mut [Case<'_, T>],
        l: &mut Locked<'_, T>,
        r: &Registration,
        woken: &[(usize, Wait)],
    ) {
        for (lk, w) in distinct(l, Wait::Offer) {
            let st = &mut l.guards[lk];
            let q = match w {
                Wait::Value => &mut st.aio_recv,
                _ => &mut st.aio_send,
            };
            // Woken and beaten to it: it keeps its place at the front.
            if woken.contains(&(lk, w)) {
                q.push_front(r);
            } else {
                q.push(r);
            }
        }
        self.reg = Some(std::sync::Arc::clone(r));
        if l.waits.contains(&Wait::Offer) {
            let offer = Waiter::notifying(r);
            for (i, case) in cases.iter_mut().enumerate() {
                if l.waits[i] == Wait::Offer {
                    let st = &mut *l.guards[l.lock_of[i]];
                    case.enqueue(st, &offer, i);
                }
            }
            self.offer = Some(offer);
        }
    }
}

/// The distinct (channel, wait) pairs of the cases, without those waiting as `skip`.
fn distinct<T>(l: &Locked<'_, T>, skip: Wait) -> Vec<(usize, Wait)> {
    let mut out: Vec<(usize, Wait)> = Vec::with_capacity(l.waits.len());
    for (&lk, &w) in l.lock_of.iter().zip(&l.waits) {
        if w != skip && !out.contains(&(lk, w)) {
            out.push((lk, w));
        }
    }
    out
}

/// Wake-ups the select got and did not use go to each channel's next coroutine.
fn pass_on<T>(l: &mut Locked<'_, T>, woken: &[(usize, Wait)], used: Option<(usize, Wait)>) {
    for &(lk, w) in woken {
        if Some((lk, w)) == used {
            continue;
        }
        let st = &mut l.guards[lk];
        match w {
            Wait::Value => st.aio_recv.wake_one(),
            _ => st.aio_send.wake_one(),
        };
    }
}
