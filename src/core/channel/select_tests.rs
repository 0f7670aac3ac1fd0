//! The channel core's unit tests for select and forward (fan_in): pairing, fairness, watches.

use super::*;
use crate::core::sync::Arc;
use crate::core::wait::{never, Stop};
use std::thread;
use std::time::{Duration, Instant};

fn send<T>(c: &Channel<T>, v: T) {
    assert!(c.send(v, None, &mut never()).is_ok());
}

fn recv<T>(c: &Channel<T>) -> Result<T, Stop> {
    c.recv(None, &mut never())
}

fn blocking<T>(cases: &mut [Case<'_, T>]) -> Selected<T> {
    select(cases, true, None, &mut never())
        .unwrap()
        .expect("a blocking select returns a case")
}

#[test]
fn select_receives_from_whichever_is_ready_and_honours_default() {
    let a = Channel::new(Capacity::Bounded(1));
    let b = Channel::new(Capacity::Bounded(1));
    let mut cases = [Case::recv(&a), Case::recv(&b)];
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
    let mut cases = [Case::send(&b, 9)];
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
            let mut cases = [Case::recv(&*a), Case::recv(&*b)];
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
            let mut cases = [Case::send(&*a, 5)];
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
            let mut cases = [Case::recv(&*a3), Case::recv(&*b3)];
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
        let mut cases = [Case::recv(&a), Case::recv(&b)];
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
fn selects_meet_selects_on_an_unbuffered_channel() {
    for i in 0..200u64 {
        let c = Arc::new(Channel::new(Capacity::Rendezvous));
        let spare = Channel::new(Capacity::Rendezvous);
        let c2 = Arc::clone(&c);
        let t = thread::spawn(move || {
            let idle = Channel::new(Capacity::Rendezvous);
            blocking(&mut [Case::recv(&idle), Case::recv(&*c2)])
        });
        let sent = blocking(&mut [Case::send(&spare, 0), Case::send(&*c, i)]);
        assert_eq!(sent, Selected::Sent(1));
        assert_eq!(t.join().unwrap(), Selected::Received(1, i));
        assert_eq!((c.waiting_receivers(), c.waiting_senders()), (0, 0));
        assert_eq!(spare.waiting_senders(), 0);
    }
}

#[test]
fn non_blocking_operations_see_peers_blocked_in_select() {
    let c = Arc::new(Channel::new(Capacity::Rendezvous));
    let c2 = Arc::clone(&c);
    let t = thread::spawn(move || blocking(&mut [Case::recv(&*c2)]));
    while c.waiting_receivers() == 0 {
        thread::yield_now();
    }
    assert!(!c.is_full());
    assert_eq!(c.try_send(4), Ok(()));
    assert_eq!(t.join().unwrap(), Selected::Received(0, 4));
    let c2 = Arc::clone(&c);
    let t = thread::spawn(move || blocking(&mut [Case::send(&*c2, 5)]));
    while c.waiting_senders() == 0 {
        thread::yield_now();
    }
    assert_eq!(c.try_recv(), Ok(5));
    assert_eq!(t.join().unwrap(), Selected::Sent(0));
}

#[test]
fn a_select_does_not_pair_with_itself_and_gives_its_value_back() {
    let c = Channel::new(Capacity::Rendezvous);
    let mut cases = [Case::send(&c, 1), Case::recv(&c)];
    let soon = Some(Instant::now() + Duration::from_millis(20));
    assert_eq!(
        select(&mut cases, true, soon, &mut never()),
        Err(Stop::Timeout)
    );
    assert_eq!(cases[0].take_value(), Some(1));
    assert_eq!((c.waiting_receivers(), c.waiting_senders()), (0, 0));
}

#[test]
fn select_chooses_uniformly_among_ready_cases() {
    let empty = [
        Channel::new(Capacity::Rendezvous),
        Channel::new(Capacity::Rendezvous),
    ];
    let ready = [
        Channel::new(Capacity::Unbounded),
        Channel::new(Capacity::Unbounded),
    ];
    for c in &ready {
        for i in 0..10_000 {
            c.try_send(i).unwrap();
        }
    }
    let mut hits = [0; 4];
    for _ in 0..10_000 {
        let mut cases = [
            Case::recv(&empty[0]),
            Case::recv(&empty[1]),
            Case::recv(&ready[0]),
            Case::recv(&ready[1]),
        ];
        hits[blocking(&mut cases).index()] += 1;
    }
    assert_eq!(hits[0] + hits[1], 0);
    assert!((hits[2] - 5000i32).abs() <= 500, "{hits:?}");
}

#[test]
fn forward_gives_back_the_value_it_could_not_deliver() {
    let input = Arc::new(Channel::new(Capacity::Bounded(4)));
    for i in 0..3 {
        input.try_send(i).unwrap();
    }
    let out = Arc::new(Channel::new(Capacity::Rendezvous));
    let (i2, o2) = (Arc::clone(&input), Arc::clone(&out));
    let fwd = thread::spawn(move || forward(vec![&*i2], &o2, &mut never()));
    // The forwarder holds 0 and waits for a reader of `out`.
    while out.waiting_senders() == 0 {
        thread::yield_now();
    }
    out.close();
    fwd.join().unwrap();
    let rest: Vec<_> = std::iter::from_fn(|| input.try_recv().ok()).collect();
    assert_eq!(rest, vec![0, 1, 2]);
}

#[test]
fn select_with_a_close_watch_wakes_on_close() {
    let a = Arc::new(Channel::<u8>::new(Capacity::Rendezvous));
    let watched = Arc::new(Channel::<u8>::new(Capacity::Unbounded));
    let (a2, w2) = (Arc::clone(&a), Arc::clone(&watched));
    let t = thread::spawn(move || {
        // The select queues on every case at once: queued on `a` means watching too.
        while a2.waiting_receivers() == 0 {
            thread::yield_now();
        }
        w2.close();
    });
    let got = blocking(&mut [Case::recv(&*a), Case::closed(&*watched)]);
    assert_eq!(got, Selected::Closed(1));
    t.join().unwrap();
    assert_eq!(a.waiting_receivers(), 0);
}
