//! The one worker loop every native thread that runs Python uses (granian's blocking.rs): it
//! attaches once, runs queued jobs back to back while it holds the interpreter, and detaches
//! only to wait for the next one, through `runtime::detach` so that a wait ending late in the
//! interpreter's exit never re-attaches. Attaching per job costs about twice as much.

use crate::core::pool::{Next, Worker};
use crate::py::runtime;
use pyo3::prelude::*;

/// Attaches (unless the interpreter is exiting past the point where that is safe: then
/// returns None without running anything) and runs `body`, typically `serve_attached`.
pub fn attached<J: Send + 'static, R>(
    w: &Worker<J>,
    body: impl FnOnce(Python<'_>, &Worker<J>) -> R,
) -> Option<R> {
    runtime::attach_native(|py| body(py, w))
}

/// Runs every job the pool hands this worker until the pool is closed and drained.
pub fn serve_attached<J: Send + 'static>(
    py: Python<'_>,
    w: &Worker<J>,
    mut run: impl FnMut(Python<'_>, J),
) {
    while let Some(job) = next_job(py, w) {
        run(py, job);
    }
}

/// `attached` + `serve_attached`: the whole life of a worker thread that needs no set-up.
pub fn serve<J: Send + 'static>(w: &Worker<J>, run: impl FnMut(Python<'_>, J)) -> Option<()> {
    attached(w, |py, w| serve_attached(py, w, run))
}

/// The next job: taken at once if queued (still attached), else waited for detached. None
/// once the pool is closed and empty.
pub fn next_job<J: Send + 'static>(py: Python<'_>, w: &Worker<J>) -> Option<J> {
    match w.try_next() {
        Next::Job(j) => Some(j),
        Next::Closed => None,
        Next::Empty => runtime::detach(py, || w.wait_next()),
    }
}
