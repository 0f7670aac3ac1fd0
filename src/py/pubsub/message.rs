//! The message handed to handlers and pull readers: one object per publish, shared by every
//! subscription it reaches.

use crate::py::gc::{gc_fields, Traverse};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::PyString;
use pyo3::PyTraverseError;

/// One published message, shared by every subscription it reaches.
#[pyclass(module = "chanpool", name = "Message", frozen)]
pub struct Message {
    #[pyo3(get)]
    pub(super) topic: Py<PyString>,
    #[pyo3(get)]
    pub(super) data: Py<PyAny>,
    /// The bus's publish counter: increases with every publish.
    #[pyo3(get)]
    pub(super) seq: u64,
    /// time.time() when it was published.
    #[pyo3(get)]
    pub(super) timestamp: f64,
}

// The topic is a str: only the data can be part of a cycle.
gc_fields!(Message { data });

/// Whether objects of `obj`'s type can hold references the collector follows.
fn collectable(obj: &Py<PyAny>) -> bool {
    // SAFETY: `obj` is alive (we hold a reference), so is its type; PyType_GetFlags only reads.
    let flags = unsafe { pyo3::ffi::PyType_GetFlags(pyo3::ffi::Py_TYPE(obj.as_ptr())) };
    flags & pyo3::ffi::Py_TPFLAGS_HAVE_GC != 0
}

impl Message {
    /// A new message. One whose data cannot refer to other objects (an int, a str, bytes,
    /// None: a type without garbage-collector support) cannot be part of a cycle, so it is
    /// taken off the collector's list, as CPython does for a tuple of such values: young
    /// queued messages would otherwise be walked by every collection (~300 instructions per
    /// publish). Data that can hold references keeps the message tracked and traversed.
    pub(super) fn new(
        py: Python<'_>,
        topic: &Bound<'_, PyString>,
        data: Py<PyAny>,
        seq: u64,
        timestamp: f64,
    ) -> PyResult<Py<Message>> {
        let atomic = !collectable(&data);
        let msg = Py::new(
            py,
            Message {
                topic: topic.clone().unbind(),
                data,
                seq,
                timestamp,
            },
        )?;
        if atomic {
            // SAFETY: `msg` is a live object of a GC type (it has `__traverse__`) that we own;
            // untracking a tracked object is allowed at any time, and its dealloc untracks
            // again only if it is still tracked.
            unsafe { pyo3::ffi::PyObject_GC_UnTrack(msg.as_ptr().cast()) };
        }
        Ok(msg)
    }
}

#[pymethods]
impl Message {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Message(topic={}, data={}, seq={})",
            self.topic.bind(py).repr()?,
            self.data.bind(py).repr()?,
            self.seq
        ))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.traverse(&visit)
    }
}
