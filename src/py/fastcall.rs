//! Raw METH_FASTCALL | METH_KEYWORDS entries for the hottest methods (WorkerPool.submit,
//! Channel.send/recv/..., PubSub.publish). pyo3's generated wrapper costs ~80-90 instructions a
//! call (its trampoline's bookkeeping, its generic argument binding); these read the arguments
//! straight from the caller's array (see [`enter`] for what that asks of a body). The errors are pyo3's: the same wording for missing,
//! surplus and unexpected arguments, and a failed conversion keeps its own exception with a
//! "while processing 'name'" note. One mechanism for every class: `entry!` makes the C
//! function, [`install`] puts it on the class at module init.

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};
use std::ffi::CStr;

/// The C signature of a METH_FASTCALL | METH_KEYWORDS method.
pub type Entry = ffi::PyCFunctionFastWithKeywords;

/// A fixed signature: `N` parameters after self, positional-or-keyword, the first `required`
/// of them without a default. `name` is the method's qualified name ("Channel.send").
pub struct Sig<const N: usize> {
    pub name: &'static str,
    pub params: [&'static str; N],
    pub required: usize,
}

/// One call: self and the arguments, borrowed from the caller for the call's duration.
pub struct Call<'a, 'py> {
    pub py: Python<'py>,
    slf: Borrowed<'a, 'py, PyAny>,
    /// Positional arguments, then the keyword arguments' values.
    args: &'a [*mut ffi::PyObject],
    nargs: usize,
    /// The keyword arguments' names; None without any.
    kwnames: Option<Borrowed<'a, 'py, PyTuple>>,
}

impl<'a, 'py> Call<'a, 'py> {
    /// `self`, as the class the method belongs to (a TypeError for anything else, as when the
    /// method is called unbound on a wrong object).
    #[inline(always)]
    pub fn this<T: pyo3::PyTypeCheck>(&self) -> PyResult<Borrowed<'a, 'py, T>> {
        Ok(self.slf.cast::<T>()?)
    }

    /// How many positional arguments were passed.
    pub fn positional(&self) -> usize {
        self.nargs
    }

    /// Positional argument `i` (< `positional()`).
    #[inline(always)]
    pub fn arg(&self, i: usize) -> Borrowed<'a, 'py, PyAny> {
        // SAFETY: the caller's array holds live borrowed references.
        unsafe { Borrowed::from_ptr(self.py, self.args[i]) }
    }

    /// The keyword arguments as a dict (None without any): for `**kwargs` signatures.
    pub fn kwargs(&self) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(names) = self.kwnames else {
            return Ok(None);
        };
        let d = PyDict::new(self.py);
        for (i, name) in names.iter().enumerate() {
            d.set_item(name, self.arg(self.nargs + i))?;
        }
        Ok(Some(d))
    }

    /// The arguments bound to `sig`'s parameters (None: left to its default), with pyo3's
    /// errors for a call that does not fit.
    #[inline(always)]
    pub fn bind<const N: usize>(
        &self,
        sig: &Sig<N>,
    ) -> PyResult<[Option<Borrowed<'a, 'py, PyAny>>; N]> {
        let mut out = [None; N];
        if self.kwnames.is_none() && self.nargs >= sig.required && self.nargs <= N {
            for (i, slot) in out.iter_mut().enumerate().take(self.nargs) {
                *slot = Some(self.arg(i));
            }
            return Ok(out);
        }
        self.bind_slow(sig, &mut out)?;
        Ok(out)
    }

    #[cold]
    #[inline(never)]
    fn bind_slow<const N: usize>(
        &self,
        sig: &Sig<N>,
        out: &mut [Option<Borrowed<'a, 'py, PyAny>>; N],
    ) -> PyResult<()> {
        let full = sig.name;
        if N == 0 {
            // As CPython words it for a METH_NOARGS method (what pyo3 makes of these).
            let msg = match self.kwnames {
                Some(_) => format!("{full}() takes no keyword arguments"),
                None => format!("{full}() takes no arguments ({} given)", self.nargs),
            };
            return Err(PyTypeError::new_err(msg));
        }
        if self.nargs > N {
            let was = if self.nargs == 1 { "was" } else { "were" };
            let msg = if sig.required == N {
                format!(
                    "{full}() takes {N} positional arguments but {} {was} given",
                    self.nargs
                )
            } else {
                format!(
                    "{full}() takes from {} to {N} positional arguments but {} {was} given",
                    sig.required, self.nargs
                )
            };
            return Err(PyTypeError::new_err(msg));
        }
        for (i, slot) in out.iter_mut().enumerate().take(self.nargs) {
            *slot = Some(self.arg(i));
        }
        if let Some(names) = self.kwnames {
            for (k, name) in names.iter().enumerate() {
                let name = name.cast_into::<PyString>()?;
                let text = name.to_cow()?;
                let Some(i) = sig.params.iter().position(|p| *p == text) else {
                    return Err(PyTypeError::new_err(format!(
                        "{full}() got an unexpected keyword argument '{text}'"
                    )));
                };
                if out[i].is_some() {
                    return Err(PyTypeError::new_err(format!(
                        "{full}() got multiple values for argument '{text}'"
                    )));
                }
                out[i] = Some(self.arg(self.nargs + k));
            }
        }
        let missing: Vec<&str> = (0..sig.required)
            .filter(|&i| out[i].is_none())
            .map(|i| sig.params[i])
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let arguments = if missing.len() == 1 {
            "argument"
        } else {
            "arguments"
        };
        let mut msg = format!(
            "{full}() missing {} required positional {arguments}: ",
            missing.len()
        );
        for (i, p) in missing.iter().enumerate() {
            if i > 0 {
                msg.push_str(if i + 1 == missing.len() {
                    if missing.len() > 2 {
                        ", and "
                    } else {
                        " and "
                    }
                } else {
                    ", "
                });
            }
            msg.push('\'');
            msg.push_str(p);
            msg.push('\'');
        }
        Err(PyTypeError::new_err(msg))
    }
}

/// Argument `name` converted (or `default` when it was left out); a failed conversion raises
/// its own error with a note naming the parameter, as pyo3 does.
#[inline(always)]
pub fn extract<'a, 'py, T>(
    arg: Option<Borrowed<'a, 'py, PyAny>>,
    name: &str,
    default: T,
) -> PyResult<T>
where
    T: FromPyObject<'a, 'py>,
    T::Error: Into<PyErr>,
{
    match arg {
        None => Ok(default),
        Some(a) => T::extract(a).map_err(|e| noted(a.py(), name, e.into())),
    }
}

/// A required parameter's argument ([`Call::bind`] has checked that it was given).
#[inline(always)]
pub fn required<'a, 'py>(
    arg: Option<Borrowed<'a, 'py, PyAny>>,
) -> PyResult<Borrowed<'a, 'py, PyAny>> {
    arg.ok_or_else(|| PyTypeError::new_err("a required argument is missing"))
}

/// `error` with the note pyo3 adds to a failed argument conversion.
#[cold]
pub fn noted(py: Python<'_>, name: &str, error: PyErr) -> PyErr {
    let msg = format!("while processing '{name}'");
    let _ = error
        .value(py)
        .call_method1(intern!(py, "add_note"), (msg,));
    error
}

/// The body of every entry: no panic reaches Python (nor unwinds into C), an error is set as
/// the raised exception.
///
/// pyo3 does not know the thread is attached here (its method trampoline, which would tell it,
/// costs ~80 instructions a call: two thread-local accesses through `__tls_get_addr` in a
/// shared library), so a `Py` dropped in a body goes to pyo3's pool of deferred decrefs
/// instead of being released at once. Bodies therefore release what they drop on their fast
/// paths with `drop_ref(py)` (or [`release`]); after a failed call, which can drop anything,
/// the pool is emptied here before returning.
///
/// # Safety
/// To be called only by the interpreter's method call, with its arguments unchanged.
#[inline(always)]
pub unsafe fn enter(
    what: &'static str,
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
    body: impl for<'a, 'py> FnOnce(Call<'a, 'py>) -> PyResult<Py<PyAny>>,
) -> *mut ffi::PyObject {
    // SAFETY: the interpreter calls a method with the GIL held.
    let py = unsafe { Python::assume_attached() };
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let nargs = usize::try_from(nargs).unwrap_or(0);
        // SAFETY: kwnames, when not NULL, is the call's live borrowed tuple of names.
        let kwnames = unsafe { Borrowed::from_ptr_or_opt(py, kwnames) }
            .map(|k| unsafe { k.cast_unchecked::<PyTuple>() })
            .filter(|k| !k.is_empty());
        let total = nargs + kwnames.map_or(0, |k| k.len());
        let args = if total == 0 {
            &[][..]
        } else {
            // SAFETY: args[..nargs + len(kwnames)] are the call's live borrowed arguments.
            unsafe { std::slice::from_raw_parts(args, total) }
        };
        let call = Call {
            py,
            // SAFETY: slf is the call's live borrowed self.
            slf: unsafe { Borrowed::from_ptr(py, slf) },
            args,
            nargs,
            kwnames,
        };
        body(call)
    }));
    let err = match out {
        Ok(Ok(v)) => return v.into_ptr(),
        Ok(Err(e)) => e,
        Err(_) => PyRuntimeError::new_err(format!("chanpool: internal error in {what}")),
    };
    // Attaching through pyo3 (the thread already is) releases the deferred decrefs.
    Python::attach(|_| ());
    err.restore(py);
    std::ptr::null_mut()
}

/// Drops `obj` at once, from code that may run where pyo3 does not know the thread is attached
/// (an entry's body): for the rarer paths, where the cost of attaching does not matter.
pub fn release<T>(obj: T) {
    Python::attach(|_| drop(obj));
}

/// Makes a METH_FASTCALL | METH_KEYWORDS C function (an [`Entry`]) running `body` (a
/// `fn(Call) -> PyResult<Py<PyAny>>`) through [`enter`]; `what` names the method in the panic
/// error.
macro_rules! entry {
    ($what:literal, $body:path) => {{
        unsafe extern "C" fn entry(
            slf: *mut pyo3::ffi::PyObject,
            args: *const *mut pyo3::ffi::PyObject,
            nargs: pyo3::ffi::Py_ssize_t,
            kwnames: *mut pyo3::ffi::PyObject,
        ) -> *mut pyo3::ffi::PyObject {
            // SAFETY: only the interpreter calls this, as a method.
            unsafe { $crate::py::fastcall::enter($what, slf, args, nargs, kwnames, $body) }
        }
        entry as $crate::py::fastcall::Entry
    }};
}
pub(crate) use entry;

/// A method for [`install`]: `doc` starts with its text signature (`name($self, ...)\n--\n\n`).
pub struct Method {
    pub name: &'static CStr,
    pub entry: Entry,
    pub doc: &'static CStr,
}

/// Puts the methods on the class (at module init), in place of any of the same name.
pub fn install(cls: &Bound<'_, PyType>, methods: &[Method]) -> PyResult<()> {
    let py = cls.py();
    for m in methods {
        // The descriptor keeps a pointer to its definition for its whole life: one per process.
        let def: &'static mut ffi::PyMethodDef = Box::leak(Box::new(ffi::PyMethodDef {
            ml_name: m.name.as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunctionFastWithKeywords: m.entry,
            },
            ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
            ml_doc: m.doc.as_ptr(),
        }));
        // SAFETY: a live type and a 'static definition; returns a new reference or NULL.
        let descr = unsafe {
            Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(cls.as_ptr().cast(), def))?
        };
        cls.setattr(m.name.to_str().unwrap_or_default(), descr)?;
    }
    Ok(())
}
