//! Interpreter exit.
//!
//! Exit happens in stages. `_threading_exit` (threading's own exit hooks, where
//! ThreadPoolExecutor joins its workers) stops the pools that ask for it: queued work runs, new
//! submits fail. `_shutdown_all` (atexit) then stops everything else and sets EXITING; once it
//! is done, FINAL. A thread that re-attaches after that could be killed by CPython with
//! pthread_exit, whose unwinding aborts the process when it meets Rust frames, so every detached
//! wait goes through [`detach`]: a thread that finishes its wait when it must not re-attach
//! (EXITING for foreign threads other than main, FINAL or `Py_IsFinalizing` for all but main)
//! parks forever, as CPython 3.14 parks daemon threads. The hooks wait until no thread is
//! between that check and its re-attach.

use super::fork::registry;
use super::threads::{on_main_thread, py_finalizing};
use crate::core::sync::Mutex;
use crate::core::wait::SLICE;
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Anything that owns native threads running Python.
pub trait Stoppable: Send + Sync {
    /// Called attached, at interpreter exit: cancel queued work, then join workers detached.
    fn stop_for_exit(&self, py: Python<'_>);

    /// Whether to stop at threading's exit (before atexit hooks run), as
    /// ThreadPoolExecutor does, rather than in the atexit hook.
    fn stops_early(&self) -> bool {
        false
    }
}

pub(super) type Registry = Vec<Weak<dyn Stoppable>>;

static EXITING: AtomicBool = AtomicBool::new(false);
/// threading's exit hooks ran: pools refuse work "after interpreter shutdown".
static SHUTDOWN: AtomicBool = AtomicBool::new(false);
/// The exit hooks are done (or gave up on a Ctrl-C): no thread but main may attach again.
static FINAL: AtomicBool = AtomicBool::new(false);
/// An exit join was interrupted: later stops do not wait again.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Threads between "may I re-attach?" and having re-attached.
pub(super) static REATTACHING: AtomicUsize = AtomicUsize::new(0);

pub fn register(obj: &Arc<dyn Stoppable>) {
    let mut reg = registry().lock();
    reg.retain(|w| w.strong_count() > 0);
    reg.push(Arc::downgrade(obj));
}

pub fn exiting() -> bool {
    EXITING.load(Ordering::Acquire)
}

/// ThreadPoolExecutor's "interpreter shutdown": set from threading's exit hooks on.
pub fn interpreter_shutdown() -> bool {
    SHUTDOWN.load(Ordering::Acquire) || exiting()
}

fn live_objects(early_only: bool) -> Vec<Arc<dyn Stoppable>> {
    registry()
        .lock()
        .iter()
        .filter_map(Weak::upgrade)
        .filter(|o| !early_only || o.stops_early())
        .collect()
}

/// threading's exit hook (ThreadPoolExecutor's moment): stops the pools, letting queued work
/// run. A Ctrl-C while it waits is raised from here (CPython reports it and goes on exiting).
#[pyfunction]
pub fn _threading_exit(py: Python<'_>) -> PyResult<()> {
    SHUTDOWN.store(true, Ordering::SeqCst);
    for obj in live_objects(true) {
        obj.stop_for_exit(py);
    }
    take_exit_interrupt()
}

/// atexit hook: stops everything that is still running, then closes the door on re-attaching.
#[pyfunction]
pub fn _shutdown_all(py: Python<'_>) -> PyResult<()> {
    SHUTDOWN.store(true, Ordering::SeqCst);
    EXITING.store(true, Ordering::SeqCst);
    settle_reattaching(py);
    for obj in live_objects(false) {
        obj.stop_for_exit(py);
    }
    FINAL.store(true, Ordering::SeqCst);
    settle_reattaching(py);
    take_exit_interrupt()
}

static EXIT_INTERRUPT: Mutex<Option<PyErr>> = Mutex::new(None);

fn take_exit_interrupt() -> PyResult<()> {
    match EXIT_INTERRUPT.lock().take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Waits, detached, until every thread that passed the re-attach check has re-attached; the
/// ones checking later see the flag just set and park.
fn settle_reattaching(py: Python<'_>) {
    if REATTACHING.load(Ordering::SeqCst) == 0 {
        return;
    }
    py.detach(|| {
        while REATTACHING.load(Ordering::SeqCst) != 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    });
}

/// The exit hooks' join: `join(slice)` until it returns true, checking for Ctrl-C between
/// slices (the hooks run on the main thread). False when interrupted, now or by an earlier
/// stop; the interrupt is re-raised when the hook returns.
pub fn exit_join(py: Python<'_>, join: impl Fn(Duration) -> bool + Send + Sync) -> bool {
    loop {
        if INTERRUPTED.load(Ordering::Acquire) {
            return false;
        }
        if py.detach(|| join(SLICE)) {
            return true;
        }
        if let Err(e) = py.check_signals() {
            INTERRUPTED.store(true, Ordering::Release);
            FINAL.store(true, Ordering::SeqCst);
            *EXIT_INTERRUPT.lock() = Some(e);
            return false;
        }
    }
}

/// Whether a thread that is not the main thread may attach now (see the module doc).
fn may_attach() -> bool {
    if FINAL.load(Ordering::SeqCst) || py_finalizing() {
        return false;
    }
    !EXITING.load(Ordering::SeqCst) || crate::core::pool::in_pool_thread()
}

fn park_forever() -> ! {
    loop {
        std::thread::park();
    }
}

/// Marks the calling thread as about to attach; parks it forever when it must not. Pair with
/// [`attached`] once attached.
fn before_attach() {
    REATTACHING.fetch_add(1, Ordering::SeqCst);
    if !may_attach() {
        REATTACHING.fetch_sub(1, Ordering::SeqCst);
        park_forever();
    }
}

fn attached() {
    REATTACHING.fetch_sub(1, Ordering::SeqCst);
}

/// `py.detach(f)` for every wait a thread can be in at exit: the main thread re-attaches as
/// usual; any other thread re-attaches only while that is safe, else parks forever.
pub fn detach<R, F>(py: Python<'_>, f: F) -> R
where
    R: Send,
    F: FnOnce() -> R + Send,
{
    if on_main_thread() {
        return py.detach(f);
    }
    let r = py.detach(|| {
        let r = f();
        before_attach();
        r
    });
    attached();
    r
}

/// `Python::attach` for a native thread starting to run Python: None (without attaching)
/// when the interpreter is exiting past the point where that is safe.
pub fn attach_native<R>(f: impl FnOnce(Python<'_>) -> R) -> Option<R> {
    REATTACHING.fetch_add(1, Ordering::SeqCst);
    if !may_attach() {
        REATTACHING.fetch_sub(1, Ordering::SeqCst);
        return None;
    }
    Some(Python::attach(|py| {
        attached();
        f(py)
    }))
}
