//! The counters behind the manager's stats(): relaxed atomics, so keeping them costs the hot
//! path nothing; each is bumped before the outcome it counts is made visible.

use super::StockError;
use std::sync::atomic::{AtomicU64, Ordering};

/// Completed operations by outcome, and how often the completer attached to complete them.
#[derive(Default)]
pub struct Books {
    pub completed: AtomicU64,
    pub refused: AtomicU64,
    pub overflowed: AtomicU64,
    /// Times the completer attached to complete what had been handed over.
    pub batches: AtomicU64,
}

impl Books {
    /// Counts one outcome; called before its future is completed, so whoever sees the future
    /// done also sees it counted.
    pub fn count(&self, outcome: &Result<i64, StockError>) {
        self.completed.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Err(StockError::Insufficient { .. }) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
            }
            Err(StockError::Overflow { .. }) => {
                self.overflowed.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) | Err(StockError::InvalidQuantity(_)) => {}
        }
    }

    pub fn batch(&self) {
        self.batches.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Threshold events: emitted by the workers, then published, failed or dropped by the
/// publisher; the rest are pending.
#[derive(Default)]
pub struct EventBooks {
    pub emitted: AtomicU64,
    pub published: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
}

impl EventBooks {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn pending(&self) -> u64 {
        let handled =
            Books::get(&self.published) + Books::get(&self.failed) + Books::get(&self.dropped);
        Books::get(&self.emitted).saturating_sub(handled)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_counted_by_kind() {
        let b = Books::default();
        b.count(&Ok(3));
        b.count(&Err(StockError::Insufficient {
            requested: 2,
            available: 1,
        }));
        b.count(&Err(StockError::Overflow {
            stock: 1,
            requested: i64::MAX,
        }));
        b.count(&Err(StockError::InvalidQuantity(0)));
        let got = [&b.completed, &b.refused, &b.overflowed, &b.batches].map(Books::get);
        assert_eq!(got, [4, 1, 1, 0]);
    }

    #[test]
    fn pending_is_what_is_not_handled_yet() {
        let e = EventBooks::default();
        EventBooks::add(&e.emitted, 5);
        EventBooks::add(&e.published, 2);
        EventBooks::add(&e.failed, 1);
        assert_eq!(e.pending(), 2);
        EventBooks::add(&e.dropped, 4);
        // Counted out of order (relaxed): never negative.
        assert_eq!(e.pending(), 0);
    }
}
