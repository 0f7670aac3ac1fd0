//! TokenBucket: the core token bucket adapted to Python, usable directly, as a context manager
//! and as a decorator that rate-limits every call of a function.

use crate::core::ratelimit::TokenBucket as CoreBucket;
use crate::core::sync::RwLock;
use crate::core::wait::Stop;
use crate::py::aio::{self as pyaio, AioWait};
use crate::py::args::{real, Count, Timeout};
use crate::py::gc::{self, Traverse};
use crate::py::lifecycle::Rebuilt;
use crate::py::runtime::{acquire_detached, wait_detached};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};
use pyo3::PyTraverseError;

/// A rate limiter: `rate` tokens a second refill a bucket of `burst` tokens, which starts full.
///
/// burst defaults to one second's worth of tokens (ceil(rate), at least 1). Waiters are served
/// in arrival order, with the GIL released.
#[pyclass(module = "chanpool", name = "TokenBucket", frozen)]
pub struct TokenBucket {
    /// Rebuilt on first use in a fork() child (README: keeps working there).
    core: Rebuilt<CoreBucket>,
}

impl TokenBucket {
    /// The core, once `n` is known to be a request that can ever be served.
    fn checked(&self, n: Count) -> PyResult<(&CoreBucket, u64)> {
        let core = self.core.get();
        let n = n.at_least(1, "n")?;
        core.check(n)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok((core, n))
    }

    /// One token for a rate-limited pool worker or subscription, waited for (GIL released) in
    /// line, with the caller's `stop` asked between the wait's slices: a slow limit must not
    /// hold up shutdown or exit. False if `stop` said so first. A failed wait is logged and,
    /// unless stopping, counts as a token: the limit is lost for one call rather than the work.
    pub(crate) fn pace(&self, py: Python<'_>, stop: impl Fn() -> bool + Sync) -> bool {
        if stop() {
            return false;
        }
        let core = self.core.get();
        if core.try_acquire(1) {
            return true;
        }
        match wait_detached(py, |hook| core.acquire(1, None, &mut || stop() || hook())) {
            (Ok(()), _) => true,
            (Err(_), Some(e)) => {
                crate::py::errors::log_exception(py, "chanpool: rate limit wait failed", e);
                !stop()
            }
            (Err(Stop::Interrupted | Stop::Timeout | Stop::Closed), None) => false,
        }
    }

    fn take(
        &self,
        py: Python<'_>,
        n: Count,
        deadline: Option<std::time::Instant>,
    ) -> PyResult<bool> {
        let (core, n) = self.checked(n)?;
        if core.try_acquire(n) {
            return Ok(true);
        }
        acquire_detached(py, |hook| core.acquire(n, deadline, hook))
    }
}

#[pymethods]
impl TokenBucket {
    #[new]
    #[pyo3(signature = (rate, burst = None))]
    fn new(rate: &Bound<'_, PyAny>, burst: Option<Count>) -> PyResult<Self> {
        let rate = real(rate, "rate")?;
        let burst = match burst {
            Some(b) => b.at_least(1, "burst")?,
            // Saturating cast; NaN becomes 0 and is rejected with the rate below.
            None => (rate.ceil() as u64).max(1),
        };
        let core =
            CoreBucket::new(rate, burst).map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(TokenBucket {
            core: Rebuilt::new(core, CoreBucket::rebuilt_after_fork),
        })
    }

    /// Takes n tokens, waiting in line until they have been earned; False if that does not
    /// happen within timeout seconds.
    #[pyo3(
        signature = (n = Count::ONE, timeout = Timeout::FOREVER),
        text_signature = "($self, n=1, timeout=None)"
    )]
    fn acquire(&self, py: Python<'_>, n: Count, timeout: Timeout) -> PyResult<bool> {
        self.take(py, n, timeout.deadline)
    }

    /// Takes n tokens if they are there and nobody is waiting; never blocks.
    #[pyo3(signature = (n = Count::ONE), text_signature = "($self, n=1)")]
    fn try_acquire(&self, n: Count) -> PyResult<bool> {
        let (core, n) = self.checked(n)?;
        Ok(core.try_acquire(n))
    }

    /// Tokens in the bucket now, fractions included.
    #[getter]
    fn available(&self) -> f64 {
        self.core.get().available()
    }

    #[getter]
    fn rate(&self) -> f64 {
        self.core.fixed().rate()
    }

    #[getter]
    fn burst(&self) -> u64 {
        self.core.fixed().burst()
    }

    /// Threads waiting in line right now.
    #[getter]
    fn waiting(&self) -> usize {
        self.core.get().waiting()
    }

    /// Takes one token.
    fn __enter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        slf.get().take(slf.py(), Count::ONE, None)?;
        Ok(slf.clone())
    }

    fn __exit__(
        &self,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> bool {
        false
    }

    /// For coroutines: takes n tokens, waiting on the event loop until they have been earned
    /// (threads already in line go first); True, or False once timeout passes.
    #[pyo3(
        signature = (n = Count::ONE, timeout = Timeout::FOREVER),
        text_signature = "($self, n=1, timeout=None)"
    )]
    fn acquire_async<'py>(
        slf: &Bound<'py, Self>,
        n: Count,
        timeout: Timeout,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (_, n) = slf.get().checked(n)?;
        crate::aio_coroutine!(slf.py(), "bucket_acquire")?.call1((slf, n, pyaio::secs(timeout)))
    }

    /// `async with bucket:` takes one token.
    fn __aenter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        crate::aio_coroutine!(slf.py(), "bucket_acquire")?.call1((slf, 1, None::<f64>))
    }

    fn __aexit__<'py>(
        slf: &Bound<'py, Self>,
        _exc_type: &Bound<'py, PyAny>,
        _exc: &Bound<'py, PyAny>,
        _tb: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::aio_coroutine!(slf.py(), "nothing")?.call0()
    }

    /// A coroutine's step (see chanpool._aio): (True, None) taken; (False, secs) sleep that
    /// long and retry; (False, None) registered `wait`, woken when the threads' line empties.
    fn _aio_acquire(&self, n: u64, wait: PyRef<'_, AioWait>) -> (bool, Option<f64>) {
        match self.core.get().acquire_or_register(n, &wait.registration()) {
            Ok(()) => (true, None),
            Err(d) => (false, d.map(|d| d.as_secs_f64())),
        }
    }

    fn _aio_leave(&self, wait: PyRef<'_, AioWait>) {
        self.core.get().leave(&wait.registration());
    }

    /// Decorator: every call of the returned function first takes one token.
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        func: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, RateLimited>> {
        let py = slf.py();
        if !func.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "TokenBucket decorates callables, got {}",
                func.get_type().name()?
            )));
        }
        // Its calls would only create coroutines (or async generators), and waiting for a
        // token in them would block the event loop.
        let inspect = py.import("inspect")?;
        for (check, what) in [
            ("iscoroutinefunction", "coroutine"),
            ("isasyncgenfunction", "async generator"),
        ] {
            if inspect.call_method1(check, (func,))?.is_truthy()? {
                return Err(PyTypeError::new_err(format!(
                    "TokenBucket cannot decorate {what} functions: waiting for a token would \
                     block the event loop"
                )));
            }
        }
        let wrapper = Bound::new(
            py,
            RateLimited {
                bucket: slf.clone().unbind(),
                func: RwLock::new(Some(func.clone().unbind())),
            },
        )?;
        py.import("functools")?
            .call_method1("update_wrapper", (&wrapper, func))?;
        Ok(wrapper)
    }

    fn __repr__(&self) -> String {
        format!(
            "<chanpool.TokenBucket rate={:?}/s burst={} available={:.3} waiting={}>",
            self.core.get().rate(),
            self.core.get().burst(),
            self.core.get().available(),
            self.core.get().waiting()
        )
    }
}

static METHOD_TYPE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A function wrapped by `@bucket`. Has a `__dict__` so functools.update_wrapper can give it
/// the function's name, docstring and `__wrapped__`. (The core's fork-safe RwLock: nothing
/// here parks in parking_lot's process-wide table, which is unsafe to use after fork().)
#[pyclass(module = "chanpool", name = "RateLimited", frozen, dict)]
pub struct RateLimited {
    bucket: Py<TokenBucket>,
    func: RwLock<Option<Py<PyAny>>>,
}

#[pymethods]
impl RateLimited {
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let func = self
            .func
            .read()
            .as_ref()
            .map(|f| f.clone_ref(py))
            .ok_or_else(|| PyRuntimeError::new_err("rate-limited function was cleared"))?;
        self.bucket.get().take(py, Count::ONE, None)?;
        Ok(func.bind(py).call(args, kwargs)?.unbind())
    }

    /// Binds like a function, so `@bucket` works on methods too.
    fn __get__(
        slf: &Bound<'_, Self>,
        instance: Option<&Bound<'_, PyAny>>,
        owner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let _ = owner;
        let py = slf.py();
        match instance {
            Some(obj) if !obj.is_none() => {
                let method_type = METHOD_TYPE.get_or_try_init(py, || -> PyResult<_> {
                    Ok(py.import("types")?.getattr("MethodType")?.unbind())
                })?;
                Ok(method_type.bind(py).call1((slf, obj))?.unbind())
            }
            _ => Ok(slf.clone().into_any().unbind()),
        }
    }

    /// The bucket every call takes its token from.
    #[getter]
    fn bucket(&self, py: Python<'_>) -> Py<TokenBucket> {
        self.bucket.clone_ref(py)
    }

    /// Pickles by qualified name, like the plain function it replaces.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.getattr("__qualname__")
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let func = self.func.read().as_ref().map(|f| f.clone_ref(py));
        let func = match func {
            Some(f) => f.bind(py).repr()?.to_string(),
            None => "<cleared>".to_string(),
        };
        Ok(format!("<rate-limited {func}>"))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.traverse(&visit)
    }

    fn __clear__(&self) {
        gc::clear(&[&self.func]);
    }
}

gc::gc_fields!(RateLimited { bucket, func });

/// A `rate_limit=` argument: None, a TokenBucket (shareable between pools and subscriptions),
/// or a number of calls per second (a bucket with burst 1, so calls are spread evenly).
pub struct RateLimit(pub Option<Py<TokenBucket>>);

impl<'a, 'py> FromPyObject<'a, 'py> for RateLimit {
    type Error = PyErr;

    fn extract(limit: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if limit.is_none() {
            return Ok(RateLimit(None));
        }
        if let Ok(b) = limit.cast::<TokenBucket>() {
            return Ok(RateLimit(Some(b.to_owned().unbind())));
        }
        if limit.is_instance_of::<pyo3::types::PyBool>()
            || !(limit.is_instance_of::<pyo3::types::PyInt>()
                || limit.is_instance_of::<pyo3::types::PyFloat>())
        {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "rate_limit must be a TokenBucket or a number of calls per second, got {}",
                limit.get_type().name()?
            )));
        }
        let bucket = limit.py().get_type::<TokenBucket>().call1((limit, 1))?;
        Ok(RateLimit(Some(bucket.cast_into::<TokenBucket>()?.unbind())))
    }
}
