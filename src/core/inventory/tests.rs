//! The stock table under races: exact books, no overselling, crossings reported once.

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
