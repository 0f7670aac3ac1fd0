//! A channel's state behind its one lock, and the operations that complete at once: the buffer
//! (none, bounded or unbounded), close, the queue.Queue counter, and the waiters on each side.
//!
//! Invariants (Go's): while a receiver waits, nothing is buffered and no sender waits; while a
//! sender waits, the buffer is full (unbuffered: always) and no receiver waits. So a send first
//! hands its value to a waiting receiver, and a receive that frees a buffer slot moves the
//! oldest waiting sender's value in.

use super::waker::{Selected, WaitQueue};
use crate::core::notify::NotifyQueue;
use crate::core::sync::Arc;
use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    /// Unbuffered: a sender waits for a receiver.
    Rendezvous,
    Bounded(usize),
    Unbounded,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TrySend<T> {
    Full(T),
    Closed(T),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecv {
    Empty,
    Closed,
}

pub struct State<T> {
    /// Buffered values (unbuffered channels: only values put back by a receiver).
    pub(super) buf: VecDeque<T>,
    pub(super) cap: Capacity,
    pub(super) closed: bool,
    /// What receivers get once the channel is drained, if it was closed with one.
    pub(super) reason: Option<Arc<T>>,
    /// Values sent and not yet marked done (queue.Queue's task_done/join).
    pub(super) unfinished: u64,
    pub(super) receivers: WaitQueue<T>,
    pub(super) senders: WaitQueue<T>,
    /// Select cases waiting for the channel to close (fan_in's forwarder watches its output).
    pub(super) watchers: WaitQueue<T>,
    /// Coroutines waiting for a value (notify-only: see core::notify), woken one per value
    /// buffered or sender queued.
    pub(super) aio_recv: NotifyQueue,
    /// Coroutines waiting for room in a buffered channel, woken one per slot freed.
    pub(super) aio_send: NotifyQueue,
}

impl<T> State<T> {
    pub(super) fn new(cap: Capacity) -> Self {
        State {
            buf: VecDeque::new(),
            cap,
            closed: false,
            reason: None,
            unfinished: 0,
            receivers: WaitQueue::default(),
            senders: WaitQueue::default(),
            watchers: WaitQueue::default(),
            aio_recv: NotifyQueue::default(),
            aio_send: NotifyQueue::default(),
        }
    }

    fn room(&self) -> bool {
        match self.cap {
            Capacity::Unbounded => true,
            Capacity::Bounded(n) => self.buf.len() < n,
            Capacity::Rendezvous => false,
        }
    }

    #[inline]
    pub(super) fn try_send(&mut self, value: T) -> Result<(), TrySend<T>> {
        if self.closed {
            return Err(TrySend::Closed(value));
        }
        let value = if self.receivers.is_empty() {
            value
        } else {
            match self.receivers.give(value) {
                Ok(()) => {
                    self.unfinished += 1;
                    return Ok(());
                }
                Err(v) => v,
            }
        };
        if !self.room() {
            return Err(TrySend::Full(value));
        }
        self.buf.push_back(value);
        self.unfinished += 1;
        if !self.aio_recv.is_empty() {
            self.aio_recv.wake_one();
        }
        Ok(())
    }

    #[inline]
    pub(super) fn try_recv(&mut self) -> Result<T, TryRecv> {
        if let Some(v) = self.buf.pop_front() {
            if !self.senders.is_empty() {
                self.refill();
            }
            if !self.aio_send.is_empty() {
                self.room_freed();
            }
            return Ok(v);
        }
        if let Some(v) = self.senders.take() {
            self.unfinished += 1;
            return Ok(v);
        }
        if self.closed {
            Err(TryRecv::Closed)
        } else {
            Err(TryRecv::Empty)
        }
    }

    /// Moves waiting senders' values into free buffer room (after a receive, or a capacity
    /// change): their sends complete.
    pub(super) fn refill(&mut self) {
        while self.room() {
            match self.senders.take() {
                Some(v) => {
                    self.buf.push_back(v);
                    self.unfinished += 1;
                }
                None => break,
            }
        }
    }

    /// A slot may be free: the oldest coroutine waiting for room tries again.
    #[cold]
    pub(super) fn room_freed(&mut self) {
        if self.room() {
            self.aio_send.wake_one();
        }
    }

    /// A blocking sender was queued: a coroutine waiting for a value can take it now.
    #[inline]
    pub(super) fn sender_queued(&mut self) {
        if !self.aio_recv.is_empty() {
            self.aio_recv.wake_one();
        }
    }

    /// A blocking receiver was queued: on an unbuffered channel a coroutine's send can be
    /// handed to it now (buffered channels: its coroutines wait only while the buffer is full,
    /// and then no receiver waits).
    #[inline]
    pub(super) fn receiver_queued(&mut self) {
        if !self.aio_send.is_empty() {
            self.aio_send.wake_one();
        }
    }

    /// A value a receiver took and cannot use goes back to the front (or to a waiting
    /// receiver), still counted as sent; allowed even when closed or full.
    pub(super) fn put_back(&mut self, value: T) {
        if let Err(v) = self.receivers.give(value) {
            self.buf.push_front(v);
            self.sender_queued();
        }
    }

    pub(super) fn close(&mut self, reason: Option<Arc<T>>) -> bool {
        if self.closed {
            return false;
        }
        self.closed = true;
        self.reason = reason;
        // Waiting receivers mean an empty buffer: they are done.
        self.receivers.finish_all(Selected::RecvClosed);
        self.senders.finish_all(Selected::SendClosed);
        self.watchers.finish_all(Selected::Closed);
        self.aio_recv.wake_all();
        self.aio_send.wake_all();
        true
    }

    /// Whether a send would have to wait.
    pub(super) fn is_full(&self) -> bool {
        match self.cap {
            Capacity::Rendezvous => !self.receivers.has_waiting(),
            _ => !self.room(),
        }
    }
}
