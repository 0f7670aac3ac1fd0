//! asyncio support: the per-loop waker every awaitable chanpool object shares (`waker.rs`).
//! The coroutines themselves are Python (`chanpool._aio`); the objects' binding only registers
//! a wait and commits with its non-blocking operation.

mod waker;

pub use waker::{direct, AioWait, LoopWaker, PassOn};

use crate::py::args::Timeout;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

/// A coroutine function of `chanpool._aio`, looked up once (lazily: `_aio` imports `_core`).
pub fn coroutine<'py>(py: Python<'py>, name: &'static str) -> PyResult<Bound<'py, PyAny>> {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let m = MODULE.get_or_try_init(py, || py.import("chanpool._aio").map(|m| m.unbind()))?;
    m.bind(py).getattr(name)
}

/// A validated timeout as the coroutines take it: None (forever, huge ones included) or the
/// seconds left (0: only try).
pub fn secs(t: Timeout) -> Option<f64> {
    t.deadline.map(|_| t.secs.unwrap_or(0.0).max(0.0))
}
