//! A channel's operations for coroutines (see core::notify): each either completes at once or
//! registers, in the same critical section, so no wake-up falls between the try and the
//! registration. Nothing here waits.
//!
//! Buffered channels: an async receiver or sender holds nothing while it waits; it is woken to
//! retry with the non-blocking operation. Unbuffered channels need a rendezvous between two
//! sides that may both be coroutines, so an async sender parks a withdrawable offer (a waiter
//! that notifies instead of sleeping) in the senders' queue, where any receiver takes it. The
//! race between a receiver taking the offer and its coroutine withdrawing it (cancelled, timed
//! out) is decided by the waiter's lock, taken inside the channel's: exactly one of them wins,
//! and `settle_offer` says which.

use super::chan::Channel;
use super::state::{Capacity, TryRecv, TrySend};
use super::waker::{Selected, Waiter};
use crate::core::notify::Registration;
use crate::core::sync::Arc;

/// An async send that could not complete at once.
pub enum AsyncSend<T> {
    Closed(T),
    /// Buffered and full: the value stays with the caller, the registration waits for room.
    Registered(T),
    /// Unbuffered: the value is parked in this offer until a receiver takes it.
    Offered(Arc<Waiter<T>>),
}

/// How a parked offer ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer<T> {
    /// A receiver took the value: the send happened.
    Sent,
    /// The channel closed first: the value comes back.
    Closed(T),
    /// Withdrawn before anyone took it: the value comes back and was never received.
    Withdrawn(T),
}

impl<T> Channel<T> {
    /// Receives now, or registers `r` to be woken when a value may be there.
    pub fn recv_or_register(&self, r: &Registration) -> Result<T, TryRecv> {
        let mut st = self.state.lock();
        match st.try_recv() {
            Err(TryRecv::Empty) => {
                st.aio_recv.push(r);
                Err(TryRecv::Empty)
            }
            done => done,
        }
    }

    /// Sends now, or registers (buffered) or parks an offer notifying `r` (unbuffered).
    pub fn send_or_register(&self, value: T, r: &Registration) -> Result<(), AsyncSend<T>> {
        let mut st = self.state.lock();
        match st.try_send(value) {
            Ok(()) => Ok(()),
            Err(TrySend::Closed(v)) => Err(AsyncSend::Closed(v)),
            Err(TrySend::Full(v)) if st.cap == Capacity::Rendezvous => {
                let w = Waiter::notifying(r);
                w.stash(0, v);
                st.senders.push(&w, 0);
                st.sender_queued();
                Err(AsyncSend::Offered(w))
            }
            Err(TrySend::Full(v)) => {
                st.aio_send.push(r);
                Err(AsyncSend::Registered(v))
            }
        }
    }

    /// A receive registration gives up; a wake-up it got and cannot use goes to the next one.
    pub fn leave_recv(&self, r: &Registration) {
        self.state.lock().aio_recv.leave(r);
    }

    /// A send registration gives up (see `leave_recv`).
    pub fn leave_send(&self, r: &Registration) {
        self.state.lock().aio_send.leave(r);
    }

    /// A wake-up whose coroutine can no longer use it (its loop closed) goes to the next
    /// async receiver (`recv`) or sender.
    pub fn pass_on(&self, recv: bool) {
        let mut st = self.state.lock();
        if recv {
            st.aio_recv.wake_one();
        } else {
            st.aio_send.wake_one();
        }
    }

    /// Ends a parked offer: taken, closed, or (if neither happened yet) withdrawn now.
    pub fn settle_offer(&self, w: &Arc<Waiter<T>>) -> Offer<T> {
        let mut st = self.state.lock();
        st.senders.remove(w);
        let (outcome, mut unsent) = w.settle();
        drop(st);
        match (outcome, unsent.pop()) {
            (Some(Selected::SendClosed(_)), Some((_, v))) => Offer::Closed(v),
            (_, Some((_, v))) => Offer::Withdrawn(v),
            (_, None) => Offer::Sent,
        }
    }

    /// Coroutines registered on this channel (tests).
    #[cfg(test)]
    pub fn aio_waiting(&self) -> (usize, usize) {
        let st = self.state.lock();
        (st.aio_recv.len(), st.aio_send.len())
    }
}
