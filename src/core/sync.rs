//! Locks that survive fork(): thin wrappers over std::sync with parking_lot's shape.
//!
//! parking_lot parks threads in one process-wide table. After fork() the child inherits entries
//! for threads that no longer exist, and a later park or unpark can write into memory that has
//! been reused: children of a process with parked threads crashed with heap corruption. std's
//! futex-based locks keep all their state inside the lock. Poisoning is ignored: a panic in the
//! core is a bug either way, and failing every later lock would turn it into a hang.
//!
//! Under `--cfg loom` the same wrappers sit on loom's model-checked types, and `Arc` and the
//! atomics below come from loom too: core modules take all of them from here, so one build
//! flag puts every hand-written wait under the model checker (`make loom`). loom's timed waits
//! never time out, so models only use untimed paths.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{PoisonError, TryLockError};
use std::time::{Duration, Instant};

#[cfg(loom)]
use loom::sync as imp;
#[cfg(not(loom))]
use std::sync as imp;

use imp::atomic::{AtomicUsize, Ordering};
pub use imp::{atomic, Arc, RwLockReadGuard, RwLockWriteGuard};

#[derive(Default)]
pub struct Mutex<T: ?Sized>(imp::Mutex<T>);

/// A held Mutex. The Option lets Condvar hand the std guard to std's wait and take it back.
pub struct MutexGuard<'a, T: ?Sized>(Option<imp::MutexGuard<'a, T>>);

impl<T> Mutex<T> {
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        Mutex(imp::Mutex::new(value))
    }

    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        Mutex(imp::Mutex::new(value))
    }

    pub fn into_inner(self) -> T {
        self.0.into_inner().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: ?Sized> Mutex<T> {
    pub fn lock(&self) -> MutexGuard<'_, T> {
        MutexGuard(Some(self.0.lock().unwrap_or_else(PoisonError::into_inner)))
    }

    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        match self.0.try_lock() {
            Ok(g) => Some(MutexGuard(Some(g))),
            Err(TryLockError::Poisoned(p)) => Some(MutexGuard(Some(p.into_inner()))),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    pub fn get_mut(&mut self) -> &mut T {
        self.0.get_mut().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.0
            .as_deref()
            .expect("guard is only empty inside Condvar::wait")
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0
            .as_deref_mut()
            .expect("guard is only empty inside Condvar::wait")
    }
}

/// Whether a timed wait ended by timing out (parking_lot's name for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    pub fn timed_out(self) -> bool {
        self.0
    }
}

/// std's Condvar makes a futex system call on every notify; this one skips it when nobody
/// waits, as parking_lot does (a 3x difference on the pub/sub hot path). Waiters count
/// themselves while holding the mutex, so a notifier that changed the state under that mutex
/// sees them.
#[derive(Default, Debug)]
pub struct Condvar {
    cv: imp::Condvar,
    waiters: AtomicUsize,
}

impl Condvar {
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Condvar {
            cv: imp::Condvar::new(),
            waiters: AtomicUsize::new(0),
        }
    }

    #[cfg(loom)]
    pub fn new() -> Self {
        Condvar {
            cv: imp::Condvar::new(),
            waiters: AtomicUsize::new(0),
        }
    }

    pub fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
        let g = guard.0.take().expect("guard present");
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let g = self.cv.wait(g).unwrap_or_else(PoisonError::into_inner);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        guard.0 = Some(g);
    }

    pub fn wait_for<T>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        timeout: Duration,
    ) -> WaitTimeoutResult {
        let g = guard.0.take().expect("guard present");
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let (g, r) = self
            .cv
            .wait_timeout(g, timeout)
            .unwrap_or_else(PoisonError::into_inner);
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        guard.0 = Some(g);
        WaitTimeoutResult(r.timed_out())
    }

    pub fn wait_until<T>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        deadline: Instant,
    ) -> WaitTimeoutResult {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return WaitTimeoutResult(true);
        }
        self.wait_for(guard, left)
    }

    /// `wait_until` with an optional deadline: None waits until notified.
    pub fn wait_deadline<T>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        deadline: Option<Instant>,
    ) -> WaitTimeoutResult {
        match deadline {
            Some(d) => self.wait_until(guard, d),
            None => {
                self.wait(guard);
                WaitTimeoutResult(false)
            }
        }
    }

    pub fn notify_one(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.cv.notify_one();
        }
    }

    pub fn notify_all(&self) {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.cv.notify_all();
        }
    }
}

#[derive(Default, Debug)]
pub struct RwLock<T: ?Sized>(imp::RwLock<T>);

impl<T> RwLock<T> {
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        RwLock(imp::RwLock::new(value))
    }

    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        RwLock(imp::RwLock::new(value))
    }
}

impl<T: ?Sized> RwLock<T> {
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        match self.0.try_read() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    pub fn try_write(&self) -> Option<RwLockWriteGuard<'_, T>> {
        match self.0.try_write() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    pub fn get_mut(&mut self) -> &mut T {
        self.0.get_mut().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;

    #[test]
    fn condvar_hands_the_guard_back_after_every_kind_of_wait() {
        let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
        let p2 = Arc::clone(&pair);
        let t = thread::spawn(move || {
            for _ in 0..1000 {
                let mut g = p2.0.lock();
                *g += 1;
                p2.1.notify_all();
            }
        });
        let (m, cv) = &*pair;
        let mut g = m.lock();
        while *g < 1000 {
            if *g % 3 == 0 {
                cv.wait_for(&mut g, Duration::from_millis(5));
            } else {
                cv.wait_until(&mut g, Instant::now() + Duration::from_millis(5));
            }
        }
        drop(g);
        t.join().unwrap();
        assert_eq!(*m.lock(), 1000);
        let mut g = m.lock();
        assert!(cv.wait_until(&mut g, Instant::now()).timed_out());
        assert!(cv.wait_for(&mut g, Duration::from_millis(1)).timed_out());
        assert_eq!(*g, 1000);
    }

    #[test]
    fn a_panic_while_locked_does_not_poison() {
        let m = Arc::new(Mutex::new(1));
        let m2 = Arc::clone(&m);
        let _ = thread::spawn(move || {
            let _g = m2.lock();
            panic!("boom");
        })
        .join();
        assert_eq!(*m.lock(), 1);
        assert!(m.try_lock().is_some());
        let l = RwLock::new(2);
        assert_eq!(*l.read() + *l.try_read().unwrap(), 4);
        *l.write() = 3;
        assert_eq!(*l.try_write().unwrap(), 3);
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use loom::thread;

    /// The notify that skips the futex call when nobody waits must never lose a wake-up: a
    /// waiter counts itself under the mutex, before it sleeps.
    #[test]
    fn loom_condvar_skipping_notify_loses_no_wakeup() {
        loom::model(|| {
            let pair = Arc::new((Mutex::new(false), Condvar::new()));
            let p2 = Arc::clone(&pair);
            let t = thread::spawn(move || {
                *p2.0.lock() = true;
                p2.1.notify_one();
            });
            let mut g = pair.0.lock();
            while !*g {
                pair.1.wait(&mut g);
            }
            drop(g);
            t.join().unwrap();
        });
    }
}
