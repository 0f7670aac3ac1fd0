//! A subscriber's bounded mailbox: what to do when it is full (the overflow policy), and which
//! consumer runs should be scheduled. A mailbox is an actor's queue: it is drained by at most
//! `workers` runs at once on a shared thread pool instead of owning a thread, so thousands of
//! subscribers do not cost thousands of OS threads.
//!
//! Rules: one Mutex guards the queue, the run count and the closed flag; every wait re-checks
//! its condition under it in a loop; nothing here runs foreign code (messages are handed back
//! to be dropped outside the lock). The lock, condvars and atomics come from `core::sync`, so
//! `make loom` model-checks this file (`loom_models.rs`). Waiters are woken on the transitions
//! they wait for (full to not full: every blocked pusher; empty to not empty: one reader, which
//! passes the wake on while messages remain), not on every pop or push: a woken thread takes a
//! while to get the lock, and notifying it again meanwhile is one system call per message.
//! Coroutines wait with notify-only registrations (`core::notify`) kept next to the condvars
//! and woken on the same transitions: `aio_readers` (empty to not empty, passed on like the
//! threads' wake) and `aio_room` (full to not full: all of them).

use crate::core::notify::{NotifyQueue, Registration};
use crate::core::sync::atomic::{AtomicU64, Ordering};
use crate::core::sync::{Condvar, Mutex};
use crate::core::wait::{in_slices, Hook};
use std::collections::VecDeque;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// The publisher waits for room; nothing is lost.
    Block,
    /// The oldest queued message makes room for the new one.
    DropOldest,
    /// The new message is discarded.
    DropNewest,
    /// Publishing fails.
    Error,
}

impl FromStr for Overflow {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "block" => Overflow::Block,
            "drop_oldest" => Overflow::DropOldest,
            "drop_newest" => Overflow::DropNewest,
            "error" => Overflow::Error,
            _ => {
                return Err(format!(
                    "overflow must be 'block', 'drop_oldest', 'drop_newest' or 'error', got {s:?}"
                ))
            }
        })
    }
}

/// The outcome of a push.
#[derive(Debug)]
pub enum Push<M> {
    /// Queued; when `schedule` is true the caller must start one consumer run.
    Queued {
        schedule: bool,
    },
    /// Queued after discarding the oldest message (returned so it is dropped outside the lock).
    Replaced {
        schedule: bool,
        dropped: M,
    },
    /// Discarded under DropNewest (returned so it is dropped outside the lock).
    Dropped(M),
    /// Full: Error policy, or Block policy and the wait timed out (or its hook gave up).
    Full(M),
    Closed(M),
}

struct Inner<M> {
    queue: VecDeque<M>,
    /// Consumer runs scheduled or running (and messages async consumers are handling).
    active: usize,
    closed: bool,
    /// Coroutines waiting for a message (pull `get_async`, async handlers' consumers).
    aio_readers: NotifyQueue,
    /// Coroutines waiting for room (`publish_async` under Block).
    aio_room: NotifyQueue,
}

pub struct Mailbox<M> {
    inner: Mutex<Inner<M>>,
    not_full: Condvar,
    not_empty: Condvar,
    idle: Condvar,
    capacity: usize,
    workers: usize,
    overflow: Overflow,
    pub dropped: AtomicU64,
}

impl<M> Mailbox<M> {
    /// `workers == 0` means a pull mailbox: nothing is scheduled, consumers call `pop_wait`.
    pub fn new(capacity: usize, overflow: Overflow, workers: usize) -> Self {
        assert!(capacity > 0);
        Mailbox {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                active: 0,
                closed: false,
                aio_readers: NotifyQueue::default(),
                aio_room: NotifyQueue::default(),
            }),
            not_full: Condvar::new(),
            not_empty: Condvar::new(),
            idle: Condvar::new(),
            capacity,
            workers,
            overflow,
            dropped: AtomicU64::new(0),
        }
    }

    pub fn overflow(&self) -> Overflow {
        self.overflow
    }

    #[inline]
    fn queued(&self, g: &mut Inner<M>) -> bool {
        let schedule = self.workers > 0 && g.active < self.workers;
        if schedule {
            g.active += 1;
        }
        if self.workers == 0 && g.queue.len() == 1 {
            // Empty to not empty: one reader; it wakes the next if more is left (`took`).
            self.not_empty.notify_one();
            if !g.aio_readers.is_empty() {
                g.aio_readers.wake_one();
            }
        }
        schedule
    }

    /// After one message was taken: wakes every blocked pusher if that was the pop from full
    /// to not full. A pusher waits only after seeing the queue full under the lock, so the
    /// next pop is that transition and wakes it; waking all of them (each re-checks) means
    /// none is left asleep while there is room. Past capacity (`push_force`) the pops that
    /// leave it still full wake nobody.
    #[inline]
    fn made_room(&self, g: &mut Inner<M>) {
        if g.queue.len() + 1 == self.capacity {
            self.not_full.notify_all();
            if !g.aio_room.is_empty() {
                g.aio_room.wake_all();
            }
        }
    }

    /// A pull reader took one message: room for pushers, the next reader if more is queued
    /// (the empty-to-not-empty wake went to one reader only), the drain once empty.
    #[inline]
    fn took(&self, g: &mut Inner<M>) {
        self.made_room(g);
        if g.queue.is_empty() {
            if g.active == 0 {
                self.idle.notify_all();
            }
        } else {
            self.not_empty.notify_one();
            if !g.aio_readers.is_empty() {
                g.aio_readers.wake_one();
            }
        }
    }

    /// Queues `m` if there is room (or refuses it if closed); gives it back when full.
    #[inline(always)]
    fn put(&self, g: &mut Inner<M>, m: M) -> Result<Push<M>, M> {
        if g.closed {
            return Ok(Push::Closed(m));
        }
        if g.queue.len() < self.capacity {
            g.queue.push_back(m);
            return Ok(Push::Queued {
                schedule: self.queued(g),
            });
        }
        Err(m)
    }

    /// Pushes without waiting (Block behaves as Error when full: the caller then waits with
    /// `push_blocking`, detached from the interpreter).
    #[inline(always)]
    pub fn push(&self, m: M) -> Push<M> {
        let mut g = self.inner.lock();
        let m = match self.put(&mut g, m) {
            Ok(done) => return done,
            Err(m) => m,
        };
        match self.overflow {
            Overflow::Block | Overflow::Error => Push::Full(m),
            Overflow::DropNewest => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                Push::Dropped(m)
            }
            Overflow::DropOldest => {
                let old = g.queue.pop_front().expect("full queue is not empty");
                g.queue.push_back(m);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                Push::Replaced {
                    schedule: self.queued(&mut g),
                    dropped: old,
                }
            }
        }
    }

    /// Queues even past capacity (returns the message only when closed). For publishes made
    /// from inside a handler, which must not wait for room: that could wait for themselves.
    pub fn push_force(&self, m: M) -> Push<M> {
        let mut g = self.inner.lock();
        if g.closed {
            return Push::Closed(m);
        }
        g.queue.push_back(m);
        Push::Queued {
            schedule: self.queued(&mut g),
        }
    }

    /// Waits up to `timeout` for room (Block policy). Call without holding the GIL.
    pub fn push_timeout(&self, m: M, timeout: Duration) -> Push<M> {
        let deadline = crate::core::wait::deadline_after(timeout);
        let mut g = self.inner.lock();
        let mut m = m;
        let mut timed_out = false;
        loop {
            // Looked at once more after a timeout: a wake that came with it is not lost.
            m = match self.put(&mut g, m) {
                Ok(done) => return done,
                Err(m) => m,
            };
            if timed_out {
                return Push::Full(m);
            }
            timed_out = self.not_full.wait_deadline(&mut g, deadline).timed_out();
        }
    }

    /// Waits for room for as long as it takes (Block policy), asking `hook` between slices
    /// whether to give up: then the message comes back as Full. The one enqueue-while-full
    /// loop; call without holding the GIL.
    pub fn push_blocking(&self, m: M, hook: Hook<'_>) -> Push<M> {
        let mut m = Some(m);
        let r = in_slices(None, hook, |slice| {
            match self.push_timeout(m.take().expect("the message is back"), slice) {
                Push::Full(back) => {
                    m = Some(back);
                    None
                }
                other => Some(other),
            }
        });
        r.unwrap_or_else(|_| Push::Full(m.take().expect("the message is back")))
    }

    /// For a scheduled consumer run: the next message. One at a time, so that what a run has
    /// not started yet stays queued: `pending` counts it, and unsubscribe or close can still
    /// discard it. None means the run must end (it has been unregistered, so the next push
    /// schedules a new one).
    pub fn pop_run(&self) -> Option<M> {
        let mut g = self.inner.lock();
        match g.queue.pop_front() {
            Some(m) => {
                self.made_room(&mut g);
                Some(m)
            }
            None => {
                Self::run_ended(&self.idle, &mut g);
                None
            }
        }
    }

    /// For a run that stops early (interpreter exit) with messages left.
    pub fn end_run(&self) {
        let mut g = self.inner.lock();
        Self::run_ended(&self.idle, &mut g);
    }

    fn run_ended(idle: &Condvar, g: &mut Inner<M>) {
        g.active -= 1;
        if g.active == 0 {
            idle.notify_all();
        }
    }

    /// For pull mailboxes: waits up to `timeout` for a message. Err(true) when closed and empty,
    /// Err(false) on timeout. Call without holding the GIL.
    pub fn pop_wait(&self, timeout: Duration) -> Result<M, bool> {
        let deadline = crate::core::wait::deadline_after(timeout);
        let mut g = self.inner.lock();
        let mut timed_out = false;
        loop {
            // Looked at once more after a timeout: the wake passed on by `took` is not lost.
            if let Some(m) = g.queue.pop_front() {
                self.took(&mut g);
                return Ok(m);
            }
            if g.closed {
                return Err(true);
            }
            if timed_out {
                return Err(false);
            }
            timed_out = self.not_empty.wait_deadline(&mut g, deadline).timed_out();
        }
    }

    /// For pull mailboxes, without waiting: Err(true) when closed and empty, Err(false) when
    /// merely empty.
    pub fn try_pop(&self) -> Result<M, bool> {
        let mut g = self.inner.lock();
        match g.queue.pop_front() {
            Some(m) => {
                self.took(&mut g);
                Ok(m)
            }
            None => Err(g.closed),
        }
    }

    /// `try_pop`; with `handle`, the message counts as active until `handled`.
    pub fn try_pop_handled(&self, handle: bool) -> Result<M, bool> {
        let mut g = self.inner.lock();
        match g.queue.pop_front() {
            Some(m) => {
                if handle {
                    g.active += 1;
                }
                self.took(&mut g);
                Ok(m)
            }
            None => Err(g.closed),
        }
    }

    /// A coroutine's pop (pull mailboxes): the next message, or (empty, not closed) `r` is
    /// registered to be woken when one comes, in the same critical section. With `handle`, the
    /// message counts as active until `handled` (async handlers: a drain waits for it).
    /// Err(true) when closed and empty, Err(false) when registered.
    pub fn pop_or_register(&self, r: &Registration, handle: bool) -> Result<M, bool> {
        let mut g = self.inner.lock();
        match g.queue.pop_front() {
            Some(m) => {
                if handle {
                    g.active += 1;
                }
                self.took(&mut g);
                Ok(m)
            }
            None if g.closed => Err(true),
            None => {
                g.aio_readers.push(r);
                Err(false)
            }
        }
    }

    /// An async consumer finished the message `pop_or_register(.., true)` gave it.
    pub fn handled(&self) {
        let mut g = self.inner.lock();
        g.active -= 1;
        if g.active == 0 && g.queue.is_empty() {
            self.idle.notify_all();
        }
    }

    /// A coroutine's push under Block: queues `m` if there is room; when full, registers `r`
    /// to be woken on the transition to not full (in the same critical section) and gives the
    /// message back as Full. Other policies behave as `push`.
    pub fn push_or_register(&self, m: M, r: &Registration) -> Push<M> {
        if self.overflow != Overflow::Block {
            return self.push(m);
        }
        let mut g = self.inner.lock();
        match self.put(&mut g, m) {
            Ok(done) => done,
            Err(m) => {
                g.aio_room.push(r);
                Push::Full(m)
            }
        }
    }

    /// A coroutine stops waiting for a message: a wake-up it got and did not use goes to the
    /// next reader (a coroutine, and a thread).
    pub fn leave_readers(&self, r: &Registration) {
        let mut g = self.inner.lock();
        if g.aio_readers.leave(r) && !g.queue.is_empty() {
            self.not_empty.notify_one();
        }
    }

    /// A coroutine stops waiting for room (room wake-ups go to every waiter: none is owed,
    /// passing one on only makes another waiter look again).
    pub fn leave_room(&self, r: &Registration) {
        self.inner.lock().aio_room.leave(r);
    }

    /// A reader's wake-up reached an event loop that closed before using it: pass it on.
    pub fn pass_on_reader(&self) {
        let mut g = self.inner.lock();
        if !g.queue.is_empty() || g.closed {
            self.not_empty.notify_one();
            g.aio_readers.wake_one();
        }
    }

    /// Stops accepting messages and wakes every waiter. Queued messages stay for draining.
    pub fn close(&self) {
        let mut g = self.inner.lock();
        g.closed = true;
        self.not_full.notify_all();
        self.not_empty.notify_all();
        self.idle.notify_all();
        g.aio_readers.wake_all();
        g.aio_room.wake_all();
    }

    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    /// Removes every queued message (returned, to be dropped outside the lock).
    pub fn clear(&self) -> Vec<M> {
        let mut g = self.inner.lock();
        let v: Vec<M> = g.queue.drain(..).collect();
        self.not_full.notify_all();
        g.aio_room.wake_all();
        if g.active == 0 {
            self.idle.notify_all();
        }
        v
    }

    /// Waits up to `timeout` until nothing is queued and no consumer run is active.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = crate::core::wait::deadline_after(timeout);
        let mut g = self.inner.lock();
        loop {
            // A pull mailbox's `active` counts only messages async handlers are handling.
            let idle = g.queue.is_empty() && g.active == 0;
            if idle {
                return true;
            }
            if self.idle.wait_deadline(&mut g, deadline).timed_out() {
                return false;
            }
        }
    }

    pub fn pending(&self) -> usize {
        self.inner.lock().queue.len()
    }

    /// Visits every queued message, or none if the lock is busy: for a garbage collector's
    /// traversal, which must never wait.
    pub fn try_visit<E>(&self, mut f: impl FnMut(&M) -> Result<(), E>) -> Result<(), E> {
        if let Some(g) = self.inner.try_lock() {
            for m in g.queue.iter() {
                f(m)?;
            }
        }
        Ok(())
    }

    /// `clear` unless the lock is busy (None): for callers that must never wait.
    pub fn try_clear(&self) -> Option<Vec<M>> {
        let mut g = self.inner.try_lock()?;
        let v: Vec<M> = g.queue.drain(..).collect();
        self.not_full.notify_all();
        g.aio_room.wake_all();
        Some(v)
    }
}

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, loom))]
mod loom_models;
