//! Channel, select and fan_in for Python. Values are Python objects moved between threads; an
//! operation that can complete at once does so while holding the GIL (a lock and a deque push,
//! far cheaper than releasing and re-taking the GIL); one that must wait releases the GIL through
//! `runtime::wait_detached` and stays interruptible by Ctrl-C. A Channel is also a queue.Queue
//! (put/get/task_done/join/shutdown, an assignable maxsize), raising the queue module's
//! exceptions.

mod aio;
mod aio_select;
mod close;
mod entry;
mod multi;

pub use aio_select::SelectWait;
pub use entry::install;
pub use multi::{fan_in, select};

use crate::core::channel::{self as core, Capacity, TryRecv, TrySend};
use crate::core::wait::Stop;
use crate::py::aio::{self as pyaio, LoopWaker};
use crate::py::args::{ChanCapacity, Count, QueueTimeout, Timeout, Truthy};
use crate::py::errors;
use crate::py::gc::{self, Traverse};
use crate::py::runtime::{wait_detached, ForkEpoch};
use close::{ended, put_closed, send_closed, stopped};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::PyType;
use pyo3::PyTraverseError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

type Value = Py<PyAny>;
type Core = core::Channel<Value>;

pub struct ChanInner {
    core: Core,
    /// The fork generation the channel was last used in (see `core()`).
    epoch: ForkEpoch,
    /// Set in a fork child if another thread held the channel's lock when the process forked.
    unusable: AtomicBool,
    /// Fed by a fan_in forwarder thread, which a fork child does not have.
    forwarded: bool,
}

impl ChanInner {
    fn new(cap: Capacity, forwarded: bool) -> Arc<Self> {
        Arc::new(ChanInner {
            core: core::Channel::new(cap),
            epoch: ForkEpoch::new(),
            unusable: AtomicBool::new(false),
            forwarded,
        })
    }

    /// The core, after making sure it is usable in this process. On first use in a fork
    /// child the threads that were blocked on the channel do not exist, so their waits are
    /// forgotten (their blocked sends' values dropped, attached, once the epoch is set); what
    /// was buffered stays. A fan_in output is closed: its forwarder thread does not exist either.
    #[inline]
    fn core(&self) -> PyResult<&Core> {
        let mut dropped = None;
        self.epoch.check(|_| dropped = Some(self.forget_parent()));
        if let Some(values) = dropped {
            release_forgotten(values);
        }
        if self.unusable.load(Ordering::Relaxed) {
            return Err(PyRuntimeError::new_err(
                "this Channel was in use by another thread when the process forked, so its \
                 state is unknown in the child: create a new Channel in the child",
            ));
        }
        Ok(&self.core)
    }

    #[cold]
    fn forget_parent(&self) -> Vec<Value> {
        let Some(values) = self.core.after_fork() else {
            self.unusable.store(true, Ordering::Relaxed);
            return Vec::new();
        };
        if self.forwarded {
            self.core.close();
        }
        values
    }

    /// Whether it is safe to touch the core without the checks (finalizers, GC).
    fn current(&self) -> bool {
        self.epoch.is_current()
    }

    /// The exception for a receive on a closed, drained channel.
    fn ended(&self, py: Python<'_>) -> PyErr {
        ended(py, self.core.close_reason().as_deref())
    }
}

/// Maybe called from an entry (py/fastcall): released at once. Out of line, so that `core()`
/// stays inlined in every operation.
#[cold]
#[inline(never)]
fn release_forgotten(values: Vec<Value>) {
    crate::py::fastcall::release(values);
}

/// The values a channel holds are its Python object's own only when nothing else (a fan_in
/// thread) shares them, and only in the process that made them.
impl gc::Traverse for Arc<ChanInner> {
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        if Arc::strong_count(self) != 1 || !self.current() {
            return Ok(());
        }
        self.core.try_visit(|v| visit.call(v))
    }
}

impl gc::Clear for Arc<ChanInner> {
    fn take(&self) -> Vec<Value> {
        if Arc::strong_count(self) != 1 || !self.current() {
            return Vec::new();
        }
        let (mut values, reason) = self.core.try_take_all();
        values.extend(reason.and_then(|r| Arc::try_unwrap(r).ok()));
        values
    }
}

/// A Go channel: Channel(0) unbuffered, Channel(n) buffered, Channel(None) unbounded.
#[pyclass(module = "chanpool", name = "Channel", frozen, subclass)]
pub struct Channel {
    inner: Arc<ChanInner>,
    /// fan_in's output: once nobody can read it, its forwarder thread should stop.
    close_on_drop: bool,
}

impl Drop for Channel {
    fn drop(&mut self) {
        if self.close_on_drop && self.inner.current() {
            self.inner.core.close();
        }
    }
}

impl Channel {
    /// A blocking send, detached. A value that could not be sent is dropped here, attached; a
    /// pending signal's exception is restored for the caller (see `wait_error`).
    fn send_wait(
        &self,
        py: Python<'_>,
        item: Value,
        deadline: Option<Instant>,
    ) -> Result<(), Stop> {
        let core = &self.inner.core;
        let (r, sig) = wait_detached(py, |hook| core.send(item, deadline, hook));
        let r = match r {
            Ok(()) => Ok(()),
            Err((stop, item)) => {
                drop(item);
                Err(stop)
            }
        };
        match sig {
            // Interrupted as the send completed: the value went; the Ctrl-C is still raised.
            Some(e) => {
                e.restore(py);
                Err(Stop::Interrupted)
            }
            None => r,
        }
    }

    /// A blocking receive, detached. A value received just as the wait was interrupted goes
    /// back to the channel (the next receiver gets it) and the signal's exception is raised.
    fn recv_wait(&self, py: Python<'_>, deadline: Option<Instant>) -> Result<Value, Stop> {
        let core = &self.inner.core;
        let (r, sig) = wait_detached(py, |hook| core.recv(deadline, hook));
        match (r, sig) {
            (r, None) => r,
            (r, Some(e)) => {
                if let Ok(v) = r {
                    core.put_back(v);
                }
                e.restore(py);
                Err(Stop::Interrupted)
            }
        }
    }
}

/// The error for a failed wait; a pending signal's exception (set by send_wait/recv_wait) wins.
fn wait_error(py: Python<'_>, stop: Stop, what: &str) -> PyErr {
    PyErr::take(py).unwrap_or_else(|| stopped(stop, None, what))
}

/// The hot methods' bodies: their Python entries are entry.rs's (no pyo3 wrapper).
impl Channel {
    /// Sends, waiting (GIL released) for room or, unbuffered, for a receiver.
    pub(super) fn send(&self, py: Python<'_>, item: Value, timeout: Timeout) -> PyResult<()> {
        let deadline = timeout.deadline;
        match pyaio::direct(py, || self.inner.core().map(|c| c.try_send(item)))? {
            Ok(()) => Ok(()),
            Err(TrySend::Closed(_)) => Err(send_closed(py)),
            Err(TrySend::Full(item)) => match self.send_wait(py, item, deadline) {
                Ok(()) => Ok(()),
                Err(Stop::Closed) => Err(send_closed(py)),
                Err(stop) => Err(wait_error(py, stop, "send")),
            },
        }
    }

    /// Receives, waiting (GIL released); raises chanpool.Closed (or the close error) once the
    /// channel is closed and drained.
    pub(super) fn recv(&self, py: Python<'_>, timeout: Timeout) -> PyResult<Value> {
        let deadline = timeout.deadline;
        match pyaio::direct(py, || self.inner.core().map(|c| c.try_recv()))? {
            Ok(v) => Ok(v),
            Err(TryRecv::Closed) => Err(self.inner.ended(py)),
            Err(TryRecv::Empty) => match self.recv_wait(py, deadline) {
                Ok(v) => Ok(v),
                Err(Stop::Closed) => Err(self.inner.ended(py)),
                Err(stop) => Err(wait_error(py, stop, "recv")),
            },
        }
    }

    /// Sends only if that needs no waiting (room, or a receiver waiting: a plain recv() or a
    /// select); False otherwise.
    pub(super) fn try_send(&self, py: Python<'_>, item: Value) -> PyResult<bool> {
        match pyaio::direct(py, || self.inner.core().map(|c| c.try_send(item)))? {
            Ok(()) => Ok(true),
            Err(TrySend::Full(item)) => {
                item.drop_ref(py); // at once: see py/fastcall
                Ok(false)
            }
            Err(TrySend::Closed(_)) => Err(send_closed(py)),
        }
    }

    /// (value, True) if one was ready (buffered, or a waiting sender's), else (None, False);
    /// raises like recv() once the channel is closed and drained.
    pub(super) fn try_recv(&self, py: Python<'_>) -> PyResult<(Option<Value>, bool)> {
        match pyaio::direct(py, || self.inner.core().map(|c| c.try_recv()))? {
            Ok(v) => Ok((Some(v), true)),
            Err(TryRecv::Empty) => Ok((None, false)),
            Err(TryRecv::Closed) => Err(self.inner.ended(py)),
        }
    }

    pub(super) fn put(
        &self,
        py: Python<'_>,
        item: Value,
        block: Truthy,
        timeout: QueueTimeout,
    ) -> PyResult<()> {
        let block = block.0;
        let deadline = timeout.deadline(block)?;
        match pyaio::direct(py, || self.inner.core().map(|c| c.try_send(item)))? {
            Ok(()) => Ok(()),
            Err(TrySend::Closed(_)) => Err(put_closed(py)),
            Err(TrySend::Full(_)) if !block => Err(errors::queue_full_plain(py)),
            Err(TrySend::Full(item)) => match self.send_wait(py, item, deadline) {
                Ok(()) => Ok(()),
                Err(Stop::Timeout) => Err(errors::queue_full_plain(py)),
                Err(Stop::Closed) => Err(put_closed(py)),
                Err(stop) => Err(wait_error(py, stop, "put")),
            },
        }
    }

    pub(super) fn get(
        &self,
        py: Python<'_>,
        block: Truthy,
        timeout: QueueTimeout,
    ) -> PyResult<Value> {
        let block = block.0;
        let deadline = timeout.deadline(block)?;
        match pyaio::direct(py, || self.inner.core().map(|c| c.try_recv()))? {
            Ok(v) => Ok(v),
            Err(TryRecv::Closed) => Err(self.inner.ended(py)),
            Err(TryRecv::Empty) if !block => Err(errors::queue_empty(py)),
            Err(TryRecv::Empty) => match self.recv_wait(py, deadline) {
                Ok(v) => Ok(v),
                Err(Stop::Timeout) => Err(errors::queue_empty(py)),
                Err(Stop::Closed) => Err(self.inner.ended(py)),
                Err(stop) => Err(wait_error(py, stop, "get")),
            },
        }
    }
}

#[pymethods]
impl Channel {
    // send, recv, try_send, try_recv, put, get: see entry.rs.

    /// `Channel[int]` in annotations, as with queue.Queue.
    #[classmethod]
    fn __class_getitem__<'py>(
        cls: &Bound<'py, PyType>,
        item: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        cls.py()
            .import("types")?
            .getattr("GenericAlias")?
            .call1((cls, item))
    }

    #[new]
    #[pyo3(signature = (capacity=ChanCapacity(Capacity::Rendezvous)), text_signature = "(capacity=0)")]
    fn py_new(capacity: ChanCapacity) -> PyResult<Self> {
        Ok(Channel {
            inner: ChanInner::new(capacity.0, false),
            close_on_drop: false,
        })
    }

    /// Closes the channel: sends fail, receivers drain what is buffered, then get
    /// chanpool.Closed (or `error`, if given). Returns False if it was already closed.
    #[pyo3(signature = (error=None))]
    fn close(&self, py: Python<'_>, error: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        let reason = match error.filter(|e| !e.is_none()) {
            None => None,
            Some(e) => Some(close::close_reason(e)?),
        };
        pyaio::direct(py, || self.inner.core().map(|c| c.close_with(reason)))
    }

    #[getter]
    fn closed(&self) -> PyResult<bool> {
        Ok(self.inner.core()?.is_closed())
    }

    /// None when unbounded, 0 when unbuffered.
    #[getter]
    fn capacity(&self) -> Option<usize> {
        match self.inner.core.capacity() {
            Capacity::Unbounded => None,
            Capacity::Rendezvous => Some(0),
            Capacity::Bounded(n) => Some(n),
        }
    }

    fn __len__(&self) -> PyResult<usize> {
        Ok(self.inner.core()?.len())
    }

    /// Always true, like any object without a length: `if ch:` must not depend on whether
    /// something happens to be buffered.
    fn __bool__(&self) -> bool {
        true
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Iteration receives until the channel is closed and drained (a close error is raised).
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Value>> {
        let r = match pyaio::direct(py, || self.inner.core().map(|c| c.try_recv()))? {
            Ok(v) => return Ok(Some(v)),
            Err(TryRecv::Closed) => Err(Stop::Closed),
            Err(TryRecv::Empty) => self.recv_wait(py, None),
        };
        match r {
            Ok(v) => Ok(Some(v)),
            Err(Stop::Closed) => match self.inner.core.close_reason() {
                None => Ok(None),
                Some(_) => Err(self.inner.ended(py)),
            },
            Err(stop) => Err(wait_error(py, stop, "recv")),
        }
    }

    // asyncio (see py/aio and chanpool/_aio.py).

    /// Sends from a coroutine: completes at once if it can, else waits on the event loop;
    /// a cancelled send_async has not delivered (README: unbuffered channels' offer race).
    #[pyo3(signature = (item, timeout=Timeout::FOREVER), text_signature = "($self, item, timeout=None)")]
    fn send_async<'py>(
        slf: &Bound<'py, Self>,
        item: Value,
        timeout: Timeout,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::aio_coroutine!(slf.py(), "send")?.call1((slf, item, pyaio::secs(timeout)))
    }

    /// Receives from a coroutine; a cancelled recv_async has consumed nothing.
    #[pyo3(signature = (timeout=Timeout::FOREVER), text_signature = "($self, timeout=None)")]
    fn recv_async<'py>(slf: &Bound<'py, Self>, timeout: Timeout) -> PyResult<Bound<'py, PyAny>> {
        crate::aio_coroutine!(slf.py(), "recv")?.call1((slf, pyaio::secs(timeout)))
    }

    fn __aiter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// `async for` receives until the channel is closed and drained, like iteration.
    fn __anext__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        crate::aio_coroutine!(slf.py(), "anext")?.call1((slf,))
    }

    fn _aio_recv(
        &self,
        py: Python<'_>,
        waker: PyRef<'_, LoopWaker>,
        fut: Value,
    ) -> PyResult<(Value, bool)> {
        pyaio::direct(py, || aio::recv(py, &self.inner, &waker, fut))
    }

    fn _aio_send(
        &self,
        py: Python<'_>,
        item: Value,
        waker: PyRef<'_, LoopWaker>,
        fut: Value,
    ) -> PyResult<Option<Py<aio::ChanWait>>> {
        pyaio::direct(py, || aio::send(py, &self.inner, item, &waker, fut))
    }

    fn _aio_leave(
        &self,
        py: Python<'_>,
        wait: PyRef<'_, aio::ChanWait>,
        recv: bool,
    ) -> PyResult<bool> {
        pyaio::direct(py, || aio::leave(&self.inner, &wait, recv))
    }

    fn _aio_settle(&self, py: Python<'_>, wait: PyRef<'_, aio::ChanWait>) -> PyResult<bool> {
        pyaio::direct(py, || aio::settle(py, &self.inner, &wait))
    }

    /// Whether this channel's close ended iteration without an error (for `async for`).
    fn _aio_ended_cleanly(&self) -> bool {
        self.inner.core.close_reason().is_none()
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.traverse(&visit)
    }

    fn __clear__(&self) {
        gc::clear(&[&self.inner]);
    }

    fn __repr__(&self) -> String {
        let core = &self.inner.core;
        let cap = match core.capacity() {
            Capacity::Unbounded => "None".to_string(),
            Capacity::Rendezvous => "0".to_string(),
            Capacity::Bounded(n) => n.to_string(),
        };
        if !self.inner.current() {
            return format!("<chanpool.Channel capacity={cap} (from before fork)>");
        }
        let closed = if core.is_closed() { " closed" } else { "" };
        format!(
            "<chanpool.Channel capacity={cap} len={}{closed}>",
            core.len()
        )
    }

    // queue.Queue compatibility.

    /// queue.Queue's maxsize: 0 means unbounded there, so an unbuffered channel reports 0 too.
    #[getter]
    fn maxsize(&self) -> usize {
        self.capacity().unwrap_or(0)
    }

    /// As queue.Queue: `maxsize = n` bounds the channel at n, or unbounds it for n <= 0; what
    /// is queued stays, and blocked puts go in if there is room now.
    #[setter]
    fn set_maxsize(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let n: Count = value.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "maxsize must be an int, got {}",
                value
                    .get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
        let cap = match n.at_least(1, "maxsize") {
            Ok(n) => usize::try_from(n).map_or(Capacity::Unbounded, Capacity::Bounded),
            Err(_) if n.below(1) => Capacity::Unbounded,
            // Too large to matter: no bound.
            Err(_) => Capacity::Unbounded,
        };
        self.inner.core()?.set_capacity(cap);
        Ok(())
    }

    /// queue.Queue's count of items put and not yet marked done with task_done().
    #[getter]
    fn unfinished_tasks(&self) -> PyResult<u64> {
        Ok(self.inner.core()?.unfinished())
    }

    fn put_nowait(&self, py: Python<'_>, item: Value) -> PyResult<()> {
        self.put(py, item, Truthy(false), QueueTimeout::NONE)
    }

    fn get_nowait(&self, py: Python<'_>) -> PyResult<Value> {
        self.get(py, Truthy(false), QueueTimeout::NONE)
    }

    fn qsize(&self) -> PyResult<usize> {
        Ok(self.inner.core()?.len())
    }

    fn empty(&self) -> PyResult<bool> {
        Ok(self.inner.core()?.is_empty())
    }

    fn full(&self) -> PyResult<bool> {
        Ok(self.inner.core()?.is_full())
    }

    fn task_done(&self) -> PyResult<()> {
        if self.inner.core()?.task_done() {
            Ok(())
        } else {
            Err(PyValueError::new_err("task_done() called too many times"))
        }
    }

    /// Waits (GIL released) until every item put was marked done with task_done().
    fn join(&self, py: Python<'_>) -> PyResult<()> {
        let core = self.inner.core()?;
        if core.unfinished() == 0 {
            return Ok(());
        }
        let (r, sig) = wait_detached(py, |hook| core.join(None, hook));
        r.map_err(|stop| stopped(stop, sig, "join"))
    }

    /// queue.Queue.shutdown (3.13): put() fails from now on; get() fails once the queue is
    /// empty, or at once with immediate=True (which also discards what is queued).
    #[pyo3(signature = (immediate=Truthy(false)), text_signature = "($self, immediate=False)")]
    fn shutdown(&self, immediate: Truthy) -> PyResult<()> {
        let core = self.inner.core()?;
        core.close();
        if immediate.0 {
            drop(core.drain());
        }
        Ok(())
    }

    #[getter]
    fn is_shutdown(&self) -> PyResult<bool> {
        self.closed()
    }
}

gc::gc_fields!(Channel { inner });
