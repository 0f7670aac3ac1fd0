//! Lazy mode's starvation monitor: one thread per pool that starts another worker when
//! queued jobs have waited a whole window without any worker taking one (see
//! [`Pool::set_lazy`]).

use super::{thread_name, Pool};
use crate::core::sync::{Condvar, Mutex};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// State of the starvation monitor (lazy mode only).
#[derive(Default)]
pub(super) struct Monitor {
    /// Set by a submit that found nobody idle and no eager thread left to start.
    pub(super) armed: AtomicBool,
    /// Microseconds without progress that count as starving; 0 when lazy mode is off.
    pub(super) after_us: AtomicU64,
    pub(super) running: Mutex<bool>,
    pub(super) wake: Condvar,
}

impl<J: Send + 'static> Pool<J> {
    /// Lazy mode: has the monitor watch for starvation (it starts on first use).
    pub(super) fn arm_monitor(self: &Arc<Self>) {
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
            .name(thread_name(name))
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
                    && self.idle_tokens.count() == 0;
                if stuck && !matches!(self.spawn_idle(self.max_workers), Ok(true)) {
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
}
