//! Channel, select and fan_in for Python. Values are Python objects moved between threads
//! without the GIL; every wait releases it and stays interruptible by Ctrl-C. A Channel is also a
//! queue.Queue (put/get/task_done/join/shutdown), raising the queue module's exceptions.

use crate::core::channel::{self as core, Capacity, Case, Selected, TryRecv, TrySend};
use crate::core::wait::{never, Stop};
use crate::py::errors;
use crate::py::runtime::{self, wait_detached};
use parking_lot::Mutex;
use pyo3::exceptions::{PyTimeoutError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyTuple, PyType};
use std::sync::Arc;
use std::time::Instant;

type Value = Py<PyAny>;

pub struct ChanInner {
    core: core::Channel<Value>,
    /// What receivers raise once the channel is drained, if it was closed with an error.
    error: Mutex<Option<Arc<Value>>>,
}

impl ChanInner {
    fn close_with(&self, error: Option<Arc<Value>>) -> bool {
        if let Some(e) = error {
            let mut slot = self.error.lock();
            if slot.is_none() && !self.core.is_closed() {
                *slot = Some(e);
            }
        }
        self.core.close()
    }

    /// The exception for a receive on a closed, drained channel.
    fn ended(&self, py: Python<'_>) -> PyErr {
        match self.error.lock().as_ref() {
            Some(e) => PyErr::from_value(e.bind(py).clone()),
            None => errors::closed(py, "the channel is closed"),
        }
    }
}

fn stopped(py: Python<'_>, stop: Stop, signal: Option<PyErr>, what: &str) -> PyErr {
    match stop {
        Stop::Interrupted => signal.unwrap_or_else(|| PyTimeoutError::new_err("interrupted")),
        Stop::Timeout => PyTimeoutError::new_err(format!("{what} timed out")),
        Stop::Closed => errors::closed(py, "send on a closed channel"),
    }
}

/// A capacity argument. Not an Option, so that an explicit None (unbounded) is told apart from
/// no argument at all (unbuffered, as in Go).
pub struct CapArg(Capacity);

impl<'a, 'py> FromPyObject<'a, 'py> for CapArg {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        capacity_of(Some(&obj.to_owned())).map(CapArg)
    }
}

fn capacity_of(cap: Option<&Bound<'_, PyAny>>) -> PyResult<Capacity> {
    let Some(cap) = cap.filter(|c| !c.is_none()) else {
        return Ok(Capacity::Unbounded);
    };
    if cap.is_instance_of::<pyo3::types::PyBool>() || !cap.is_instance_of::<pyo3::types::PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "capacity must be an int or None, got {}",
            cap.get_type().name()?
        )));
    }
    let n: i64 = cap.extract()?;
    match n {
        0 => Ok(Capacity::Rendezvous),
        n if n > 0 => Ok(Capacity::Bounded(n as usize)),
        _ => Err(PyValueError::new_err(
            "capacity must be >= 0 (0: unbuffered) or None (unbounded)",
        )),
    }
}

/// A Go channel: Channel(0) unbuffered, Channel(n) buffered, Channel(None) unbounded.
#[pyclass(module = "chanpool", name = "Channel", frozen, subclass)]
pub struct Channel {
    pub(crate) inner: Arc<ChanInner>,
}

impl Channel {
    pub fn new_inner(cap: Capacity) -> Arc<ChanInner> {
        Arc::new(ChanInner {
            core: core::Channel::new(cap),
            error: Mutex::new(None),
        })
    }

    fn send_impl(
        &self,
        py: Python<'_>,
        item: Value,
        deadline: Option<Instant>,
    ) -> Result<(), (PyErr, Stop)> {
        let inner = &self.inner;
        let (r, sig) = wait_detached(py, |hook| inner.core.send(item, deadline, hook));
        r.map_err(|(stop, item)| {
            drop(item);
            (stopped(py, stop, sig, "send"), stop)
        })
    }

    fn recv_impl(&self, py: Python<'_>, deadline: Option<Instant>) -> Result<Value, (PyErr, Stop)> {
        if let Ok(v) = self.inner.core.try_recv() {
            return Ok(v);
        }
        let inner = &self.inner;
        let (r, sig) = wait_detached(py, |hook| inner.core.recv(deadline, hook));
        r.map_err(|stop| {
            let e = match stop {
                Stop::Closed => self.inner.ended(py),
                other => stopped(py, other, sig, "recv"),
            };
            (e, stop)
        })
    }
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
            inner: Self::new_inner(capacity.0),
        })
    }

    /// Sends, waiting (GIL released) for room or, unbuffered, for a receiver.
    #[pyo3(signature = (item, timeout=None))]
    fn send(&self, py: Python<'_>, item: Value, timeout: Option<f64>) -> PyResult<()> {
        let deadline = runtime::deadline_from(timeout)?;
        self.send_impl(py, item, deadline).map_err(|(e, _)| e)
    }

    /// Receives, waiting (GIL released); raises chanpool.Closed once closed and drained.
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Value> {
        let deadline = runtime::deadline_from(timeout)?;
        self.recv_impl(py, deadline).map_err(|(e, _)| e)
    }

    /// Sends only if that needs no waiting; False otherwise.
    fn try_send(&self, py: Python<'_>, item: Value) -> PyResult<bool> {
        match self.inner.core.try_send(item) {
            Ok(()) => Ok(true),
            Err(TrySend::Full(_)) => Ok(false),
            Err(TrySend::Closed(_)) => Err(errors::closed(py, "send on a closed channel")),
        }
    }

    /// (value, True) if one was ready, else (None, False), like Go's `v, ok := <-ch` in a select
    /// with a default.
    fn try_recv<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        match self.inner.core.try_recv() {
            Ok(v) => PyTuple::new(
                py,
                [
                    v.into_bound(py),
                    true.into_pyobject(py)?.to_owned().into_any(),
                ],
            ),
            Err(TryRecv::Empty) => PyTuple::new(
                py,
                [
                    py.None().into_bound(py),
                    false.into_pyobject(py)?.to_owned().into_any(),
                ],
            ),
            Err(TryRecv::Closed) => Err(self.inner.ended(py)),
        }
    }

    /// Closes the channel: sends fail, receivers drain what is buffered, then get
    /// chanpool.Closed (or `error`, if given). Returns False if it was already closed.
    #[pyo3(signature = (error=None))]
    fn close(&self, error: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        let error = match error.filter(|e| !e.is_none()) {
            None => None,
            Some(e) => {
                let is_exc = e.is_instance_of::<pyo3::exceptions::PyBaseException>()
                    || e.cast::<PyType>().is_ok_and(|t| {
                        t.is_subclass_of::<pyo3::exceptions::PyBaseException>()
                            .unwrap_or(false)
                    });
                if !is_exc {
                    return Err(PyTypeError::new_err("error must be an exception"));
                }
                Some(Arc::new(e.clone().unbind()))
            }
        };
        Ok(self.inner.close_with(error))
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner.core.is_closed()
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

    fn __len__(&self) -> usize {
        self.inner.core.len()
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Value>> {
        match self.recv_impl(py, None) {
            Ok(v) => Ok(Some(v)),
            Err((_, Stop::Closed)) if self.inner.error.lock().is_none() => Ok(None),
            Err((e, _)) => Err(e),
        }
    }

    fn __repr__(&self) -> String {
        let cap = match self.inner.core.capacity() {
            Capacity::Unbounded => "None".to_string(),
            Capacity::Rendezvous => "0".to_string(),
            Capacity::Bounded(n) => n.to_string(),
        };
        format!(
            "<chanpool.Channel capacity={cap} len={}{}>",
            self.inner.core.len(),
            if self.inner.core.is_closed() {
                " closed"
            } else {
                ""
            }
        )
    }

    // queue.Queue compatibility.

    #[getter]
    fn maxsize(&self) -> usize {
        self.capacity().unwrap_or(0)
    }

    #[pyo3(signature = (item, block=true, timeout=None))]
    fn put(&self, py: Python<'_>, item: Value, block: bool, timeout: Option<f64>) -> PyResult<()> {
        if let Some(t) = timeout {
            if t < 0.0 {
                return Err(PyValueError::new_err(
                    "'timeout' must be a non-negative number",
                ));
            }
        }
        if !block {
            return match self.inner.core.try_send(item) {
                Ok(()) => Ok(()),
                Err(TrySend::Full(_)) => Err(errors::queue_full_plain(py)),
                Err(TrySend::Closed(_)) => Err(errors::closed(py, "put() on a shut-down queue")),
            };
        }
        let deadline = runtime::deadline_from(timeout)?;
        match self.send_impl(py, item, deadline) {
            Ok(()) => Ok(()),
            Err((_, Stop::Timeout)) => Err(errors::queue_full_plain(py)),
            Err((_, Stop::Closed)) => Err(errors::closed(py, "put() on a shut-down queue")),
            Err((e, _)) => Err(e),
        }
    }

    #[pyo3(signature = (block=true, timeout=None))]
    fn get(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<Value> {
        if let Some(t) = timeout {
            if t < 0.0 {
                return Err(PyValueError::new_err(
                    "'timeout' must be a non-negative number",
                ));
            }
        }
        if !block {
            return match self.inner.core.try_recv() {
                Ok(v) => Ok(v),
                Err(TryRecv::Empty) => Err(errors::queue_empty(py)),
                Err(TryRecv::Closed) => Err(self.inner.ended(py)),
            };
        }
        let deadline = runtime::deadline_from(timeout)?;
        match self.recv_impl(py, deadline) {
            Ok(v) => Ok(v),
            Err((_, Stop::Timeout)) => Err(errors::queue_empty(py)),
            Err((e, _)) => Err(e),
        }
    }

    fn put_nowait(&self, py: Python<'_>, item: Value) -> PyResult<()> {
        self.put(py, item, false, None)
    }

    fn get_nowait(&self, py: Python<'_>) -> PyResult<Value> {
        self.get(py, false, None)
    }

    fn qsize(&self) -> usize {
        self.inner.core.len()
    }

    fn empty(&self) -> bool {
        self.inner.core.is_empty()
    }

    fn full(&self) -> bool {
        self.inner.core.is_full()
    }

    fn task_done(&self) -> PyResult<()> {
        if self.inner.core.task_done() {
            Ok(())
        } else {
            Err(PyValueError::new_err("task_done() called too many times"))
        }
    }

    /// Waits (GIL released) until every item put was marked done with task_done().
    fn join(&self, py: Python<'_>) -> PyResult<()> {
        let inner = &self.inner;
        let (r, sig) = wait_detached(py, |hook| inner.core.join(None, hook));
        r.map_err(|stop| stopped(py, stop, sig, "join"))
    }

    /// queue.Queue.shutdown (3.13): put() fails from now on; get() fails once the queue is
    /// empty, or at once with immediate=True (which also discards what is queued).
    #[pyo3(signature = (immediate=false))]
    fn shutdown(&self, immediate: bool) {
        self.inner.core.close();
        if immediate {
            let left = self.inner.core.drain();
            self.inner.core.forget_unfinished(left.len() as u64);
            drop(left);
        }
    }

    #[getter]
    fn is_shutdown(&self) -> bool {
        self.inner.core.is_closed()
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
    let mut chans: Vec<Arc<ChanInner>> = Vec::new();
    let mut sends: Vec<Option<Value>> = Vec::new();
    for case in cases.try_iter()? {
        let case = case?;
        if let Ok(ch) = case.cast::<Channel>() {
            chans.push(Arc::clone(&ch.get().inner));
            sends.push(None);
            continue;
        }
        let pair = case.cast::<PyTuple>().ok().filter(|t| t.len() == 2);
        let Some(pair) = pair else {
            return Err(PyTypeError::new_err(
                "a select case is a Channel (receive) or a (Channel, value) pair (send)",
            ));
        };
        let ch = pair.get_item(0)?;
        let ch = ch
            .cast::<Channel>()
            .map_err(|_| PyTypeError::new_err("a send case is a (Channel, value) pair"))?;
        chans.push(Arc::clone(&ch.get().inner));
        sends.push(Some(pair.get_item(1)?.unbind()));
    }
    let deadline = runtime::deadline_from(timeout)?;
    let run = |hook: crate::core::wait::Hook<'_>, sends: Vec<Option<Value>>| {
        let mut cs: Vec<Case<'_, Value>> = chans
            .iter()
            .zip(sends)
            .map(|(c, s)| Case {
                chan: &c.core,
                send: s,
            })
            .collect();
        let r = core::select(&mut cs, !default, deadline, hook);
        // Unchosen send values go back to the caller to be dropped attached.
        let left: Vec<Value> = cs.into_iter().filter_map(|c| c.send).collect();
        (r, left)
    };
    let ((r, left), sig) = if default {
        (run(&mut never(), sends), None)
    } else {
        wait_detached(py, |hook| run(hook, sends))
    };
    drop(left);
    let none = || py.None().into_bound(py);
    let t =
        |i: Bound<'py, PyAny>, v: Bound<'py, PyAny>, ok: bool| -> PyResult<Bound<'py, PyTuple>> {
            PyTuple::new(py, [i, v, ok.into_pyobject(py)?.to_owned().into_any()])
        };
    let idx = |i: usize| -> PyResult<Bound<'py, PyAny>> { Ok(i.into_pyobject(py)?.into_any()) };
    match r {
        Ok(None) => t(none(), none(), false),
        Ok(Some(Selected::Received(i, v))) => t(idx(i)?, v.into_bound(py), true),
        Ok(Some(Selected::RecvClosed(i))) => t(idx(i)?, none(), false),
        Ok(Some(Selected::Sent(i))) => t(idx(i)?, none(), true),
        Ok(Some(Selected::SendClosed(i))) => Err(errors::closed(
            py,
            &format!("select case {i}: send on a closed channel"),
        )),
        Err(stop) => Err(stopped(py, stop, sig, "select")),
    }
}

/// Room in a merged channel by default: enough that the forwarder rarely waits on the reader.
const FAN_IN_CAPACITY: i64 = 64;

/// Merges channels into one that closes when all of them have closed. Forwarding runs on one
/// native thread per merge and never takes the GIL.
#[pyfunction]
#[pyo3(signature = (*channels, capacity=Some(FAN_IN_CAPACITY)), text_signature = "(*channels, capacity=64)")]
pub fn fan_in(channels: &Bound<'_, PyTuple>, capacity: Option<i64>) -> PyResult<Channel> {
    let cap = match capacity {
        None => Capacity::Unbounded,
        Some(0) => Capacity::Rendezvous,
        Some(n) if n > 0 => Capacity::Bounded(n as usize),
        Some(_) => return Err(PyValueError::new_err("capacity must be >= 0 or None")),
    };
    let mut inputs = Vec::with_capacity(channels.len());
    for c in channels.iter() {
        let ch = c
            .cast::<Channel>()
            .map_err(|_| PyTypeError::new_err("fan_in() takes Channels"))?;
        inputs.push(Arc::clone(&ch.get().inner));
    }
    let out = Channel::new_inner(cap);
    if inputs.is_empty() {
        out.core.close();
        return Ok(Channel { inner: out });
    }
    let fwd_out = Arc::clone(&out);
    std::thread::Builder::new()
        .name("chanpool-fan_in".into())
        .spawn(move || forward(inputs, fwd_out))
        .map_err(|e| {
            pyo3::exceptions::PyRuntimeError::new_err(format!("cannot start thread: {e}"))
        })?;
    Ok(Channel { inner: out })
}

/// fan_in's loop: select over the open inputs, pass values on; close the output at the end
/// (with the first input error, if any). Stops early if the output is closed by its reader.
fn forward(mut inputs: Vec<Arc<ChanInner>>, out: Arc<ChanInner>) {
    let mut first_error: Option<Arc<Value>> = None;
    while !inputs.is_empty() {
        let r = {
            let mut cases: Vec<Case<'_, Value>> = inputs
                .iter()
                .map(|c| Case {
                    chan: &c.core,
                    send: None,
                })
                .collect();
            core::select(&mut cases, true, None, &mut never())
        };
        match r {
            Ok(Some(Selected::Received(_, v))) => {
                let sent = out.core.send(v, None, &mut never());
                if sent.is_err() {
                    return; // the reader closed the output (the value is dropped later)
                }
            }
            Ok(Some(Selected::RecvClosed(i))) => {
                let c = inputs.swap_remove(i);
                if first_error.is_none() {
                    first_error = c.error.lock().clone();
                }
            }
            _ => {}
        }
    }
    out.close_with(first_error);
}
