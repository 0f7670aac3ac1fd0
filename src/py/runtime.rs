//! Process-wide rules every binding follows: stop native workers before the interpreter
//! finalizes, refuse objects inherited across fork(), and wait in slices so Ctrl-C gets through.
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

use crate::core::sync::Mutex;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How long a blocked call sleeps before it looks at signals and deadlines again.
pub const SLICE: Duration = Duration::from_millis(20);

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

type Registry = Vec<Weak<dyn Stoppable>>;

static REGISTRY: Mutex<Registry> = Mutex::new(Vec::new());
static FORK_GEN: AtomicU64 = AtomicU64::new(0);
static EXITING: AtomicBool = AtomicBool::new(false);
/// threading's exit hooks ran: pools refuse work "after interpreter shutdown".
static SHUTDOWN: AtomicBool = AtomicBool::new(false);
/// The exit hooks are done (or gave up on a Ctrl-C): no thread but main may attach again.
static FINAL: AtomicBool = AtomicBool::new(false);
/// An exit join was interrupted: later stops do not wait again.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Threads between "may I re-attach?" and having re-attached.
static REATTACHING: AtomicUsize = AtomicUsize::new(0);

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

/// ThreadPoolExecutor's "interpreter shutdown": set from threading's exit hooks on.
pub fn interpreter_shutdown() -> bool {
    SHUTDOWN.load(Ordering::Acquire) || exiting()
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

fn live_objects(early_only: bool) -> Vec<Arc<dyn Stoppable>> {
    REGISTRY
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

/// Whether the interpreter is finalizing (`Py_IsFinalizing`, public from 3.13, looked up at
/// run time since the abi3 floor is 3.11). Safe to call without an attached thread.
pub fn py_finalizing() -> bool {
    type IsFinalizing = unsafe extern "C" fn() -> std::os::raw::c_int;
    static FUNC: std::sync::OnceLock<Option<IsFinalizing>> = std::sync::OnceLock::new();
    let f = FUNC.get_or_init(|| {
        for name in [c"Py_IsFinalizing", c"_Py_IsFinalizing"] {
            // SAFETY: dlsym with RTLD_DEFAULT only looks a symbol up; both names are
            // `int (void)` functions in every CPython that has them.
            let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
            if !p.is_null() {
                return Some(unsafe { std::mem::transmute::<*mut libc::c_void, IsFinalizing>(p) });
            }
        }
        None
    });
    // SAFETY: the function reads the runtime's finalizing flag atomically.
    f.is_some_and(|f| unsafe { f() } != 0)
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
    // The thread that forked is the child's main thread (threading agrees after fork).
    // SAFETY: a plain query of the calling thread's identifier.
    let me = unsafe { pyo3::ffi::PyThread_get_thread_ident() } as u64;
    MAIN_IDENT.store(me, Ordering::Release);
    REATTACHING.store(0, Ordering::SeqCst);
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
    // Looked up once (at module init): an import can release the GIL, which a daemon thread
    // must not do inside a Rust frame while the interpreter exits.
    let set = STACK_SIZE_FN
        .get_or_try_init(py, || {
            py.import("threading")
                .and_then(|t| t.getattr("stack_size"))
                .map(Bound::unbind)
        })
        .and_then(|f| f.bind(py).call0())
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
static STACK_SIZE_FN: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();

/// Remembers which thread is Python's main thread (the only one that sees signals), and
/// looks up what later calls need, so they never import.
pub fn init_main_thread(py: Python<'_>) -> PyResult<()> {
    let _ = thread_stack_size(py);
    let _ = py_finalizing();
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
    let r = detach(py, || {
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
/// child process gets to rebuild what belonged to the parent's threads (waiters in line, a
/// lock one of them held).
pub struct ForkEpoch(AtomicU64);

/// A ForkEpoch's value while the first user in a new generation runs its `forget`.
const ENTERING: u64 = u64::MAX;

impl ForkEpoch {
    pub fn new() -> Self {
        ForkEpoch(AtomicU64::new(generation()))
    }

    /// Calls `forget` once per new generation, before the object is used there. Threads that
    /// arrive meanwhile wait for it to finish (so `forget` must not block), never use the object
    /// half rebuilt, and never run `forget` twice.
    #[inline]
    pub fn check(&self, forget: impl FnOnce(u64)) {
        let gen = generation();
        if self.0.load(Ordering::Acquire) != gen {
            self.enter(gen, forget);
        }
    }

    #[cold]
    fn enter(&self, gen: u64, forget: impl FnOnce(u64)) {
        let mut forget = Some(forget);
        loop {
            let seen = self.0.load(Ordering::Acquire);
            if seen == gen {
                return;
            }
            if seen == ENTERING {
                std::thread::yield_now();
                continue;
            }
            if self
                .0
                .compare_exchange(seen, ENTERING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                if let Some(f) = forget.take() {
                    f(gen);
                }
                self.0.store(gen, Ordering::Release);
                return;
            }
        }
    }
}
