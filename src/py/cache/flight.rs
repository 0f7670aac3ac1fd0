//! Single flight in Python terms: the loads in flight live in a Python dict (key -> `_Flight`),
//! so keys are hashed and compared by Python, with the GIL held and no core lock taken. The
//! caller that registers a flight runs the load; the others wait for it detached (Ctrl-C and
//! timeouts end only their own wait). A load that raises an Exception hands that exception to
//! every waiter and is not remembered; one ended by a BaseException (KeyboardInterrupt in the
//! loading thread) is abandoned instead, and its waiters start over (one of them loads).
//! A flight started before fork() never finishes in the child: it is ignored (and leaked).

use crate::core::flight::Flight as CoreFlight;
use crate::core::wait::Stop;
use crate::py::gc::{gc_fields, Traverse};
use crate::py::runtime::{generation, wait_detached};
use pyo3::exceptions::{PyException, PyKeyboardInterrupt, PyTimeoutError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3::{PyTraverseError, PyVisit};
use std::time::Instant;

/// How a load ended.
pub enum Outcome {
    Value(Py<PyAny>),
    Error(Py<PyAny>),
    /// Ended by a BaseException: the waiters retry.
    Abandoned,
}

impl Traverse for Outcome {
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        match self {
            Outcome::Value(v) | Outcome::Error(v) => v.traverse(visit),
            Outcome::Abandoned => Ok(()),
        }
    }
}

/// What a flight's traversal visits: its outcome, if it can be read without blocking.
struct Held(CoreFlight<Outcome>);

impl Traverse for Held {
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.0.peek(|o| o.traverse(visit)).unwrap_or(Ok(()))
    }
}

#[pyclass(module = "chanpool._core", name = "_Flight", frozen)]
pub struct Flight {
    core: Held,
    /// The fork generation it was started in.
    gen: u64,
}

gc_fields!(Flight { core });

#[pymethods]
impl Flight {
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.traverse(&visit)
    }
}

/// How a call ended: its value, and whether it came from another caller's load.
pub struct Done {
    pub value: Py<PyAny>,
    pub shared: bool,
}

/// Removes `key` from `loading` if it still maps to `flight` (by identity).
fn forget_flight(loading: &Bound<'_, PyDict>, key: &Bound<'_, PyAny>, flight: &Bound<'_, PyAny>) {
    if let Ok(Some(cur)) = loading.get_item(key) {
        if cur.is(flight) {
            let _ = loading.del_item(key);
        }
    }
}

/// Waits detached for `flight`: Some(outcome), or None when it was abandoned.
fn follow(
    py: Python<'_>,
    flight: &Bound<'_, Flight>,
    deadline: Option<Instant>,
) -> PyResult<Option<Done>> {
    let core = &flight.get().core.0;
    if !core.is_done() {
        match wait_detached(py, |hook| core.wait(deadline, hook)) {
            (Ok(()), _) => {}
            (Err(Stop::Interrupted), err) => {
                return Err(err.unwrap_or_else(|| PyKeyboardInterrupt::new_err("wait interrupted")))
            }
            (Err(_), _) => {
                return Err(PyTimeoutError::new_err(
                    "timed out waiting for another caller's load of this key",
                ))
            }
        }
    }
    let out = core.read(|o| match o {
        Outcome::Value(v) => Ok(Some(v.clone_ref(py))),
        Outcome::Error(e) => Err(PyErr::from_value(e.bind(py).clone())),
        Outcome::Abandoned => Ok(None),
    });
    match out {
        Some(Ok(Some(value))) => Ok(Some(Done {
            value,
            shared: true,
        })),
        Some(Err(e)) => Err(e),
        _ => Ok(None),
    }
}

/// Go's `Do`: runs `load` unless a load of `key` is in flight, in which case it waits for that
/// one (`on_join` counts it). `recheck` runs once this caller owns the flight, before it loads:
/// a load that finished between the caller's miss and its registration is found there (a
/// cache stores before it forgets the flight), so each key is loaded once per miss.
pub fn run(
    py: Python<'_>,
    loading: &Bound<'_, PyDict>,
    key: &Bound<'_, PyAny>,
    deadline: Option<Instant>,
    recheck: impl Fn() -> PyResult<Option<Py<PyAny>>>,
    load: impl FnOnce() -> PyResult<Py<PyAny>>,
    on_join: impl Fn(),
) -> PyResult<Done> {
    let mut load = Some(load);
    loop {
        let mine = Bound::new(
            py,
            Flight {
                core: Held(CoreFlight::new()),
                gen: generation(),
            },
        )?;
        let found = loading.call_method1(pyo3::intern!(py, "setdefault"), (key, &mine))?;
        if !found.is(&mine) {
            let theirs = found.cast_into::<Flight>()?;
            if theirs.get().gen != generation() {
                // Started before fork(): its loader does not exist here.
                std::mem::forget(theirs.clone().unbind());
                forget_flight(loading, key, theirs.as_any());
                continue;
            }
            if theirs.get().core.0.is_done() {
                forget_flight(loading, key, theirs.as_any());
            } else {
                theirs.get().core.0.join();
                on_join();
            }
            if let Some(done) = follow(py, &theirs, deadline)? {
                return Ok(done);
            }
            continue;
        }
        let outcome = match recheck() {
            Ok(Some(value)) => Ok(value),
            Ok(None) => (load.take().expect("one load per call"))(),
            Err(e) => Err(e),
        };
        let published = match &outcome {
            Ok(v) => Outcome::Value(v.clone_ref(py)),
            Err(e) if e.is_instance_of::<PyException>(py) => {
                Outcome::Error(e.value(py).clone().into_any().unbind())
            }
            Err(_) => Outcome::Abandoned,
        };
        forget_flight(loading, key, mine.as_any());
        drop(mine.get().core.0.finish(published));
        return outcome.map(|value| Done {
            value,
            shared: false,
        });
    }
}

/// Go's singleflight.Group: `do(key, fn)` calls fn() unless a call for key is in flight, in
/// which case it waits for that call's result (or its exception).
#[pyclass(module = "chanpool", name = "SingleFlight", frozen)]
pub struct SingleFlight {
    loading: Py<PyDict>,
}

gc_fields!(SingleFlight { loading });

#[pymethods]
impl SingleFlight {
    #[new]
    fn new(py: Python<'_>) -> Self {
        SingleFlight {
            loading: PyDict::new(py).unbind(),
        }
    }

    /// fn()'s result, computed once for all callers of `key` that overlap; raises its
    /// exception in each of them. TimeoutError if a waiter's `timeout` passes first.
    #[pyo3(
        signature = (key, r#fn, *, timeout = crate::py::args::Timeout::FOREVER),
        text_signature = "($self, key, fn, *, timeout=None)"
    )]
    fn r#do(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        r#fn: crate::py::args::Callback,
        timeout: crate::py::args::Timeout,
    ) -> PyResult<Py<PyAny>> {
        Ok(self.do_shared(py, key, r#fn, timeout)?.0)
    }

    /// `do`, also telling whether the value was shared with other callers (Go's `shared`:
    /// true for a caller that waited for another's call).
    #[pyo3(
        signature = (key, r#fn, *, timeout = crate::py::args::Timeout::FOREVER),
        text_signature = "($self, key, fn, *, timeout=None)"
    )]
    fn do_shared(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        r#fn: crate::py::args::Callback,
        timeout: crate::py::args::Timeout,
    ) -> PyResult<(Py<PyAny>, bool)> {
        let f = r#fn
            .0
            .ok_or_else(|| pyo3::exceptions::PyTypeError::new_err("fn must be callable"))?;
        let done = run(
            py,
            self.loading.bind(py),
            key,
            timeout.deadline,
            || Ok(None),
            || f.call0(py),
            || {},
        )?;
        Ok((done.value, done.shared))
    }

    /// Forgets the call in flight for key: later callers start a new one (Go's Forget).
    fn forget(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let loading = self.loading.bind(py);
        if loading.contains(key)? {
            loading.del_item(key)?;
        }
        Ok(())
    }

    /// Keys with a call in flight right now.
    #[getter]
    fn in_flight(&self, py: Python<'_>) -> usize {
        self.loading.bind(py).len()
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.traverse(&visit)
    }

    fn __clear__(&self) {
        Python::attach(|py| self.loading.bind(py).clear());
    }
}
