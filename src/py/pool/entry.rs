//! submit()'s entry as a METH_FASTCALL | METH_KEYWORDS method (py/fastcall). pyo3 gives a
//! `*args` method the tuple-and-dict convention: CPython builds a tuple of every argument for
//! the call and pyo3 slices it again for `*args` (two tuples per submit). Here the arguments are
//! read straight from the caller's array into [`Args`]; a dict is built only for keyword
//! arguments.

use super::worker::enqueue;
use super::WorkerPool;
use crate::py::call::Args;
use crate::py::fastcall::{self, entry, Call, Method};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyType;

/// `WorkerPool.submit(self, fn, /, *args, **kwargs)`.
fn submit(c: Call<'_, '_>) -> PyResult<Py<PyAny>> {
    let me = c.this::<WorkerPool>()?;
    let n = c.positional();
    if n == 0 {
        return Err(PyTypeError::new_err(
            "WorkerPool.submit() missing 1 required positional argument: 'fn'",
        ));
    }
    let func = c.arg(0);
    let positional = match n {
        2 => Args::One(c.arg(1).to_owned().unbind()),
        _ => Args::Many((1..n).map(|i| c.arg(i).to_owned().unbind()).collect()),
    };
    let kwargs = c.kwargs()?.map(Bound::unbind);
    let me = me.get();
    let (fut, task) = me.make_call(&func, positional, kwargs)?;
    enqueue(c.py, &me.core, &me.ext, task, 1)?;
    Ok(fut)
}

/// Puts the entry on the WorkerPool class (at module init).
pub fn install(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let cls = m.getattr("WorkerPool")?.cast_into::<PyType>()?;
    fastcall::install(
        &cls,
        &[Method {
            name: c"submit",
            entry: entry!("WorkerPool.submit", submit),
            doc: c"submit($self, fn, /, *args, **kwargs)\n--\n\nSchedules fn(*args, **kwargs); returns a concurrent.futures.Future.",
        }],
    )
}
