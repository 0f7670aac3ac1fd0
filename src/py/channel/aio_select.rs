//! select for coroutines: the steps `chanpool._aio_select` takes (see core's aio_select.rs).
//! The cases are read once, at the call (so bad cases raise there, as select's); each round
//! tries them all and, if none is ready, registers the round's asyncio future on every case's
//! channel, in one critical section; none waits. Values are moved in and out attached.

use super::multi::{outcome, parse_cases};
use super::{Channel, Value};
use crate::core::channel::{AsyncSelect, Case, Selected};
use crate::core::notify::Registration;
use crate::core::sync::Mutex;
use crate::py::aio::{self as pyaio, LoopWaker, PassOn, Wake};
use crate::py::args::{Timeout, Truthy};
use crate::py::gc::{gc_fields, Traverse};
use pyo3::exceptions::PyValueError;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use pyo3::PyTraverseError;
use std::sync::Arc;

/// A pending `select_async`: its cases and its registrations between rounds.
#[pyclass(module = "chanpool._core", name = "_SelectWait", frozen)]
pub struct SelectWait {
    chans: Vec<Py<Channel>>,
    /// Send cases' values (None: a receive case). The core gets a new reference each round.
    values: Vec<Option<Value>>,
    default: bool,
    timeout: Option<f64>,
    state: Mutex<AsyncSelect<Value>>,
    /// The round's registration, typed (the core holds it as a Registration), for the GC.
    wake: Mutex<Option<Arc<Wake>>>,
}

gc_fields!(SelectWait { chans, values });

impl SelectWait {
    /// The round's future, once only this select holds its registration (see Wake).
    fn traverse_wake(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        let (Some(state), Some(wake)) = (self.state.try_lock(), self.wake.try_lock()) else {
            return Ok(());
        };
        match wake.as_ref() {
            Some(w) => w.traverse_if_sole(state.holders(), visit),
            None => Ok(()),
        }
    }
}

impl SelectWait {
    fn cases<'a>(&'a self, py: Python<'_>) -> PyResult<Vec<Case<'a, Value>>> {
        let mut cs = Vec::with_capacity(self.chans.len());
        for (ch, v) in self.chans.iter().zip(&self.values) {
            let core = ch.get().inner.core()?;
            cs.push(match v {
                None => Case::recv(core),
                Some(v) => Case::send(core, v.clone_ref(py)),
            });
        }
        Ok(cs)
    }

    /// A wake-up that reached a closing loop goes to the next coroutine of every queue the
    /// select waits in (which one woke it is not known; a spare wake-up only makes a retry).
    fn pass_on(&self) -> PassOn {
        let queues: Vec<_> = self
            .chans
            .iter()
            .zip(&self.values)
            .map(|(ch, v)| (Arc::downgrade(&ch.get().inner), v.is_none()))
            .collect();
        Box::new(move || {
            for (chan, recv) in &queues {
                if let Some(c) = chan.upgrade() {
                    c.core.pass_on(*recv);
                }
            }
        })
    }
}

#[pymethods]
impl SelectWait {
    #[new]
    #[pyo3(
        signature = (cases, timeout=Timeout::FOREVER, default=Truthy(false)),
        text_signature = "(cases, timeout=None, default=False)"
    )]
    fn py_new(cases: &Bound<'_, PyAny>, timeout: Timeout, default: Truthy) -> PyResult<Self> {
        let default = default.0;
        if default && timeout.secs.is_some() {
            return Err(PyValueError::new_err(
                "select_async() takes a timeout or default=True, not both",
            ));
        }
        let (chans, values) = parse_cases(cases, default)?;
        for ch in &chans {
            ch.get().inner.core()?;
        }
        Ok(SelectWait {
            chans: chans.into_iter().map(Bound::unbind).collect(),
            values,
            default,
            timeout: pyaio::secs(timeout),
            state: Mutex::new(AsyncSelect::default()),
            wake: Mutex::new(None),
        })
    }

    /// The seconds to wait (None: forever; 0: only try).
    #[getter]
    fn timeout(&self) -> Option<f64> {
        self.timeout
    }

    /// One round: the result tuple if a case was ready (with default=True, (None, None,
    /// False) when none was and no future is given), else None after registering `fut`.
    #[pyo3(signature = (waker=None, fut=None))]
    fn step<'py>(
        &self,
        py: Python<'py>,
        waker: Option<PyRef<'_, LoopWaker>>,
        fut: Option<Value>,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let mut cs = self.cases(py)?;
        let wake = match (waker, fut) {
            (Some(w), Some(f)) => Some(w.wake(f, Some(self.pass_on()))),
            _ => None,
        };
        let next: Option<Registration> = wake.clone().map(|w| w as Registration);
        let old = std::mem::replace(&mut *self.wake.lock(), wake);
        drop(old);
        let r = self.state.lock().step(&mut cs, next.as_ref());
        // Unchosen send values are dropped here, attached and with no lock held.
        drop(cs);
        match r {
            Some(s) => outcome(py, Some(s)).map(Some),
            None if next.is_none() && self.default => outcome(py, None).map(Some),
            None => Ok(None),
        }
    }

    /// The select gives up: every registration leaves, wake-ups it got go on. The result
    /// tuple if a receiver had already taken a send case's offer (that send happened).
    fn leave<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let mut cs = self.cases(py)?;
        let r = self.state.lock().leave(&mut cs);
        drop(cs);
        match r {
            Some(s @ Selected::Sent(_)) => outcome(py, Some(s)).map(Some),
            _ => Ok(None),
        }
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.traverse(&visit)?;
        self.traverse_wake(&visit)
    }
}
