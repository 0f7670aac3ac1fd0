//! loom models of the async protocol (core::notify, aio.rs): the real code on loom's locks.

use super::*;
use crate::core::notify::testing::Counter;
use crate::core::sync::Arc;
use loom::thread;

/// Register-then-notify cannot lose a wake-up: the receiver either gets the value at once or
/// is woken for it.
#[test]
fn loom_aio_no_lost_wakeup_between_register_and_send() {
    loom::model(|| {
        let c = Arc::new(Channel::new(Capacity::Bounded(1)));
        let c2 = Arc::clone(&c);
        let (n, r) = Counter::new();
        let t = thread::spawn(move || c2.try_send(1).is_ok());
        let got = c.recv_or_register(&r).ok();
        assert!(t.join().unwrap());
        match got {
            Some(v) => assert_eq!(v, 1),
            None => {
                assert_eq!(n.woken(), 1);
                assert_eq!(c.try_recv(), Ok(1));
            }
        }
    });
}

/// A woken receiver that is cancelled passes its wake-up on: the other one is always woken,
/// whether the cancel comes before or after the value.
#[test]
fn loom_aio_wake_passed_on_after_cancel() {
    loom::model(|| {
        let c = Arc::new(Channel::new(Capacity::Bounded(1)));
        let (_a, ra) = Counter::new();
        let (b, rb) = Counter::new();
        c.recv_or_register(&ra).unwrap_err();
        c.recv_or_register(&rb).unwrap_err();
        let c2 = Arc::clone(&c);
        let t = thread::spawn(move || c2.try_send(1).is_ok());
        c.leave_recv(&ra);
        assert!(t.join().unwrap());
        assert_eq!(b.woken(), 1);
        assert_eq!(c.try_recv(), Ok(1));
    });
}

/// Unbuffered rendezvous between two async sides: a receiver taking the parked offer and its
/// sender withdrawing it race; exactly one wins and the value is never both sent and returned.
#[test]
fn loom_aio_offer_take_vs_withdraw() {
    loom::model(|| {
        let c = Arc::new(Channel::new(Capacity::Rendezvous));
        let (_s, rs) = Counter::new();
        let Err(AsyncSend::Offered(w)) = c.send_or_register(7, &rs) else {
            panic!("expected an offer");
        };
        let c2 = Arc::clone(&c);
        let t = thread::spawn(move || c2.try_recv().ok());
        let offer = c.settle_offer(&w);
        let taken = t.join().unwrap();
        match offer {
            Offer::Sent => assert_eq!(taken, Some(7)),
            Offer::Withdrawn(v) => {
                assert_eq!(v, 7);
                assert_eq!(taken, None);
            }
            Offer::Closed(_) => panic!("never closed"),
        }
    });
}

/// An async select on two channels, each fed by its own thread while it registers and then
/// retries: it never misses a value (it gets one at once or is woken) and takes exactly one;
/// the other stays in its channel.
#[test]
fn loom_aio_select_takes_exactly_one() {
    loom::model(|| {
        let a = Arc::new(Channel::new(Capacity::Bounded(1)));
        let b = Arc::new(Channel::new(Capacity::Bounded(1)));
        let (a2, b2) = (Arc::clone(&a), Arc::clone(&b));
        let (n, r) = Counter::new();
        let ta = thread::spawn(move || a2.try_send(1).is_ok());
        let tb = thread::spawn(move || b2.try_send(2).is_ok());
        let mut sel = AsyncSelect::default();
        let first = sel.step(&mut [Case::recv(&a), Case::recv(&b)], Some(&r));
        assert!(ta.join().unwrap() && tb.join().unwrap());
        let got = match first {
            Some(s) => s,
            None => {
                assert!(n.woken() >= 1);
                sel.step(&mut [Case::recv(&a), Case::recv(&b)], None)
                    .expect("woken for a value")
            }
        };
        let left = match got {
            Selected::Received(0, 1) => b.try_recv(),
            Selected::Received(1, 2) => a.try_recv(),
            _ => panic!("expected one receive"),
        };
        assert!(left.is_ok());
        assert_eq!((a.aio_waiting(), b.aio_waiting()), ((0, 0), (0, 0)));
    });
}

/// An async select's one offer over two unbuffered channels, taken by two racing receivers
/// while the select withdraws it: at most one value is delivered, and `leave` says which.
#[test]
fn loom_aio_select_offer_delivers_at_most_one() {
    loom::model(|| {
        let a = Arc::new(Channel::new(Capacity::Rendezvous));
        let b = Arc::new(Channel::new(Capacity::Rendezvous));
        let (_n, r) = Counter::new();
        let mut sel = AsyncSelect::default();
        assert!(sel
            .step(&mut [Case::send(&a, 1), Case::send(&b, 2)], Some(&r))
            .is_none());
        let (a2, b2) = (Arc::clone(&a), Arc::clone(&b));
        let ta = thread::spawn(move || a2.try_recv().ok());
        let tb = thread::spawn(move || b2.try_recv().ok());
        let left = sel.leave(&mut [Case::send(&a, 1), Case::send(&b, 2)]);
        let got = (ta.join().unwrap(), tb.join().unwrap());
        match left {
            Some(Selected::Sent(0)) => assert_eq!(got, (Some(1), None)),
            Some(Selected::Sent(1)) => assert_eq!(got, (None, Some(2))),
            None => assert_eq!(got, (None, None)),
            _ => panic!("unexpected outcome"),
        }
    });
}
