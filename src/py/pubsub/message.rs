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
