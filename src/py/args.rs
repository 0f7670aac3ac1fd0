//! Argument conversion shared by the bindings, so the same kind of bad argument always fails
//! the same way: a wrong type is a TypeError, a number out of range a ValueError (never an
//! OverflowError), and bool is not taken for a number.

use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt};
use std::time::Instant;

/// A whole-number argument, checked against its range (and named) where it is used. Ints too
/// big for an i128 are kept as out-of-range markers.
#[derive(Debug, Clone, Copy)]
pub struct Count(i128);

impl Count {
    pub const ONE: Count = Count(1);
    pub const ZERO: Count = Count(0);

    /// A default value for a signature.
    pub const fn of(v: i64) -> Count {
        Count(v as i128)
    }

    pub fn below(self, min: u64) -> bool {
        self.0 < i128::from(min)
    }

    pub fn at_least(self, min: u64, what: &str) -> PyResult<u64> {
        if self.below(min) {
            return Err(PyValueError::new_err(match i64::try_from(self.0) {
                Ok(v) => format!("{what} must be >= {min}, got {v}"),
                Err(_) => format!("{what} must be >= {min}"),
            }));
        }
        u64::try_from(self.0).map_err(|_| PyValueError::new_err(format!("{what} is too large")))
    }

    /// The value as a signed 64-bit int, if it is one (a counter's delta).
    pub fn signed(self) -> Option<i64> {
        i64::try_from(self.0).ok()
    }

    /// `at_least`, as a size (of a queue, a chunk, a count of workers).
    pub fn size(self, min: u64, what: &str) -> PyResult<usize> {
        usize::try_from(self.at_least(min, what)?)
            .map_err(|_| PyValueError::new_err(format!("{what} is too large")))
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for Count {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let not_int = || -> PyErr {
            match obj.get_type().name() {
                Ok(t) => PyTypeError::new_err(format!("expected an int, got {t}")),
                Err(e) => e,
            }
        };
        // Exactly the ints and what has __index__ (numpy ints), as operator.index: no floats
        // (which 3.9 would still truncate, with a DeprecationWarning) and no bools.
        let int = if obj.is_instance_of::<PyBool>() {
            return Err(not_int());
        } else if obj.is_instance_of::<PyInt>() {
            obj.to_owned()
        } else {
            match obj.call_method0(intern!(obj.py(), "__index__")) {
                Ok(i) if i.is_instance_of::<PyInt>() => i,
                _ => return Err(not_int()),
            }
        };
        match int.extract::<i128>() {
            Ok(v) => Ok(Count(v)),
            Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => {
                Ok(Count(if int.gt(0)? { i128::MAX } else { i128::MIN }))
            }
            Err(e) => Err(e),
        }
    }
}

/// Any object, read by truth value like threading's `blocking` (so `acquire(0)` works).
#[derive(Debug, Clone, Copy)]
pub struct Truthy(pub bool);

impl<'a, 'py> FromPyObject<'a, 'py> for Truthy {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Ok(Truthy(obj.is_truthy()?))
    }
}

/// A real-number argument (int or float, not bool). Ints too big for a float are out of range.
pub fn real(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<f64> {
    if obj.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a number, got bool"
        )));
    }
    obj.extract::<f64>().map_err(|e| {
        if e.is_instance_of::<PyOverflowError>(obj.py()) {
            PyValueError::new_err(format!("{what} must be finite"))
        } else if e.is_instance_of::<PyTypeError>(obj.py()) {
            match obj.get_type().name() {
                Ok(t) => PyTypeError::new_err(format!("{what} must be a number, got {t}")),
                Err(e) => e,
            }
        } else {
            e
        }
    })
}

/// A `timeout` argument: None waits forever, else seconds (an int or a float; a bool is its
/// int, 0 or 1, as ThreadPoolExecutor, queue.Queue and threading take it),
/// turned into a deadline at the call so it counts from there. NaN is a ValueError; a timeout
/// the clock cannot reach (inf, 1e19, a huge int) means no deadline, never a panic; zero or
/// less means "now" (callers that must refuse negatives, as queue.Queue does, look at `secs`).
#[derive(Debug, Clone, Copy)]
pub struct Timeout {
    pub secs: Option<f64>,
    pub deadline: Option<Instant>,
}

impl Timeout {
    pub const FOREVER: Timeout = Timeout {
        secs: None,
        deadline: None,
    };

    /// The seconds a timeout argument gives (None for None), type-checked but not yet a
    /// deadline (NaN passes here).
    pub fn secs_of(obj: Borrowed<'_, '_, PyAny>) -> PyResult<Option<f64>> {
        if obj.is_none() {
            return Ok(None);
        }
        if let Ok(b) = obj.cast::<PyBool>() {
            return Ok(Some(if b.is_true() { 1.0 } else { 0.0 }));
        }
        match real(&obj.to_owned(), "timeout") {
            Ok(t) => Ok(Some(t)),
            // An int too big for a float is a timeout of forever, like inf.
            Err(e)
                if obj.is_instance_of::<PyInt>() && e.is_instance_of::<PyValueError>(obj.py()) =>
            {
                Ok(Some(f64::INFINITY))
            }
            Err(e) => Err(e),
        }
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for Timeout {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let secs = Timeout::secs_of(obj)?;
        Ok(Timeout {
            secs,
            deadline: crate::py::runtime::deadline_from(secs)?,
        })
    }
}

// Channel, select, fan_in, Queue (s-chan).

/// A channel's `capacity`: an int >= 0 (0: unbuffered), or None for unbounded. (An `Option`
/// parameter would not tell an explicit None from the argument being left out.)
#[derive(Debug, Clone, Copy)]
pub struct ChanCapacity(pub crate::core::channel::Capacity);

impl<'a, 'py> FromPyObject<'a, 'py> for ChanCapacity {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        use crate::core::channel::Capacity;
        if obj.is_none() {
            return Ok(ChanCapacity(Capacity::Unbounded));
        }
        let n: Count = obj.extract().map_err(|_| match obj.get_type().name() {
            Ok(t) => PyTypeError::new_err(format!("capacity must be an int or None, got {t}")),
            Err(e) => e,
        })?;
        let out_of_range =
            || PyValueError::new_err("capacity must be >= 0 (0: unbuffered) or None (unbounded)");
        match n.at_least(0, "capacity").map(usize::try_from) {
            Ok(Ok(0)) => Ok(ChanCapacity(Capacity::Rendezvous)),
            Ok(Ok(n)) if n <= i64::MAX as usize => Ok(ChanCapacity(Capacity::Bounded(n))),
            _ => Err(out_of_range()),
        }
    }
}

/// queue.Queue's `timeout`: type-checked as [`Timeout`], but looked at only when the call
/// blocks (as queue.Queue does), and then a negative one is a ValueError (Go's API and select
/// take it as "only try").
#[derive(Debug, Clone, Copy)]
pub struct QueueTimeout(Option<f64>);

impl QueueTimeout {
    pub const NONE: QueueTimeout = QueueTimeout(None);

    /// The deadline of a blocking call (None: forever); None when not blocking.
    pub fn deadline(self, block: bool) -> PyResult<Option<Instant>> {
        if !block {
            return Ok(None);
        }
        if self.0.is_some_and(|t| t < 0.0) {
            return Err(PyValueError::new_err(
                "'timeout' must be a non-negative number",
            ));
        }
        crate::py::runtime::deadline_from(self.0)
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for QueueTimeout {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Timeout::secs_of(obj).map(QueueTimeout)
    }
}

// PubSub's arguments.

/// `overflow`: a policy's name; an unknown one is a ValueError listing the four.
impl<'a, 'py> FromPyObject<'a, 'py> for crate::core::mailbox::Overflow {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let s: &str = obj.extract()?;
        s.parse().map_err(PyValueError::new_err)
    }
}

/// A queue group's name: None or a non-empty str.
#[derive(Debug, Clone, Default)]
pub struct Group(pub Option<String>);

impl<'a, 'py> FromPyObject<'a, 'py> for Group {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if obj.is_none() {
            return Ok(Group(None));
        }
        let g: String = obj.extract()?;
        if g.is_empty() {
            return Err(PyValueError::new_err("group must be a non-empty string"));
        }
        Ok(Group(Some(g)))
    }
}

/// A callback argument: None, or anything callable (TypeError otherwise, which the argument
/// parser prefixes with the parameter's name).
#[derive(Debug, Default)]
pub struct Callback(pub Option<Py<PyAny>>);

impl<'a, 'py> FromPyObject<'a, 'py> for Callback {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if obj.is_none() {
            return Ok(Callback(None));
        }
        if !obj.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "must be callable, got {}",
                obj.get_type().name()?
            )));
        }
        Ok(Callback(Some(obj.to_owned().unbind())))
    }
}

// InventoryManager: stock quantities and thresholds, i64 in the core.
impl Count {
    /// At least `min` and at most i64::MAX, named `what` when not.
    pub fn stock(self, min: u64, what: &str) -> PyResult<i64> {
        i64::try_from(self.at_least(min, what)?)
            .map_err(|_| PyValueError::new_err(format!("{what} must be at most {}", i64::MAX)))
    }
}

// WorkerPool (s-pool).

/// Executor.map's `buffersize`: None (read all input now) or a positive int, refused with
/// 3.14's messages.
#[derive(Debug, Clone, Copy)]
pub struct BufferSize(pub Option<usize>);

impl<'a, 'py> FromPyObject<'a, 'py> for BufferSize {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if obj.is_none() {
            return Ok(BufferSize(None));
        }
        let n: Count = obj
            .extract()
            .map_err(|_| PyTypeError::new_err("buffersize must be an integer or None"))?;
        if n.below(1) {
            return Err(PyValueError::new_err("buffersize must be None or > 0"));
        }
        Ok(BufferSize(Some(n.size(1, "buffersize")?)))
    }
}
