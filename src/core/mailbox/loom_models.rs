//! Mailbox loom models (`make loom`): pushes, runs, drains and close, with untimed waits.

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

/// The publisher's wait for room (push_blocking, the in_slices loop) against a pull reader
/// making room: the push goes in exactly once, and the reader sees both messages in order.
#[test]
fn loom_push_blocking_waits_for_a_reader() {
    loom::model(|| {
        let mb = Arc::new(Mailbox::new(1, Overflow::Block, 0));
        assert!(matches!(mb.push(0), Push::Queued { schedule: false }));
        let reader = {
            let mb = Arc::clone(&mb);
            thread::spawn(move || {
                let a = mb.pop_wait(FOREVER).unwrap();
                let b = mb.pop_wait(FOREVER).unwrap();
                (a, b)
            })
        };
        let mut never = crate::core::wait::never();
        assert!(matches!(
            mb.push_blocking(1, &mut never),
            Push::Queued { schedule: false }
        ));
        assert_eq!(reader.join().unwrap(), (0, 1));
        assert_eq!(mb.pending(), 0);
    });
}

/// Two publishers blocked on a full capacity-2 mailbox and a reader taking messages: only the
/// pop from full wakes pushers (all of them: with one woken, the reader's next pop makes room
/// without a transition), and neither is left asleep while there is room.
#[test]
fn loom_full_to_room_wakes_every_blocked_pusher() {
    loom::model(|| {
        let mb = Arc::new(Mailbox::new(2, Overflow::Block, 0));
        for i in 0..2 {
            assert!(matches!(mb.push(i), Push::Queued { schedule: false }));
        }
        let pushers: Vec<_> = (2..4)
            .map(|i| {
                let mb = Arc::clone(&mb);
                thread::spawn(move || match mb.push_timeout(i, FOREVER) {
                    Push::Queued { .. } => {}
                    other => panic!("unexpected {other:?}"),
                })
            })
            .collect();
        let mut seen: Vec<i32> = (0..4).map(|_| mb.pop_wait(FOREVER).unwrap()).collect();
        for p in pushers {
            p.join().unwrap();
        }
        assert_eq!(seen[..2], [0, 1]);
        seen.sort_unstable();
        assert_eq!(seen, vec![0, 1, 2, 3]);
    });
}

/// Two pull readers waiting and two pushes: the push from empty wakes one reader, which passes
/// the wake on when a message is left, so each reader gets one.
#[test]
fn loom_readers_pass_the_wake_on() {
    loom::model(|| {
        let mb = Arc::new(Mailbox::new(2, Overflow::Block, 0));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let mb = Arc::clone(&mb);
                thread::spawn(move || mb.pop_wait(FOREVER).unwrap())
            })
            .collect();
        for i in 0..2 {
            assert!(matches!(mb.push(i), Push::Queued { schedule: false }));
        }
        let mut got: Vec<i32> = readers.into_iter().map(|r| r.join().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, vec![0, 1]);
    });
}

/// A coroutine reader registering on an empty pull mailbox while a publisher pushes: it gets
/// the message at once or is woken for it (no lost wake-up between the try and the push).
#[test]
fn loom_aio_reader_register_vs_push() {
    use crate::core::notify::testing::Counter;
    loom::model(|| {
        let mb = Arc::new(Mailbox::new(1, Overflow::Block, 0));
        let (n, r) = Counter::new();
        let mb2 = Arc::clone(&mb);
        let t = thread::spawn(move || matches!(mb2.push(1), Push::Queued { .. }));
        let got = mb.pop_or_register(&r, false).ok();
        assert!(t.join().unwrap());
        match got {
            Some(v) => assert_eq!(v, 1),
            None => {
                assert_eq!(n.woken(), 1);
                assert_eq!(mb.try_pop(), Ok(1));
            }
        }
    });
}

/// A coroutine publisher registering for room on a full Block mailbox while a reader pops: it
/// queues at once or is woken for the room; a woken reader that gives up passes its wake on.
#[test]
fn loom_aio_room_register_vs_pop_and_reader_leave() {
    use crate::core::notify::testing::Counter;
    loom::model(|| {
        let mb = Arc::new(Mailbox::new(1, Overflow::Block, 0));
        assert!(matches!(mb.push(1), Push::Queued { .. }));
        let (n, r) = Counter::new();
        let mb2 = Arc::clone(&mb);
        let t = thread::spawn(move || mb2.try_pop());
        let pushed = match mb.push_or_register(2, &r) {
            Push::Queued { .. } => true,
            Push::Full(2) => false,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(t.join().unwrap(), Ok(1));
        if !pushed {
            assert_eq!(n.woken(), 1);
            assert!(matches!(mb.push_or_register(2, &r), Push::Queued { .. }));
        }
        // Two coroutine readers registered; the first is woken, leaves: the second gets it.
        assert_eq!(mb.try_pop(), Ok(2));
        let (_a, ra) = Counter::new();
        let (b, rb) = Counter::new();
        assert_eq!(mb.pop_or_register(&ra, false), Err(false));
        assert_eq!(mb.pop_or_register(&rb, false), Err(false));
        let mb3 = Arc::clone(&mb);
        let t = thread::spawn(move || matches!(mb3.push(3), Push::Queued { .. }));
        mb.leave_readers(&ra);
        assert!(t.join().unwrap());
        assert_eq!(b.woken(), 1);
    });
}
