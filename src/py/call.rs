//! Calling Python callables without building an argument tuple (vectorcall).
//!
//! `PyObject_Vectorcall` is exported by every CPython from 3.9 on and is in the limited API from
//! 3.12; pyo3's abi3-py311 bindings leave it out, so it is declared here. A call through it
//! allocates nothing for the arguments, where `call1((x,))` builds (and GC-tracks) a tuple.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

extern "C" {
    fn PyObject_Vectorcall(
        callable: *mut ffi::PyObject,
        args: *const *mut ffi::PyObject,
        nargsf: usize,
        kwnames: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject;
}

/// `func(*args)` for arguments given as borrowed pointers.
fn vectorcall<'py>(
    func: &Bound<'py, PyAny>,
    args: &[*mut ffi::PyObject],
) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: the caller keeps every argument alive for the call; the result is a new reference.
    unsafe {
        let r = PyObject_Vectorcall(
            func.as_ptr(),
            args.as_ptr(),
            args.len(),
            std::ptr::null_mut(),
        );
        Bound::from_owned_ptr_or_err(func.py(), r)
    }
}

/// `func(arg)`.
pub fn call1<'py>(
    func: &Bound<'py, PyAny>,
    arg: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    vectorcall(func, &[arg.as_ptr()])
}

/// A submitted call's positional arguments, kept without their tuple: the tuple pyo3 hands over
/// is freed at once instead of staying alive (and GC-tracked) while the call is queued.
pub enum Args {
    One(Py<PyAny>),
    Many(Box<[Py<PyAny>]>),
}

impl Args {
    /// `(first, *args)`: for a call through a wrapper such as Context.run.
    pub fn prepend(self, first: Py<PyAny>) -> Self {
        match self {
            Args::One(a) => Args::Many(Box::new([first, a])),
            Args::Many(v) => Args::Many(std::iter::once(first).chain(v.into_vec()).collect()),
        }
    }

    pub fn new(args: &Bound<'_, PyTuple>) -> Self {
        if args.len() == 1 {
            if let Ok(a) = args.get_item(0) {
                return Args::One(a.unbind());
            }
        }
        Args::Many(args.iter().map(Bound::unbind).collect())
    }

    /// `func(*args, **kwargs)`.
    pub fn call<'py>(
        &self,
        func: &Bound<'py, PyAny>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = func.py();
        match (self, kwargs) {
            (Args::One(a), None) => vectorcall(func, &[a.as_ptr()]),
            (Args::Many(v), None) => {
                let ptrs: Vec<_> = v.iter().map(|a| a.as_ptr()).collect();
                vectorcall(func, &ptrs)
            }
            (a, Some(k)) => func.call(a.tuple(py)?, Some(k)),
        }
    }

    fn tuple<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        match self {
            Args::One(a) => PyTuple::new(py, [a.bind(py)]),
            Args::Many(v) => PyTuple::new(py, v.iter().map(|a| a.bind(py))),
        }
    }
}
