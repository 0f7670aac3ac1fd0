//! The async operations' protocol, without threads (the interleavings are in aio_loom.rs).

use super::{AsyncSend, Capacity, Channel, Offer, TryRecv};
use crate::core::notify::testing::Counter;
use crate::core::wait::never;

#[test]
fn a_value_wakes_one_registered_receiver() {
    let ch = Channel::new(Capacity::Bounded(2));
    let (a, ra) = Counter::new();
    let (b, rb) = Counter::new();
    assert_eq!(ch.recv_or_register(&ra), Err(TryRecv::Empty));
    assert_eq!(ch.recv_or_register(&rb), Err(TryRecv::Empty));
    ch.try_send(1).unwrap();
    assert_eq!((a.woken(), b.woken()), (1, 0));
    // a is cancelled before retrying: b gets the wake-up, and the value is still there.
    ch.leave_recv(&ra);
    assert_eq!(b.woken(), 1);
    assert_eq!(ch.recv_or_register(&rb), Ok(1));
}

#[test]
fn a_freed_slot_wakes_one_registered_sender() {
    let ch = Channel::new(Capacity::Bounded(1));
    let (a, ra) = Counter::new();
    ch.try_send(1).unwrap();
    match ch.send_or_register(2, &ra) {
        Err(AsyncSend::Registered(2)) => {}
        _ => panic!("expected a registration"),
    }
    assert_eq!(ch.try_recv(), Ok(1));
    assert_eq!(a.woken(), 1);
    assert!(ch.send_or_register(2, &ra).is_ok());
    assert_eq!(ch.aio_waiting(), (0, 0));
}

#[test]
fn close_wakes_every_registration() {
    let ch = Channel::<i32>::new(Capacity::Bounded(1));
    let (a, ra) = Counter::new();
    let (b, rb) = Counter::new();
    ch.recv_or_register(&ra).unwrap_err();
    ch.recv_or_register(&rb).unwrap_err();
    ch.close();
    assert_eq!((a.woken(), b.woken()), (1, 1));
    assert_eq!(ch.recv_or_register(&ra), Err(TryRecv::Closed));
}

#[test]
fn unbuffered_offer_meets_an_async_receiver() {
    let ch = Channel::new(Capacity::Rendezvous);
    let (recv, rr) = Counter::new();
    let (sent, rs) = Counter::new();
    ch.recv_or_register(&rr).unwrap_err();
    let Err(AsyncSend::Offered(w)) = ch.send_or_register(7, &rs) else {
        panic!("expected an offer");
    };
    // The parked offer woke the receiver, which takes it with a plain try.
    assert_eq!(recv.woken(), 1);
    assert_eq!(ch.recv_or_register(&rr), Ok(7));
    assert_eq!(sent.woken(), 1);
    assert_eq!(ch.settle_offer(&w), Offer::Sent);
}

#[test]
fn unbuffered_offer_withdrawn_is_never_received() {
    let ch = Channel::new(Capacity::Rendezvous);
    let (_s, rs) = Counter::new();
    let Err(AsyncSend::Offered(w)) = ch.send_or_register(7, &rs) else {
        panic!("expected an offer");
    };
    assert_eq!(ch.settle_offer(&w), Offer::Withdrawn(7));
    assert_eq!(ch.try_recv(), Err(TryRecv::Empty));
}

#[test]
fn unbuffered_offer_taken_by_a_blocking_receiver_and_closed() {
    let ch = Channel::new(Capacity::Rendezvous);
    let (_s, rs) = Counter::new();
    let Err(AsyncSend::Offered(w)) = ch.send_or_register(7, &rs) else {
        panic!("expected an offer");
    };
    assert_eq!(ch.recv(None, &mut never()), Ok(7));
    assert_eq!(ch.settle_offer(&w), Offer::Sent);
    let Err(AsyncSend::Offered(w)) = ch.send_or_register(8, &rs) else {
        panic!("expected an offer");
    };
    ch.close();
    assert_eq!(ch.settle_offer(&w), Offer::Closed(8));
}

#[test]
fn a_blocked_sync_sender_wakes_an_async_receiver() {
    let ch = std::sync::Arc::new(Channel::new(Capacity::Rendezvous));
    let (a, ra) = Counter::new();
    ch.recv_or_register(&ra).unwrap_err();
    let c = ch.clone();
    let t = std::thread::spawn(move || c.send(5, None, &mut never()));
    while a.woken() == 0 {
        std::thread::yield_now();
    }
    assert_eq!(ch.recv_or_register(&ra), Ok(5));
    t.join().unwrap().unwrap();
}
