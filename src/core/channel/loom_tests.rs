//! loom models of the channel core (`make loom`): the real code, on loom's Mutex/Condvar/Arc.
//! loom's timed waits never time out, so a lost wake-up shows up as a deadlock here, not as a
//! 20 ms delay; giving up (a timeout) is modelled by settling a queued waiter at once.

use super::waker::{Selected, Waiter};
use super::*;
use crate::core::sync::Arc;
use crate::core::wait::{never, Stop};
use loom::thread;

fn send<T>(c: &Channel<T>, v: T) -> Result<(), (Stop, T)> {
    c.send(v, None, &mut never())
}

fn recv<T>(c: &Channel<T>) -> Result<T, Stop> {
    c.recv(None, &mut never())
}

fn sel<T>(cases: &mut [Case<'_, T>]) -> Option<Selected<T>> {
    select(cases, true, None, &mut never()).ok().flatten()
}

/// An unbuffered send and a receive meet, whichever blocks first.
#[test]
fn loom_unbuffered_send_meets_recv() {
    loom::model(|| {
        let c = Arc::new(Channel::new(Capacity::Rendezvous));
        let c2 = Arc::clone(&c);
        let t = thread::spawn(move || send(&c2, 1).is_ok());
        assert_eq!(recv(&c), Ok(1));
        assert!(t.join().unwrap());
    });
}

/// A select that sends and a select that receives meet on an unbuffered channel (Go's
/// TestSelfSelect / select7): each is a waiter the other completes.
#[test]
fn loom_select_send_meets_select_recv() {
    loom::model(|| {
        let c = Arc::new(Channel::new(Capacity::Rendezvous));
        let idle = Arc::new(Channel::new(Capacity::Rendezvous));
        let (c2, idle2) = (Arc::clone(&c), Arc::clone(&idle));
        let t = thread::spawn(move || sel(&mut [Case::recv(&*idle2), Case::send(&*c2, 7)]));
        let got = sel(&mut [Case::recv(&*c), Case::recv(&*idle)]);
        assert_eq!(got, Some(Selected::Received(0, 7)));
        assert_eq!(t.join().unwrap(), Some(Selected::Sent(1)));
        assert_eq!(idle.waiting_receivers() + idle.waiting_senders(), 0);
    });
}

/// The reported lost wake-up: a value sent to a select is taken back by another receiver
/// before the select runs; the select must still get the next value (no deadlock).
#[test]
fn loom_select_still_waits_after_its_value_was_taken() {
    loom::model(|| {
        let a = Arc::new(Channel::new(Capacity::Bounded(1)));
        let b = Arc::new(Channel::new(Capacity::Rendezvous));
        let (a2, b2) = (Arc::clone(&a), Arc::clone(&b));
        let t = thread::spawn(move || sel(&mut [Case::recv(&*a2), Case::recv(&*b2)]));
        assert!(send(&a, 1).is_ok());
        let stolen = a.try_recv().is_ok();
        assert!(send(&a, 2).is_ok());
        let got = t.join().unwrap();
        match got {
            Some(Selected::Received(0, 1)) => assert!(!stolen),
            Some(Selected::Received(0, 2)) => assert!(stolen),
            other => panic!("{other:?}"),
        }
    });
}

/// A select waiting on two channels is completed once: of two racing non-blocking sends,
/// exactly one gets through.
#[test]
fn loom_select_is_claimed_once() {
    loom::model(|| {
        let a = Arc::new(Channel::new(Capacity::Rendezvous));
        let b = Arc::new(Channel::new(Capacity::Rendezvous));
        let (a2, b2) = (Arc::clone(&a), Arc::clone(&b));
        let s = thread::spawn(move || sel(&mut [Case::recv(&*a2), Case::recv(&*b2)]));
        // Wait until the select is queued, so that a try_send can succeed at all.
        while a.waiting_receivers() == 0 {
            thread::yield_now();
        }
        let b3 = Arc::clone(&b);
        let other = thread::spawn(move || b3.try_send(2).is_ok());
        let sent_a = a.try_send(1).is_ok();
        let sent_b = other.join().unwrap();
        let got = s.join().unwrap();
        assert!(sent_a ^ sent_b, "exactly one send completes the select");
        match got {
            Some(Selected::Received(0, 1)) => assert!(sent_a),
            Some(Selected::Received(1, 2)) => assert!(sent_b),
            other => panic!("{other:?}"),
        }
        assert_eq!(a.waiting_receivers() + b.waiting_receivers(), 0);
    });
}

/// Giving up (a timeout) racing a sender: the value is received exactly once or stays with
/// the sender, never both, never lost.
#[test]
fn loom_giving_up_races_a_send() {
    loom::model(|| {
        let c = Arc::new(Channel::new(Capacity::Rendezvous));
        let w = Waiter::new();
        c.state.lock().receivers.push(&w, 0);
        let c2 = Arc::clone(&c);
        let t = thread::spawn(move || c2.try_send(5));
        let (outcome, _) = w.settle();
        c.state.lock().receivers.remove(&w);
        match (outcome, t.join().unwrap()) {
            (Some(Selected::Received(0, 5)), Ok(())) => {}
            (None, Err(TrySend::Full(5))) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(c.waiting_receivers(), 0);
    });
}

/// close racing a blocked send and a blocked receive: the value is received exactly when the
/// send reports success.
#[test]
fn loom_close_races_send_and_recv() {
    loom::model(|| {
        let c = Arc::new(Channel::new(Capacity::Rendezvous));
        let (c2, c3) = (Arc::clone(&c), Arc::clone(&c));
        let s = thread::spawn(move || send(&c2, 9).is_ok());
        let r = thread::spawn(move || recv(&c3));
        c.close();
        let sent = s.join().unwrap();
        let got = r.join().unwrap();
        assert_eq!(sent, got == Ok(9));
        assert!(matches!(got, Ok(9) | Err(Stop::Closed)));
    });
}

/// A sender blocked on a full buffer moves into it when a receiver makes room.
#[test]
fn loom_blocked_sender_moves_into_the_buffer() {
    loom::model(|| {
        let c = Arc::new(Channel::new(Capacity::Bounded(1)));
        assert!(c.try_send(1).is_ok());
        let c2 = Arc::clone(&c);
        let t = thread::spawn(move || send(&c2, 2).is_ok());
        assert_eq!(recv(&c), Ok(1));
        assert_eq!(recv(&c), Ok(2));
        assert!(t.join().unwrap());
        assert_eq!(c.unfinished(), 2);
    });
}

/// fan_in's forwarder whose output is closed under it gives back the value it took.
#[test]
fn loom_forward_gives_back_what_it_cannot_deliver() {
    loom::model(|| {
        let input = Arc::new(Channel::new(Capacity::Bounded(1)));
        let out = Arc::new(Channel::new(Capacity::Rendezvous));
        assert!(input.try_send(3).is_ok());
        let (i2, o2) = (Arc::clone(&input), Arc::clone(&out));
        let t = thread::spawn(move || forward(vec![&*i2], &o2, &mut never()));
        out.close();
        t.join().unwrap();
        assert_eq!(input.try_recv(), Ok(3));
        assert!(!input.is_closed());
    });
}
