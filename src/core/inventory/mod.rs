//! The inventory manager's stock table. Stock lives here, not in Python objects, so operations
//! run on native threads without the interpreter. The table is sharded so threads working on
//! different products rarely meet on a lock; every check-and-change happens under one shard lock,
//! which is what makes overselling impossible. What the manager does around the table without
//! the interpreter lives here too: `ops` (an operation and its outcome), `batch` (how workers
//! group finished operations for completion) and `books` (the counters behind stats()).

mod batch;
mod books;
mod ops;
#[cfg(all(test, not(loom)))]
mod tests;

pub use batch::{hand_over, serve_batches, BATCH};
pub use books::{Books, EventBooks};
pub use ops::{Done, Kind, Op};

use crate::core::sync::Mutex;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;

const SHARDS: usize = 64;

/// A threshold crossing, reported while the shard is still locked so that events about one
/// product come out in the order the changes happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Stock went from above the low threshold to at or below it.
    Low,
    /// Stock reached zero.
    Out,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Low => "low",
            EventKind::Out => "out",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<'a> {
    pub product: &'a str,
    pub kind: EventKind,
    /// Stock right after the change that crossed.
    pub stock: i64,
}

/// Why an operation was refused; the stock is unchanged in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockError {
    /// Quantities are positive: a zero or negative one is a caller bug, not a no-op.
    InvalidQuantity(i64),
    /// Removing would take the stock below zero.
    Insufficient { requested: i64, available: i64 },
    /// Adding would overflow the counter.
    Overflow { stock: i64, requested: i64 },
}

impl std::fmt::Display for StockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StockError::InvalidQuantity(q) => write!(f, "quantity must be > 0, got {q}"),
            StockError::Insufficient {
                requested,
                available,
            } => write!(f, "cannot remove {requested}: only {available} in stock"),
            StockError::Overflow { stock, requested } => {
                write!(f, "adding {requested} to a stock of {stock} overflows")
            }
        }
    }
}

pub struct Inventory {
    shards: Box<[Mutex<HashMap<String, i64>>]>,
    hasher: RandomState,
    low_threshold: Option<i64>,
}

impl Inventory {
    /// `low_threshold`: emit `Low` when a removal takes the stock from above it to at or below
    /// it (None: never). Must not be negative.
    pub fn new(low_threshold: Option<i64>) -> Self {
        assert!(
            low_threshold.is_none_or(|t| t >= 0),
            "low_threshold must be >= 0"
        );
        Inventory {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            low_threshold,
        }
    }

    pub fn low_threshold(&self) -> Option<i64> {
        self.low_threshold
    }

    fn shard(&self, product: &str) -> &Mutex<HashMap<String, i64>> {
        let i = self.hasher.hash_one(product) as usize % SHARDS;
        &self.shards[i]
    }

    /// Adds `qty` units; returns the new stock.
    pub fn add(&self, product: &str, qty: i64) -> Result<i64, StockError> {
        if qty <= 0 {
            return Err(StockError::InvalidQuantity(qty));
        }
        let mut g = self.shard(product).lock();
        // Look up by &str first: a known product costs no allocation.
        if let Some(s) = g.get_mut(product) {
            let new = s.checked_add(qty).ok_or(StockError::Overflow {
                stock: *s,
                requested: qty,
            })?;
            *s = new;
            return Ok(new);
        }
        g.insert(product.to_owned(), qty);
        Ok(qty)
    }

    /// Removes `qty` units if that many are in stock; returns the new stock. Threshold
    /// crossings go to `on_event` while the shard is locked (keep it short and lock-free of
    /// anything that could wait on this table).
    pub fn remove<F: FnMut(Event<'_>)>(
        &self,
        product: &str,
        qty: i64,
        mut on_event: F,
    ) -> Result<i64, StockError> {
        if qty <= 0 {
            return Err(StockError::InvalidQuantity(qty));
        }
        let mut g = self.shard(product).lock();
        let Some(s) = g.get_mut(product) else {
            return Err(StockError::Insufficient {
                requested: qty,
                available: 0,
            });
        };
        let before = *s;
        if before < qty {
            return Err(StockError::Insufficient {
                requested: qty,
                available: before,
            });
        }
        // Cannot underflow: 0 < qty <= before.
        let after = before - qty;
        *s = after;
        if let Some(t) = self.low_threshold {
            if before > t && after <= t {
                on_event(Event {
                    product,
                    kind: EventKind::Low,
                    stock: after,
                });
            }
        }
        if after == 0 {
            on_event(Event {
                product,
                kind: EventKind::Out,
                stock: 0,
            });
        }
        Ok(after)
    }

    /// Current stock; 0 for a product never seen.
    pub fn check(&self, product: &str) -> i64 {
        self.shard(product)
            .lock()
            .get(product)
            .copied()
            .unwrap_or(0)
    }

    /// Every product's stock at one instant: all shards are held together while copying.
    pub fn snapshot(&self) -> Vec<(String, i64)> {
        let guards: Vec<_> = self.shards.iter().map(|s| s.lock()).collect();
        let mut out = Vec::with_capacity(guards.iter().map(|g| g.len()).sum());
        for g in &guards {
            out.extend(g.iter().map(|(k, v)| (k.clone(), *v)));
        }
        out
    }

    /// How many products have ever been stocked.
    pub fn products(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}
