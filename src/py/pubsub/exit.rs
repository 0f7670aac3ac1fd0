//! Interpreter exit: no dispatch thread may touch Python once finalization starts (it would
//! crash the process). One process-wide stopper, rather than one per bus, so that nothing
//! depends on the order of atexit work or on a bus still being reachable: a bus dropped
//! without close() leaves its dispatch threads delivering until its queues are empty.

use super::delivery::BusInner;
use super::Dispatch;
use crate::core::sync::Mutex;
use crate::py::runtime::{self, Stoppable};
use pyo3::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

/// Dispatch threads that may still touch Python: process generation in the high half (a
/// forked child inherits the count but none of the threads), count in the low half.
static LIVE: AtomicU64 = AtomicU64::new(0);
/// A bus and its pool (which outlives a bus dropped without close), with the generation
/// that made them.
type Tracked = (u64, Weak<BusInner>, Weak<Dispatch>);
static TRACKED: Mutex<Vec<Tracked>> = Mutex::new(Vec::new());
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
        (!runtime::exiting()).then_some(me)
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
        let mut t = TRACKED.lock();
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
        let tracked: Vec<_> = TRACKED
            .lock()
            .iter()
            .filter(|(g, _, _)| *g == gen)
            .map(|(_, b, p)| (b.upgrade(), p.upgrade()))
            .collect();
        for (bus, pool) in &tracked {
            if let Some(bus) = bus {
                // Releases blocked publishers and readers, then joins the handlers.
                let _ = bus.shutdown(py, false, None);
            } else if let Some(pool) = pool {
                // A bus dropped without close(): its runs stop at the next message.
                pool.close();
                drop(pool.drain());
            }
        }
        drop(tracked);
        while live(gen) > 0 {
            py.detach(|| std::thread::sleep(Duration::from_millis(1)));
        }
    }
}
