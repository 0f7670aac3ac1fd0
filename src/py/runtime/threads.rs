//! Facts about threads that every binding needs without importing anything at the time: the
//! main thread (the only one that sees signals), native stack sizes, finalization.

use pyo3::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

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

pub(super) static MAIN_IDENT: AtomicU64 = AtomicU64::new(0);
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
                // SAFETY: the symbol is a non-null `int (void)` function (see above).
                return Some(unsafe { std::mem::transmute::<*mut libc::c_void, IsFinalizing>(p) });
            }
        }
        None
    });
    // SAFETY: the function reads the runtime's finalizing flag atomically.
    f.is_some_and(|f| unsafe { f() } != 0)
}

/// sys.getswitchinterval(), how long a thread holds the GIL before handing it over (5 ms
/// unless changed): waits that must not mistake taking turns at the GIL for being stuck
/// scale with it.
pub fn switch_interval(py: Python<'_>) -> std::time::Duration {
    let secs: f64 = py
        .import("sys")
        .and_then(|m| m.call_method0("getswitchinterval"))
        .and_then(|v| v.extract())
        .unwrap_or(0.005);
    std::time::Duration::try_from_secs_f64(secs).unwrap_or(std::time::Duration::from_millis(5))
}

/// How long queued work may wait for a thread before another one starts: four switch
/// intervals, clamped to [min, 1 s], so that threads merely taking turns at the GIL never
/// look stuck.
pub fn starve_after(py: Python<'_>, min: std::time::Duration) -> std::time::Duration {
    switch_interval(py)
        .saturating_mul(4)
        .clamp(min, std::time::Duration::from_secs(1))
}
