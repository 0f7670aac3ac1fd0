//! A Channel's face for coroutines: the steps `chanpool._aio`'s coroutines take. Each either
//! completes at once or registers the coroutine's asyncio future with the loop's waker, in one
//! critical section; none waits. Values and futures are moved in and out attached.

use super::close::send_closed;
use super::ChanInner;
use crate::core::channel::{AsyncSend, Offer, TryRecv, Waiter};
use crate::core::notify::Registration;
use crate::py::aio::{LoopWaker, PassOn, Wake};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::PyTraverseError;
use std::sync::Arc;

type Value = Py<PyAny>;

/// A coroutine's registration on a channel, handed back to leave or settle it.
#[pyclass(module = "chanpool._core", name = "_ChanWait", frozen)]
pub struct ChanWait {
    /// The registration (a Registration is this, unsized, for the channel's queues).
    wake: Arc<Wake>,
    /// An async send's parked offer (unbuffered channels).
    offer: Option<Arc<Waiter<Value>>>,
}

#[pymethods]
impl ChanWait {
    /// (An offer's waiter holds the registration too: it is visited only once settled.)
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.wake.traverse_if_sole(0, &visit)
    }
}

/// A wake-up that reached a closing loop goes to the channel's next async receiver (sender).
fn pass_on(inner: &Arc<ChanInner>, recv: bool) -> PassOn {
    let chan = Arc::downgrade(inner);
    Box::new(move || {
        if let Some(c) = chan.upgrade() {
            c.core.pass_on(recv);
        }
    })
}

/// `(value, True)` now, or `(registration, False)`; raises like recv() when closed and drained.
pub fn recv(
    py: Python<'_>,
    inner: &Arc<ChanInner>,
    waker: &LoopWaker,
    fut: Value,
) -> PyResult<(Value, bool)> {
    let wake = waker.wake(fut, Some(pass_on(inner, true)));
    let reg: Registration = wake.clone();
    match inner.core()?.recv_or_register(&reg) {
        Ok(v) => Ok((v, true)),
        Err(TryRecv::Closed) => Err(inner.ended(py)),
        Err(TryRecv::Empty) => {
            drop(reg);
            let h = ChanWait { wake, offer: None };
            Ok((Py::new(py, h)?.into_any(), false))
        }
    }
}

/// None once sent, or the registration to await (room, or a receiver taking the offer);
/// raises chanpool.Closed when closed.
pub fn send(
    py: Python<'_>,
    inner: &Arc<ChanInner>,
    item: Value,
    waker: &LoopWaker,
    fut: Value,
) -> PyResult<Option<Py<ChanWait>>> {
    let wake = waker.wake(fut, Some(pass_on(inner, false)));
    let reg: Registration = wake.clone();
    let r = inner.core()?.send_or_register(item, &reg);
    drop(reg);
    let h = match r {
        Ok(()) => return Ok(None),
        Err(AsyncSend::Closed(v)) => {
            drop(v);
            return Err(send_closed(py));
        }
        // The caller still holds the item (it passed a reference): drop ours.
        Err(AsyncSend::Registered(v)) => {
            drop(v);
            ChanWait { wake, offer: None }
        }
        Err(AsyncSend::Offered(w)) => ChanWait {
            wake,
            offer: Some(w),
        },
    };
    Ok(Some(Py::new(py, h)?))
}

/// The coroutine gives up (cancelled, timed out): it leaves its queue, and a wake-up it got
/// and did not use goes to the next coroutine. An offer is withdrawn unless a receiver took
/// it: True then (the value was delivered).
pub fn leave(inner: &ChanInner, h: &ChanWait, recv: bool) -> PyResult<bool> {
    let core = inner.core()?;
    if let Some(w) = &h.offer {
        return Ok(matches!(core.settle_offer(w), Offer::Sent));
    }
    let reg: Registration = h.wake.clone();
    if recv {
        core.leave_recv(&reg);
    } else {
        core.leave_send(&reg);
    }
    Ok(false)
}

/// A woken async send: for an offer, whether a receiver took it (True) or it must be made
/// again (False); raises chanpool.Closed if the channel closed first. A registration for room
/// has nothing to settle (False: try again).
pub fn settle(py: Python<'_>, inner: &ChanInner, h: &ChanWait) -> PyResult<bool> {
    let Some(w) = &h.offer else {
        return Ok(false);
    };
    match inner.core()?.settle_offer(w) {
        Offer::Sent => Ok(true),
        Offer::Closed(v) => {
            drop(v);
            Err(send_closed(py))
        }
        Offer::Withdrawn(v) => {
            drop(v);
            Ok(false)
        }
    }
}
