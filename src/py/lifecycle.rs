//! What every class that owns native threads shares: the fork generation it was made in (an
//! object inherited by a fork()ed child refuses to be used there, and is leaked rather than
//! dropped, since its locks may be held by threads the child does not have), and its stats
//! dictionary. The context-manager methods stay one-liners in each class that call its own
//! close or shutdown.

use crate::py::runtime;
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

/// One of `__exit__`'s three arguments (unused: leaving the block closes whatever happened),
/// so that a class's `__exit__` fits on one line.
pub type ExitArg<'a, 'py> = Option<&'a Bound<'py, PyAny>>;
