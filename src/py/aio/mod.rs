//! asyncio support: the per-loop waker every awaitable chanpool object shares (`waker.rs`).
//! The coroutines themselves are Python (`chanpool._aio`); the objects' binding only registers
//! a wait and commits with its non-blocking operation.

mod waker;

pub use waker::{direct, AioWait, LoopWaker, PassOn, Wake};

use crate::py::args::Timeout;

/// A coroutine function of `chanpool._aio`, looked up once per call site (lazily: `_aio`
/// imports `_core`); a getattr per call showed on the hot paths (send_async, recv_async).
#[macro_export]
macro_rules! aio_coroutine {
    ($py:expr, $name:literal) => {{
        static F: pyo3::sync::PyOnceLock<pyo3::Py<pyo3::PyAny>> = pyo3::sync::PyOnceLock::new();
        F.import($py, "chanpool._aio", $name)
    }};
}

/// A validated timeout as the coroutines take it: None (forever, huge ones included) or the
/// seconds left (0: only try).
pub fn secs(t: Timeout) -> Option<f64> {
    t.deadline.map(|_| t.secs.unwrap_or(0.0).max(0.0))
}
