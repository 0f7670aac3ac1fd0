//! A value that a fork() child may replace wholesale.
//!
//! After fork() only the forking thread exists in the child. A lock that another thread held at
//! that instant stays locked there forever, and waiters it had queued never come back: an
//! object that must keep working in the child is rebuilt there from what can still be read.
//! The old value is leaked, never dropped: its lock may be held, its queues half-updated, and
//! a reference handed out before the swap must stay valid.

use std::sync::atomic::{AtomicPtr, Ordering};

pub struct ForkCell<T> {
    ptr: AtomicPtr<T>,
}

// SAFETY: a ForkCell hands out &T to any thread and moves a T in from any thread.
unsafe impl<T: Send + Sync> Send for ForkCell<T> {}
// SAFETY: as above: shared access only hands out &T, which T: Sync allows.
unsafe impl<T: Send + Sync> Sync for ForkCell<T> {}

impl<T> ForkCell<T> {
    pub fn new(value: T) -> Self {
        ForkCell {
            ptr: AtomicPtr::new(Box::into_raw(Box::new(value))),
        }
    }

    #[inline]
    pub fn get(&self) -> &T {
        // SAFETY: the pointer always comes from Box::into_raw, and a replaced value is never
        // freed, so it outlives every reference taken from it.
        unsafe { &*self.ptr.load(Ordering::Acquire) }
    }

    /// Installs `value`; the previous value is leaked. For a fork() child, before the object
    /// is used there (see runtime's ForkEpoch): callers must not race two replacements.
    pub fn replace_leaking(&self, value: T) {
        self.ptr
            .swap(Box::into_raw(Box::new(value)), Ordering::AcqRel);
    }
}

impl<T> Drop for ForkCell<T> {
    fn drop(&mut self) {
        // SAFETY: we own the current value; &mut self means nobody borrows it any more.
        drop(unsafe { Box::from_raw(*self.ptr.get_mut()) });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn replace_keeps_old_references_valid_and_drops_only_the_current() {
        let live = Arc::new(());
        let cell = ForkCell::new((1, Arc::clone(&live)));
        let old = cell.get();
        cell.replace_leaking((2, Arc::clone(&live)));
        assert_eq!(old.0, 1);
        assert_eq!(cell.get().0, 2);
        drop(cell);
        // The current value was dropped, the replaced one leaked on purpose.
        assert_eq!(Arc::strong_count(&live), 2);
    }
}
