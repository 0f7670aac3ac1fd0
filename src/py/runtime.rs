//! Process-wide rules every binding follows: stop native workers before the interpreter
//! finalizes, refuse objects inherited across fork(), and wait in slices so Ctrl-C gets through.

use crate::core::sync::Mutex;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How long a blocked call sleeps before it looks at signals and deadlines again.
pub const SLICE: Duration = Duration::from_millis(20);

/// Anything that owns native threads running Python.
pub trait Stoppable: Send + Sync {
    /// Called attached, at interpreter exit: cancel queued work, then join workers detached.
    fn stop_for_exit(&self, py: Python<'_>);
}

type Registry = Vec<Weak<dyn Stoppable>>;

static REGISTRY: Mutex<Registry> = Mutex::new(Vec::new());
static FORK_GEN: AtomicU64 = AtomicU64::new(0);
static EXITING: AtomicBool = AtomicBool::new(false);

pub fn register(obj: &Arc<dyn Stoppable>) {
    let mut reg = REGISTRY.lock();
    reg.retain(|w| w.strong_count() > 0);
    reg.push(Arc::downgrade(obj));
}

/// Bumped in the child after fork(): objects from an older generation are dead there.
pub fn generation() -> u64 {
    FORK_GEN.load(Ordering::Acquire)
}

pub fn exiting() -> bool {
    EXITING.load(Ordering::Acquire)
}

pub fn check_process(gen: u64, what: &str) -> PyResult<()> {
    if gen != generation() {
        return Err(PyRuntimeError::new_err(format!(
            "this {what} was created in the parent process before fork(); its threads do not \
             exist here: create a new {what} in the child"
        )));
    }
    Ok(())
}

/// atexit hook: stops everything that is still running.
#[pyfunction]
pub fn _shutdown_all(py: Python<'_>) {
    EXITING.store(true, Ordering::Release);
    let live: Vec<Arc<dyn Stoppable>> = REGISTRY.lock().iter().filter_map(Weak::upgrade).collect();
    for obj in live {
        obj.stop_for_exit(py);
    }
}

thread_local! {
    // The registry guard held across fork() by the forking thread (its TLS survives in the child).
    static HELD: std::cell::RefCell<Option<crate::core::sync::MutexGuard<'static, Registry>>> =
        const { std::cell::RefCell::new(None) };
}

/// os.register_at_fork(before=...): hold the registry so the child never inherits it locked.
#[pyfunction]
pub fn _before_fork() {
    let guard = REGISTRY.lock();
    HELD.with(|h| *h.borrow_mut() = Some(guard));
}

#[pyfunction]
pub fn _after_fork_parent() {
    HELD.with(|h| h.borrow_mut().take());
}

#[pyfunction]
pub fn _after_fork_child() {
    HELD.with(|h| {
        if let Some(mut reg) = h.borrow_mut().take() {
            // The parent's objects must not be touched (their locks may be held by threads
            // that are gone), so forget them instead of dropping.
            std::mem::forget(std::mem::take(&mut *reg));
        }
    });
    FORK_GEN.fetch_add(1, Ordering::AcqRel);
}

/// Remaining time until `deadline`, capped at one slice; None when it has passed.
pub fn next_slice(deadline: Option<Instant>) -> Option<Duration> {
    match deadline {
        None => Some(SLICE),
        Some(d) => {
            let now = Instant::now();
            if now >= d {
                None
            } else {
                Some((d - now).min(SLICE))
            }
        }
    }
}

/// A Python timeout as a deadline: None waits forever, NaN is a ValueError, a timeout too far
/// away for the clock (inf, 1e19) means no deadline at all rather than a panic.
pub fn deadline_from(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_nan() => Err(pyo3::exceptions::PyValueError::new_err(
            "timeout must be a number, not NaN",
        )),
        Some(t) if t <= 0.0 => Ok(Some(Instant::now())),
        Some(t) => Ok(Duration::try_from_secs_f64(t)
            .ok()
            .and_then(|d| Instant::now().checked_add(d))),
    }
}

/// The stack size for a native thread that runs Python code: `threading.stack_size()` when the
/// program set one, else the platform's default for a new thread (what a `threading.Thread`
/// gets: 8 MiB on Linux), never Rust's 2 MiB, so tasks recurse as deep as on Python threads.
pub fn thread_stack_size(py: Python<'_>) -> usize {
    let set = py
        .import("threading")
        .and_then(|t| t.call_method0("stack_size"))
        .and_then(|s| s.extract::<usize>())
        .unwrap_or(0);
    if set > 0 {
        set
    } else {
        platform_stack_size()
    }
}

/// pthread's default stack size for new threads (from RLIMIT_STACK on glibc).
pub fn platform_stack_size() -> usize {
    static SIZE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    const FALLBACK: usize = 8 << 20;
    *SIZE.get_or_init(|| {
        // SAFETY: the attribute object is initialised before it is read and destroyed after.
        unsafe {
            let mut attr: libc::pthread_attr_t = std::mem::zeroed();
            if libc::pthread_attr_init(&mut attr) != 0 {
                return FALLBACK;
            }
            let mut size: libc::size_t = 0;
            let ok = libc::pthread_attr_getstacksize(&attr, &mut size) == 0;
            libc::pthread_attr_destroy(&mut attr);
            if ok && size >= (1 << 20) {
                size
            } else {
                FALLBACK
            }
        }
    })
}

static MAIN_IDENT: AtomicU64 = AtomicU64::new(0);

/// Remembers which thread is Python's main thread (the only one that sees signals).
pub fn init_main_thread(py: Python<'_>) -> PyResult<()> {
    let ident: u64 = py
        .import("threading")?
        .call_method0("main_thread")?
        .getattr("ident")?
        .extract()?;
    MAIN_IDENT.store(ident, Ordering::Release);
    Ok(())
}

pub fn on_main_thread() -> bool {
    // SAFETY: a plain query of the calling thread's identifier.
    let me = unsafe { pyo3::ffi::PyThread_get_thread_ident() } as u64;
    me == MAIN_IDENT.load(Ordering::Acquire)
}

/// Runs a blocking core operation with the GIL released. Between its wait slices the hook
/// checks for Ctrl-C (on the main thread, where signals arrive); the error that stopped the
/// wait, if any, is returned for the caller to raise.
pub fn wait_detached<R, F>(py: Python<'_>, f: F) -> (R, Option<PyErr>)
where
    R: Send,
    F: FnOnce(crate::core::wait::Hook<'_>) -> R + Send,
{
    let main = on_main_thread();
    let mut err: Option<PyErr> = None;
    let r = py.detach(|| {
        let mut hook = || {
            if !main {
                return false;
            }
            match Python::attach(|py| py.check_signals()) {
                Ok(()) => false,
                Err(e) => {
                    err = Some(e);
                    true
                }
            }
        };
        f(&mut hook)
    });
    (r, err)
}

/// `wait_detached` for waits that either take what they wait for or give up: Ok(true) when
/// taken, Ok(false) on timeout (or close), the signal's exception when interrupted.
pub fn acquire_detached<F>(py: Python<'_>, f: F) -> PyResult<bool>
where
    F: FnOnce(crate::core::wait::Hook<'_>) -> Result<(), crate::core::wait::Stop> + Send,
{
    use crate::core::wait::Stop;
    match wait_detached(py, f) {
        (Ok(()), _) => Ok(true),
        (Err(Stop::Interrupted), err) => Err(err
            .unwrap_or_else(|| pyo3::exceptions::PyKeyboardInterrupt::new_err("wait interrupted"))),
        (Err(Stop::Timeout | Stop::Closed), _) => Ok(false),
    }
}

/// The fork generation an object that survives fork() was last used in: the first use in a
/// child process gets to drop what belonged to the parent's threads (waiters in line).
pub struct ForkEpoch(AtomicU64);

impl ForkEpoch {
    pub fn new() -> Self {
        ForkEpoch(AtomicU64::new(generation()))
    }

    /// Calls `forget` once per new generation, before the object is used there.
    pub fn check(&self, forget: impl FnOnce(u64)) {
        let gen = generation();
        if self.0.load(Ordering::Acquire) != gen {
            forget(gen);
            self.0.store(gen, Ordering::Release);
        }
    }
}
