//! The channel itself: non-blocking operations are one lock and a deque push or pop (or a
//! hand-over to a waiting peer); blocking ones queue a waiter and sleep until a peer or close
//! completes it (see waker.rs).

use super::state::{Capacity, State, TryRecv, TrySend};
use super::waker::{block_on, Selected, Waiter};
use crate::core::sync::{Arc, Condvar, Mutex};
use crate::core::wait::{Hook, Stop};
use std::time::Instant;

pub struct Channel<T> {
    pub(super) state: Mutex<State<T>>,
    /// queue.Queue.join's waiters: told when the count of unfinished values drops to zero.
    pub(super) all_done: Condvar,
}

/// A deadline that has already passed: the operation only tries.
pub(super) fn expired(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| d <= Instant::now())
}

impl<T> Channel<T> {
    pub fn new(cap: Capacity) -> Self {
        Channel {
            state: Mutex::new(State::new(cap)),
            all_done: Condvar::new(),
        }
    }

    pub fn capacity(&self) -> Capacity {
        self.state.lock().cap
    }

    /// Sends if that needs no waiting: room in the buffer, or (any capacity) a receiver waiting.
    /// Inlined: it is the whole of a send under the GIL, and a call costs as much as the push.
    #[inline]
    pub fn try_send(&self, value: T) -> Result<(), TrySend<T>> {
        self.state.lock().try_send(value)
    }

    #[inline]
    pub fn try_recv(&self) -> Result<T, TryRecv> {
        self.state.lock().try_recv()
    }

    /// Sends, waiting for room or (unbuffered) for a receiver to take the value. On failure the
    /// value comes back and was never received.
    pub fn send(
        &self,
        value: T,
        deadline: Option<Instant>,
        hook: Hook<'_>,
    ) -> Result<(), (Stop, T)> {
        let w = {
            let mut st = self.state.lock();
            let value = match st.try_send(value) {
                Ok(()) => return Ok(()),
                Err(TrySend::Closed(v)) => return Err((Stop::Closed, v)),
                Err(TrySend::Full(v)) => v,
            };
            if expired(deadline) {
                return Err((Stop::Timeout, value));
            }
            let w = Waiter::new();
            w.stash(0, value);
            st.senders.push(&w, 0);
            st.sender_queued();
            w
        };
        let (r, mut unsent) = block_on(&w, deadline, hook);
        let stop = match r {
            Ok(Selected::SendClosed(_)) => Stop::Closed,
            Ok(_) => return Ok(()),
            Err(stop) => {
                self.state.lock().senders.remove(&w);
                stop
            }
        };
        match unsent.pop() {
            Some((_, v)) => Err((stop, v)),
            // No value to give back: a receiver took it, so the send happened.
            None => Ok(()),
        }
    }

    /// Receives, waiting for a value; Closed once the channel is closed and drained.
    pub fn recv(&self, deadline: Option<Instant>, hook: Hook<'_>) -> Result<T, Stop> {
        let w = {
            let mut st = self.state.lock();
            match st.try_recv() {
                Ok(v) => return Ok(v),
                Err(TryRecv::Closed) => return Err(Stop::Closed),
                Err(TryRecv::Empty) => {}
            }
            if expired(deadline) {
                return Err(Stop::Timeout);
            }
            let w = Waiter::new();
            st.receivers.push(&w, 0);
            st.receiver_queued();
            w
        };
        match block_on(&w, deadline, hook).0 {
            Ok(Selected::Received(_, v)) => Ok(v),
            Ok(_) => Err(Stop::Closed),
            Err(stop) => {
                self.state.lock().receivers.remove(&w);
                Err(stop)
            }
        }
    }

    /// Closes the channel; false if it already was. Receivers drain what is buffered, then get
    /// `reason` (if given to the first close) via `close_reason`.
    pub fn close_with(&self, reason: Option<T>) -> bool {
        self.close_shared(reason.map(Arc::new))
    }

    pub(super) fn close_shared(&self, reason: Option<Arc<T>>) -> bool {
        self.state.lock().close(reason)
    }

    pub fn close(&self) -> bool {
        self.close_with(None)
    }

    pub fn close_reason(&self) -> Option<Arc<T>> {
        self.state.lock().reason.clone()
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// Values waiting to be received (blocked senders' values do not count, as in Go).
    pub fn len(&self) -> usize {
        self.state.lock().buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a send would have to wait.
    pub fn is_full(&self) -> bool {
        self.state.lock().is_full()
    }

    /// Receive operations (plain or select cases) waiting on this channel (tests wait for
    /// a peer to block with it).
    #[cfg(test)]
    pub fn waiting_receivers(&self) -> usize {
        self.state.lock().receivers.waiting()
    }

    /// Send operations (plain or select cases) waiting on this channel.
    #[cfg(test)]
    pub fn waiting_senders(&self) -> usize {
        self.state.lock().senders.waiting()
    }
}
