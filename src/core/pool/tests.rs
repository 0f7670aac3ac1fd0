//! Unit tests of the core pool (plain threads; the loom models are in loom_models.rs).
use super::*;
use std::sync::atomic::AtomicU64;
use std::sync::Barrier;

type Job = Box<dyn FnOnce() + Send>;

fn pool(workers: usize, cap: usize) -> Arc<Pool<Job>> {
    Pool::new(workers, cap, String::new(), closure_body)
}

/// Submits a job that holds its worker until the returned barrier is passed, and returns once
/// that job has started.
fn hold_worker(p: &Arc<Pool<Job>>) -> Arc<Barrier> {
    let gate = Arc::new(Barrier::new(2));
    let g = Arc::clone(&gate);
    let (started_tx, started) = crossbeam_channel::bounded(1);
    p.try_submit(
        Box::new(move || {
            started_tx.send(()).unwrap();
            g.wait();
        }),
        1,
    )
    .unwrap();
    started.recv().unwrap();
    gate
}

#[test]
fn runs_every_job_exactly_once_from_many_producers() {
    for _ in 0..20 {
        let p = pool(4, 8);
        let sum = Arc::new(AtomicU64::new(0));
        let producers: Vec<_> = (0..4)
            .map(|t| {
                let p = Arc::clone(&p);
                let sum = Arc::clone(&sum);
                thread::spawn(move || {
                    for i in 0..1000u64 {
                        let s = Arc::clone(&sum);
                        let mut job: Job = Box::new(move || {
                            s.fetch_add(t * 1000 + i, Ordering::Relaxed);
                        });
                        loop {
                            match p.submit_timeout(job, 1, Duration::from_millis(20)) {
                                Ok(()) => break,
                                Err(Rejected::Full(j)) => job = j,
                                Err(Rejected::Closed(_)) => panic!("closed"),
                            }
                        }
                    }
                })
            })
            .collect();
        for h in producers {
            h.join().unwrap();
        }
        p.close();
        assert!(p.join(None));
        assert_eq!(sum.load(Ordering::Relaxed), (0..4000u64).sum::<u64>());
        let s = p.snapshot();
        assert_eq!((s.submitted, s.completed, s.workers), (4000, 4000, 0));
    }
}

#[test]
fn bounded_queue_rejects_when_full_and_returns_the_job() {
    let p = pool(1, 1);
    let gate = hold_worker(&p);
    // The worker is busy: exactly one more job fits.
    let mut queued = 0;
    loop {
        match p.try_submit(Box::new(|| {}), 1) {
            Ok(()) => queued += 1,
            Err(Rejected::Full(_)) => break,
            Err(Rejected::Closed(_)) => unreachable!(),
        }
    }
    assert_eq!(queued, 1);
    assert!(matches!(
        p.submit_timeout(Box::new(|| {}), 1, Duration::from_millis(5)),
        Err(Rejected::Full(_))
    ));
    gate.wait();
    p.close();
    p.join(None);
    assert_eq!(p.snapshot().completed, 1 + queued);
}

#[test]
fn closed_pool_refuses_and_drain_returns_queued_jobs() {
    let p = pool(1, 0);
    // The only worker is held by the first job, so the next ten stay queued (a drain
    // racing the worker for the first job could let it run some of them).
    let gate = hold_worker(&p);
    for _ in 0..10 {
        p.try_submit(Box::new(|| {}), 1).unwrap();
    }
    let drained = p.drain();
    assert_eq!(drained.len(), 10);
    p.close();
    assert!(matches!(
        p.try_submit(Box::new(|| {}), 1),
        Err(Rejected::Closed(_))
    ));
    gate.wait();
    drop(drained);
    assert!(p.join(Some(Duration::from_secs(10))));
}

#[test]
fn spawns_no_more_than_max_workers() {
    let p = pool(3, 0);
    let gate = Arc::new(Barrier::new(4));
    for _ in 0..3 {
        let g = Arc::clone(&gate);
        p.try_submit(
            Box::new(move || {
                g.wait();
            }),
            1,
        )
        .unwrap();
    }
    for _ in 0..50 {
        p.try_submit(Box::new(|| {}), 1).unwrap();
    }
    assert!(p.snapshot().workers <= 3);
    gate.wait();
    p.close();
    p.join(None);
    assert_eq!(p.snapshot().completed, 53);
}

#[test]
fn requeue_never_starts_a_thread_and_runs_the_job() {
    let p = pool(8, 0);
    let (tx, rx) = crossbeam_channel::unbounded();
    let p2 = Arc::clone(&p);
    p.try_submit(
        Box::new(move || {
            // A job handing 50 more to its own pool, as a dispatch run re-queues itself.
            for i in 0..50 {
                let tx = tx.clone();
                p2.requeue(Box::new(move || tx.send(i).unwrap()), 1)
                    .unwrap();
            }
        }),
        1,
    )
    .unwrap();
    let mut got: Vec<i32> = (0..50).map(|_| rx.recv().unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, (0..50).collect::<Vec<_>>());
    assert_eq!(p.snapshot().workers, 1);
    assert_eq!(p.snapshot().submitted, 51);
    p.close();
    assert!(matches!(
        p.requeue(Box::new(|| {}), 1),
        Err(Rejected::Closed(_))
    ));
    p.join(None);
}

#[test]
fn lazy_mode_starts_only_eager_threads_for_jobs_that_keep_moving() {
    let p = pool(4, 0);
    // A window no runnable worker leaves its queue untouched for, even on a loaded box.
    p.set_lazy(1, Duration::from_secs(10));
    let (tx, rx) = crossbeam_channel::unbounded();
    for i in 0..2000 {
        let tx = tx.clone();
        p.try_submit(Box::new(move || tx.send(i).unwrap()), 1)
            .unwrap();
    }
    for _ in 0..2000 {
        rx.recv().unwrap();
    }
    assert_eq!(p.snapshot().workers, 1);
    p.close();
    assert!(p.join(Some(Duration::from_secs(10))));
}

#[test]
fn lazy_mode_starts_more_threads_for_starving_jobs() {
    let p = pool(4, 0);
    p.set_lazy(1, Duration::from_millis(20));
    // Jobs that block until all three run at once: the monitor must add two threads.
    let meet = Arc::new(Barrier::new(3));
    let (done_tx, done) = crossbeam_channel::unbounded();
    for _ in 0..3 {
        let (meet, done_tx) = (Arc::clone(&meet), done_tx.clone());
        p.try_submit(
            Box::new(move || {
                meet.wait();
                done_tx.send(()).unwrap();
            }),
            1,
        )
        .unwrap();
    }
    for _ in 0..3 {
        done.recv_timeout(Duration::from_secs(10))
            .expect("starving jobs got no thread");
    }
    assert_eq!(p.snapshot().workers, 3);
    p.close();
    assert!(p.join(Some(Duration::from_secs(10))));
}

#[test]
fn lazy_mode_gives_a_starving_requeued_job_a_thread() {
    let p = pool(2, 0);
    p.set_lazy(1, Duration::from_millis(20));
    let (tx, rx) = crossbeam_channel::bounded::<()>(1);
    let p2 = Arc::clone(&p);
    let (done_tx, done) = crossbeam_channel::bounded(1);
    p.try_submit(
        Box::new(move || {
            // No submit after this one: only the requeue can tell the monitor.
            p2.requeue(Box::new(move || tx.send(()).unwrap()), 1)
                .unwrap();
            rx.recv_timeout(Duration::from_secs(10))
                .expect("the requeued job never ran");
            done_tx.send(()).unwrap();
        }),
        1,
    )
    .unwrap();
    done.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(p.snapshot().workers, 2);
    p.close();
    assert!(p.join(Some(Duration::from_secs(10))));
}

#[test]
fn idle_worker_is_reused_instead_of_spawning() {
    let p = pool(8, 0);
    for _ in 0..100 {
        let (tx, rx) = crossbeam_channel::bounded(0);
        p.try_submit(Box::new(move || tx.send(()).unwrap()), 1)
            .unwrap();
        rx.recv().unwrap();
        // Wait until the worker is back to idle before the next submit.
        while p.snapshot().idle == 0 {
            thread::yield_now();
        }
    }
    assert_eq!(p.snapshot().workers, 1);
    p.close();
    p.join(None);
}

#[test]
fn handoff_gives_each_started_thread_its_job_so_a_drain_cannot_take_it() {
    for _ in 0..20 {
        let p = pool(3, 0);
        p.set_handoff(true);
        let gate = Arc::new(Barrier::new(4));
        let ran = Arc::new(AtomicU64::new(0));
        for _ in 0..10 {
            let (g, r) = (Arc::clone(&gate), Arc::clone(&ran));
            p.try_submit(
                Box::new(move || {
                    r.fetch_add(1, Ordering::Relaxed);
                    g.wait();
                }),
                1,
            )
            .unwrap();
        }
        // Three threads were started, each with one of the first three jobs: only the other
        // seven are in the queue, whatever the threads have done so far.
        let drained = p.drain();
        assert_eq!(drained.len(), 7);
        drop(drained);
        gate.wait();
        p.close();
        assert!(p.join(Some(Duration::from_secs(10))));
        assert_eq!(ran.load(Ordering::Relaxed), 3);
    }
}
