//! The inventory manager's stock table. Stock lives here, not in Python objects, so operations
//! run on native threads without the interpreter. The table is sharded so threads working on
//! different products rarely meet on a lock; every check-and-change happens under one shard lock,
//! which is what makes overselling impossible.

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
    use std::sync::{Arc, Barrier};
    use std::thread;

    fn events(inv: &Inventory, product: &str, qty: i64) -> (Result<i64, StockError>, Vec<String>) {
        let mut seen = Vec::new();
        let r = inv.remove(product, qty, |e| {
            seen.push(format!("{}:{}:{}", e.product, e.kind.as_str(), e.stock))
        });
        (r, seen)
    }

    #[test]
    fn add_remove_check_and_refusals() {
        let inv = Inventory::new(None);
        assert_eq!(inv.check("a"), 0);
        assert_eq!(inv.add("a", 5), Ok(5));
        assert_eq!(inv.add("a", 3), Ok(8));
        assert_eq!(inv.remove("a", 2, |_| {}), Ok(6));
        assert_eq!(
            inv.remove("a", 7, |_| {}),
            Err(StockError::Insufficient {
                requested: 7,
                available: 6
            })
        );
        assert_eq!(inv.check("a"), 6);
        assert_eq!(
            inv.remove("nope", 1, |_| {}),
            Err(StockError::Insufficient {
                requested: 1,
                available: 0
            })
        );
        assert_eq!(inv.add("a", 0), Err(StockError::InvalidQuantity(0)));
        assert_eq!(
            inv.remove("a", -1, |_| {}),
            Err(StockError::InvalidQuantity(-1))
        );
        assert_eq!(inv.check("a"), 6);
        // A refused removal of an unknown product does not create it.
        assert_eq!(inv.products(), 1);
    }

    #[test]
    fn overflow_is_refused_and_leaves_stock_unchanged() {
        let inv = Inventory::new(None);
        inv.add("a", i64::MAX - 1).unwrap();
        assert_eq!(
            inv.add("a", 2),
            Err(StockError::Overflow {
                stock: i64::MAX - 1,
                requested: 2
            })
        );
        assert_eq!(inv.add("a", 1), Ok(i64::MAX));
        assert_eq!(inv.remove("a", i64::MAX, |_| {}), Ok(0));
    }

    #[test]
    fn events_fire_exactly_at_crossings() {
        let inv = Inventory::new(Some(10));
        inv.add("p", 20).unwrap();
        assert_eq!(events(&inv, "p", 5), (Ok(15), vec![]));
        assert_eq!(events(&inv, "p", 5), (Ok(10), vec!["p:low:10".into()]));
        // Already low: no second event until it rises above the threshold again.
        assert_eq!(events(&inv, "p", 4), (Ok(6), vec![]));
        assert_eq!(events(&inv, "p", 6), (Ok(0), vec!["p:out:0".into()]));
        inv.add("p", 11).unwrap();
        // One change that crosses both levels reports both, low first.
        assert_eq!(
            events(&inv, "p", 11),
            (Ok(0), vec!["p:low:0".into(), "p:out:0".into()])
        );
        // Refusals never report anything.
        assert_eq!(events(&inv, "p", 1).1, Vec::<String>::new());
        inv.add("p", 5).unwrap();
        assert_eq!(events(&inv, "p", 5), (Ok(0), vec!["p:out:0".into()]));

        let no_low = Inventory::new(None);
        no_low.add("q", 3).unwrap();
        assert_eq!(events(&no_low, "q", 2), (Ok(1), vec![]));
        assert_eq!(events(&no_low, "q", 1), (Ok(0), vec!["q:out:0".into()]));
    }

    #[test]
    fn snapshot_sees_every_product() {
        let inv = Inventory::new(None);
        for i in 0..500 {
            inv.add(&format!("p{i}"), i + 1).unwrap();
        }
        let mut s = inv.snapshot();
        s.sort();
        assert_eq!(s.len(), 500);
        assert_eq!(
            s.iter().map(|(_, v)| v).sum::<i64>(),
            (1..=500).sum::<i64>()
        );
        assert_eq!(inv.products(), 500);
    }

    /// Many threads racing on few products: the final stock equals the sum of accepted
    /// changes, no removal is ever accepted beyond what was there, and crossings are counted
    /// exactly (checked against each accepted removal's before/after).
    #[test]
    fn concurrent_operations_are_exact() {
        const THREADS: usize = 8;
        const OPS: usize = 20_000;
        const PRODUCTS: usize = 5;
        const LOW: i64 = 7;
        for round in 0..3 {
            let inv = Arc::new(Inventory::new(Some(LOW)));
            let added: Arc<Vec<AtomicI64>> =
                Arc::new((0..PRODUCTS).map(|_| AtomicI64::new(0)).collect());
            let removed: Arc<Vec<AtomicI64>> =
                Arc::new((0..PRODUCTS).map(|_| AtomicI64::new(0)).collect());
            let expected_low = Arc::new(AtomicU64::new(0));
            let expected_out = Arc::new(AtomicU64::new(0));
            let seen_low = Arc::new(AtomicU64::new(0));
            let seen_out = Arc::new(AtomicU64::new(0));
            let start = Arc::new(Barrier::new(THREADS));
            let hs: Vec<_> = (0..THREADS)
                .map(|t| {
                    let inv = Arc::clone(&inv);
                    let (added, removed) = (Arc::clone(&added), Arc::clone(&removed));
                    let (el, eo) = (Arc::clone(&expected_low), Arc::clone(&expected_out));
                    let (sl, so) = (Arc::clone(&seen_low), Arc::clone(&seen_out));
                    let start = Arc::clone(&start);
                    thread::spawn(move || {
                        // xorshift: deterministic per thread and round, no dependency.
                        let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ ((t as u64 + 1) << 17) ^ round;
                        let mut next = || {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            x
                        };
                        let names: Vec<String> = (0..PRODUCTS).map(|i| format!("p{i}")).collect();
                        start.wait();
                        for _ in 0..OPS {
                            let r = next();
                            let p = (r % PRODUCTS as u64) as usize;
                            let qty = (r >> 8) as i64 % 9 + 1;
                            if (r >> 20) % 2 == 0 {
                                let after = inv.add(&names[p], qty).unwrap();
                                assert!(after >= qty);
                                added[p].fetch_add(qty, Ordering::Relaxed);
                            } else {
                                match inv.remove(&names[p], qty, |e| match e.kind {
                                    EventKind::Low => {
                                        sl.fetch_add(1, Ordering::Relaxed);
                                    }
                                    EventKind::Out => {
                                        so.fetch_add(1, Ordering::Relaxed);
                                    }
                                }) {
                                    Ok(after) => {
                                        assert!(after >= 0);
                                        let before = after + qty;
                                        if before > LOW && after <= LOW {
                                            el.fetch_add(1, Ordering::Relaxed);
                                        }
                                        if after == 0 {
                                            eo.fetch_add(1, Ordering::Relaxed);
                                        }
                                        removed[p].fetch_add(qty, Ordering::Relaxed);
                                    }
                                    Err(StockError::Insufficient {
                                        requested,
                                        available,
                                    }) => {
                                        assert_eq!(requested, qty);
                                        assert!((0..qty).contains(&available));
                                    }
                                    Err(e) => panic!("unexpected {e:?}"),
                                }
                            }
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            for p in 0..PRODUCTS {
                let want = added[p].load(Ordering::Relaxed) - removed[p].load(Ordering::Relaxed);
                assert!(want >= 0);
                assert_eq!(inv.check(&format!("p{p}")), want, "product p{p}");
            }
            assert!(
                expected_out.load(Ordering::Relaxed) > 0,
                "the race never emptied a product"
            );
            assert_eq!(
                seen_low.load(Ordering::Relaxed),
                expected_low.load(Ordering::Relaxed)
            );
            assert_eq!(
                seen_out.load(Ordering::Relaxed),
                expected_out.load(Ordering::Relaxed)
            );
        }
    }

    /// N threads race to take one unit each from a stock of S: exactly S succeed.
    #[test]
    fn oversell_race_sells_exactly_the_stock() {
        for _ in 0..20 {
            let inv = Arc::new(Inventory::new(None));
            inv.add("hot", 1000).unwrap();
            let sold = Arc::new(AtomicU64::new(0));
            let outs = Arc::new(AtomicU64::new(0));
            let go = Arc::new(Barrier::new(8));
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    let (inv, sold, outs, go) = (
                        Arc::clone(&inv),
                        Arc::clone(&sold),
                        Arc::clone(&outs),
                        Arc::clone(&go),
                    );
                    thread::spawn(move || {
                        go.wait();
                        for _ in 0..500 {
                            if inv
                                .remove("hot", 1, |_| {
                                    outs.fetch_add(1, Ordering::Relaxed);
                                })
                                .is_ok()
                            {
                                sold.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(sold.load(Ordering::Relaxed), 1000);
            assert_eq!(outs.load(Ordering::Relaxed), 1);
            assert_eq!(inv.check("hot"), 0);
        }
    }
}
