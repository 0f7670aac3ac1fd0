//! How the manager's workers group their work: run operations back to back, never attached to
//! the interpreter, and hand the finished ones over a batch at a time, so completing 100,000
//! futures takes a handful of attaches. A batch goes as soon as it is full or the queue runs
//! dry, so nothing waits on a batch that is not full.

use crate::core::pool::{Next, Pool, Rejected, Worker};
use crate::core::wait::{in_slices, never};
use std::sync::Arc;

/// Operations a worker runs before it hands their results over.
pub const BATCH: usize = 256;

/// A worker's whole life: `run` each job, `hand_over` each batch of results, until the pool is
/// closed and drained.
pub fn serve_batches<J: Send + 'static, D>(
    w: &Worker<J>,
    mut run: impl FnMut(J) -> D,
    mut hand_over: impl FnMut(Vec<D>),
) {
    let mut local = Vec::with_capacity(BATCH);
    loop {
        let closed = match w.try_next() {
            Next::Job(j) => {
                local.push(run(j));
                if local.len() < BATCH {
                    continue;
                }
                false
            }
            Next::Empty if local.is_empty() => match w.wait_next() {
                Some(j) => {
                    local.push(run(j));
                    continue;
                }
                None => true,
            },
            Next::Empty => {
                // About to wait: a submit that a completion triggers should reuse this
                // worker, not start another.
                w.finishing();
                false
            }
            Next::Closed => true,
        };
        if !local.is_empty() {
            hand_over(std::mem::replace(&mut local, Vec::with_capacity(BATCH)));
        }
        if closed {
            return;
        }
    }
}

/// Queues a batch on the completers' pool (weighted by its length), waiting as long as their
/// backlog is full; the batch comes back only if that pool is closed.
pub fn hand_over<D: Send + 'static>(to: &Arc<Pool<Vec<D>>>, batch: Vec<D>) -> Result<(), Vec<D>> {
    let n = batch.len() as u64;
    let batch = match to.try_submit(batch, n) {
        Ok(()) => return Ok(()),
        Err(Rejected::Full(b)) => b,
        Err(Rejected::Closed(b)) => return Err(b),
    };
    let mut held = Some(batch);
    let r = in_slices(None, &mut never(), |slice| {
        let b = held.take()?;
        match to.submit_timeout(b, n, slice) {
            Ok(()) => Some(Ok(())),
            Err(Rejected::Closed(b)) => Some(Err(b)),
            Err(Rejected::Full(b)) => {
                held = Some(b);
                None
            }
        }
    });
    // Without a deadline or an interrupting hook the wait ends only with the step's answer.
    r.unwrap_or(Ok(()))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A pool of `workers` batching workers doubling u64 jobs, whose batches land in `out`.
    fn doubling(workers: usize, out: crossbeam_channel::Sender<Vec<u64>>) -> Arc<Pool<u64>> {
        Pool::new(workers, 0, "batch-test".into(), move |w| {
            serve_batches(&w, |j| j * 2, |b| out.send(b).unwrap())
        })
    }

    #[test]
    fn every_job_is_handed_over_once_in_batches_of_at_most_batch() {
        for round in 0..20 {
            let (tx, rx) = crossbeam_channel::unbounded();
            let pool = doubling(1 + round % 4, tx);
            let n: u64 = 5_000;
            for j in 0..n {
                pool.try_submit(j, 1).unwrap();
            }
            pool.close();
            assert!(pool.join(Some(Duration::from_secs(30))));
            drop(pool);
            let mut seen: Vec<u64> = Vec::new();
            for b in rx.iter() {
                assert!(!b.is_empty() && b.len() <= BATCH, "batch of {}", b.len());
                seen.extend(b);
            }
            seen.sort_unstable();
            assert_eq!(seen, (0..n).map(|j| j * 2).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_batch_goes_as_soon_as_the_queue_runs_dry() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let pool = doubling(1, tx);
        for j in 1..=50 {
            pool.try_submit(j, 1).unwrap();
            // Not closed, far from full: the lone result still arrives (the timeout is only a
            // watchdog against a hang).
            let b = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("batch held back");
            assert_eq!(b, vec![j * 2]);
        }
        pool.close();
        assert!(pool.join(Some(Duration::from_secs(10))));
    }

    #[test]
    fn hand_over_keeps_order_through_a_full_backlog_and_returns_the_batch_once_closed() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (go_tx, go_rx) = crossbeam_channel::unbounded::<()>();
        // One completer that takes a batch only when told to, behind a backlog of one.
        let done: Arc<Pool<Vec<u32>>> = Pool::new(1, 1, "done-test".into(), move |w| {
            while let Some(b) = w.wait_next() {
                go_rx.recv().unwrap();
                tx.send(b).unwrap();
            }
        });
        let feeder = {
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                (0..6)
                    .map(|i| hand_over(&done, vec![i; 3]))
                    .collect::<Vec<_>>()
            })
        };
        for _ in 0..6 {
            go_tx.send(()).unwrap();
        }
        let got: Vec<_> = feeder.join().unwrap();
        assert!(got.iter().all(Result::is_ok));
        let batches: Vec<Vec<u32>> = (0..6)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        assert_eq!(batches, (0..6).map(|i| vec![i; 3]).collect::<Vec<_>>());
        done.close();
        assert_eq!(hand_over(&done, vec![9]).unwrap_err(), vec![9]);
        assert!(done.join(Some(Duration::from_secs(10))));
    }
}
