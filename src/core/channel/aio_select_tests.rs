//! The async select's rounds, without threads.

use super::{AsyncSelect, Capacity, Case, Channel, Selected, TryRecv};
use crate::core::notify::testing::Counter;
use crate::core::wait::never;

#[test]
fn registers_on_every_channel_and_takes_what_woke_it() {
    let a = Channel::new(Capacity::Bounded(1));
    let b = Channel::new(Capacity::Bounded(1));
    let (c, r) = Counter::new();
    let mut sel = AsyncSelect::default();
    let mut cases = [Case::recv(&a), Case::recv(&b)];
    assert!(sel.step(&mut cases, Some(&r)).is_none());
    assert_eq!((a.aio_waiting(), b.aio_waiting()), ((1, 0), (1, 0)));
    b.try_send(5).unwrap();
    assert_eq!(c.woken(), 1);
    let mut cases = [Case::recv(&a), Case::recv(&b)];
    assert_eq!(sel.step(&mut cases, None), Some(Selected::Received(1, 5)));
    // Every registration is gone.
    assert_eq!((a.aio_waiting(), b.aio_waiting()), ((0, 0), (0, 0)));
}

#[test]
fn a_wake_up_it_does_not_use_goes_on() {
    let a = Channel::new(Capacity::Bounded(1));
    let (_c, r) = Counter::new();
    let (other, ro) = Counter::new();
    let mut sel = AsyncSelect::default();
    assert!(sel.step(&mut [Case::recv(&a)], Some(&r)).is_none());
    assert_eq!(a.recv_or_register(&ro), Err(TryRecv::Empty));
    a.try_send(1).unwrap();
    // The select is cancelled before its retry: the other coroutine is woken, value intact.
    assert_eq!(sel.leave(&mut [Case::recv(&a)]), None);
    assert_eq!(other.woken(), 1);
    assert_eq!(a.recv_or_register(&ro), Ok(1));
    assert_eq!(a.aio_waiting(), (0, 0));
}

#[test]
fn leaving_a_queued_registration_wakes_nobody() {
    let a = Channel::<i32>::new(Capacity::Bounded(1));
    let b = Channel::<i32>::new(Capacity::Bounded(1));
    let (_c, r) = Counter::new();
    let (other, ro) = Counter::new();
    let mut sel = AsyncSelect::default();
    assert!(sel
        .step(&mut [Case::recv(&a), Case::recv(&b)], Some(&r))
        .is_none());
    a.recv_or_register(&ro).unwrap_err();
    assert_eq!(sel.leave(&mut [Case::recv(&a), Case::recv(&b)]), None);
    assert_eq!(other.woken(), 0);
    assert_eq!((a.aio_waiting(), b.aio_waiting()), ((1, 0), (0, 0)));
}

#[test]
fn chosen_elsewhere_passes_the_other_wake_up_on() {
    let a = Channel::new(Capacity::Bounded(1));
    let b = Channel::new(Capacity::Bounded(1));
    let (_c, r) = Counter::new();
    let (other, ro) = Counter::new();
    let mut sel = AsyncSelect::default();
    assert!(sel
        .step(&mut [Case::recv(&a), Case::recv(&b)], Some(&r))
        .is_none());
    a.recv_or_register(&ro).unwrap_err();
    a.try_send(1).unwrap(); // wakes the select (oldest on a)
    b.try_send(2).unwrap(); // and from b
    let got = sel.step(&mut [Case::recv(&a), Case::recv(&b)], None);
    match got {
        // It took b's value: a's wake-up went to the other coroutine, a's value is still there.
        Some(Selected::Received(1, 2)) => {
            assert_eq!(other.woken(), 1);
            assert_eq!(a.try_recv(), Ok(1));
        }
        Some(Selected::Received(0, 1)) => {
            assert_eq!(other.woken(), 0);
            assert_eq!(b.try_recv(), Ok(2));
        }
        _ => panic!("expected a receive"),
    }
}

#[test]
fn buffered_send_case_waits_for_room() {
    let a = Channel::new(Capacity::Bounded(1));
    a.try_send(0).unwrap();
    let (c, r) = Counter::new();
    let mut sel = AsyncSelect::default();
    assert!(sel.step(&mut [Case::send(&a, 1)], Some(&r)).is_none());
    assert_eq!(a.aio_waiting(), (0, 1));
    assert_eq!(a.try_recv(), Ok(0));
    assert_eq!(c.woken(), 1);
    assert_eq!(
        sel.step(&mut [Case::send(&a, 1)], None),
        Some(Selected::Sent(0))
    );
    assert_eq!(a.try_recv(), Ok(1));
}

#[test]
fn unbuffered_send_cases_share_one_offer() {
    let a = Channel::new(Capacity::Rendezvous);
    let b = Channel::new(Capacity::Rendezvous);
    let (c, r) = Counter::new();
    let mut sel = AsyncSelect::default();
    let mut cases = [Case::send(&a, 1), Case::send(&b, 2)];
    assert!(sel.step(&mut cases, Some(&r)).is_none());
    // A receiver on b takes its value: the offer is completed, a's entry is dead.
    assert_eq!(b.try_recv(), Ok(2));
    assert_eq!(c.woken(), 1);
    assert_eq!(a.try_recv(), Err(TryRecv::Empty));
    let mut cases = [Case::send(&a, 1), Case::send(&b, 2)];
    assert_eq!(sel.step(&mut cases, None), Some(Selected::Sent(1)));
    assert_eq!(a.try_recv(), Err(TryRecv::Empty));
}

#[test]
fn unbuffered_offer_meets_a_blocking_receiver_and_can_be_withdrawn() {
    let a = Channel::new(Capacity::Rendezvous);
    let (_c, r) = Counter::new();
    let mut sel = AsyncSelect::default();
    assert!(sel.step(&mut [Case::send(&a, 9)], Some(&r)).is_none());
    assert_eq!(a.recv(None, &mut never()), Ok(9));
    // Taken before the timeout reached the channel: the send happened.
    assert_eq!(sel.leave(&mut [Case::send(&a, 9)]), Some(Selected::Sent(0)));
    // Withdrawn before anyone took it: nothing was sent.
    assert!(sel.step(&mut [Case::send(&a, 10)], Some(&r)).is_none());
    assert_eq!(sel.leave(&mut [Case::send(&a, 10)]), None);
    assert_eq!(a.try_recv(), Err(TryRecv::Empty));
}

#[test]
fn close_is_a_ready_case() {
    let a = Channel::<i32>::new(Capacity::Rendezvous);
    let b = Channel::<i32>::new(Capacity::Bounded(1));
    let (c, r) = Counter::new();
    let mut sel = AsyncSelect::default();
    let mut cases = [Case::send(&a, 1), Case::recv(&b)];
    assert!(sel.step(&mut cases, Some(&r)).is_none());
    b.close();
    assert!(c.woken() >= 1);
    let mut cases = [Case::send(&a, 1), Case::recv(&b)];
    assert_eq!(sel.step(&mut cases, None), Some(Selected::RecvClosed(1)));
    a.close();
    let mut cases = [Case::send(&a, 1)];
    assert_eq!(sel.step(&mut cases, None), Some(Selected::SendClosed(0)));
}
