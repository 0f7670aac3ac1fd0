//! Go channels: unbuffered, buffered, or unbounded; close() lets receivers drain what is buffered
//! and then reports Closed; select waits on several channels at once; `forward` merges channels
//! (fan_in). An unbuffered send completes once a receiver has taken the value, or has been handed
//! it while blocked in recv() (the value is then reserved for receivers, never returned).
//!
//! One mutex guards each channel. Non-blocking operations are a lock, a deque push or pop and, only
//! when someone is blocked, one wake-up. Blocked operations queue a `Waiter` on the side they wait
//! for and are woken one at a time; a waiter that was woken but leaves without acting (timeout,
//! Ctrl-C, a select that chose another case) passes the wake-up on, so none is lost.

use crate::core::sync::{Condvar, Mutex};
use crate::core::wait::{next_wake, Hook, Stop};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    /// Unbuffered: a sender waits for a receiver.
    Rendezvous,
    Bounded(usize),
    Unbounded,
}

/// A blocked operation's wake-up flag.
#[derive(Default)]
pub struct Waiter {
    woken: Mutex<bool>,
    cv: Condvar,
}

impl Waiter {
    fn wake(&self) {
        let mut w = self.woken.lock();
        *w = true;
        self.cv.notify_one();
    }

    fn reset(&self) {
        *self.woken.lock() = false;
    }

    /// Sleeps until woken or `until`.
    fn sleep(&self, until: Instant) {
        let mut w = self.woken.lock();
        if !*w {
            self.cv.wait_until(&mut w, until);
        }
    }
}

type Waiters = VecDeque<Arc<Waiter>>;

fn register(list: &mut Waiters, w: &Arc<Waiter>) {
    if !list.iter().any(|x| Arc::ptr_eq(x, w)) {
        list.push_back(Arc::clone(w));
    }
}

/// Removes `w`; false if it was not there (someone woke it and took it off the list).
fn unregister(list: &mut Waiters, w: &Arc<Waiter>) -> bool {
    match list.iter().position(|x| Arc::ptr_eq(x, w)) {
        Some(i) => {
            list.remove(i);
            true
        }
        None => false,
    }
}

fn wake_one(list: &mut Waiters) {
    if let Some(w) = list.pop_front() {
        w.wake();
    }
}

fn wake_all(list: &mut Waiters) {
    for w in list.drain(..) {
        w.wake();
    }
}

/// A blocked unbuffered send: its value waits here until a receiver takes it.
struct Offer<T> {
    value: T,
    taken: Arc<AtomicBool>,
    sender: Arc<Waiter>,
}

struct State<T> {
    /// Buffered values; for an unbuffered channel, values handed to receivers already waiting.
    buf: VecDeque<T>,
    /// Unbuffered channels only: blocked senders' values, oldest first.
    offers: VecDeque<Offer<T>>,
    closed: bool,
    /// What receivers get once the channel is drained, if it was closed with one.
    reason: Option<Arc<T>>,
    /// recv() calls currently blocked: an unbuffered try_send may hand its value to one.
    receivers: usize,
    /// Values sent and not yet marked done (queue.Queue's task_done/join).
    unfinished: u64,
    recv_waiters: Waiters,
    send_waiters: Waiters,
    join_waiters: Waiters,
    close_waiters: Waiters,
}

impl<T> State<T> {
    fn can_recv(&self) -> bool {
        !self.buf.is_empty() || !self.offers.is_empty()
    }

    fn pop(&mut self) -> Option<T> {
        if let Some(v) = self.buf.pop_front() {
            wake_one(&mut self.send_waiters);
            return Some(v);
        }
        let o = self.offers.pop_front()?;
        o.taken.store(true, Ordering::Release);
        o.sender.wake();
        Some(o.value)
    }

    fn push(&mut self, value: T) {
        self.buf.push_back(value);
        self.unfinished += 1;
        wake_one(&mut self.recv_waiters);
    }

    /// A woken waiter that did not act hands its wake-up to the next one still waiting.
    fn pass_on(&mut self, cap: Capacity, sending: bool) {
        if sending {
            if self.has_room(cap) {
                wake_one(&mut self.send_waiters);
            }
        } else if self.can_recv() {
            wake_one(&mut self.recv_waiters);
        }
    }

    fn has_room(&self, cap: Capacity) -> bool {
        match cap {
            Capacity::Unbounded => true,
            Capacity::Bounded(n) => self.buf.len() < n,
            // Only hand over to a receiver already waiting and not yet promised a value.
            Capacity::Rendezvous => self.receivers > self.buf.len() + self.offers.len(),
        }
    }
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

pub struct Channel<T> {
    state: Mutex<State<T>>,
    cap: Capacity,
}

impl<T> Channel<T> {
    pub fn new(cap: Capacity) -> Self {
        Channel {
            state: Mutex::new(State {
                buf: VecDeque::new(),
                offers: VecDeque::new(),
                closed: false,
                reason: None,
                receivers: 0,
                unfinished: 0,
                recv_waiters: VecDeque::new(),
                send_waiters: VecDeque::new(),
                join_waiters: VecDeque::new(),
                close_waiters: VecDeque::new(),
            }),
            cap,
        }
    }

    pub fn capacity(&self) -> Capacity {
        self.cap
    }

    fn try_send_locked(&self, st: &mut State<T>, value: T) -> Result<(), TrySend<T>> {
        if st.closed {
            return Err(TrySend::Closed(value));
        }
        if !st.has_room(self.cap) {
            return Err(TrySend::Full(value));
        }
        st.push(value);
        Ok(())
    }

    pub fn try_send(&self, value: T) -> Result<(), TrySend<T>> {
        let mut st = self.state.lock();
        self.try_send_locked(&mut st, value)
    }

    /// Sends, waiting for room (or, unbuffered, for a receiver to take the value).
    pub fn send(
        &self,
        value: T,
        deadline: Option<Instant>,
        hook: Hook<'_>,
    ) -> Result<(), (Stop, T)> {
        if self.cap == Capacity::Rendezvous {
            return self.send_rendezvous(value, deadline, hook);
        }
        let me = Arc::new(Waiter::default());
        let mut value = value;
        let r = loop {
            me.reset();
            {
                let mut st = self.state.lock();
                match self.try_send_locked(&mut st, value) {
                    Ok(()) => {
                        unregister(&mut st.send_waiters, &me);
                        return Ok(());
                    }
                    Err(TrySend::Closed(v)) => break Err((Stop::Closed, v)),
                    Err(TrySend::Full(v)) => {
                        value = v;
                        register(&mut st.send_waiters, &me);
                    }
                }
            }
            let Some(until) = next_wake(deadline) else {
                break Err((Stop::Timeout, value));
            };
            me.sleep(until);
            if hook() {
                break Err((Stop::Interrupted, value));
            }
        };
        let mut st = self.state.lock();
        if !unregister(&mut st.send_waiters, &me) {
            st.pass_on(self.cap, true);
        }
        r
    }

    /// An unbuffered send queues an offer and waits until a receiver has taken it; giving up
    /// withdraws the offer, so a value is never both returned to the sender and received.
    fn send_rendezvous(
        &self,
        value: T,
        deadline: Option<Instant>,
        hook: Hook<'_>,
    ) -> Result<(), (Stop, T)> {
        let me = Arc::new(Waiter::default());
        let taken = Arc::new(AtomicBool::new(false));
        {
            let mut st = self.state.lock();
            let value = match self.try_send_locked(&mut st, value) {
                Ok(()) => return Ok(()),
                Err(TrySend::Closed(v)) => return Err((Stop::Closed, v)),
                Err(TrySend::Full(v)) => v,
            };
            st.offers.push_back(Offer {
                value,
                taken: Arc::clone(&taken),
                sender: Arc::clone(&me),
            });
            st.unfinished += 1;
            wake_one(&mut st.recv_waiters);
        }
        let stop = loop {
            me.reset();
            if taken.load(Ordering::Acquire) {
                return Ok(());
            }
            if self.state.lock().closed {
                break Stop::Closed;
            }
            let Some(until) = next_wake(deadline) else {
                break Stop::Timeout;
            };
            me.sleep(until);
            if hook() {
                break Stop::Interrupted;
            }
        };
        let mut st = self.state.lock();
        match st.offers.iter().position(|o| Arc::ptr_eq(&o.taken, &taken)) {
            Some(i) => {
                let o = st.offers.remove(i).expect("index is valid");
                st.unfinished -= 1;
                if st.unfinished == 0 {
                    wake_all(&mut st.join_waiters);
                }
                Err((stop, o.value))
            }
            // A receiver took it after all: the send happened.
            None => Ok(()),
        }
    }

    pub fn try_recv(&self) -> Result<T, TryRecv> {
        let mut st = self.state.lock();
        match st.pop() {
            Some(v) => Ok(v),
            None if st.closed => Err(TryRecv::Closed),
            None => Err(TryRecv::Empty),
        }
    }

    /// Receives, waiting for a value; Closed once the channel is closed and drained.
    pub fn recv(&self, deadline: Option<Instant>, hook: Hook<'_>) -> Result<T, Stop> {
        let me = Arc::new(Waiter::default());
        let mut counted = false;
        let r = loop {
            me.reset();
            {
                let mut st = self.state.lock();
                if let Some(v) = st.pop() {
                    break Ok(v);
                }
                if st.closed {
                    break Err(Stop::Closed);
                }
                register(&mut st.recv_waiters, &me);
                if !counted {
                    counted = true;
                    st.receivers += 1;
                    if self.cap == Capacity::Rendezvous {
                        // A select blocked on sending here may hand its value over now.
                        wake_one(&mut st.send_waiters);
                    }
                }
            }
            let Some(until) = next_wake(deadline) else {
                break Err(Stop::Timeout);
            };
            me.sleep(until);
            if hook() {
                break Err(Stop::Interrupted);
            }
        };
        let mut st = self.state.lock();
        let was_listed = unregister(&mut st.recv_waiters, &me);
        if counted {
            st.receivers -= 1;
        }
        let r = match r {
            // A value that arrived as we gave up (perhaps handed to us as a waiting receiver) is
            // taken rather than left behind. Not when interrupted: the caller raises instead.
            Err(Stop::Timeout) => st.pop().ok_or(Stop::Timeout),
            other => other,
        };
        if r.is_err() && !was_listed {
            st.pass_on(self.cap, false);
        }
        r
    }

    /// Closes the channel; false if it already was. Receivers drain what is buffered, then get
    /// `reason` (if given to the first close) via `close_reason`.
    pub fn close_with(&self, reason: Option<T>) -> bool {
        self.close_shared(reason.map(Arc::new))
    }

    fn close_shared(&self, reason: Option<Arc<T>>) -> bool {
        let mut st = self.state.lock();
        if st.closed {
            return false;
        }
        st.closed = true;
        st.reason = reason;
        wake_all(&mut st.recv_waiters);
        wake_all(&mut st.send_waiters);
        wake_all(&mut st.close_waiters);
        for o in &st.offers {
            o.sender.wake();
        }
        true
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

    /// Values waiting to be received (for an unbuffered channel: values handed to waiting
    /// receivers but not yet taken; blocked senders do not count, as in Go).
    pub fn len(&self) -> usize {
        self.state.lock().buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_full(&self) -> bool {
        !self.state.lock().has_room(self.cap)
    }

    /// Blocked recv() calls (unbuffered channels hand values only to these).
    pub fn waiting_receivers(&self) -> usize {
        self.state.lock().receivers
    }

    /// Blocked unbuffered sends.
    pub fn waiting_senders(&self) -> usize {
        self.state.lock().offers.len()
    }

    /// Removes everything buffered and marks it done (queue.Queue.shutdown(immediate=True));
    /// returned so the caller decides where the values are dropped. Blocked unbuffered senders
    /// keep their offers: close() makes them withdraw and fail.
    pub fn drain(&self) -> Vec<T> {
        let mut st = self.state.lock();
        let out: Vec<T> = st.buf.drain(..).collect();
        st.unfinished = st.unfinished.saturating_sub(out.len() as u64);
        if st.unfinished == 0 {
            wake_all(&mut st.join_waiters);
        }
        wake_all(&mut st.send_waiters);
        out
    }

    /// queue.Queue.task_done: false if called more times than values were sent.
    pub fn task_done(&self) -> bool {
        let mut st = self.state.lock();
        if st.unfinished == 0 {
            return false;
        }
        st.unfinished -= 1;
        if st.unfinished == 0 {
            wake_all(&mut st.join_waiters);
        }
        true
    }

    pub fn unfinished(&self) -> u64 {
        self.state.lock().unfinished
    }

    /// queue.Queue.join: waits until every sent value was marked done.
    pub fn join(&self, deadline: Option<Instant>, hook: Hook<'_>) -> Result<(), Stop> {
        let me = Arc::new(Waiter::default());
        let r = loop {
            me.reset();
            {
                let mut st = self.state.lock();
                if st.unfinished == 0 {
                    break Ok(());
                }
                register(&mut st.join_waiters, &me);
            }
            let Some(until) = next_wake(deadline) else {
                break Err(Stop::Timeout);
            };
            me.sleep(until);
            if hook() {
                break Err(Stop::Interrupted);
            }
        };
        unregister(&mut self.state.lock().join_waiters, &me);
        r
    }

    /// Visits every value the channel holds, for a garbage collector; gives up (Ok) rather than
    /// wait if another thread holds the lock.
    pub fn try_visit<E>(&self, mut f: impl FnMut(&T) -> Result<(), E>) -> Result<(), E> {
        let Some(st) = self.state.try_lock() else {
            return Ok(());
        };
        for v in &st.buf {
            f(v)?;
        }
        for o in &st.offers {
            f(&o.value)?;
        }
        if let Some(r) = &st.reason {
            if Arc::strong_count(r) == 1 {
                f(r)?;
            }
        }
        Ok(())
    }

    /// Takes out every buffered value and the close reason (a garbage collector breaking a
    /// reference cycle), without waiting for the lock.
    pub fn try_take_all(&self) -> (Vec<T>, Option<Arc<T>>) {
        let Some(mut st) = self.state.try_lock() else {
            return (Vec::new(), None);
        };
        let n = st.buf.len() as u64;
        st.unfinished = st.unfinished.saturating_sub(n);
        (st.buf.drain(..).collect(), st.reason.take())
    }

    /// In a fork() child: forgets the operations other threads had in progress (those threads do
    /// not exist there) and returns their values. None if another thread held the channel's
    /// lock when the process forked: its state may be half-updated, so the channel is unusable.
    pub fn after_fork(&self) -> Option<Vec<T>> {
        let mut st = self.state.try_lock()?;
        st.recv_waiters.clear();
        st.send_waiters.clear();
        st.join_waiters.clear();
        st.close_waiters.clear();
        st.receivers = 0;
        let offers: Vec<T> = st.offers.drain(..).map(|o| o.value).collect();
        st.unfinished = st.unfinished.saturating_sub(offers.len() as u64);
        Some(offers)
    }
}

/// One case of a select: receive from a channel, or send `value` to it.
pub struct Case<'a, T> {
    pub chan: &'a Channel<T>,
    /// Some for a send case; taken out when that case is chosen.
    pub send: Option<T>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Selected<T> {
    /// A receive case got a value.
    Received(usize, T),
    /// A receive case's channel is closed and drained.
    RecvClosed(usize),
    /// A send case delivered its value.
    Sent(usize),
    /// A send case's channel is closed (its value stays in the case).
    SendClosed(usize),
}

impl<T> Selected<T> {
    fn index(&self) -> usize {
        match self {
            Selected::Received(i, _)
            | Selected::RecvClosed(i)
            | Selected::Sent(i)
            | Selected::SendClosed(i) => *i,
        }
    }
}

static SELECT_SEED: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);

/// A cheap pseudo-random start index, so no case is always preferred (Go picks at random).
fn start_index(n: usize) -> usize {
    let mut x = SELECT_SEED.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x % n as u64) as usize
}

fn try_case<T>(cases: &mut [Case<'_, T>], i: usize) -> Option<Selected<T>> {
    let case = &mut cases[i];
    match case.send.take() {
        None => match case.chan.try_recv() {
            Ok(v) => Some(Selected::Received(i, v)),
            Err(TryRecv::Closed) => Some(Selected::RecvClosed(i)),
            Err(TryRecv::Empty) => None,
        },
        Some(v) => match case.chan.try_send(v) {
            Ok(()) => Some(Selected::Sent(i)),
            Err(TrySend::Closed(v)) => {
                case.send = Some(v);
                Some(Selected::SendClosed(i))
            }
            Err(TrySend::Full(v)) => {
                case.send = Some(v);
                None
            }
        },
    }
}

/// Waits until one case can proceed and performs it. With `block == false` returns Ok(None) at
/// once when none is ready (Go's `default:`). An unbuffered send case proceeds only when a
/// receiver is blocked in recv() on that channel. `watch`, if given, also wakes the wait when it
/// closes (fan_in's forwarder watches its output); the caller's hook then decides.
pub fn select<T>(
    cases: &mut [Case<'_, T>],
    block: bool,
    deadline: Option<Instant>,
    hook: Hook<'_>,
) -> Result<Option<Selected<T>>, Stop> {
    select_watching(cases, block, deadline, hook, None)
}

fn select_watching<T>(
    cases: &mut [Case<'_, T>],
    block: bool,
    deadline: Option<Instant>,
    hook: Hook<'_>,
    watch: Option<&Channel<T>>,
) -> Result<Option<Selected<T>>, Stop> {
    let n = cases.len();
    if n == 0 {
        return if block { Err(Stop::Timeout) } else { Ok(None) };
    }
    let me = Arc::new(Waiter::default());
    let mut registered = false;
    let r = loop {
        me.reset();
        let start = start_index(n);
        let found = (0..n).find_map(|k| try_case(cases, (start + k) % n));
        if let Some(s) = found {
            break Ok(Some(s));
        }
        if !block {
            break Ok(None);
        }
        if !registered {
            // Register, then try once more: a change between the tries and the registration
            // would otherwise go unnoticed.
            for c in cases.iter() {
                let mut st = c.chan.state.lock();
                let list = match c.send {
                    Some(_) => &mut st.send_waiters,
                    None => &mut st.recv_waiters,
                };
                register(list, &me);
            }
            if let Some(w) = watch {
                register(&mut w.state.lock().close_waiters, &me);
            }
            registered = true;
            continue;
        }
        let Some(until) = next_wake(deadline) else {
            break Err(Stop::Timeout);
        };
        me.sleep(until);
        if hook() {
            break Err(Stop::Interrupted);
        }
    };
    if registered {
        let chosen = r.as_ref().ok().and_then(|s| s.as_ref()).map(|s| s.index());
        for (i, c) in cases.iter().enumerate() {
            let sending = c.send.is_some() || matches!(r, Ok(Some(Selected::Sent(j)) ) if j == i);
            let mut st = c.chan.state.lock();
            let list = if sending {
                &mut st.send_waiters
            } else {
                &mut st.recv_waiters
            };
            if !unregister(list, &me) && chosen != Some(i) {
                st.pass_on(c.chan.cap, sending);
            }
        }
        if let Some(w) = watch {
            unregister(&mut w.state.lock().close_waiters, &me);
        }
    }
    r
}

/// fan_in's loop: passes values from `inputs` to `out` until every input is closed, then closes
/// `out` with the first input's close reason. Stops early (leaving the inputs' values in place)
/// if `out` is closed by its reader. Values from one input keep their order.
pub fn forward<T>(mut inputs: Vec<&Channel<T>>, out: &Channel<T>, hook: Hook<'_>) {
    let mut first_reason: Option<Arc<T>> = None;
    while !inputs.is_empty() {
        let r = {
            let mut cases: Vec<Case<'_, T>> = inputs
                .iter()
                .map(|c| Case {
                    chan: *c,
                    send: None,
                })
                .collect();
            let mut stop = || out.is_closed() || hook();
            select_watching(&mut cases, true, None, &mut stop, Some(out))
        };
        match r {
            Ok(Some(Selected::Received(_, v))) => {
                let mut stop = || hook();
                if out.send(v, None, &mut stop).is_err() {
                    return;
                }
            }
            Ok(Some(Selected::RecvClosed(i))) => {
                let c = inputs.swap_remove(i);
                if first_reason.is_none() {
                    first_reason = c.close_reason();
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
    out.close_shared(first_reason);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::wait::never;
    use std::thread;
    use std::time::Duration;

    fn send<T>(c: &Channel<T>, v: T) {
        assert!(c.send(v, None, &mut never()).is_ok());
    }

    fn recv<T>(c: &Channel<T>) -> Result<T, Stop> {
        c.recv(None, &mut never())
    }

    #[test]
    fn buffered_order_close_and_drain() {
        let c = Channel::new(Capacity::Bounded(3));
        for i in 0..3 {
            c.try_send(i).unwrap();
        }
        assert_eq!(c.try_send(9), Err(TrySend::Full(9)));
        assert!(c.is_full());
        assert!(c.close());
        assert!(!c.close());
        assert_eq!(c.try_send(9), Err(TrySend::Closed(9)));
        assert_eq!((recv(&c), recv(&c), recv(&c)), (Ok(0), Ok(1), Ok(2)));
        assert_eq!(recv(&c), Err(Stop::Closed));
        assert_eq!(c.try_recv(), Err(TryRecv::Closed));
    }

    #[test]
    fn close_reason_is_kept_from_the_first_close() {
        let c = Channel::new(Capacity::Unbounded);
        assert!(c.close_with(Some(7)));
        assert!(!c.close_with(Some(8)));
        assert_eq!(c.close_reason().as_deref(), Some(&7));
    }

    #[test]
    fn timeouts_return_the_value() {
        let c = Channel::new(Capacity::Bounded(1));
        c.try_send(1).unwrap();
        let soon = Some(Instant::now() + Duration::from_millis(5));
        assert_eq!(c.send(2, soon, &mut never()), Err((Stop::Timeout, 2)));
        let r = Channel::<u8>::new(Capacity::Rendezvous);
        let soon = Some(Instant::now() + Duration::from_millis(5));
        assert_eq!(r.send(7, soon, &mut never()), Err((Stop::Timeout, 7)));
        assert!(r.is_empty());
        assert_eq!(r.unfinished(), 0);
        let soon = Some(Instant::now() + Duration::from_millis(5));
        assert_eq!(r.recv(soon, &mut never()), Err(Stop::Timeout));
    }

    #[test]
    fn unbuffered_send_completes_only_when_received() {
        for _ in 0..50 {
            let c = Arc::new(Channel::new(Capacity::Rendezvous));
            assert_eq!(c.try_send(1), Err(TrySend::Full(1)), "nobody is receiving");
            let c2 = Arc::clone(&c);
            let sender = thread::spawn(move || {
                send(&c2, 5);
                // Taken, or handed to the receiver blocked in recv(): no offer is left.
                c2.waiting_senders()
            });
            assert_eq!(recv(&c), Ok(5));
            assert_eq!(sender.join().unwrap(), 0);
        }
    }

    #[test]
    fn unbuffered_try_send_hands_over_to_a_blocked_receiver() {
        let c = Arc::new(Channel::new(Capacity::Rendezvous));
        let c2 = Arc::clone(&c);
        let r = thread::spawn(move || recv(&c2));
        while c.waiting_receivers() == 0 {
            thread::yield_now();
        }
        assert_eq!(c.try_send(3), Ok(()));
        assert_eq!(
            c.try_send(4),
            Err(TrySend::Full(4)),
            "one receiver, one value"
        );
        assert_eq!(r.join().unwrap(), Ok(3));
    }

    fn many_to_many(cap: Capacity, producers: u64, consumers: usize, per: u64) {
        let c = Arc::new(Channel::new(cap));
        let ps: Vec<_> = (0..producers)
            .map(|p| {
                let c = Arc::clone(&c);
                thread::spawn(move || {
                    for i in 0..per {
                        send(&c, p * 1_000_000 + i);
                    }
                })
            })
            .collect();
        let cs: Vec<_> = (0..consumers)
            .map(|_| {
                let c = Arc::clone(&c);
                thread::spawn(move || {
                    let mut got = Vec::new();
                    while let Ok(v) = recv(&c) {
                        got.push(v);
                    }
                    got
                })
            })
            .collect();
        for p in ps {
            p.join().unwrap();
        }
        c.close();
        let per_consumer: Vec<Vec<u64>> = cs.into_iter().map(|h| h.join().unwrap()).collect();
        // FIFO per producer, as each consumer sees it.
        for got in &per_consumer {
            let mut last = vec![None; producers as usize];
            for v in got {
                let p = (v / 1_000_000) as usize;
                assert!(last[p] < Some(v % 1_000_000), "{cap:?}: out of order");
                last[p] = Some(v % 1_000_000);
            }
        }
        let mut all: Vec<u64> = per_consumer.into_iter().flatten().collect();
        all.sort_unstable();
        let mut want: Vec<u64> = (0..producers)
            .flat_map(|p| (0..per).map(move |i| p * 1_000_000 + i))
            .collect();
        want.sort_unstable();
        assert_eq!(all, want, "{cap:?}");
    }

    #[test]
    fn many_producers_and_consumers_lose_and_duplicate_nothing() {
        for cap in [
            Capacity::Rendezvous,
            Capacity::Bounded(1),
            Capacity::Bounded(7),
            Capacity::Unbounded,
        ] {
            for _ in 0..5 {
                many_to_many(cap, 4, 4, 500);
            }
            many_to_many(cap, 1, 6, 300);
            many_to_many(cap, 6, 1, 300);
        }
    }

    #[test]
    fn timed_out_receivers_lose_no_wake_up() {
        // Receivers with short timeouts keep giving up while others wait for good: every value
        // must still reach a receiver (a wake-up taken by a leaver is passed on).
        for cap in [Capacity::Rendezvous, Capacity::Bounded(2)] {
            let c = Arc::new(Channel::new(cap));
            let patient: Vec<_> = (0..3)
                .map(|_| {
                    let c = Arc::clone(&c);
                    thread::spawn(move || {
                        let mut n = 0;
                        while recv(&c).is_ok() {
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            let impatient: Vec<_> = (0..3)
                .map(|_| {
                    let c = Arc::clone(&c);
                    thread::spawn(move || {
                        let mut n = 0;
                        loop {
                            let soon = Some(Instant::now() + Duration::from_micros(200));
                            match c.recv(soon, &mut never()) {
                                Ok(_) => n += 1,
                                Err(Stop::Timeout) => {}
                                Err(_) => return n,
                            }
                        }
                    })
                })
                .collect();
            for i in 0..2000 {
                send(&c, i);
            }
            c.close();
            let total: usize = patient
                .into_iter()
                .chain(impatient)
                .map(|h| h.join().unwrap())
                .sum();
            assert_eq!(total, 2000, "{cap:?}");
        }
    }

    #[test]
    fn close_wakes_blocked_receivers_and_unbuffered_senders() {
        let c = Arc::new(Channel::<u32>::new(Capacity::Rendezvous));
        let c1 = Arc::clone(&c);
        let r = thread::spawn(move || recv(&c1));
        let c2 = Arc::new(Channel::<u32>::new(Capacity::Rendezvous));
        let c3 = Arc::clone(&c2);
        let s = thread::spawn(move || c3.send(1, None, &mut never()));
        while c.waiting_receivers() == 0 {
            thread::yield_now();
        }
        while c2.waiting_senders() == 0 {
            thread::yield_now();
        }
        c.close();
        c2.close();
        assert_eq!(r.join().unwrap(), Err(Stop::Closed));
        assert_eq!(s.join().unwrap(), Err((Stop::Closed, 1)));
        assert_eq!(c2.unfinished(), 0);
    }

    #[test]
    fn select_receives_from_whichever_is_ready_and_honours_default() {
        let a = Channel::new(Capacity::Bounded(1));
        let b = Channel::new(Capacity::Bounded(1));
        let mut cases = [
            Case {
                chan: &a,
                send: None,
            },
            Case {
                chan: &b,
                send: None,
            },
        ];
        assert_eq!(select(&mut cases, false, None, &mut never()), Ok(None));
        b.try_send(2).unwrap();
        assert_eq!(
            select(&mut cases, true, None, &mut never()),
            Ok(Some(Selected::Received(1, 2)))
        );
        let soon = Some(Instant::now() + Duration::from_millis(5));
        assert_eq!(
            select(&mut cases, true, soon, &mut never()),
            Err(Stop::Timeout)
        );
        a.close();
        assert_eq!(
            select(&mut cases, true, None, &mut never()),
            Ok(Some(Selected::RecvClosed(0)))
        );
        // Send cases: b has room again.
        let mut cases = [Case {
            chan: &b,
            send: Some(9),
        }];
        assert_eq!(
            select(&mut cases, true, None, &mut never()),
            Ok(Some(Selected::Sent(0)))
        );
        assert_eq!(b.try_recv(), Ok(9));
    }

    #[test]
    fn blocked_select_wakes_on_a_send_from_another_thread() {
        for _ in 0..50 {
            let a = Arc::new(Channel::new(Capacity::Rendezvous));
            let b = Arc::new(Channel::new(Capacity::Rendezvous));
            let b2 = Arc::clone(&b);
            let t = thread::spawn(move || send(&b2, 42));
            let r = {
                let mut cases = [
                    Case {
                        chan: &*a,
                        send: None,
                    },
                    Case {
                        chan: &*b,
                        send: None,
                    },
                ];
                select(&mut cases, true, None, &mut never())
            };
            assert_eq!(r, Ok(Some(Selected::Received(1, 42))));
            t.join().unwrap();
        }
    }

    #[test]
    fn blocked_select_send_case_proceeds_when_a_receiver_arrives() {
        for _ in 0..50 {
            let a = Arc::new(Channel::new(Capacity::Rendezvous));
            let a2 = Arc::clone(&a);
            let r = thread::spawn(move || recv(&a2));
            let got = {
                let mut cases = [Case {
                    chan: &*a,
                    send: Some(5),
                }];
                select(&mut cases, true, None, &mut never())
            };
            assert_eq!(got, Ok(Some(Selected::Sent(0))));
            assert_eq!(r.join().unwrap(), Ok(5));
        }
    }

    #[test]
    fn select_that_chooses_elsewhere_leaves_the_value_for_the_receiver() {
        // A select and a plain receiver both wait on `a`; one value arrives on `b`, then one on
        // `a`. Whatever the select picks, every value reaches exactly one taker.
        for _ in 0..200 {
            let a = Arc::new(Channel::new(Capacity::Unbounded));
            let b = Arc::new(Channel::new(Capacity::Unbounded));
            let a2 = Arc::clone(&a);
            let r = thread::spawn(move || recv(&a2));
            let (a3, b3) = (Arc::clone(&a), Arc::clone(&b));
            let s = thread::spawn(move || {
                let mut cases = [
                    Case {
                        chan: &*a3,
                        send: None,
                    },
                    Case {
                        chan: &*b3,
                        send: None,
                    },
                ];
                select(&mut cases, true, None, &mut never())
            });
            b.try_send(2).unwrap();
            a.try_send(1).unwrap();
            match s.join().unwrap().unwrap().unwrap() {
                Selected::Received(1, 2) => assert_eq!(r.join().unwrap(), Ok(1)),
                Selected::Received(0, 1) => {
                    assert_eq!(b.try_recv(), Ok(2));
                    a.try_send(3).unwrap();
                    assert_eq!(r.join().unwrap(), Ok(3));
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(a.try_recv(), Err(TryRecv::Empty));
        }
    }

    #[test]
    fn select_is_fair_between_ready_cases() {
        let a = Channel::new(Capacity::Unbounded);
        let b = Channel::new(Capacity::Unbounded);
        for i in 0..1000 {
            a.try_send(i).unwrap();
            b.try_send(i).unwrap();
        }
        let mut hits = [0; 2];
        for _ in 0..1000 {
            let mut cases = [
                Case {
                    chan: &a,
                    send: None,
                },
                Case {
                    chan: &b,
                    send: None,
                },
            ];
            match select(&mut cases, true, None, &mut never())
                .unwrap()
                .unwrap()
            {
                Selected::Received(i, _) => hits[i] += 1,
                other => panic!("{other:?}"),
            }
        }
        assert!(hits[0] > 350 && hits[1] > 350, "{hits:?}");
    }

    #[test]
    fn task_done_and_join() {
        let c = Arc::new(Channel::new(Capacity::Unbounded));
        for i in 0..100 {
            c.try_send(i).unwrap();
        }
        let c2 = Arc::clone(&c);
        let worker = thread::spawn(move || {
            for _ in 0..100 {
                recv(&c2).unwrap();
                assert!(c2.task_done());
            }
        });
        assert_eq!(c.join(None, &mut never()), Ok(()));
        worker.join().unwrap();
        assert!(!c.task_done());
    }

    #[test]
    fn hook_interrupts_a_blocked_wait() {
        let c = Channel::<u8>::new(Capacity::Rendezvous);
        let mut calls = 0;
        let mut hook = || {
            calls += 1;
            calls >= 3
        };
        assert_eq!(c.recv(None, &mut hook), Err(Stop::Interrupted));
    }

    #[test]
    fn forward_merges_everything_and_closes_with_the_first_reason() {
        let ins: Vec<Arc<Channel<u64>>> = (0..3)
            .map(|_| Arc::new(Channel::new(Capacity::Bounded(2))))
            .collect();
        let out = Arc::new(Channel::new(Capacity::Bounded(4)));
        let (ins2, out2) = (ins.clone(), Arc::clone(&out));
        let fwd = thread::spawn(move || {
            let refs: Vec<&Channel<u64>> = ins2.iter().map(|c| &**c).collect();
            forward(refs, &out2, &mut never())
        });
        let producers: Vec<_> = ins
            .iter()
            .enumerate()
            .map(|(p, c)| {
                let c = Arc::clone(c);
                thread::spawn(move || {
                    for i in 0..300 {
                        send(&c, p as u64 * 1000 + i);
                    }
                    if p == 1 {
                        c.close_with(Some(99));
                    } else {
                        c.close();
                    }
                })
            })
            .collect();
        let mut got = Vec::new();
        while let Ok(v) = recv(&out) {
            got.push(v);
        }
        for p in producers {
            p.join().unwrap();
        }
        fwd.join().unwrap();
        for p in 0..3u64 {
            let mine: Vec<u64> = got.iter().copied().filter(|v| v / 1000 == p).collect();
            assert_eq!(mine, (0..300).map(|i| p * 1000 + i).collect::<Vec<_>>());
        }
        assert_eq!(out.close_reason().as_deref(), Some(&99));
    }

    #[test]
    fn forward_stops_when_its_output_is_closed() {
        let input = Arc::new(Channel::<u8>::new(Capacity::Unbounded));
        let out = Arc::new(Channel::new(Capacity::Unbounded));
        let (i2, o2) = (Arc::clone(&input), Arc::clone(&out));
        let fwd = thread::spawn(move || forward(vec![&*i2], &o2, &mut never()));
        input.try_send(1).unwrap();
        assert_eq!(recv(&out), Ok(1));
        out.close();
        fwd.join().unwrap();
        assert!(!input.is_closed());
        input.try_send(2).unwrap();
        assert_eq!(
            input.try_recv(),
            Ok(2),
            "nothing is forwarded after the output closed"
        );
    }

    #[test]
    fn after_fork_forgets_offers_and_waiters() {
        let c = Arc::new(Channel::<u8>::new(Capacity::Rendezvous));
        let c2 = Arc::clone(&c);
        let soon = Some(Instant::now() + Duration::from_millis(200));
        let s = thread::spawn(move || c2.send(1, soon, &mut never()));
        while c.waiting_senders() == 0 {
            thread::yield_now();
        }
        assert_eq!(c.after_fork(), Some(vec![1]));
        assert_eq!((c.waiting_senders(), c.unfinished()), (0, 0));
        // The sender (a thread that would not exist in a real child) then finds its offer gone
        // and reports success: acceptable only because after_fork runs where it does not exist.
        let _ = s.join().unwrap();
    }
}
