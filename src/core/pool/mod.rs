//! A Go-style worker pool: one shared (optionally bounded) job queue drained by up to
//! `max_workers` threads that are started on demand. Knows nothing about Python: the binding
//! supplies the worker body, which decides how jobs run (e.g. attached to the interpreter).

mod gate;
mod live;
#[cfg(all(test, loom))]
mod loom_models;
mod monitor;
mod spawn;
#[cfg(all(test, not(loom)))]
mod tests;
mod tokens;
mod worker;

use crate::core::sync::Mutex;
use crossbeam_channel::{bounded, unbounded, Receiver, Sender, TrySendError};
use gate::Gate;
use live::Live;
use monitor::Monitor;
use spawn::thread_name;
use spawn::Spawn;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle, ThreadId};
use std::time::Duration;
use tokens::IdleTokens;
pub use worker::{closure_body, in_pool_thread, Worker};

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

/// Why [`Pool::offer`] did not take a job: [`Rejected`]'s cases, plus "no thread could be
/// started and none is running", where queueing the job would leave it with nobody to run it.
pub enum Offer<J> {
    Full(J),
    Closed(J),
    NoThread(J, std::io::Error),
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
    tx: Gate<Sender<J>>,
    rx: Receiver<J>,
    capacity: usize,
    max_workers: usize,
    name_prefix: String,
    closed: AtomicBool,
    spawned: AtomicUsize,
    idle: AtomicUsize,
    /// One token per time a worker went idle, taken by a submit (ThreadPoolExecutor's idle
    /// semaphore): a submit that gets one relies on that worker instead of starting a thread.
    idle_tokens: IdleTokens,
    handles: Mutex<Vec<(ThreadId, JoinHandle<()>)>>,
    /// Worker threads that have not finished yet: what join() waits for.
    live: Live,
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
    /// A submit that starts a thread hands it the job (see [`Pool::set_handoff`]).
    handoff: AtomicBool,
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
            tx: Gate::new(tx),
            rx,
            capacity,
            max_workers,
            name_prefix,
            closed: AtomicBool::new(false),
            spawned: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            idle_tokens: IdleTokens::new(),
            handles: Mutex::new(Vec::new()),
            live: Live::new(),
            body: Box::new(body),
            counters: Counters::default(),
            eager: AtomicUsize::new(max_workers),
            stack_size: AtomicUsize::new(0),
            on_limit: std::sync::OnceLock::new(),
            handoff: AtomicBool::new(false),
            taken: AtomicU64::new(0),
            monitor: Monitor::default(),
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
    /// If no thread can be started for it and none is running, the job is queued anyway (a
    /// later submit may start one); [`Pool::offer`] reports that case instead.
    pub fn try_submit(self: &Arc<Self>, job: J, weight: u64) -> Result<(), Rejected<J>> {
        match self.offer(job, weight) {
            Ok(()) => Ok(()),
            Err(Offer::Full(j)) => Err(Rejected::Full(j)),
            Err(Offer::Closed(j)) => Err(Rejected::Closed(j)),
            Err(Offer::NoThread(j, _)) => {
                self.try_enqueue(j)?;
                self.counters.submitted.fetch_add(weight, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// Submits without blocking. A job that finds no idle worker starts a new thread with it
    /// as that thread's first job (when below the limit); otherwise it is queued. The sender
    /// lock is held throughout, so close() either sees this job accepted or refuses it.
    pub fn offer(self: &Arc<Self>, job: J, weight: u64) -> Result<(), Offer<J>> {
        let Some(tx) = self.tx.enter() else {
            return Err(Offer::Closed(job));
        };
        if !self.handoff.load(Ordering::Relaxed) {
            // Queue first; a thread started for it takes whatever is first in line (FIFO
            // start order, which the pub/sub dispatch relies on).
            return match tx.try_send(job) {
                Ok(()) => {
                    self.after_queue(tx, weight);
                    Ok(())
                }
                Err(TrySendError::Full(j)) => Err(Offer::Full(j)),
                Err(TrySendError::Disconnected(j)) => Err(Offer::Closed(j)),
            };
        }
        let token = self.take_idle_token();
        let mut arm = false;
        let job = if token {
            job
        } else {
            let eager = self.eager.load(Ordering::Acquire);
            match self.spawn_locked(eager, Some(job)) {
                Spawn::Started => {
                    self.counters.submitted.fetch_add(weight, Ordering::Relaxed);
                    return Ok(());
                }
                Spawn::AtLimit(j) => {
                    arm = self.watching(eager);
                    j.expect("job handed back")
                }
                Spawn::Failed(j, e) => {
                    let j = j.expect("job handed back");
                    if self.spawned.load(Ordering::Acquire) == 0 {
                        return Err(Offer::NoThread(j, e));
                    }
                    j
                }
            }
        };
        match tx.try_send(job) {
            Ok(()) => {
                drop(tx);
                self.counters.submitted.fetch_add(weight, Ordering::Relaxed);
                if arm {
                    self.arm_monitor();
                }
                Ok(())
            }
            Err(e) => {
                if token {
                    // Not queued after all: the idle worker is still there for the next one.
                    self.idle_tokens.give();
                }
                Err(match e {
                    TrySendError::Full(j) => Offer::Full(j),
                    TrySendError::Disconnected(j) => Offer::Closed(j),
                })
            }
        }
    }

    /// After a job went into the queue (the gate still held open, so close() cannot pass a
    /// spawn): counts it and, like ThreadPoolExecutor, starts a thread only when no worker is
    /// waiting; arms the monitor when none could start.
    fn after_queue(self: &Arc<Self>, open: gate::Open<'_, Sender<J>>, weight: u64) {
        self.counters.submitted.fetch_add(weight, Ordering::Relaxed);
        let mut arm = false;
        if !self.take_idle_token() {
            let eager = self.eager.load(Ordering::Acquire);
            arm = !matches!(self.spawn_locked(eager, None), Spawn::Started) && self.watching(eager);
        }
        drop(open);
        if arm {
            self.arm_monitor();
        }
    }

    /// The queueing half of try_submit and requeue; the sender lock is released on return.
    fn try_enqueue(&self, job: J) -> Result<(), Rejected<J>> {
        let Some(tx) = self.tx.enter() else {
            return Err(Rejected::Closed(job));
        };
        tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(j) => Rejected::Full(j),
            TrySendError::Disconnected(j) => Rejected::Closed(j),
        })
    }

    /// Takes one idle token if there is one: a waiting worker will take the job just queued.
    fn take_idle_token(&self) -> bool {
        self.idle_tokens.take()
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
    /// they can notice signals and shutdown between them. The sender lock is held (shared)
    /// while waiting, so a submit never gets in after close() returned; close() waits at most
    /// one slice for it.
    pub fn submit_timeout(
        self: &Arc<Self>,
        job: J,
        weight: u64,
        timeout: Duration,
    ) -> Result<(), Rejected<J>> {
        let Some(tx) = self.tx.enter() else {
            return Err(Rejected::Closed(job));
        };
        match tx.send_timeout(job, timeout) {
            Ok(()) => {
                self.after_queue(tx, weight);
                Ok(())
            }
            Err(crossbeam_channel::SendTimeoutError::Timeout(j)) => Err(Rejected::Full(j)),
            Err(crossbeam_channel::SendTimeoutError::Disconnected(j)) => Err(Rejected::Closed(j)),
        }
    }

    /// A submit that starts a thread gives it the job as its first, so it starts on it at
    /// once and a drain (cancel_futures) cannot take it: ThreadPoolExecutor's behaviour.
    /// Off by default: then jobs start in queue order.
    pub fn set_handoff(&self, on: bool) {
        self.handoff.store(on, Ordering::Relaxed);
    }

    /// Lazy mode: `f` runs on the monitor thread each time jobs starve while max_workers
    /// threads already exist (so a cap, not a lack of demand, keeps them waiting). Set once.
    pub fn set_on_limit(&self, f: Box<dyn Fn() + Send + Sync>) {
        let _ = self.on_limit.set(f);
    }

    /// Whether a submit that started no thread arms the monitor: below the cap it may start
    /// one; at the cap it reports the starvation if anyone listens.
    fn watching(&self, eager: usize) -> bool {
        eager < self.max_workers || self.on_limit.get().is_some()
    }

    /// Workers that run Python need the stack a Python thread would get, not Rust's 2 MiB.
    pub fn set_stack_size(&self, bytes: usize) {
        self.stack_size.store(bytes, Ordering::Relaxed);
    }

    /// Stops accepting jobs. Workers finish what is queued, then exit. Waits (at most one
    /// submit slice) for submits blocked on a full queue: after it returns none can succeed.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        drop(self.tx.close());
        let _running = self.monitor.running.lock();
        self.monitor.wake.notify_all();
    }

    /// Removes every job still queued (for cancel_futures and exit).
    pub fn drain(&self) -> Vec<J> {
        self.rx.try_iter().collect()
    }

    /// Waits for every worker thread except the calling one. Call with the GIL released.
    /// Every concurrent caller waits for all of them (see [`live`]).
    pub fn join(&self, timeout: Option<Duration>) -> bool {
        let me = thread::current().id();
        let deadline = timeout.and_then(crate::core::wait::deadline_after);
        let own = usize::from(self.handles.lock().iter().any(|(id, _)| *id == me));
        if !self.live.wait_until_at_most(own, deadline) {
            return false;
        }
        // Reap the finished threads (their bodies have returned, so this is immediate).
        let done: Vec<_> = {
            let mut hs = self.handles.lock();
            let (mine, rest): (Vec<_>, Vec<_>) = hs.drain(..).partition(|(id, _)| *id == me);
            *hs = mine;
            rest
        };
        for (_, h) in done {
            let _ = h.join();
        }
        true
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
