//! A Go-style worker pool: one shared (optionally bounded) job queue drained by up to
//! `max_workers` threads that are started on demand. Knows nothing about Python: the binding
//! supplies the worker body, which decides how jobs run (e.g. attached to the interpreter).

use crate::core::sync::{Condvar, Mutex, RwLock};
use crossbeam_channel::{bounded, unbounded, Receiver, Sender, TrySendError};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle, ThreadId};
use std::time::Duration;

/// Why a job was handed back instead of queued; the job comes back so nothing is lost.
pub enum Rejected<J> {
    /// The bounded queue is full (try_submit) or stayed full for the whole timeout.
    Full(J),
    /// The pool was shut down.
    Closed(J),
}

impl<J> std::fmt::Debug for Rejected<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Rejected::Full(_) => "Full",
            Rejected::Closed(_) => "Closed",
        })
    }
}

impl<J> Rejected<J> {
    pub fn into_inner(self) -> J {
        match self {
            Rejected::Full(j) | Rejected::Closed(j) => j,
        }
    }
}

/// What a worker finds when it looks for work without blocking.
pub enum Next<J> {
    Job(J),
    Empty,
    Closed,
}

/// Counters behind `stats()`; updated with relaxed atomics so they cost nothing on the hot path.
#[derive(Default)]
pub struct Counters {
    pub submitted: AtomicU64,
    pub completed: AtomicU64,
    pub failed: AtomicU64,
    pub cancelled: AtomicU64,
    pub running: AtomicUsize,
    /// Times a worker found the queue empty and had to block (and so let go of the GIL).
    pub waits: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub workers: usize,
    pub idle: usize,
    pub queued: usize,
    pub running: usize,
    pub submitted: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub waits: u64,
}

type Body<J> = dyn Fn(Worker<J>) + Send + Sync;

pub struct Pool<J: Send + 'static> {
    // The only long-lived sender: taking it out closes the queue once in-flight sends finish.
    tx: RwLock<Option<Sender<J>>>,
    rx: Receiver<J>,
    capacity: usize,
    max_workers: usize,
    name_prefix: String,
    closed: AtomicBool,
    spawned: AtomicUsize,
    idle: AtomicUsize,
    /// One token per time a worker went idle, taken by a submit (ThreadPoolExecutor's idle
    /// semaphore): a submit that gets one relies on that worker instead of starting a thread.
    idle_tokens: AtomicUsize,
    handles: Mutex<Vec<(ThreadId, JoinHandle<()>)>>,
    body: Box<Body<J>>,
    pub counters: Counters,
    /// Workers started as soon as a job finds nobody idle; past this, see [`Pool::set_lazy`].
    eager: AtomicUsize,
    /// Jobs workers have taken: the monitor's measure of progress.
    taken: AtomicU64,
    monitor: Monitor,
    /// Stack size for new worker threads; 0 keeps Rust's default (see [`Pool::set_stack_size`]).
    stack_size: AtomicUsize,
    /// Called (on the monitor thread) when queued work starves and max_workers forbids another
    /// worker; see [`Pool::set_on_limit`].
    on_limit: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

/// State of the starvation monitor (lazy mode only).
#[derive(Default)]
struct Monitor {
    /// Set by a submit that found nobody idle and no eager thread left to start.
    armed: AtomicBool,
    /// Microseconds without progress that count as starving; 0 when lazy mode is off.
    after_us: AtomicU64,
    running: Mutex<bool>,
    wake: Condvar,
}

/// A worker's view of its pool.
pub struct Worker<J: Send + 'static> {
    pool: Arc<Pool<J>>,
    pub index: usize,
    /// An idle token granted early by [`Worker::finishing`], not yet matched by a wait.
    early_token: std::sync::atomic::AtomicBool,
}

impl<J: Send + 'static> Worker<J> {
    pub fn pool(&self) -> &Arc<Pool<J>> {
        &self.pool
    }

    /// Takes a job if one is queued; never blocks, so it is safe while holding the GIL.
    pub fn try_next(&self) -> Next<J> {
        match self.pool.rx.try_recv() {
            Ok(j) => {
                self.pool.taken.fetch_add(1, Ordering::Relaxed);
                if self.early_token.swap(false, Ordering::Relaxed) {
                    // Busy again after all: take back the token if no submit used it.
                    self.pool.take_idle_token();
                }
                Next::Job(j)
            }
            Err(crossbeam_channel::TryRecvError::Empty) => Next::Empty,
            Err(crossbeam_channel::TryRecvError::Disconnected) => Next::Closed,
        }
    }

    /// Call just before publishing a job's result: when nothing is queued this worker is about
    /// to wait, and a submit that the result triggers must reuse it, not start another thread.
    pub fn finishing(&self) {
        if !self.early_token.load(Ordering::Relaxed) && self.pool.rx.is_empty() {
            self.early_token.store(true, Ordering::Relaxed);
            self.pool.idle_tokens.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Blocks until a job arrives; None once the pool is shut down and drained.
    /// Call it only with the GIL released.
    pub fn wait_next(&self) -> Option<J> {
        let p = &self.pool;
        p.counters.waits.fetch_add(1, Ordering::Relaxed);
        // Token first: whoever sees this worker idle must also find its token.
        if !self.early_token.swap(false, Ordering::Relaxed) {
            p.idle_tokens.fetch_add(1, Ordering::AcqRel);
        }
        p.idle.fetch_add(1, Ordering::AcqRel);
        let r = p.rx.recv().ok();
        p.idle.fetch_sub(1, Ordering::AcqRel);
        if r.is_some() {
            p.taken.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
}

impl<J: Send + 'static> Drop for Worker<J> {
    fn drop(&mut self) {
        self.pool.spawned.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<J: Send + 'static> Pool<J> {
    /// `capacity == 0` means an unbounded queue.
    pub fn new<F>(max_workers: usize, capacity: usize, name_prefix: String, body: F) -> Arc<Self>
    where
        F: Fn(Worker<J>) + Send + Sync + 'static,
    {
        assert!(max_workers > 0, "max_workers must be positive");
        let (tx, rx) = if capacity == 0 {
            unbounded()
        } else {
            bounded(capacity)
        };
        Arc::new(Pool {
            tx: RwLock::new(Some(tx)),
            rx,
            capacity,
            max_workers,
            name_prefix,
            closed: AtomicBool::new(false),
            spawned: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            idle_tokens: AtomicUsize::new(0),
            handles: Mutex::new(Vec::new()),
            body: Box::new(body),
            counters: Counters::default(),
            eager: AtomicUsize::new(max_workers),
            stack_size: AtomicUsize::new(0),
            taken: AtomicU64::new(0),
            monitor: Monitor::default(),
            on_limit: std::sync::OnceLock::new(),
        })
    }

    /// Lazy mode, for workers that mostly compete for one lock (Python's GIL): only `eager`
    /// threads start on demand, since more would just take turns at that lock. Beyond them a
    /// monitor starts one more worker each time jobs have waited `after` without any worker
    /// taking one: the running workers are then blocked (a handler waiting on I/O, an event),
    /// and the queued work needs a thread of its own. Choose `after` above the lock's normal
    /// hand-over time so that mere turn-taking never looks like starvation.
    pub fn set_lazy(&self, eager: usize, after: Duration) {
        let eager = eager.clamp(1, self.max_workers);
        self.eager.store(eager, Ordering::Release);
        let us = (after.as_micros() as u64).max(1);
        self.monitor.after_us.store(us, Ordering::Release);
    }

    pub fn max_workers(&self) -> usize {
        self.max_workers
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Queues a job without blocking.
    /// `weight` is how many tasks the job carries (a map chunk carries several), for the counters.
    pub fn try_submit(self: &Arc<Self>, job: J, weight: u64) -> Result<(), Rejected<J>> {
        self.try_enqueue(job)?;
        self.accepted(weight);
        Ok(())
    }

    /// The queueing half of try_submit and requeue; the sender lock is released on return,
    /// before any thread is started.
    fn try_enqueue(&self, job: J) -> Result<(), Rejected<J>> {
        let tx = self.tx.read();
        let Some(tx) = tx.as_ref() else {
            return Err(Rejected::Closed(job));
        };
        tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(j) => Rejected::Full(j),
            TrySendError::Disconnected(j) => Rejected::Closed(j),
        })
    }

    /// Takes one idle token if there is one: a waiting worker will take the job just queued.
    fn take_idle_token(&self) -> bool {
        self.idle_tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Queues a job without ever starting a thread: for a worker handing work back to its own
    /// pool. That worker comes back to the queue right after, so a new thread would only add
    /// another runner fighting for the same work (and, in Python, for the GIL).
    pub fn requeue(self: &Arc<Self>, job: J, weight: u64) -> Result<(), Rejected<J>> {
        self.try_enqueue(job)?;
        self.counters.submitted.fetch_add(weight, Ordering::Relaxed);
        // An idle worker, if any, takes this job: its token must not make a later submit
        // count on it.
        if !self.take_idle_token() {
            // The worker coming back may take another job that blocks.
            self.arm_monitor();
        }
        Ok(())
    }

    /// Waits up to `timeout` for room in a bounded queue. Callers loop over short slices so
    /// they can notice signals and shutdown between them.
    pub fn submit_timeout(
        self: &Arc<Self>,
        job: J,
        weight: u64,
        timeout: Duration,
    ) -> Result<(), Rejected<J>> {
        // Clone the sender so a blocked submitter never holds the lock shutdown needs.
        let tx = match self.tx.read().as_ref() {
            None => return Err(Rejected::Closed(job)),
            Some(tx) => tx.clone(),
        };
        match tx.send_timeout(job, timeout) {
            Ok(()) => {
                self.accepted(weight);
                Ok(())
            }
            Err(crossbeam_channel::SendTimeoutError::Timeout(j)) => {
                if self.is_closed() {
                    Err(Rejected::Closed(j))
                } else {
                    Err(Rejected::Full(j))
                }
            }
            Err(crossbeam_channel::SendTimeoutError::Disconnected(j)) => Err(Rejected::Closed(j)),
        }
    }

    fn accepted(self: &Arc<Self>, n: u64) {
        self.counters.submitted.fetch_add(n, Ordering::Relaxed);
        // Like ThreadPoolExecutor: start a thread only when no worker is waiting for work.
        if !self.take_idle_token() {
            let eager = self.eager.load(Ordering::Acquire);
            let watch = eager < self.max_workers || self.on_limit.get().is_some();
            if !matches!(self.spawn_below(eager), Ok(true)) && watch {
                self.arm_monitor();
            }
        }
    }

    /// Lazy mode: has the monitor watch for starvation (it starts on first use).
    fn arm_monitor(self: &Arc<Self>) {
        let m = &self.monitor;
        if m.after_us.load(Ordering::Acquire) == 0 || m.armed.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut running = m.running.lock();
        if *running {
            m.wake.notify_all();
            return;
        }
        if self.is_closed() {
            return;
        }
        let pool = Arc::clone(self);
        let name = if self.name_prefix.is_empty() {
            "chanpool-monitor".to_string()
        } else {
            format!("{}-monitor", self.name_prefix)
        };
        if thread::Builder::new()
            .name(name)
            .spawn(move || pool.monitor_main())
            .is_ok()
        {
            *running = true;
        } else {
            m.armed.store(false, Ordering::Release);
        }
    }

    fn monitor_main(self: Arc<Self>) {
        let m = &self.monitor;
        let after = Duration::from_micros(m.after_us.load(Ordering::Acquire));
        let mut running = m.running.lock();
        loop {
            while !m.armed.load(Ordering::Acquire) && !self.is_closed() {
                m.wake.wait(&mut running);
            }
            if self.is_closed() {
                *running = false;
                return;
            }
            m.armed.store(false, Ordering::Release);
            // Watch while jobs are queued; a submit arms again if they come back.
            loop {
                let seen = self.taken.load(Ordering::Relaxed);
                let waiting = !self.rx.is_empty();
                // A whole window: a submit arming us again must not cut it short.
                let end = crate::core::wait::deadline_after(after)
                    .unwrap_or_else(std::time::Instant::now);
                while !self.is_closed() && !m.wake.wait_until(&mut running, end).timed_out() {}
                if self.is_closed() {
                    *running = false;
                    return;
                }
                if self.rx.is_empty() {
                    break;
                }
                // Jobs queued at both ends of the window and none taken in between: those
                // jobs (FIFO) waited the whole window.
                let stuck = waiting
                    && self.taken.load(Ordering::Relaxed) == seen
                    && self.idle_tokens.load(Ordering::Acquire) == 0;
                if stuck && !matches!(self.spawn_below(self.max_workers), Ok(true)) {
                    let at_limit = self.spawned.load(Ordering::Acquire) >= self.max_workers;
                    if let (true, Some(f)) = (at_limit && !self.is_closed(), self.on_limit.get()) {
                        // Not under the monitor's lock: `f` may wait (for the GIL) on a thread
                        // that is itself waiting for that lock in arm_monitor.
                        drop(running);
                        f();
                        running = m.running.lock();
                    }
                }
            }
        }
    }

    /// Starts one more worker if below the limit. Returns whether one was started.
    pub fn spawn_worker(self: &Arc<Self>) -> std::io::Result<bool> {
        self.spawn_below(self.max_workers)
    }

    fn spawn_below(self: &Arc<Self>, limit: usize) -> std::io::Result<bool> {
        if self.is_closed() {
            return Ok(false);
        }
        let limit = limit.min(self.max_workers);
        let mut n = self.spawned.load(Ordering::Acquire);
        loop {
            if n >= limit {
                return Ok(false);
            }
            match self
                .spawned
                .compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(cur) => n = cur,
            }
        }
        let mut handles = self.handles.lock();
        let index = handles.len();
        let worker = Worker {
            pool: Arc::clone(self),
            index,
            early_token: std::sync::atomic::AtomicBool::new(false),
        };
        let name = if self.name_prefix.is_empty() {
            format!("chanpool-worker_{index}")
        } else {
            format!("{}_{index}", self.name_prefix)
        };
        let mut builder = thread::Builder::new().name(name);
        let stack = self.stack_size.load(Ordering::Relaxed);
        if stack > 0 {
            builder = builder.stack_size(stack);
        }
        match builder.spawn(move || {
            let pool = Arc::clone(&worker.pool);
            (pool.body)(worker)
        }) {
            Ok(h) => {
                handles.push((h.thread().id(), h));
                Ok(true)
            }
            Err(e) => {
                // The Worker (and its decrement of `spawned`) was dropped with the closure.
                Err(e)
            }
        }
    }

    /// Lazy mode: `f` runs on the monitor thread each time jobs starve while max_workers
    /// threads already exist (so a cap, not a lack of demand, keeps them waiting). Set once.
    pub fn set_on_limit(&self, f: Box<dyn Fn() + Send + Sync>) {
        let _ = self.on_limit.set(f);
    }

    /// Workers that run Python need the stack a Python thread would get, not Rust's 2 MiB.
    pub fn set_stack_size(&self, bytes: usize) {
        self.stack_size.store(bytes, Ordering::Relaxed);
    }

    /// Stops accepting jobs. Workers finish what is queued, then exit.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.tx.write().take();
        let _running = self.monitor.running.lock();
        self.monitor.wake.notify_all();
    }

    /// Removes every job still queued (for cancel_futures and exit).
    pub fn drain(&self) -> Vec<J> {
        self.rx.try_iter().collect()
    }

    /// Waits for every worker thread except the calling one. Call with the GIL released.
    pub fn join(&self, timeout: Option<Duration>) -> bool {
        let me = thread::current().id();
        let deadline = timeout.and_then(crate::core::wait::deadline_after);
        loop {
            let next = {
                let mut hs = self.handles.lock();
                let pos = hs.iter().position(|(id, _)| *id != me);
                pos.map(|i| hs.swap_remove(i))
            };
            let Some((_, h)) = next else { return true };
            match deadline {
                None => {
                    let _ = h.join();
                }
                Some(d) => {
                    while !h.is_finished() {
                        if std::time::Instant::now() >= d {
                            self.handles.lock().push((h.thread().id(), h));
                            return false;
                        }
                        thread::sleep(Duration::from_millis(2));
                    }
                    let _ = h.join();
                }
            }
        }
    }

    /// Forgets the threads and queue ends without touching them: after fork() they belong to
    /// the parent, and their internal locks may be held by threads that no longer exist.
    pub fn abandon(&self) {
        std::mem::forget(std::mem::take(&mut *self.handles.lock()));
        std::mem::forget(self.tx.write().take());
    }

    pub fn queued(&self) -> usize {
        self.rx.len()
    }

    pub fn snapshot(&self) -> Snapshot {
        let c = &self.counters;
        Snapshot {
            workers: self.spawned.load(Ordering::Acquire),
            idle: self.idle.load(Ordering::Acquire),
            queued: self.rx.len(),
            running: c.running.load(Ordering::Relaxed),
            submitted: c.submitted.load(Ordering::Relaxed),
            completed: c.completed.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            cancelled: c.cancelled.load(Ordering::Relaxed),
            waits: c.waits.load(Ordering::Relaxed),
        }
    }
}

/// Convenience for tests and plain-Rust users: a worker body that runs boxed closures.
pub fn closure_body(w: Worker<Box<dyn FnOnce() + Send>>) {
    loop {
        let job = match w.try_next() {
            Next::Job(j) => j,
            Next::Empty => match w.wait_next() {
                Some(j) => j,
                None => break,
            },
            Next::Closed => break,
        };
        w.pool().counters.running.fetch_add(1, Ordering::Relaxed);
        job();
        w.pool().counters.running.fetch_sub(1, Ordering::Relaxed);
        Counters::add(&w.pool().counters.completed, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::sync::Barrier;

    type Job = Box<dyn FnOnce() + Send>;

    fn pool(workers: usize, cap: usize) -> Arc<Pool<Job>> {
        Pool::new(workers, cap, String::new(), closure_body)
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
        // The only worker is held by the first job, so the next ten stay queued (a drain
        // racing the worker for the first job could let it run some of them).
        started.recv().unwrap();
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
}
