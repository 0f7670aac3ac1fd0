//! Channel, select and fan_in for Python. Values are Python objects moved between threads; an
//! operation that can complete at once does so while holding the GIL (a lock and a deque push,
//! far cheaper than releasing and re-taking the GIL); one that must wait releases the GIL and
//! stays interruptible by Ctrl-C. A Channel is also a queue.Queue (put/get/task_done/join/
//! shutdown), raising the queue module's exceptions.

use crate::core::channel::{self as core, Capacity, Case, Selected, TryRecv, TrySend};
use crate::core::wait::{never, Hook, Stop};
use crate::py::errors;
use crate::py::runtime;
use pyo3::exceptions::{
    PyBaseException, PyRuntimeError, PyTimeoutError, PyTypeError, PyValueError,
};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PyTuple, PyType};
use pyo3::PyTraverseError;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

type Value = Py<PyAny>;
type Core = core::Channel<Value>;

/// `ChanInner::epoch` while the first user in a fork child resets the channel.
const RESETTING: u64 = u64::MAX;

pub struct ChanInner {
    core: Core,
    /// The fork generation the channel was last used in (see `core()`).
    epoch: AtomicU64,
    /// Set in a fork child if another thread held the channel's lock when the process forked.
    unusable: AtomicBool,
    /// Fed by a fan_in forwarder thread, which a fork child does not have.
    forwarded: bool,
}

impl ChanInner {
    fn new(cap: Capacity, forwarded: bool) -> Arc<Self> {
        Arc::new(ChanInner {
            core: core::Channel::new(cap),
            epoch: AtomicU64::new(runtime::generation()),
            unusable: AtomicBool::new(false),
            forwarded,
        })
    }

    /// The core, after making sure it is usable in this process.
    #[inline]
    fn core(&self, py: Python<'_>) -> PyResult<&Core> {
        if self.epoch.load(Ordering::Acquire) != runtime::generation() {
            self.enter_generation(py)?;
        }
        Ok(&self.core)
    }

    /// First use in a fork child: the threads that were blocked on the channel do not exist
    /// here, so their waits are forgotten (their unbuffered sends' values dropped); what was
    /// buffered stays. A fan_in output is closed: its forwarder thread does not exist either.
    #[cold]
    fn enter_generation(&self, py: Python<'_>) -> PyResult<()> {
        let gen = runtime::generation();
        loop {
            let seen = self.epoch.load(Ordering::Acquire);
            if seen == gen {
                break;
            }
            if seen == RESETTING {
                py.detach(std::thread::yield_now);
                continue;
            }
            if self
                .epoch
                .compare_exchange(seen, RESETTING, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            let dropped = match self.core.after_fork() {
                Some(values) => values,
                None => {
                    self.unusable.store(true, Ordering::Release);
                    Vec::new()
                }
            };
            if self.forwarded && !self.unusable.load(Ordering::Acquire) {
                self.core.close();
            }
            self.epoch.store(gen, Ordering::Release);
            drop(dropped);
            break;
        }
        if self.unusable.load(Ordering::Acquire) {
            return Err(PyRuntimeError::new_err(
                "this Channel was in use by another thread when the process forked, so its \
                 state is unknown in the child: create a new Channel in the child",
            ));
        }
        Ok(())
    }

    /// Whether it is safe to touch the core without the checks (finalizers, GC).
    fn current(&self) -> bool {
        self.epoch.load(Ordering::Acquire) == runtime::generation()
    }

    /// The exception for a receive on a closed, drained channel.
    fn ended(&self, py: Python<'_>) -> PyErr {
        match self.core.close_reason() {
            Some(e) => PyErr::from_value(e.bind(py).clone()),
            None => errors::closed(py, "the channel is closed"),
        }
    }
}

/// Runs a blocking core operation detached, in slices that watch for Ctrl-C.
fn wait<R, F>(py: Python<'_>, f: F) -> (R, Option<PyErr>)
where
    R: Send,
    F: FnOnce(Hook<'_>) -> R + Send,
{
    runtime::wait_detached(py, f)
}

fn stopped(stop: Stop, signal: Option<PyErr>, what: &str) -> PyErr {
    match stop {
        Stop::Interrupted => signal.unwrap_or_else(|| PyTimeoutError::new_err("interrupted")),
        Stop::Timeout => PyTimeoutError::new_err(format!("{what} timed out")),
        Stop::Closed => PyRuntimeError::new_err(format!("{what}: the channel is closed")),
    }
}

fn send_closed(py: Python<'_>) -> PyErr {
    errors::closed(py, "send on a closed channel")
}

fn put_closed(py: Python<'_>) -> PyErr {
    errors::closed(py, "put() on a shut-down queue")
}

fn capacity_of(cap: &Bound<'_, PyAny>, what: &str) -> PyResult<Capacity> {
    if cap.is_none() {
        return Ok(Capacity::Unbounded);
    }
    if cap.is_instance_of::<PyBool>() || !cap.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be an int or None, got {}",
            cap.get_type().name()?
        )));
    }
    match cap.extract::<i64>() {
        Ok(0) => Ok(Capacity::Rendezvous),
        Ok(n) if n > 0 => Ok(Capacity::Bounded(n as usize)),
        _ => Err(PyValueError::new_err(format!(
            "{what} must be >= 0 (0: unbuffered) or None (unbounded)"
        ))),
    }
}

/// A capacity argument: an int >= 0, or None for unbounded. (An `Option` parameter would not
/// tell an explicit None from the argument being left out.)
pub struct CapArg(Capacity);

impl FromPyObject<'_, '_> for CapArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'_, '_, PyAny>) -> PyResult<Self> {
        capacity_of(&obj, "capacity").map(CapArg)
    }
}

fn queue_timeout(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    if timeout.is_some_and(|t| t < 0.0) {
        return Err(PyValueError::new_err(
            "'timeout' must be a non-negative number",
        ));
    }
    runtime::deadline_from(timeout)
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
    fn send_wait(
        &self,
        py: Python<'_>,
        item: Value,
        deadline: Option<Instant>,
    ) -> Result<(), Stop> {
        let core = &self.inner.core;
        let (r, sig) = wait(py, |hook| core.send(item, deadline, hook));
        match r {
            Ok(()) => Ok(()),
            Err((stop, item)) => {
                drop(item);
                if let Some(e) = sig {
                    e.restore(py);
                }
                Err(stop)
            }
        }
    }

    fn recv_wait(&self, py: Python<'_>, deadline: Option<Instant>) -> Result<Value, Stop> {
        let core = &self.inner.core;
        let (r, sig) = wait(py, |hook| core.recv(deadline, hook));
        if let (Err(_), Some(e)) = (&r, sig) {
            e.restore(py);
        }
        r
    }
}

/// The error for a failed wait; a pending signal's exception (set by send_wait/recv_wait) wins.
fn wait_error(py: Python<'_>, stop: Stop, what: &str) -> PyErr {
    PyErr::take(py).unwrap_or_else(|| stopped(stop, None, what))
}

#[pymethods]
impl Channel {
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
    #[pyo3(signature = (capacity=CapArg(Capacity::Rendezvous)), text_signature = "(capacity=0)")]
    fn py_new(capacity: CapArg) -> PyResult<Self> {
        Ok(Channel {
            inner: ChanInner::new(capacity.0, false),
            close_on_drop: false,
        })
    }

    /// Sends, waiting (GIL released) for room or, unbuffered, for a receiver.
    #[pyo3(signature = (item, timeout=None))]
    fn send(&self, py: Python<'_>, item: Value, timeout: Option<f64>) -> PyResult<()> {
        let deadline = runtime::deadline_from(timeout)?;
        match self.inner.core(py)?.try_send(item) {
            Ok(()) => Ok(()),
            Err(TrySend::Closed(_)) => Err(send_closed(py)),
            Err(TrySend::Full(item)) => match self.send_wait(py, item, deadline) {
                Ok(()) => Ok(()),
                Err(Stop::Closed) => Err(PyErr::take(py).unwrap_or_else(|| send_closed(py))),
                Err(stop) => Err(wait_error(py, stop, "send")),
            },
        }
    }

    /// Receives, waiting (GIL released); raises chanpool.Closed (or the close error) once the
    /// channel is closed and drained.
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Value> {
        let deadline = runtime::deadline_from(timeout)?;
        match self.inner.core(py)?.try_recv() {
            Ok(v) => Ok(v),
            Err(TryRecv::Closed) => Err(self.inner.ended(py)),
            Err(TryRecv::Empty) => match self.recv_wait(py, deadline) {
                Ok(v) => Ok(v),
                Err(Stop::Closed) => Err(self.inner.ended(py)),
                Err(stop) => Err(wait_error(py, stop, "recv")),
            },
        }
    }

    /// Sends only if that needs no waiting (unbuffered: a receiver is blocked in recv());
    /// False otherwise.
    fn try_send(&self, py: Python<'_>, item: Value) -> PyResult<bool> {
        match self.inner.core(py)?.try_send(item) {
            Ok(()) => Ok(true),
            Err(TrySend::Full(_)) => Ok(false),
            Err(TrySend::Closed(_)) => Err(send_closed(py)),
        }
    }

    /// (value, True) if one was ready, else (None, False); raises like recv() once the channel
    /// is closed and drained.
    fn try_recv(&self, py: Python<'_>) -> PyResult<(Option<Value>, bool)> {
        match self.inner.core(py)?.try_recv() {
            Ok(v) => Ok((Some(v), true)),
            Err(TryRecv::Empty) => Ok((None, false)),
            Err(TryRecv::Closed) => Err(self.inner.ended(py)),
        }
    }

    /// Closes the channel: sends fail, receivers drain what is buffered, then get
    /// chanpool.Closed (or `error`, if given). Returns False if it was already closed.
    #[pyo3(signature = (error=None))]
    fn close(&self, py: Python<'_>, error: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        let error = match error.filter(|e| !e.is_none()) {
            None => None,
            Some(e) => {
                let is_exc = e.is_instance_of::<PyBaseException>()
                    || e.cast::<PyType>()
                        .is_ok_and(|t| t.is_subclass_of::<PyBaseException>().unwrap_or(false));
                if !is_exc {
                    return Err(PyTypeError::new_err(format!(
                        "error must be an exception instance or class, got {}",
                        e.get_type().name()?
                    )));
                }
                Some(e.clone().unbind())
            }
        };
        Ok(self.inner.core(py)?.close_with(error))
    }

    #[getter]
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.inner.core(py)?.is_closed())
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

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.inner.core(py)?.len())
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
        let r = match self.inner.core(py)?.try_recv() {
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

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // Values are this object's own only when nothing else (a fan_in thread) shares them.
        if Arc::strong_count(&self.inner) != 1 || !self.inner.current() {
            return Ok(());
        }
        self.inner.core.try_visit(|v| visit.call(v))
    }

    fn __clear__(&self) {
        if Arc::strong_count(&self.inner) != 1 || !self.inner.current() {
            return;
        }
        let taken = self.inner.core.try_take_all();
        drop(taken);
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

    #[pyo3(signature = (item, block=true, timeout=None))]
    fn put(&self, py: Python<'_>, item: Value, block: bool, timeout: Option<f64>) -> PyResult<()> {
        let deadline = if block { queue_timeout(timeout)? } else { None };
        match self.inner.core(py)?.try_send(item) {
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

    #[pyo3(signature = (block=true, timeout=None))]
    fn get(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<Value> {
        let deadline = if block { queue_timeout(timeout)? } else { None };
        match self.inner.core(py)?.try_recv() {
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

    fn put_nowait(&self, py: Python<'_>, item: Value) -> PyResult<()> {
        self.put(py, item, false, None)
    }

    fn get_nowait(&self, py: Python<'_>) -> PyResult<Value> {
        self.get(py, false, None)
    }

    fn qsize(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.inner.core(py)?.len())
    }

    fn empty(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.inner.core(py)?.is_empty())
    }

    fn full(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.inner.core(py)?.is_full())
    }

    fn task_done(&self, py: Python<'_>) -> PyResult<()> {
        if self.inner.core(py)?.task_done() {
            Ok(())
        } else {
            Err(PyValueError::new_err("task_done() called too many times"))
        }
    }

    /// Waits (GIL released) until every item put was marked done with task_done().
    fn join(&self, py: Python<'_>) -> PyResult<()> {
        let core = self.inner.core(py)?;
        if core.unfinished() == 0 {
            return Ok(());
        }
        let (r, sig) = wait(py, |hook| core.join(None, hook));
        r.map_err(|stop| stopped(stop, sig, "join"))
    }

    /// queue.Queue.shutdown (3.13): put() fails from now on; get() fails once the queue is
    /// empty, or at once with immediate=True (which also discards what is queued).
    #[pyo3(signature = (immediate=false))]
    fn shutdown(&self, py: Python<'_>, immediate: bool) -> PyResult<()> {
        let core = self.inner.core(py)?;
        core.close();
        if immediate {
            drop(core.drain());
        }
        Ok(())
    }

    #[getter]
    fn is_shutdown(&self, py: Python<'_>) -> PyResult<bool> {
        self.closed(py)
    }
}

/// Waits until one case can proceed and performs it. A case is a Channel (receive) or a
/// (Channel, value) pair (send). Returns (index, value, ok): ok is False for a receive on a
/// closed channel. With default=True it returns (None, None, False) at once if nothing is ready.
#[pyfunction]
#[pyo3(signature = (cases, *, timeout=None, default=false))]
pub fn select<'py>(
    py: Python<'py>,
    cases: &Bound<'py, PyAny>,
    timeout: Option<f64>,
    default: bool,
) -> PyResult<Bound<'py, PyTuple>> {
    if default && timeout.is_some() {
        return Err(PyValueError::new_err(
            "select() takes a timeout or default=True, not both",
        ));
    }
    let deadline = runtime::deadline_from(timeout)?;
    let mut chans: Vec<Bound<'py, Channel>> = Vec::new();
    let mut sends: Vec<Option<Value>> = Vec::new();
    let not_a_case = || {
        PyTypeError::new_err(
            "a select case is a Channel (receive) or a (Channel, value) pair (send)",
        )
    };
    for case in cases
        .try_iter()
        .map_err(|_| PyTypeError::new_err("select() takes an iterable of cases"))?
    {
        let case = case?;
        if let Ok(ch) = case.cast::<Channel>() {
            chans.push(ch.clone());
            sends.push(None);
            continue;
        }
        let pair = case.cast::<PyTuple>().map_err(|_| not_a_case())?;
        if pair.len() != 2 {
            return Err(not_a_case());
        }
        let ch = pair.get_item(0)?;
        let ch = ch.cast::<Channel>().map_err(|_| not_a_case())?;
        chans.push(ch.clone());
        sends.push(Some(pair.get_item(1)?.unbind()));
    }
    if chans.is_empty() && !default {
        return Err(PyValueError::new_err(
            "select() needs at least one case (or default=True)",
        ));
    }
    let mut cs: Vec<Case<'_, Value>> = Vec::with_capacity(chans.len());
    for (ch, send) in chans.iter().zip(sends) {
        cs.push(Case {
            chan: ch.get().inner.core(py)?,
            send,
        });
    }
    let mut r = core::select(&mut cs, false, None, &mut never());
    let mut sig = None;
    if matches!(r, Ok(None)) && !default {
        let cs = &mut cs;
        (r, sig) = wait(py, move |hook| core::select(cs, true, deadline, hook));
    }
    // Unchosen send values are dropped here, attached.
    drop(cs);
    let none = || py.None().into_bound(py);
    let t = |i: Option<usize>, v: Bound<'py, PyAny>, ok: bool| -> PyResult<Bound<'py, PyTuple>> {
        let i = match i {
            Some(i) => i.into_pyobject(py)?.into_any(),
            None => none(),
        };
        PyTuple::new(py, [i, v, PyBool::new(py, ok).to_owned().into_any()])
    };
    match r {
        Ok(None) => t(None, none(), false),
        Ok(Some(Selected::Received(i, v))) => t(Some(i), v.into_bound(py), true),
        Ok(Some(Selected::RecvClosed(i))) => t(Some(i), none(), false),
        Ok(Some(Selected::Sent(i))) => t(Some(i), none(), true),
        Ok(Some(Selected::SendClosed(i))) => Err(errors::closed(
            py,
            &format!("select case {i}: send on a closed channel"),
        )),
        Err(stop) => Err(stopped(stop, sig, "select")),
    }
}

/// Merges channels into one that closes when all of them have closed (with the first close
/// error among them, if any). Forwarding runs on one native thread per merge, without the GIL;
/// it stops early if the output is closed or dropped.
#[pyfunction]
#[pyo3(signature = (*channels, capacity=CapArg(Capacity::Bounded(64))), text_signature = "(*channels, capacity=64)")]
pub fn fan_in(
    py: Python<'_>,
    channels: &Bound<'_, PyTuple>,
    capacity: CapArg,
) -> PyResult<Channel> {
    let cap = capacity.0;
    let mut inputs = Vec::with_capacity(channels.len());
    for c in channels.iter() {
        let ch = c.cast::<Channel>().map_err(|_| {
            PyTypeError::new_err(format!(
                "fan_in() takes Channels, got {}",
                c.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
        ch.get().inner.core(py)?;
        inputs.push(Arc::clone(&ch.get().inner));
    }
    let out = ChanInner::new(cap, true);
    if inputs.is_empty() {
        out.core.close();
    } else {
        let fwd_out = Arc::clone(&out);
        std::thread::Builder::new()
            .name("chanpool-fan_in".into())
            .spawn(move || {
                let ins = inputs.iter().map(|c| &c.core).collect();
                core::forward(ins, &fwd_out.core, &mut never());
            })
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start a thread: {e}")))?;
    }
    Ok(Channel {
        inner: out,
        close_on_drop: true,
    })
}
