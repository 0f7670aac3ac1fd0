//! The hot methods' entries (send, recv, try_send, try_recv, put, get) as METH_FASTCALL |
//! METH_KEYWORDS methods (py/fastcall): a channel operation that completes at once costs about
//! as much as pyo3's wrapper around it, so the arguments are read straight from the caller's
//! array. The bodies are the Channel methods of the same names.

use super::Channel;
use crate::py::args::{QueueTimeout, Timeout, Truthy};
use crate::py::fastcall::{self, entry, extract, required, Call, Method, Sig};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyType};

/// A required parameter's argument, owned.
fn given(arg: Option<Borrowed<'_, '_, PyAny>>) -> PyResult<Py<PyAny>> {
    Ok(required(arg)?.to_owned().unbind())
}

const SEND: Sig<2> = Sig {
    name: "Channel.send",
    params: ["item", "timeout"],
    required: 1,
};

fn send(c: Call<'_, '_>) -> PyResult<Py<PyAny>> {
    let me = c.this::<Channel>()?;
    let [item, timeout] = c.bind(&SEND)?;
    let item = given(item)?;
    let timeout = extract(timeout, "timeout", Timeout::FOREVER)?;
    me.get().send(c.py, item, timeout)?;
    Ok(c.py.None())
}

const RECV: Sig<1> = Sig {
    name: "Channel.recv",
    params: ["timeout"],
    required: 0,
};

fn recv(c: Call<'_, '_>) -> PyResult<Py<PyAny>> {
    let me = c.this::<Channel>()?;
    let [timeout] = c.bind(&RECV)?;
    let timeout = extract(timeout, "timeout", Timeout::FOREVER)?;
    me.get().recv(c.py, timeout)
}

const TRY_SEND: Sig<1> = Sig {
    name: "Channel.try_send",
    params: ["item"],
    required: 1,
};

fn try_send(c: Call<'_, '_>) -> PyResult<Py<PyAny>> {
    let me = c.this::<Channel>()?;
    let [item] = c.bind(&TRY_SEND)?;
    let sent = me.get().try_send(c.py, given(item)?)?;
    Ok(PyBool::new(c.py, sent).to_owned().into_any().unbind())
}

const TRY_RECV: Sig<0> = Sig {
    name: "Channel.try_recv",
    params: [],
    required: 0,
};

fn try_recv(c: Call<'_, '_>) -> PyResult<Py<PyAny>> {
    let me = c.this::<Channel>()?;
    let [] = c.bind(&TRY_RECV)?;
    let r = me.get().try_recv(c.py)?;
    Ok(r.into_pyobject(c.py)?.into_any().unbind())
}

const PUT: Sig<3> = Sig {
    name: "Channel.put",
    params: ["item", "block", "timeout"],
    required: 1,
};

fn put(c: Call<'_, '_>) -> PyResult<Py<PyAny>> {
    let me = c.this::<Channel>()?;
    let [item, block, timeout] = c.bind(&PUT)?;
    let item = given(item)?;
    let block = extract(block, "block", Truthy(true))?;
    let timeout = extract(timeout, "timeout", QueueTimeout::NONE)?;
    me.get().put(c.py, item, block, timeout)?;
    Ok(c.py.None())
}

const GET: Sig<2> = Sig {
    name: "Channel.get",
    params: ["block", "timeout"],
    required: 0,
};

fn get(c: Call<'_, '_>) -> PyResult<Py<PyAny>> {
    let me = c.this::<Channel>()?;
    let [block, timeout] = c.bind(&GET)?;
    let block = extract(block, "block", Truthy(true))?;
    let timeout = extract(timeout, "timeout", QueueTimeout::NONE)?;
    me.get().get(c.py, block, timeout)
}

/// Puts the entries on the Channel class (at module init).
pub fn install(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let cls = m.getattr("Channel")?.cast_into::<PyType>()?;
    fastcall::install(
        &cls,
        &[
            Method {
                name: c"send",
                entry: entry!("Channel.send", send),
                doc: c"send($self, item, timeout=None)\n--\n\nSends, waiting (GIL released) for room or, unbuffered, for a receiver.",
            },
            Method {
                name: c"recv",
                entry: entry!("Channel.recv", recv),
                doc: c"recv($self, timeout=None)\n--\n\nReceives, waiting (GIL released); raises chanpool.Closed (or the close error) once the\nchannel is closed and drained.",
            },
            Method {
                name: c"try_send",
                entry: entry!("Channel.try_send", try_send),
                doc: c"try_send($self, item)\n--\n\nSends only if that needs no waiting (room, or a receiver waiting: a plain recv() or a\nselect); False otherwise.",
            },
            Method {
                name: c"try_recv",
                entry: entry!("Channel.try_recv", try_recv),
                doc: c"try_recv($self)\n--\n\n(value, True) if one was ready (buffered, or a waiting sender's), else (None, False);\nraises like recv() once the channel is closed and drained.",
            },
            Method {
                name: c"put",
                entry: entry!("Channel.put", put),
                doc: c"put($self, item, block=True, timeout=None)\n--\n\nqueue.Queue.put.",
            },
            Method {
                name: c"get",
                entry: entry!("Channel.get", get),
                doc: c"get($self, block=True, timeout=None)\n--\n\nqueue.Queue.get.",
            },
        ],
    )
}
