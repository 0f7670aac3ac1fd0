//! loom models of the pool's hand-written synchronisation: the door between submit and
//! close, the idle tokens that decide whether a submit starts a thread, and join.

use super::gate::Gate;
use super::live::Live;
use super::tokens::IdleTokens;
use crate::core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::core::sync::{Arc, Condvar, Mutex};
use loom::thread;

/// A submit that got in is in the queue close() hands back; none gets in after close().
#[test]
fn loom_close_vs_submit_accepts_nothing_after_close() {
    loom::model(|| {
        let gate = Arc::new(Gate::new(Arc::new(Mutex::new(Vec::<u32>::new()))));
        let g2 = Arc::clone(&gate);
        let submitter = thread::spawn(move || match g2.enter() {
            Some(q) => {
                q.lock().push(7);
                true
            }
            None => false,
        });
        let queue = gate.close().expect("open until now");
        let seen_at_close = queue.lock().len();
        let accepted = submitter.join().unwrap();
        // Accepted means it was queued before close() returned; refused means never queued.
        assert_eq!(seen_at_close, usize::from(accepted));
        assert_eq!(queue.lock().len(), seen_at_close);
        assert!(gate.enter().is_none());
    });
}

struct Queue {
    jobs: Mutex<(Vec<u32>, bool)>,
    ready: Condvar,
}

/// A submit that takes an idle token relies on a waiting worker instead of starting a
/// thread: the job must run exactly once either way, and no token is left for a worker that
/// is gone.
#[test]
fn loom_idle_token_submit_runs_the_job_exactly_once() {
    loom::model(|| {
        let tokens = Arc::new(IdleTokens::new());
        let q = Arc::new(Queue {
            jobs: Mutex::new((Vec::new(), false)),
            ready: Condvar::new(),
        });
        let ran = Arc::new(AtomicUsize::new(0));
        let (t2, q2, r2) = (Arc::clone(&tokens), Arc::clone(&q), Arc::clone(&ran));
        // The worker: token first, then wait (what Worker::wait_next does).
        let worker = thread::spawn(move || {
            t2.give();
            let mut g = q2.jobs.lock();
            loop {
                if let Some(_job) = g.0.pop() {
                    r2.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                if g.1 {
                    return;
                }
                q2.ready.wait(&mut g);
            }
        });
        // The submit: a token means "queue it, the idle worker takes it"; none means the
        // submit starts a thread with the job as its first.
        if tokens.take() {
            q.jobs.lock().0.push(1);
            q.ready.notify_all();
        } else {
            let r3 = Arc::clone(&ran);
            thread::spawn(move || {
                r3.fetch_add(1, Ordering::SeqCst);
            })
            .join()
            .unwrap();
        }
        // close(): the worker drains and exits.
        q.jobs.lock().1 = true;
        q.ready.notify_all();
        worker.join().unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        assert!(tokens.count() <= 1);
    });
}

/// Two joiners at once both wait for the worker: neither returns while it still runs.
#[test]
fn loom_join_waits_for_every_worker_whoever_joins_first() {
    loom::model(|| {
        let live = Arc::new(Live::new());
        let done = Arc::new(AtomicBool::new(false));
        live.enter();
        let (l2, d2) = (Arc::clone(&live), Arc::clone(&done));
        let worker = thread::spawn(move || {
            d2.store(true, Ordering::SeqCst);
            l2.exit();
        });
        let (l3, d3) = (Arc::clone(&live), Arc::clone(&done));
        let joiner = thread::spawn(move || {
            assert!(l3.wait_until_at_most(0, None));
            assert!(d3.load(Ordering::SeqCst));
        });
        assert!(live.wait_until_at_most(0, None));
        assert!(done.load(Ordering::SeqCst));
        joiner.join().unwrap();
        worker.join().unwrap();
    });
}
