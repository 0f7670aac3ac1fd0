//! Keeps a pool Future out of the cyclic GC while no cycle can run through it.
//!
//! A tracked future costs every submit its tracking at birth, its untracking at free, and a
//! visit by every young collection while it waits in the queue. A pool future is born
//! untracked: while it holds only values whose types are not GC containers (the state
//! constants, None, ints, strings, a `_OneShot`) nothing it holds can lead back to it. It is
//! tracked, once and for good, the moment it may hold a container:
//! - chanpool's own writes go through [`store`] (plain `PyObject_GenericSetAttr`, then track);
//! - Python attribute writes go through the class's `__setattr__`, a C method made here (no
//!   Python frame) doing the same;
//! - `__dict__` (whose dict Python code could fill directly) tracks before it hands it out;
//!   `_condition` reads it, so every observed future (callbacks, waiters, asyncio) is tracked.
//!
//! It is never untracked again, and never tracked twice (PyObject_GC_Track aborts on that).

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyType};

/// Whether a value's type is a GC container (it could hold a reference back to the future).
fn may_link(value: *mut ffi::PyObject) -> bool {
    // SAFETY: a live object's type; PyType_IS_GC reads its flags (PyType_GetFlags under abi3).
    unsafe { ffi::PyType_IS_GC(ffi::Py_TYPE(value)) != 0 }
}

/// Tracks `obj` unless it already is. Needs the GIL (the caller's Bound or raw pointer proves
/// it).
fn track_raw(obj: *mut ffi::PyObject) {
    // SAFETY: obj is a live GC object (a chanpool Future) and the GIL is held.
    unsafe {
        if ffi::PyObject_GC_IsTracked(obj) == 0 {
            ffi::PyObject_GC_Track(obj.cast());
        }
    }
}

/// A fresh pool future, before anyone else holds it: out of the GC until it may hold a
/// container.
pub fn untrack_new(fut: &Bound<'_, PyAny>) {
    // SAFETY: a live GC object; untracking an untracked object is a no-op.
    unsafe { ffi::PyObject_GC_UnTrack(fut.as_ptr().cast()) }
}

/// Tracks the future (before it may hold a container Python code put there).
pub fn track(fut: &Bound<'_, PyAny>) {
    track_raw(fut.as_ptr());
}

/// Whether the future is tracked. Untracked implies unobserved: `_cond` is set only through
/// `__dict__` or `__setattr__` (a Condition is a container), both of which track first.
pub fn is_tracked(fut: &Bound<'_, PyAny>) -> bool {
    // SAFETY: a live object, GIL held (Bound).
    unsafe { ffi::PyObject_GC_IsTracked(fut.as_ptr()) != 0 }
}

/// `fut.name = value` without the class's `__setattr__` (same effect, fewer calls), tracking
/// the future first when `value` is a container. Tracking first: the write cannot allocate
/// (module future.rs), but a collection between a write and the tracking would not find the
/// link either way, and an early track is always safe.
pub fn store<V>(
    fut: &Bound<'_, PyAny>,
    name: &Bound<'_, PyString>,
    value: &Bound<'_, V>,
) -> PyResult<()> {
    if may_link(value.as_ptr()) {
        track_raw(fut.as_ptr());
    }
    // SAFETY: live objects, GIL held (Bound); returns -1 with an exception set on failure.
    let rc = unsafe { ffi::PyObject_GenericSetAttr(fut.as_ptr(), name.as_ptr(), value.as_ptr()) };
    if rc < 0 {
        return Err(PyErr::fetch(fut.py()));
    }
    Ok(())
}

/// [`store`] for a value that holds no Python references whatever its type says (a
/// `_OneShot`: pyo3 makes every class a GC type): the future stays as it is.
pub fn store_leaf<V>(
    fut: &Bound<'_, PyAny>,
    name: &Bound<'_, PyString>,
    value: &Bound<'_, V>,
) -> PyResult<()> {
    // SAFETY: as in store.
    let rc = unsafe { ffi::PyObject_GenericSetAttr(fut.as_ptr(), name.as_ptr(), value.as_ptr()) };
    if rc < 0 {
        return Err(PyErr::fetch(fut.py()));
    }
    Ok(())
}

/// `Future.__setattr__(self, name, value)`: the generic write, tracking as [`store`] does.
/// Deleting goes through object.__delattr__ (a deletion cannot link anything).
unsafe extern "C" fn future_setattr(
    slf: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    if nargs != 2 {
        // SAFETY: GIL held (called by the interpreter); static C strings.
        unsafe {
            ffi::PyErr_SetString(
                ffi::PyExc_TypeError,
                c"__setattr__ expected 2 arguments".as_ptr(),
            )
        };
        return std::ptr::null_mut();
    }
    // SAFETY: the interpreter passes nargs live arguments; slf is an instance of the class
    // (the method descriptor checked it).
    unsafe {
        let (name, value) = (*args, *args.add(1));
        if may_link(value) {
            track_raw(slf);
        }
        if ffi::PyObject_GenericSetAttr(slf, name, value) < 0 {
            return std::ptr::null_mut();
        }
        let none = ffi::Py_None();
        ffi::Py_IncRef(none);
        none
    }
}

/// `__dict__`'s helper (`_future.py`): tracks the future before its dict is handed out.
#[pyfunction]
pub fn _track(fut: &Bound<'_, PyAny>) {
    track(fut);
}

/// Installs the tracking `__setattr__` on `cls` (chanpool._future.Future).
pub fn install(cls: &Bound<'_, PyType>) -> PyResult<()> {
    let py = cls.py();
    // The descriptor keeps a pointer to its definition for its whole life: one per process.
    let def: &'static mut ffi::PyMethodDef = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: c"__setattr__".as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFast: future_setattr,
        },
        ml_flags: ffi::METH_FASTCALL,
        ml_doc: c"Sets an attribute; a value that may hold references starts GC tracking.".as_ptr(),
    }));
    // SAFETY: a live type and a 'static definition; returns a new reference or NULL.
    let descr = unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(cls.as_ptr().cast(), def))?
    };
    cls.setattr("__setattr__", descr)
}
