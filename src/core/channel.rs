//! Go channels: unbuffered (a send completes when a receiver takes the value), buffered, or
//! unbounded; close() lets receivers drain what is buffered and then reports Closed; select waits
//! on several channels at once.
//!
//! Every blocked operation registers a `Waiter` on the channels it waits for and is woken on any
//! change to them; it then simply tries again. Broadcasting is simpler than Go's hand-off queues
//! and, with the few waiters a channel has in practice, just as fast.

use crate::core::wait::{next_wake, Hook, Stop};
use parking_lot::{Condvar, Mutex};
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

struct Entry<T> {
    value: T,
    /// Set when a receiver takes the value of a blocked unbuffered send.
    taken: Option<Arc<AtomicBool>>,
}

struct State<T> {
    buf: VecDeque<Entry<T>>,
    closed: bool,
    /// recv() calls currently blocked: an unbuffered try_send may hand its value to one.
    receivers: usize,
    /// Values sent and not yet marked done (queue.Queue's task_done/join).
    unfinished: u64,
    waiters: Vec<Arc<Waiter>>,
}

impl<T> State<T> {
    fn wake_all(&self) {
        for w in &self.waiters {
            w.wake();
        }
    }

    fn register(&mut self, w: &Arc<Waiter>) {
        if !self.waiters.iter().any(|x| Arc::ptr_eq(x, w)) {
            self.waiters.push(Arc::clone(w));
        }
    }

    fn unregister(&mut self, w: &Arc<Waiter>) {
        self.waiters.retain(|x| !Arc::ptr_eq(x, w));
    }

    /// Values a receiver can take now (an unbuffered channel's blocked offers count too).
    fn pop(&mut self) -> Option<T> {
        let e = self.buf.pop_front()?;
        if let Some(t) = e.taken {
            t.store(true, Ordering::Release);
        }
        self.wake_all();
        Some(e.value)
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
                closed: false,
                receivers: 0,
                unfinished: 0,
                waiters: Vec::new(),
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
        let room = match self.cap {
            Capacity::Unbounded => true,
            Capacity::Bounded(n) => st.buf.len() < n,
            // Only hand over to a receiver that is already waiting (and not yet promised one).
            Capacity::Rendezvous => st.receivers > st.buf.len(),
        };
        if !room {
            return Err(TrySend::Full(value));
        }
        st.buf.push_back(Entry { value, taken: None });
        st.unfinished += 1;
        st.wake_all();
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
                        st.unregister(&me);
                        break Ok(());
                    }
                    Err(TrySend::Closed(v)) => {
                        st.unregister(&me);
                        break Err((Stop::Closed, v));
                    }
                    Err(TrySend::Full(v)) => {
                        value = v;
                        st.register(&me);
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
        if r.is_err() {
            self.state.lock().unregister(&me);
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
            if st.closed {
                return Err((Stop::Closed, value));
            }
            st.buf.push_back(Entry {
                value,
                taken: Some(Arc::clone(&taken)),
            });
            st.unfinished += 1;
            st.register(&me);
            st.wake_all();
        }
        let mut stop = None;
        loop {
            if taken.load(Ordering::Acquire) {
                break;
            }
            let closed = self.state.lock().closed;
            if closed {
                stop = Some(Stop::Closed);
                break;
            }
            let Some(until) = next_wake(deadline) else {
                stop = Some(Stop::Timeout);
                break;
            };
            me.reset();
            if !taken.load(Ordering::Acquire) {
                me.sleep(until);
            }
            if hook() {
                stop = Some(Stop::Interrupted);
                break;
            }
        }
        let mut st = self.state.lock();
        st.unregister(&me);
        let Some(stop) = stop else { return Ok(()) };
        match st
            .buf
            .iter()
            .position(|e| e.taken.as_ref().is_some_and(|t| Arc::ptr_eq(t, &taken)))
        {
            Some(i) => {
                let e = st.buf.remove(i).expect("index is valid");
                st.unfinished -= 1;
                st.wake_all();
                Err((stop, e.value))
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
                st.register(&me);
                if !counted {
                    counted = true;
                    st.receivers += 1;
                    st.wake_all(); // an unbuffered sender in select or try_send may go now
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
        st.unregister(&me);
        if counted {
            st.receivers -= 1;
        }
        match r {
            // A value that arrived as we gave up (perhaps handed to us as a waiting receiver) is
            // taken rather than left behind. Not when interrupted: the caller raises instead.
            Err(Stop::Timeout) => st.pop().ok_or(Stop::Timeout),
            other => other,
        }
    }

    /// Closes the channel; false if it already was. Receivers drain what is buffered.
    pub fn close(&self) -> bool {
        let mut st = self.state.lock();
        if st.closed {
            return false;
        }
        st.closed = true;
        st.wake_all();
        true
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// Buffered values (for an unbuffered channel: values handed over but not yet taken).
    pub fn len(&self) -> usize {
        let st = self.state.lock();
        st.buf.iter().filter(|e| e.taken.is_none()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_full(&self) -> bool {
        let st = self.state.lock();
        match self.cap {
            Capacity::Unbounded => false,
            Capacity::Bounded(n) => st.buf.len() >= n,
            Capacity::Rendezvous => st.receivers <= st.buf.len(),
        }
    }

    /// Removes everything buffered (queue.Queue.shutdown(immediate=True)); returned so the
    /// caller decides where the values are dropped.
    pub fn drain(&self) -> Vec<T> {
        let mut st = self.state.lock();
        let mut out = Vec::with_capacity(st.buf.len());
        while let Some(v) = st.pop() {
            out.push(v);
        }
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
            st.wake_all();
        }
        true
    }

    /// Marks `n` values done at once (queue.Queue.shutdown(immediate=True) drops them).
    pub fn forget_unfinished(&self, n: u64) {
        let mut st = self.state.lock();
        st.unfinished = st.unfinished.saturating_sub(n);
        if st.unfinished == 0 {
            st.wake_all();
        }
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
                st.register(&me);
            }
            let Some(until) = next_wake(deadline) else {
                break Err(Stop::Timeout);
            };
            me.sleep(until);
            if hook() {
                break Err(Stop::Interrupted);
            }
        };
        self.state.lock().unregister(&me);
        r
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
/// receiver is blocked in recv() on that channel.
pub fn select<T>(
    cases: &mut [Case<'_, T>],
    block: bool,
    deadline: Option<Instant>,
    hook: Hook<'_>,
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
        let mut found = None;
        for k in 0..n {
            if let Some(s) = try_case(cases, (start + k) % n) {
                found = Some(s);
                break;
            }
        }
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
                c.chan.state.lock().register(&me);
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
        for c in cases.iter() {
            c.chan.state.lock().unregister(&me);
        }
    }
    r
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
    fn timeouts_return_the_value() {
        let c = Channel::new(Capacity::Bounded(1));
        c.try_send(1).unwrap();
        let soon = Some(Instant::now() + Duration::from_millis(5));
        assert_eq!(c.send(2, soon, &mut never()), Err((Stop::Timeout, 2)));
        let r = Channel::<u8>::new(Capacity::Rendezvous);
        let soon = Some(Instant::now() + Duration::from_millis(5));
        assert_eq!(r.send(7, soon, &mut never()), Err((Stop::Timeout, 7)));
        assert!(r.is_empty());
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
                // The value was taken before send returned: nothing is left in the channel.
                c2.len()
            });
            assert_eq!(recv(&c), Ok(5));
            assert_eq!(sender.join().unwrap(), 0);
        }
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
                let c = Arc::new(Channel::new(cap));
                let producers: Vec<_> = (0..4u64)
                    .map(|p| {
                        let c = Arc::clone(&c);
                        thread::spawn(move || {
                            for i in 0..500 {
                                send(&c, p * 10_000 + i);
                            }
                        })
                    })
                    .collect();
                let consumers: Vec<_> = (0..4)
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
                for p in producers {
                    p.join().unwrap();
                }
                c.close();
                let mut all: Vec<u64> = consumers
                    .into_iter()
                    .flat_map(|h| h.join().unwrap())
                    .collect();
                all.sort_unstable();
                let mut want: Vec<u64> = (0..4u64)
                    .flat_map(|p| (0..500).map(move |i| p * 10_000 + i))
                    .collect();
                want.sort_unstable();
                assert_eq!(all, want, "{cap:?}");
            }
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
        // Both are blocked (or about to be); close must release them.
        while c.state.lock().receivers == 0 {
            thread::yield_now();
        }
        while c2.state.lock().buf.is_empty() {
            thread::yield_now();
        }
        c.close();
        c2.close();
        assert_eq!(r.join().unwrap(), Err(Stop::Closed));
        assert_eq!(s.join().unwrap(), Err((Stop::Closed, 1)));
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
}
