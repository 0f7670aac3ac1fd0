//! select() and fan_in(): the operations over several channels.

use super::close::stopped;
use super::{ChanInner, Channel, Value};
use crate::core::channel::{self as core, Capacity, Case, Selected};
use crate::core::wait::never;
use crate::py::args::{ChanCapacity, Timeout, Truthy};
use crate::py::errors;
use crate::py::runtime::wait_detached;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyTuple};
use std::sync::Arc;

/// Waits until one case can proceed and performs it. A case is a Channel (receive) or a
/// (Channel, value) pair (send). Returns (index, value, ok): ok is False for a receive on a
/// closed channel. With default=True it returns (None, None, False) at once if nothing is ready.
#[pyfunction]
#[pyo3(
    signature = (cases, *, timeout=Timeout::FOREVER, default=Truthy(false)),
    text_signature = "(cases, *, timeout=None, default=False)"
)]
pub fn select<'py>(
    py: Python<'py>,
    cases: &Bound<'py, PyAny>,
    timeout: Timeout,
    default: Truthy,
) -> PyResult<Bound<'py, PyTuple>> {
    let default = default.0;
    if default && timeout.secs.is_some() {
        return Err(PyValueError::new_err(
            "select() takes a timeout or default=True, not both",
        ));
    }
    let deadline = timeout.deadline;
    let (chans, sends) = parse_cases(cases, default)?;
    let mut cs: Vec<Case<'_, Value>> = Vec::with_capacity(chans.len());
    for (ch, send) in chans.iter().zip(sends) {
        let chan = ch.get().inner.core()?;
        cs.push(match send {
            None => Case::recv(chan),
            Some(v) => Case::send(chan, v),
        });
    }
    let mut r = core::select(&mut cs, false, None, &mut never());
    let mut sig = None;
    if matches!(r, Ok(None)) && !default {
        let cs = &mut cs;
        (r, sig) = wait_detached(py, move |hook| core::select(cs, true, deadline, hook));
    }
    if let Some(e) = sig {
        // Interrupted just as a case completed: a received value goes back to its channel.
        if let Ok(Some(Selected::Received(i, v))) = r {
            cs[i].chan.put_back(v);
        }
        return Err(e);
    }
    // Unchosen send values are dropped here, attached.
    drop(cs);
    match r {
        Ok(r) => outcome(py, r),
        Err(stop) => Err(stopped(stop, None, "select")),
    }
}

/// A select's cases: each case's channel, and its value if it is a send case.
pub(super) type Cases<'py> = (Vec<Bound<'py, Channel>>, Vec<Option<Value>>);

/// Reads select's cases: a Channel (receive) or a (Channel, value) pair (send).
pub(super) fn parse_cases<'py>(cases: &Bound<'py, PyAny>, default: bool) -> PyResult<Cases<'py>> {
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
    Ok((chans, sends))
}

/// select's result: (index, value, ok), (None, None, False) when nothing was ready; a send
/// case on a closed channel raises Closed.
pub(super) fn outcome<'py>(
    py: Python<'py>,
    r: Option<Selected<Value>>,
) -> PyResult<Bound<'py, PyTuple>> {
    let none = || py.None().into_bound(py);
    let t = |i: Option<usize>, v: Bound<'py, PyAny>, ok: bool| -> PyResult<Bound<'py, PyTuple>> {
        let i = match i {
            Some(i) => i.into_pyobject(py)?.into_any(),
            None => none(),
        };
        PyTuple::new(py, [i, v, PyBool::new(py, ok).to_owned().into_any()])
    };
    match r {
        None => t(None, none(), false),
        Some(Selected::Received(i, v)) => t(Some(i), v.into_bound(py), true),
        Some(Selected::RecvClosed(i) | Selected::Closed(i)) => t(Some(i), none(), false),
        Some(Selected::Sent(i)) => t(Some(i), none(), true),
        Some(Selected::SendClosed(i)) => Err(errors::closed(
            py,
            &format!("select case {i}: send on a closed channel"),
        )),
    }
}

/// Merges channels into one that closes when all of them have closed (with the first close
/// error among them, if any). Forwarding runs on one native thread per merge, without the GIL;
/// it stops early if the output is closed or dropped, giving back the value it held.
#[pyfunction]
#[pyo3(signature = (*channels, capacity=ChanCapacity(Capacity::Bounded(64))), text_signature = "(*channels, capacity=64)")]
pub fn fan_in(channels: &Bound<'_, PyTuple>, capacity: ChanCapacity) -> PyResult<Channel> {
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
        ch.get().inner.core()?;
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
