//! PubSub: the broker adapted to Python. Each subscription owns a bounded mailbox; its handler
//! runs on a shared pool of native dispatch threads, at most `workers` deliveries at a time (one
//! keeps the subscriber's order). Like WorkerPool's, dispatch threads attach once and let go of
//! the GIL only to wait for work.

mod aio;
mod bus;
mod delivery;
mod dispatch;
mod entry;
mod exit;
mod message;
mod routes;
mod subscription;

pub use bus::PubSub;
pub use entry::install;
pub use message::Message;
pub use subscription::Subscription;

use crate::core::broker::Subscription as CoreSub;
use crate::core::pool::Pool;
use delivery::Extra;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

/// Messages a dispatch run delivers before it lets other subscriptions have the thread.
pub(super) const TURN: usize = 256;
/// Dispatch threads started as soon as work finds none idle. Handlers mostly need the GIL, so
/// more runnable threads only take turns at it (and each turn costs); more start when queued
/// subscriptions starve because the running handlers block.
pub(super) const EAGER: usize = 2;
/// Starving means no dispatch thread took work for this long (at least: see starve_after).
pub(super) const MIN_STARVE: Duration = Duration::from_millis(20);

thread_local! {
    /// True on dispatch threads: a publish from a handler must never wait for room.
    pub(super) static IN_DISPATCH: Cell<bool> = const { Cell::new(false) };
}

pub(super) type Sub = CoreSub<Py<Message>, Extra>;
pub(super) type Dispatch = Pool<Arc<Sub>>;

pub(super) fn closed_error() -> PyErr {
    PyRuntimeError::new_err("this PubSub is closed")
}

/// time.time()'s clock, for Message.timestamp. On unix CLOCK_REALTIME is read directly:
/// `SystemTime::now().duration_since(UNIX_EPOCH)` adds a checked subtraction and its own
/// conversion (~40 instructions a publish).
#[cfg(unix)]
#[inline]
pub(super) fn now() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out pointer; CLOCK_REALTIME always exists.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) } != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

#[cfg(not(unix))]
pub(super) fn now() -> f64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
