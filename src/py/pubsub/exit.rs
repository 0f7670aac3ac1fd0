//! Interpreter exit: no dispatch thread may touch Python once finalization starts (it would
//! crash the process). One process-wide stopper, rather than one per bus, so that nothing
//! depends on the order of atexit work or on a bus still being reachable: a bus dropped
//! without close() leaves its dispatch threads delivering until its queues are empty.
//!
//! At exit, queued messages are delivered as close(drain=True) would, for up to DRAIN_GRACE:
//! a handler blocked for good (an Event nobody sets) must not hang the exit, and Ctrl-C ends
//! the wait at once. What is still queued then is discarded (counted and logged); handler
//! calls in progress get EXIT_GRACE more to finish. Threads still in a handler after that are
//! abandoned (logged); the process ends around them.

use super::delivery::BusInner;
use super::Dispatch;
use crate::core::sync::Mutex;
use crate::py::runtime::{self, Stoppable};
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

/// How long exit keeps delivering what is queued.
pub(super) const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// How long exit then waits for handler calls in progress.
pub(super) const EXIT_GRACE: Duration = Duration::from_secs(5);

/// Set when exit's drain is over (done, late or interrupted): no handler call starts after it.
static HALTED: AtomicBool = AtomicBool::new(false);

/// Whether dispatch must stop delivering: exit's drain is over. (While it drains, dispatch
/// threads deliver as during close(drain=True); the stopper waits for them before returning.)
pub(super) fn halted() -> bool {
    HALTED.load(SeqCst)
}

/// Dispatch threads that may still touch Python: process generation in the high half (a
/// forked child inherits the count but none of the threads), count in the low half.
static LIVE: AtomicU64 = AtomicU64::new(0);
/// A bus and its pool (which outlives a bus dropped without close), with the generation
/// that made them.
type Tracked = (u64, Weak<BusInner>, Weak<Dispatch>);
/// The tracked list of one process generation. A fork child starts a new one instead of
/// locking the parent's, which a thread that does not exist in the child may hold.
struct TrackedList {
    gen: u64,
    list: Mutex<Vec<Tracked>>,
}
static TRACKED: AtomicPtr<TrackedList> = AtomicPtr::new(std::ptr::null_mut());

fn tracked() -> &'static Mutex<Vec<Tracked>> {
    let gen = runtime::generation();
    loop {
        let cur = TRACKED.load(SeqCst);
        // SAFETY: published lists are leaked, never freed, so the pointer stays valid.
        if let Some(l) = unsafe { cur.as_ref() } {
            if l.gen == gen {
                return &l.list;
            }
        }
        let fresh = Box::into_raw(Box::new(TrackedList {
            gen,
            list: Mutex::new(Vec::new()),
        }));
        if TRACKED
            .compare_exchange(cur, fresh, SeqCst, SeqCst)
            .is_err()
        {
            // SAFETY: never published, so nobody else can see it.
            drop(unsafe { Box::from_raw(fresh) });
        }
        // The previous generation's list is leaked on purpose: its lock may be held.
    }
}
static STOPPER: OnceLock<Arc<dyn Stoppable>> = OnceLock::new();
/// Generation (plus one) the stopper was last registered in.
static REGISTERED: AtomicU64 = AtomicU64::new(0);

fn tag(gen: u64) -> u64 {
    gen & 0xffff_ffff
}

fn live_add(gen: u64, delta: i64) {
    let _ = LIVE.fetch_update(SeqCst, SeqCst, |v| {
        let n = if v >> 32 == tag(gen) {
            v & 0xffff_ffff
        } else {
            0
        };
        Some((tag(gen) << 32) | (n as i64 + delta).max(0) as u64)
    });
}

fn live(gen: u64) -> u64 {
    let v = LIVE.load(SeqCst);
    if v >> 32 == tag(gen) {
        v & 0xffff_ffff
    } else {
        0
    }
}

/// Held by a dispatch thread from its start until it no longer touches Python.
pub struct Live(u64);

impl Live {
    /// None when the interpreter is exiting: the thread must not touch Python at all.
    pub fn enter() -> Option<Live> {
        let gen = runtime::generation();
        // Counted before looking at the flag: either the stopper waits for this thread,
        // or this thread sees the flag.
        live_add(gen, 1);
        let me = Live(gen);
        (!halted()).then_some(me)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        live_add(self.0, -1);
    }
}

pub fn track(bus: &Arc<BusInner>) {
    let gen = runtime::generation();
    {
        let mut t = tracked().lock();
        t.retain(|(g, b, p)| *g == gen && (b.strong_count() > 0 || p.strong_count() > 0));
        t.push((gen, Arc::downgrade(bus), Arc::downgrade(&bus.dispatch)));
    }
    if REGISTERED.swap(gen + 1, SeqCst) != gen + 1 {
        runtime::register(STOPPER.get_or_init(|| Arc::new(Stopper)));
    }
}

struct Stopper;

impl Stoppable for Stopper {
    fn stop_for_exit(&self, py: Python<'_>) {
        let gen = runtime::generation();
        let tracked: Vec<_> = tracked()
            .lock()
            .iter()
            .filter(|(g, _, _)| *g == gen)
            .map(|(_, b, p)| (b.upgrade(), p.upgrade()))
            .collect();
        let drain_until = Instant::now() + DRAIN_GRACE;
        let mut interrupted = false;
        for (bus, pool) in &tracked {
            if let Some(bus) = bus {
                // Delivers what is queued, releases blocked publishers and readers, then waits
                // for the handlers. Interrupted or late, what is left is discarded.
                let before = bus.discarded.load(SeqCst);
                let r = if interrupted {
                    Err(())
                } else {
                    // Nobody reads pull subscriptions after exit: theirs is discarded.
                    bus.shutdown(py, true, false, Some(drain_until))
                        .map_err(drop)
                };
                if r.is_err() {
                    // Ctrl-C cut the drain short: discard (and count) what is left.
                    interrupted = true;
                    let _ = bus.shutdown(py, false, false, Some(Instant::now()));
                }
                let n = bus.discarded.load(SeqCst) - before;
                if n > 0 {
                    log::warn!(
                        target: "chanpool",
                        "PubSub: {n} queued message(s) discarded at interpreter exit, not \
                         delivered within {} s (counted in stats()['discarded'])",
                        DRAIN_GRACE.as_secs()
                    );
                }
            } else if let Some(pool) = pool {
                // A bus dropped without close(): its runs stop at the next message.
                pool.close();
                drop(pool.drain());
            }
        }
        HALTED.store(true, SeqCst);
        drop(tracked);
        if live(gen) == 0 {
            return;
        }
        if !interrupted {
            // Polled: a thread leaves the count with no one to wake.
            let done = |_slice| match live(gen) {
                0 => Some(()),
                _ => {
                    std::thread::sleep(Duration::from_millis(1));
                    None
                }
            };
            let deadline = Instant::now().checked_add(EXIT_GRACE);
            interrupted = runtime::slices_detached(py, deadline, done).is_err();
            if live(gen) == 0 {
                return;
            }
        }
        // Abandoned: runtime's FINAL, set when the exit hooks return, parks them instead of
        // letting them re-attach.
        log::warn!(
            target: "chanpool",
            "PubSub: {} dispatch thread(s) still in a handler at interpreter exit {}; abandoned",
            live(gen),
            if interrupted {
                "(interrupted)".to_string()
            } else {
                format!("after waiting {} s", EXIT_GRACE.as_secs())
            }
        );
    }
}
