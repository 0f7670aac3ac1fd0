//! submit()'s entry as a METH_FASTCALL | METH_KEYWORDS method. pyo3 gives a `*args` method the
//! tuple-and-dict convention: CPython builds a tuple of every argument for the call and pyo3
//! slices it again for `*args` (two tuples per submit). Here the arguments are read straight
//! from the caller's array into [`Args`]; a dict is built only for keyword arguments.

use super::worker::enqueue;
use super::WorkerPool;
use crate::py::call::Args;
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyType};

/// `WorkerPool.submit(self, fn, /, *args, **kwargs)`.
unsafe extern "C" fn submit(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: the interpreter calls a method with the GIL held.
    let py = unsafe { Python::assume_attached() };
    // No panic may reach Python (nor unwind into C).
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: slf, args[..nargs + len(kwnames)] and kwnames are the call's live borrowed
        // references.
        unsafe { submit_impl(py, slf, args, nargs, kwnames) }
    }));
    let err = match out {
        Ok(Ok(fut)) => return fut.into_ptr(),
        Ok(Err(e)) => e,
        Err(_) => PyRuntimeError::new_err("chanpool: internal error in WorkerPool.submit"),
    };
    err.restore(py);
    std::ptr::null_mut()
}

unsafe fn submit_impl(
    py: Python<'_>,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<Py<PyAny>> {
    // SAFETY: slf is the call's live borrowed self.
    let me = unsafe { Bound::from_borrowed_ptr(py, slf) };
    let me = me.cast::<WorkerPool>()?;
    let n = usize::try_from(nargs).unwrap_or(0);
    // SAFETY: called only for i < nargs + len(kwnames): the call's live borrowed arguments.
    let arg = |i: usize| unsafe { Bound::from_borrowed_ptr(py, *args.add(i)) };
    if n == 0 {
        return Err(PyTypeError::new_err(
            "WorkerPool.submit() missing 1 required positional argument: 'fn'",
        ));
    }
    let func = arg(0);
    let positional = match n {
        2 => Args::One(arg(1).unbind()),
        _ => Args::Many((1..n).map(|i| arg(i).unbind()).collect()),
    };
    let kwargs = if kwnames.is_null() {
        None
    } else {
        // SAFETY: kwnames, when not NULL, is the call's live borrowed tuple of names.
        let names = unsafe { Bound::from_borrowed_ptr(py, kwnames) };
        let names = names.cast::<pyo3::types::PyTuple>()?;
        if names.is_empty() {
            None
        } else {
            let d = PyDict::new(py);
            for (i, name) in names.iter().enumerate() {
                d.set_item(name, arg(n + i))?;
            }
            Some(d.unbind())
        }
    };
    let me = me.get();
    let (fut, task) = me.make_call(&func, positional, kwargs)?;
    enqueue(py, &me.core, &me.ext, task, 1)?;
    Ok(fut)
}

/// Puts the entry on the WorkerPool class (at module init).
pub fn install(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let cls = m.getattr("WorkerPool")?.cast_into::<PyType>()?;
    // The descriptor keeps a pointer to its definition for its whole life: one per process.
    let def: &'static mut ffi::PyMethodDef = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: c"submit".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFastWithKeywords: submit,
        },
        ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc: c"submit($self, fn, /, *args, **kwargs)\n--\n\nSchedules fn(*args, **kwargs); returns a concurrent.futures.Future.".as_ptr(),
    }));
    // SAFETY: a live type and a 'static definition; returns a new reference or NULL.
    let descr = unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(cls.as_ptr().cast(), def))?
    };
    cls.setattr("submit", descr)
}
