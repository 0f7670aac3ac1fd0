//! The one worker loop every native thread that runs Python uses (granian's blocking.rs): it
//! attaches once, runs queued jobs back to back while it holds the interpreter, and detaches
//! only to wait for the next one, through `runtime::detach` so that a wait ending late in the
//! interpreter's exit never re-attaches. Attaching per job costs about twice as much. Also the
//! two waits a pool's owner makes: joining its threads and queueing into a full queue.

use crate::core::pool::{Next, Pool, Rejected, Worker};
use crate::core::wait::{in_slices, Stop};
use crate::py::oneshot::set_handed_off;
use crate::py::runtime;
use pyo3::prelude::*;
use std::sync::Arc;

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
    next_job_counted(py, w, || ())
}

/// `next_job`, calling `waited` when it had to wait detached (so re-attached) for the job:
/// for a worker that counts its attaches.
pub fn next_job_counted<J: Send + 'static>(
    py: Python<'_>,
    w: &Worker<J>,
    waited: impl FnOnce(),
) -> Option<J> {
    // A completed task's waiter is woken here (oneshot::set_after_detach): at once when
    // there is more to run, after letting go of the interpreter when there is not.
    match w.try_next() {
        Next::Job(j) => {
            set_handed_off();
            Some(j)
        }
        Next::Closed => {
            set_handed_off();
            None
        }
        Next::Empty => {
            let j = runtime::detach(py, || {
                set_handed_off();
                w.wait_next()
            })?;
            waited();
            Some(j)
        }
    }
}

/// Waits (detached, Ctrl-C honoured) until the threads of a closed pool have exited, except
/// the calling one (Pool::join skips it).
pub fn join<J: Send + 'static>(py: Python<'_>, pool: &Pool<J>) -> PyResult<()> {
    runtime::acquire_detached(py, |hook| {
        in_slices(None, hook, |slice| pool.join(Some(slice)).then_some(()))
    })
    .map(drop)
}

/// `join`, again until no thread is left but the calling one when `me` is true.
pub fn join_all<J: Send + 'static>(py: Python<'_>, pool: &Pool<J>, me: bool) -> PyResult<()> {
    loop {
        join(py, pool)?;
        // A thread that was being started as the pool closed is joined on the next round.
        if pool.snapshot().workers <= usize::from(me) {
            return Ok(());
        }
    }
}

/// Queues a job that a bounded queue refused as full, waiting for room detached (in slices,
/// Ctrl-C honoured). Err(None): the pool closed meanwhile; Err(Some(e)): interrupted. A job
/// not taken is dropped here, attached.
pub fn submit_waiting<J: Send + 'static>(
    py: Python<'_>,
    pool: &Arc<Pool<J>>,
    job: J,
    weight: u64,
) -> Result<(), Option<PyErr>> {
    let ((r, held), err) = runtime::wait_detached(py, |hook| {
        let mut held = Some(job);
        let r = in_slices(None, hook, |slice| {
            match pool.submit_timeout(held.take()?, weight, slice) {
                Ok(()) => Some(true),
                Err(Rejected::Closed(j)) => {
                    held = Some(j);
                    Some(false)
                }
                Err(Rejected::Full(j)) => {
                    held = Some(j);
                    None
                }
            }
        });
        (r, held)
    });
    drop(held);
    match r {
        Ok(true) => Ok(()),
        Ok(false) | Err(Stop::Closed | Stop::Timeout) => Err(None),
        Err(Stop::Interrupted) => Err(Some(err.unwrap_or_else(|| {
            pyo3::exceptions::PyKeyboardInterrupt::new_err("submit interrupted")
        }))),
    }
}
