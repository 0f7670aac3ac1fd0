//! Mailbox unit tests: overflow policies, runs, pull waits.

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

#[test]
fn push_blocking_waits_for_room_and_gives_the_message_back_when_the_hook_stops_it() {
    let m = Arc::new(Mailbox::new(1, Overflow::Block, 0));
    m.push(0);
    // Nobody makes room: the hook is asked after each slice, and stopping returns the message.
    let mut asked = 0;
    let mut hook = || {
        asked += 1;
        asked == 3
    };
    assert!(matches!(m.push_blocking(1, &mut hook), Push::Full(1)));
    assert_eq!(asked, 3);
    assert_eq!(m.pending(), 1);
    // A reader makes room: the push goes in, in order.
    let reader = {
        let m = Arc::clone(&m);
        thread::spawn(move || {
            (
                m.pop_wait(Duration::from_secs(10)),
                m.pop_wait(Duration::from_secs(10)),
            )
        })
    };
    assert!(matches!(
        m.push_blocking(2, &mut crate::core::wait::never()),
        Push::Queued { schedule: false }
    ));
    assert_eq!(reader.join().unwrap(), (Ok(0), Ok(2)));
    m.push(3);
    m.close();
    assert!(matches!(
        m.push_blocking(4, &mut crate::core::wait::never()),
        Push::Closed(4)
    ));
}

#[test]
fn aio_readers_woken_on_empty_to_not_empty_and_passed_on() {
    use crate::core::notify::testing::Counter;
    let m = Mailbox::new(4, Overflow::Block, 0);
    let (a, ra) = Counter::new();
    let (b, rb) = Counter::new();
    assert_eq!(m.pop_or_register(&ra, false), Err(false));
    assert_eq!(m.pop_or_register(&rb, false), Err(false));
    m.push(1);
    m.push(2);
    // One wake on the transition, none per push.
    assert_eq!((a.woken(), b.woken()), (1, 0));
    // The woken one takes a message and more is left: the next reader is woken.
    assert_eq!(m.pop_or_register(&ra, false), Ok(1));
    assert_eq!(b.woken(), 1);
    assert_eq!(m.try_pop(), Ok(2));
    // A cancelled woken reader passes its wake on; a queued one leaves quietly.
    let (c, rc) = Counter::new();
    let (d, rd) = Counter::new();
    assert_eq!(m.pop_or_register(&rc, false), Err(false));
    assert_eq!(m.pop_or_register(&rd, false), Err(false));
    m.leave_readers(&rd);
    m.push(3);
    assert_eq!((c.woken(), d.woken()), (1, 0));
    m.close();
    assert_eq!(m.try_pop(), Ok(3));
    assert_eq!(m.pop_or_register(&rc, false), Err(true));
}

#[test]
fn aio_room_and_handled_count_for_drain() {
    use crate::core::notify::testing::Counter;
    let m = Mailbox::new(1, Overflow::Block, 0);
    let (a, ra) = Counter::new();
    let (b, rb) = Counter::new();
    assert!(matches!(m.push_or_register(1, &ra), Push::Queued { .. }));
    assert!(matches!(m.push_or_register(2, &ra), Push::Full(2)));
    assert!(matches!(m.push_or_register(3, &rb), Push::Full(3)));
    // Full to not full wakes every room waiter.
    assert_eq!(m.pop_or_register(&ra, true), Ok(1));
    assert_eq!((a.woken(), b.woken()), (1, 1));
    // The message being handled keeps the mailbox busy for a drain.
    assert!(!m.wait_idle(Duration::from_millis(1)));
    m.handled();
    assert!(m.wait_idle(Duration::from_millis(1)));
    // Other policies ignore the registration.
    let d = Mailbox::new(1, Overflow::DropNewest, 0);
    d.push(1);
    assert!(matches!(d.push_or_register(2, &ra), Push::Dropped(2)));
}
