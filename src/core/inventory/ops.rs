//! One inventory operation and its outcome. The caller's token (the binding's future) rides
//! along untouched, so the core decides what an operation does without knowing what waits on it.

use super::{Event, Inventory, StockError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Add,
    Remove,
    Check,
}

/// An operation queued for a worker.
pub struct Op<T> {
    pub kind: Kind,
    pub product: String,
    pub qty: i64,
    pub token: T,
}

/// An operation that has run; its token is still to be told the outcome.
pub struct Done<T> {
    pub token: T,
    pub product: String,
    pub outcome: Result<i64, StockError>,
}

impl Inventory {
    /// Runs one operation; threshold crossings of a removal go to `on_event` (see
    /// [`Inventory::remove`]).
    pub fn apply<T>(&self, op: Op<T>, on_event: impl FnMut(Event<'_>)) -> Done<T> {
        let outcome = match op.kind {
            Kind::Add => self.add(&op.product, op.qty),
            Kind::Remove => self.remove(&op.product, op.qty, on_event),
            Kind::Check => Ok(self.check(&op.product)),
        };
        Done {
            token: op.token,
            product: op.product,
            outcome,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn op(kind: Kind, qty: i64, token: u32) -> Op<u32> {
        Op {
            kind,
            product: "p".into(),
            qty,
            token,
        }
    }

    #[test]
    fn apply_runs_each_kind_and_keeps_the_token() {
        let inv = Inventory::new(Some(2));
        let mut seen = Vec::new();
        let mut run = |o| inv.apply(o, |e: Event<'_>| seen.push(e.kind));
        let d = run(op(Kind::Add, 3, 7));
        assert_eq!((d.token, d.product.as_str(), d.outcome), (7, "p", Ok(3)));
        assert_eq!(run(op(Kind::Remove, 1, 8)).outcome, Ok(2));
        assert_eq!(run(op(Kind::Check, 0, 9)).outcome, Ok(2));
        assert_eq!(
            run(op(Kind::Remove, 5, 10)).outcome,
            Err(StockError::Insufficient {
                requested: 5,
                available: 2
            })
        );
        assert_eq!(run(op(Kind::Remove, 2, 11)).outcome, Ok(0));
        assert_eq!(
            run(op(Kind::Add, 0, 12)).outcome,
            Err(StockError::InvalidQuantity(0))
        );
        assert_eq!(
            seen,
            vec![super::super::EventKind::Low, super::super::EventKind::Out]
        );
    }
}
