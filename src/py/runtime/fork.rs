//! fork(): the child has none of the parent's threads. Objects count fork generations: one
//! from an older generation refuses (a pool: its workers are gone) or rebuilds what the
//! parent's threads owned (a semaphore's line of waiters), without touching locks they held.

use super::exit::{Registry, REATTACHING};
use super::threads::MAIN_IDENT;
use crate::core::sync::Mutex;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

static REGISTRY: Mutex<Registry> = Mutex::new(Vec::new());
static FORK_GEN: AtomicU64 = AtomicU64::new(0);

/// Everything that must be stopped at exit; held across fork() so the child never inherits
/// it locked.
pub(super) fn registry() -> &'static Mutex<Registry> {
    &REGISTRY
}

/// Bumped in the child after fork(): objects from an older generation are dead there.
pub fn generation() -> u64 {
    FORK_GEN.load(Ordering::Acquire)
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

    /// Whether no rebuild is pending: the object was last used in this process (for finalizers
    /// and the garbage collector, which must not rebuild).
    pub fn is_current(&self) -> bool {
        self.0.load(Ordering::Acquire) == generation()
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
