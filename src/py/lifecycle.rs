//! What every class that owns native threads shares: the fork generation it was made in (an
//! object inherited by a fork()ed child refuses to be used there, and is leaked rather than
//! dropped, since its locks may be held by threads the child does not have), and its stats
//! dictionary; and the core objects that rebuild themselves in a child instead (`Rebuilt`).
//! The context-manager methods stay one-liners in each class that call its own
//! close or shutdown.

use crate::core::forkcell::ForkCell;
use crate::py::runtime::{self, ForkEpoch};
use pyo3::prelude::*;

/// The fork generation an object was created in.
#[derive(Debug)]
pub struct Born(u64);

impl Born {
    pub fn now() -> Self {
        Born(runtime::generation())
    }

    /// Whether the object came from the parent of this (fork()ed) process.
    pub fn inherited(&self) -> bool {
        self.0 != runtime::generation()
    }

    /// The RuntimeError an inherited object raises, naming what it is.
    pub fn check(&self, what: &str) -> PyResult<()> {
        runtime::check_process(self.0, what)
    }
}

/// In Drop, for an inherited object: keeps a part alive for good instead of dropping it (its
/// locks may be held by the parent's threads, which this process does not have).
pub fn leak<T: ?Sized>(part: &std::sync::Arc<T>) {
    std::mem::forget(std::sync::Arc::clone(part));
}

/// `stats_dict!(py, { "key" => value, ... })`: a stats() dictionary, in the order given.
macro_rules! stats_dict {
    ($py:expr, { $($key:literal => $value:expr),* $(,)? }) => {{
        let d = pyo3::types::PyDict::new($py);
        $( pyo3::types::PyDictMethods::set_item(&d, $key, $value)?; )*
        Ok::<_, pyo3::PyErr>(d)
    }};
}
pub(crate) use stats_dict;

/// A core object that keeps working in a fork() child (a semaphore, a token bucket): rebuilt
/// there on first use by `rebuild`, which reads what it can of the parent's object without
/// taking its locks; the parent's object is leaked (see [`ForkCell`]).
pub struct Rebuilt<T> {
    cell: ForkCell<T>,
    epoch: ForkEpoch,
    rebuild: fn(&T) -> T,
}

impl<T> Rebuilt<T> {
    pub fn new(value: T, rebuild: fn(&T) -> T) -> Self {
        Rebuilt {
            cell: ForkCell::new(value),
            epoch: ForkEpoch::new(),
            rebuild,
        }
    }

    /// The object, rebuilt first if this is its first use in a fork() child.
    #[inline]
    pub fn get(&self) -> &T {
        self.epoch.check(|_| {
            let rebuilt = (self.rebuild)(self.cell.get());
            self.cell.replace_leaking(rebuilt);
        });
        self.cell.get()
    }

    /// The object as it is, for what a rebuild never changes (a bound, a rate).
    pub fn fixed(&self) -> &T {
        self.cell.get()
    }
}

/// One of `__exit__`'s three arguments (unused: leaving the block closes whatever happened),
/// so that a class's `__exit__` fits on one line.
pub type ExitArg<'a, 'py> = Option<&'a Bound<'py, PyAny>>;
