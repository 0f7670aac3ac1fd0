//! A subscriber's bounded mailbox: what to do when it is full (the overflow policy), and which
//! consumer runs should be scheduled. A mailbox is an actor's queue: it is drained by at most
//! `workers` runs at once on a shared thread pool instead of owning a thread, so thousands of
//! subscribers do not cost thousands of OS threads.
//!
//! Rules: one Mutex guards the queue, the run count and the closed flag; every wait re-checks
//! its condition under it in a loop; nothing here runs foreign code (messages are handed back
//! to be dropped outside the lock). The lock, condvars and atomics come from `core::sync`, so
//! `make loom` model-checks this file (`loom_*` below).

use crate::core::sync::atomic::{AtomicU64, Ordering};
use crate::core::sync::{Condvar, Mutex};
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
    /// Full: Error policy, or Block policy and the wait timed out.
    Full(M),
    Closed(M),
}

struct Inner<M> {
    queue: VecDeque<M>,
    /// Consumer runs scheduled or running.
    active: usize,
    closed: bool,
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

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    #[inline]
    fn queued(&self, g: &mut Inner<M>) -> bool {
        let schedule = self.workers > 0 && g.active < self.workers;
        if schedule {
            g.active += 1;
        }
        if self.workers == 0 {
            self.not_empty.notify_one();
        }
        schedule
    }

    /// Pushes without waiting (Block behaves as Error when full: the caller then waits with
    /// `push_timeout`, detached from the interpreter).
    #[inline(always)]
    pub fn push(&self, m: M) -> Push<M> {
        let mut g = self.inner.lock();
        if g.closed {
            return Push::Closed(m);
        }
        if g.queue.len() < self.capacity {
            g.queue.push_back(m);
            return Push::Queued {
                schedule: self.queued(&mut g),
            };
        }
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
        loop {
            if g.closed {
                return Push::Closed(m);
            }
            if g.queue.len() < self.capacity {
                g.queue.push_back(m);
                return Push::Queued {
                    schedule: self.queued(&mut g),
                };
            }
            if self.not_full.wait_deadline(&mut g, deadline).timed_out() {
                return Push::Full(m);
            }
        }
    }

    /// For a scheduled consumer run: the next message. One at a time, so that what a run has
    /// not started yet stays queued: `pending` counts it, and unsubscribe or close can still
    /// discard it. None means the run must end (it has been unregistered, so the next push
    /// schedules a new one).
    pub fn pop_run(&self) -> Option<M> {
        let mut g = self.inner.lock();
        match g.queue.pop_front() {
            Some(m) => {
                self.not_full.notify_one();
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
        loop {
            if let Some(m) = g.queue.pop_front() {
                self.not_full.notify_one();
                if g.queue.is_empty() {
                    self.idle.notify_all();
                }
                return Ok(m);
            }
            if g.closed {
                return Err(true);
            }
            if self.not_empty.wait_deadline(&mut g, deadline).timed_out() {
                return Err(false);
            }
        }
    }

    /// For pull mailboxes, without waiting: Err(true) when closed and empty, Err(false) when
    /// merely empty.
    pub fn try_pop(&self) -> Result<M, bool> {
        let mut g = self.inner.lock();
        match g.queue.pop_front() {
            Some(m) => {
                self.not_full.notify_one();
                if g.queue.is_empty() {
                    self.idle.notify_all();
                }
                Ok(m)
            }
            None => Err(g.closed),
        }
    }

    /// Stops accepting messages and wakes every waiter. Queued messages stay for draining.
    pub fn close(&self) {
        let mut g = self.inner.lock();
        g.closed = true;
        self.not_full.notify_all();
        self.not_empty.notify_all();
        self.idle.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.inner.lock().closed
    }

    /// Removes every queued message (returned, to be dropped outside the lock).
    pub fn clear(&self) -> Vec<M> {
        let mut g = self.inner.lock();
        let v: Vec<M> = g.queue.drain(..).collect();
        self.not_full.notify_all();
        v
    }

    /// Waits up to `timeout` until nothing is queued and no consumer run is active.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = crate::core::wait::deadline_after(timeout);
        let mut g = self.inner.lock();
        loop {
            let idle = g.queue.is_empty() && (self.workers == 0 || g.active == 0);
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
        Some(v)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;

    #[test]
    fn overflow_policies() {
        let m = Mailbox::new(2, Overflow::DropOldest, 1);
        assert!(matches!(m.push(1), Push::Queued { schedule: true }));
        assert!(matches!(m.push(2), Push::Queued { schedule: false }));
        assert!(matches!(m.push(3), Push::Replaced { dropped: 1, .. }));
        assert_eq!(
            (m.pop_run(), m.pop_run(), m.pop_run()),
            (Some(2), Some(3), None)
        );
        assert_eq!(m.dropped.load(Ordering::Relaxed), 1);

        let m = Mailbox::new(1, Overflow::DropNewest, 1);
        m.push(1);
        assert!(matches!(m.push(2), Push::Dropped(2)));
        let m = Mailbox::new(1, Overflow::Error, 1);
        m.push(1);
        assert!(matches!(m.push(2), Push::Full(2)));
        let m = Mailbox::new(1, Overflow::Block, 1);
        m.push(1);
        assert!(matches!(
            m.push_timeout(2, Duration::from_millis(5)),
            Push::Full(2)
        ));
        m.close();
        assert!(matches!(m.push(3), Push::Closed(3)));
        assert!("nope".parse::<Overflow>().is_err());
    }

    #[test]
    fn one_worker_runs_are_never_concurrent_and_see_every_message_in_order() {
        for _ in 0..20 {
            let m = Arc::new(Mailbox::new(8, Overflow::Block, 1));
            let (sched_tx, sched_rx) = crossbeam_channel::unbounded::<()>();
            let seen = Arc::new(crate::core::sync::Mutex::new(Vec::new()));
            let consumer = {
                let m = Arc::clone(&m);
                let seen = Arc::clone(&seen);
                thread::spawn(move || {
                    // Each schedule token is one run; runs are sequential here by construction,
                    // and the mailbox must never ask for a second run while one is active.
                    while sched_rx.recv().is_ok() {
                        while let Some(x) = m.pop_run() {
                            seen.lock().push(x);
                        }
                    }
                })
            };
            let producers: Vec<_> = (0..3u64)
                .map(|p| {
                    let m = Arc::clone(&m);
                    let tx = sched_tx.clone();
                    thread::spawn(move || {
                        for i in 0..500u64 {
                            let mut msg = p * 1000 + i;
                            loop {
                                match m.push_timeout(msg, Duration::from_millis(20)) {
                                    Push::Queued { schedule } => {
                                        if schedule {
                                            tx.send(()).unwrap();
                                        }
                                        break;
                                    }
                                    Push::Full(x) => msg = x,
                                    other => panic!("{other:?}"),
                                }
                            }
                        }
                    })
                })
                .collect();
            for p in producers {
                p.join().unwrap();
            }
            assert!(m.wait_idle(Duration::from_secs(10)));
            drop(sched_tx);
            consumer.join().unwrap();
            let seen = seen.lock();
            assert_eq!(seen.len(), 1500);
            for p in 0..3u64 {
                let mine: Vec<u64> = seen.iter().copied().filter(|x| x / 1000 == p).collect();
                assert_eq!(mine, (0..500).map(|i| p * 1000 + i).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn pull_mailbox_wait_and_close() {
        let m = Arc::new(Mailbox::new(4, Overflow::Block, 0));
        let m2 = Arc::clone(&m);
        let h = thread::spawn(move || {
            let mut got = Vec::new();
            loop {
                match m2.pop_wait(Duration::from_millis(50)) {
                    Ok(x) => got.push(x),
                    Err(true) => return got,
                    Err(false) => {}
                }
            }
        });
        for i in 0..100 {
            let mut x = i;
            loop {
                match m.push_timeout(x, Duration::from_millis(20)) {
                    Push::Queued { schedule } => {
                        assert!(!schedule);
                        break;
                    }
                    Push::Full(y) => x = y,
                    other => panic!("{other:?}"),
                }
            }
        }
        m.close();
        assert_eq!(h.join().unwrap(), (0..100).collect::<Vec<_>>());
        // Ended and empty says so even without waiting.
        assert!(matches!(m.try_pop(), Err(true)));
        let open = Mailbox::<u8>::new(1, Overflow::Block, 0);
        assert!(matches!(open.try_pop(), Err(false)));
    }

    #[test]
    fn a_run_takes_one_message_at_a_time_and_ends_when_empty() {
        let m = Mailbox::new(4, Overflow::Block, 2);
        assert!(matches!(m.push(1), Push::Queued { schedule: true }));
        assert!(matches!(m.push(2), Push::Queued { schedule: true }));
        assert!(matches!(m.push(3), Push::Queued { schedule: false }));
        assert_eq!(m.pop_run(), Some(1));
        assert_eq!(m.pending(), 2, "what a run has not started stays queued");
        assert_eq!(m.clear(), vec![2, 3]);
        assert_eq!(m.pop_run(), None);
        assert!(
            !m.wait_idle(Duration::from_millis(1)),
            "one run still registered"
        );
        m.end_run();
        assert!(m.wait_idle(Duration::from_millis(1)));
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::core::sync::Arc;
    use loom::thread;

    /// Untimed waits: loom's timed waits never time out.
    const FOREVER: Duration = Duration::MAX;

    /// Stands in for the dispatch pool: run tokens handed to one consumer thread.
    struct Runs {
        tokens: Mutex<(usize, bool)>,
        cv: Condvar,
    }

    /// Block policy, capacity 1, one worker: a producer that has to wait for room, a scheduled
    /// run that takes one message at a time, and wait_idle (the drain) all agree: every message
    /// is seen once, in order, and the drain returns only once the run has ended.
    #[test]
    fn loom_block_push_run_and_drain() {
        loom::model(|| {
            let mb = Arc::new(Mailbox::new(1, Overflow::Block, 1));
            let runs = Arc::new(Runs {
                tokens: Mutex::new((0, false)),
                cv: Condvar::new(),
            });
            let seen = Arc::new(Mutex::new(Vec::new()));
            let consumer = {
                let (mb, runs, seen) = (Arc::clone(&mb), Arc::clone(&runs), Arc::clone(&seen));
                thread::spawn(move || loop {
                    {
                        let mut g = runs.tokens.lock();
                        while g.0 == 0 && !g.1 {
                            runs.cv.wait(&mut g);
                        }
                        if g.0 == 0 {
                            return;
                        }
                        g.0 -= 1;
                    }
                    while let Some(x) = mb.pop_run() {
                        seen.lock().push(x);
                    }
                })
            };
            let producer = {
                let (mb, runs) = (Arc::clone(&mb), Arc::clone(&runs));
                thread::spawn(move || {
                    for i in 0..2 {
                        match mb.push_timeout(i, FOREVER) {
                            Push::Queued { schedule } => {
                                if schedule {
                                    runs.tokens.lock().0 += 1;
                                    runs.cv.notify_all();
                                }
                            }
                            other => panic!("unexpected {other:?}"),
                        }
                    }
                })
            };
            producer.join().unwrap();
            assert!(mb.wait_idle(FOREVER));
            assert_eq!(*seen.lock(), vec![0, 1]);
            assert_eq!(mb.pending(), 0);
            runs.tokens.lock().1 = true;
            runs.cv.notify_all();
            consumer.join().unwrap();
        });
    }

    /// close() racing a producer blocked on a full Block mailbox and a pull reader: nobody is
    /// left waiting, and every message is popped, still queued, or handed back as Closed.
    #[test]
    fn loom_close_releases_blocked_pusher_and_reader() {
        loom::model(|| {
            let mb = Arc::new(Mailbox::new(1, Overflow::Block, 0));
            assert!(matches!(mb.push(0), Push::Queued { schedule: false }));
            let pusher = {
                let mb = Arc::clone(&mb);
                thread::spawn(move || match mb.push_timeout(1, FOREVER) {
                    Push::Queued { .. } => 0,
                    Push::Closed(_) => 1,
                    other => panic!("unexpected {other:?}"),
                })
            };
            let reader = {
                let mb = Arc::clone(&mb);
                thread::spawn(move || {
                    let mut got = 0;
                    while mb.pop_wait(FOREVER).is_ok() {
                        got += 1;
                    }
                    got
                })
            };
            mb.close();
            let refused = pusher.join().unwrap();
            let popped = reader.join().unwrap();
            assert_eq!(popped + mb.pending() + refused, 2);
            assert_eq!(
                mb.pending(),
                0,
                "the reader drains what was queued before it ends"
            );
        });
    }

    /// Two workers: two runs may go at once, and wait_idle returns only after both ended.
    #[test]
    fn loom_two_runs_and_wait_idle() {
        loom::model(|| {
            let mb = Arc::new(Mailbox::new(2, Overflow::DropNewest, 2));
            let mut runs = Vec::new();
            for i in 0..2 {
                if let Push::Queued { schedule: true } = mb.push(i) {
                    let mb = Arc::clone(&mb);
                    runs.push(thread::spawn(move || {
                        let mut n = 0;
                        while mb.pop_run().is_some() {
                            n += 1;
                        }
                        n
                    }));
                }
            }
            assert_eq!(runs.len(), 2);
            assert!(mb.wait_idle(FOREVER));
            assert_eq!(mb.pending(), 0);
            let total: usize = runs.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(total, 2);
        });
    }
}
