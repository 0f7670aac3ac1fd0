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
struct Outcomes(CoreFlight<Outcome>);

impl Traverse for Outcomes {
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.0.peek(|o| o.traverse(visit)).unwrap_or(Ok(()))
    }
}

#[pyclass(module = "chanpool._core", name = "_Flight", frozen)]
pub struct Flight {
    core: Outcomes,
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

/// `_thread.allocate_lock`, looked up at module init (never imported from a call).
static ALLOCATE_LOCK: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();

pub fn init(py: Python<'_>) -> PyResult<()> {
    let f = py.import("_thread")?.getattr("allocate_lock")?.unbind();
    let _ = ALLOCATE_LOCK.set(py, f);
    Ok(())
}

/// A Python lock (`_thread.allocate_lock()`) serialising the miss path's dict operations. A
/// dict lookup whose key's __eq__ releases the GIL can miss a key another thread inserts
/// meanwhile (an insert may reuse a slot the lookup already passed), so two callers could both
/// find no flight and both load. Python's own lock is the right tool: acquire() waits with the
/// GIL released (and Ctrl-C interrupts it), and Python code may run while it is held, which a
/// core lock forbids. Hits never take it.
pub struct MissLock(Py<PyAny>);

pub struct Held<'py>(Bound<'py, PyAny>);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let _ = self.0.call_method0(pyo3::intern!(self.0.py(), "release"));
    }
}

impl MissLock {
    pub fn new(py: Python<'_>) -> PyResult<Self> {
        let alloc = ALLOCATE_LOCK
            .get(py)
            .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("chanpool not initialised"))?;
        Ok(MissLock(alloc.call0(py)?))
    }

    pub fn hold<'py>(&self, py: Python<'py>) -> PyResult<Held<'py>> {
        let lock = self.0.bind(py).clone();
        lock.call_method0(pyo3::intern!(py, "acquire"))?;
        Ok(Held(lock))
    }
}

/// Go's `Do`: runs `load` unless a load of `key` is in flight, in which case it waits for that
/// one (`on_join` counts it). Under `lock`: registering the flight, then `recheck` (a load
/// that finished between the caller's miss and its registration is found there), and, after
/// the load, `store` and forgetting the flight, so each key is loaded once per miss.
#[allow(clippy::too_many_arguments)]
pub fn run(
    py: Python<'_>,
    loading: &Bound<'_, PyDict>,
    lock: &MissLock,
    key: &Bound<'_, PyAny>,
    deadline: Option<Instant>,
    recheck: impl Fn() -> PyResult<Option<Py<PyAny>>>,
    load: impl FnOnce() -> PyResult<Py<PyAny>>,
    store: impl FnOnce(&Py<PyAny>) -> PyResult<()>,
    on_join: impl Fn(),
) -> PyResult<Done> {
    let mut load = Some(load);
    let mut store = Some(store);
    loop {
        let mine = Bound::new(
            py,
            Flight {
                core: Outcomes(CoreFlight::new()),
                gen: generation(),
            },
        )?;
        let held = lock.hold(py)?;
        let found = loading.call_method1(pyo3::intern!(py, "setdefault"), (key, &mine))?;
        if !found.is(&mine) {
            let theirs = found.cast_into::<Flight>()?;
            if theirs.get().gen != generation() {
                // Started before fork(): its loader does not exist here.
                std::mem::forget(theirs.clone().unbind());
                forget_flight(loading, key, theirs.as_any());
                continue;
            }
            drop(held);
            if !theirs.get().core.0.is_done() {
                theirs.get().core.0.join();
                on_join();
            }
            if let Some(done) = follow(py, &theirs, deadline)? {
                return Ok(done);
            }
            continue;
        }
        let found = recheck();
        let outcome = match found {
            Ok(Some(value)) => Ok(value),
            Ok(None) => {
                drop(held);
                let loaded = (load.take().expect("one load per call"))();
                let held = lock.hold(py);
                let stored = match (&loaded, held) {
                    (Ok(v), Ok(held)) => {
                        let r = (store.take().expect("one store per call"))(v);
                        forget_flight(loading, key, mine.as_any());
                        drop(held);
                        r
                    }
                    (_, held) => {
                        forget_flight(loading, key, mine.as_any());
                        drop(held);
                        Ok(())
                    }
                };
                stored.and(loaded)
            }
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
    lock: MissLock,
}

gc_fields!(SingleFlight { loading });

#[pymethods]
impl SingleFlight {
    #[new]
    fn new(py: Python<'_>) -> PyResult<Self> {
        Ok(SingleFlight {
            loading: PyDict::new(py).unbind(),
            lock: MissLock::new(py)?,
        })
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
            &self.lock,
            key,
            timeout.deadline,
            || Ok(None),
            || f.call0(py),
            |_| Ok(()),
            || {},
        )?;
        Ok((done.value, done.shared))
    }

    /// Forgets the call in flight for key: later callers start a new one (Go's Forget).
    fn forget(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<()> {
        let loading = self.loading.bind(py);
        let _held = self.lock.hold(py)?;
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
