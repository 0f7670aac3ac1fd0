//! The one garbage-collector pattern (pydantic-core's py_gc.rs): a class lists the fields that
//! hold Python objects with `gc_fields!`, and its `__traverse__` / `__clear__` are one line each.
//! Traversal never blocks and never attaches: a locked field is skipped (the collector tolerates
//! a partial view; it will look again). Clearing moves the objects out under a try-lock and
//! drops them after the lock is released, since dropping can run Python code.

use crate::core::sync::{Mutex, RwLock};
use pyo3::{Py, PyTraverseError, PyVisit};
use std::sync::Arc;

pub trait Traverse {
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError>;
}

/// Fields whose Python objects `__clear__` may take away (callables, queued values).
pub trait Clear {
    /// Moves the objects out; the caller drops what is returned after every lock is released.
    fn take(&self) -> Vec<Py<pyo3::PyAny>>;
}

impl<T> Traverse for Py<T> {
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(self)
    }
}

impl<T: Traverse> Traverse for Option<T> {
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        match self {
            Some(x) => x.traverse(visit),
            None => Ok(()),
        }
    }
}

impl<T: Traverse> Traverse for [T] {
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.iter().try_for_each(|x| x.traverse(visit))
    }
}

impl<T: Traverse> Traverse for Vec<T> {
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.as_slice().traverse(visit)
    }
}

impl<T: Traverse + ?Sized> Traverse for Arc<T> {
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        (**self).traverse(visit)
    }
}

impl<T: Traverse + ?Sized> Traverse for Box<T> {
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        (**self).traverse(visit)
    }
}

impl<A: Traverse, B: Traverse> Traverse for (A, B) {
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.0.traverse(visit)?;
        self.1.traverse(visit)
    }
}

impl<T: Traverse> Traverse for RwLock<T> {
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        match self.try_read() {
            Some(g) => g.traverse(visit),
            None => Ok(()),
        }
    }
}

impl<T: Traverse> Traverse for Mutex<T> {
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        match self.try_lock() {
            Some(g) => g.traverse(visit),
            None => Ok(()),
        }
    }
}

/// A field `__clear__` empties: `RwLock<Option<T>>` gives its object up (if not locked).
impl<T: Into<Py<pyo3::PyAny>>> Clear for RwLock<Option<T>> {
    fn take(&self) -> Vec<Py<pyo3::PyAny>> {
        self.try_write()
            .and_then(|mut g| g.take())
            .map(Into::into)
            .into_iter()
            .collect()
    }
}

/// `gc_fields!(Type { a, b })`: Type's traversal visits fields a and b (anything that
/// implements [`Traverse`]). In the class's #[pymethods]:
/// `fn __traverse__(&self, v: PyVisit<'_>) -> Result<(), PyTraverseError> { self.traverse(&v) }`.
macro_rules! gc_fields {
    ($ty:ty { $($field:ident),* $(,)? }) => {
        impl $crate::py::gc::Traverse for $ty {
            fn traverse(
                &self,
                visit: &pyo3::PyVisit<'_>,
            ) -> Result<(), pyo3::PyTraverseError> {
                $( $crate::py::gc::Traverse::traverse(&self.$field, visit)?; )*
                Ok(())
            }
        }
    };
}
pub(crate) use gc_fields;

/// `__clear__`'s body: takes what `fields` give up, then drops it with no lock held.
pub fn clear(fields: &[&dyn Clear]) {
    let taken: Vec<_> = fields.iter().flat_map(|f| f.take()).collect();
    drop(taken);
}
