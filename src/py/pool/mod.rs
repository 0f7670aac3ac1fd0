//! WorkerPool: the core pool adapted to Python as a drop-in for ThreadPoolExecutor.
//!
//! Each worker attaches to the interpreter once and runs queued jobs back to back while it holds
//! the GIL; it lets go only to block on an empty queue. The submitting side never blocks while
//! attached: a full bounded queue is waited on detached, in slices, so Ctrl-C gets through.
//!
//! Modules, each using only those listed before it: `pythread` (the threading.Thread a task
//! sees), `task` (what is queued), `worker` (what
//! the threads share and run), `map` (Executor.map), then the class here.

mod entry;
mod map;
mod pythread;
mod task;
mod worker;

pub use entry::install;
pub use map::MapIterator;
use task::{CallJob, CorePool, Task};
use worker::{cancel_queued, closed_error, default_workers, worker_main, Ext, Init};

use crate::core::pool::{Pool, Rejected, Worker};
use crate::core::sync::{Mutex, RwLock};
use crate::core::wait::in_slices;
use crate::py::args::{BufferSize, Count, Timeout, Truthy};
use crate::py::call::Args;
use crate::py::future;
use crate::py::gc::{self, gc_fields, Traverse};
use crate::py::lifecycle::{self, stats_dict, Born};
use crate::py::ratelimit::RateLimit;
use crate::py::runtime::{self, Stoppable};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::PyTraverseError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A drop-in for concurrent.futures.ThreadPoolExecutor on native threads.
#[pyclass(module = "chanpool", name = "WorkerPool", subclass, frozen)]
pub struct WorkerPool {
    core: Arc<CorePool>,
    ext: Arc<Ext>,
    born: Born,
    prefix: String,
    /// contextvars=True: every call runs in a copy of its submitter's context.
    contextvars: bool,
}

gc_fields!(WorkerPool { ext });

impl WorkerPool {
    fn check(&self, py: Python<'_>) -> PyResult<()> {
        self.born.check("WorkerPool")?;
        if self.core.is_closed() || runtime::interpreter_shutdown() {
            return Err(closed_error(py, &self.ext));
        }
        Ok(())
    }

    fn make_call(
        &self,
        func: &Bound<'_, PyAny>,
        args: Args,
        kwargs: Option<Py<PyDict>>,
    ) -> PyResult<(Py<PyAny>, Task)> {
        let py = func.py();
        if !func.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "submit() needs a callable, got {}",
                func.get_type().name()?
            )));
        }
        self.check(py)?;
        let (func, args) = if self.contextvars {
            // Context.run(func, *args), as asyncio.to_thread submits it: one copy per call.
            let run = copy_context(py)?.getattr("run")?;
            (run, args.prepend(func.clone().unbind()))
        } else {
            (func.clone(), args)
        };
        let fut = future::new_future(py)?.unbind();
        let job = CallJob {
            fut: fut.clone_ref(py),
            func: func.unbind(),
            args,
            kwargs,
        };
        Ok((fut, Task::Call(job)))
    }

    /// True when every worker has stopped (within `deadline` when waiting); on a timeout the
    /// pool is still shut down and its workers stop once their current task returns.
    fn shutdown_impl(
        &self,
        py: Python<'_>,
        wait: bool,
        cancel_futures: bool,
        deadline: Option<std::time::Instant>,
    ) -> PyResult<bool> {
        if self.born.inherited() {
            // The parent's threads are not this process's: none runs here.
            return Ok(true);
        }
        if cancel_futures {
            self.ext.discard.store(true, Ordering::Release);
        }
        // Detached: close() waits for submits blocked on a full queue to give up their slice.
        runtime::detach(py, || self.core.close());
        if cancel_futures {
            cancel_queued(py, &self.core);
        }
        let core = &self.core;
        // Checked once before waiting, so timeout=0 (or wait=False) still says True when
        // every worker is already gone.
        let stopped = runtime::detach(py, || core.join(Some(Duration::ZERO)));
        if stopped || !wait {
            return Ok(stopped);
        }
        runtime::acquire_detached(py, |hook| {
            in_slices(deadline, hook, |slice| core.join(Some(slice)).then_some(()))
        })
    }

    /// map and map_unordered: the checks, then the shared machinery.
    #[allow(clippy::too_many_arguments)]
    fn start_map(
        &self,
        py: Python<'_>,
        name: &str,
        func: &Bound<'_, PyAny>,
        iterables: &Bound<'_, PyTuple>,
        timeout: Timeout,
        chunksize: Option<Count>,
        buffersize: BufferSize,
        unordered: bool,
        progress: Option<Bound<'_, PyAny>>,
    ) -> PyResult<MapIterator> {
        let progress = match progress {
            Some(p) if !p.is_none() => {
                if !p.is_callable() {
                    return Err(PyTypeError::new_err(format!(
                        "progress must be a callable, got {}",
                        p.get_type().name()?
                    )));
                }
                Some(p.unbind())
            }
            _ => None,
        };
        if !func.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "{name}() needs a callable, got {}",
                func.get_type().name()?
            )));
        }
        let chunksize = chunksize.map(|c| c.size(1, "chunksize")).transpose()?;
        self.check(py)?;
        let func = if self.contextvars {
            // One copy of the submitter's context per item (a Context cannot be entered by
            // two threads at once, and items must not see each other's changes).
            let ctx = copy_context(py)?;
            py.import("chanpool._pool")?
                .getattr("_in_context")?
                .call1((ctx, func))?
        } else {
            func.clone()
        };
        map::start(
            py,
            &self.core,
            &self.ext,
            &func,
            iterables,
            timeout.deadline,
            chunksize,
            buffersize.0,
            unordered,
            progress,
        )
    }
}

/// contextvars.copy_context().
fn copy_context(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    py.import("contextvars")?.call_method0("copy_context")
}

#[pymethods]
impl WorkerPool {
    #[new]
    #[pyo3(signature = (max_workers=None, *, queue_size=Count::ZERO, thread_name_prefix="", initializer=None, initargs=None, rate_limit=RateLimit(None), contextvars=Truthy(false)),
           text_signature = "(max_workers=None, *, queue_size=0, thread_name_prefix='', initializer=None, initargs=(), rate_limit=None, contextvars=False)")]
    // The parameters are ThreadPoolExecutor's plus chanpool's keyword-only ones.
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        max_workers: Option<Count>,
        queue_size: Count,
        thread_name_prefix: &str,
        initializer: Option<Bound<'_, PyAny>>,
        initargs: Option<Bound<'_, PyAny>>,
        rate_limit: RateLimit,
        contextvars: Truthy,
    ) -> PyResult<Self> {
        let max_workers = match max_workers {
            None => default_workers(),
            // ThreadPoolExecutor's message for 0 and below.
            Some(n) if n.below(1) => {
                return Err(PyValueError::new_err("max_workers must be greater than 0"))
            }
            Some(n) => n.size(1, "max_workers")?,
        };
        let queue_size = queue_size.size(0, "queue_size")?;
        pythread::init(py)?;
        if thread_name_prefix.contains('\0') {
            return Err(PyValueError::new_err(
                "thread_name_prefix must not contain a NUL character",
            ));
        }
        let rate = rate_limit.0;
        let init = match initializer {
            Some(f) if !f.is_none() => {
                if !f.is_callable() {
                    return Err(PyTypeError::new_err("initializer must be a callable"));
                }
                let args = match initargs {
                    None => PyTuple::empty(py),
                    // Any iterable, as ThreadPoolExecutor takes (it calls initializer(*initargs)).
                    Some(a) => PyTuple::new(py, a.try_iter()?.collect::<PyResult<Vec<_>>>()?)?,
                };
                Some(Init {
                    func: f.unbind(),
                    args: args.unbind(),
                })
            }
            _ => None,
        };
        let ext = Arc::new(Ext {
            init: RwLock::new(init),
            is_broken: AtomicBool::new(false),
            discard: AtomicBool::new(false),
            broken: Mutex::new(None),
            core: OnceLock::new(),
            rate,
        });
        let body_ext = Arc::clone(&ext);
        let prefix = if thread_name_prefix.is_empty() {
            format!("WorkerPool-{}", next_pool_id())
        } else {
            thread_name_prefix.to_string()
        };
        let core = Pool::new(
            max_workers,
            queue_size,
            prefix.clone(),
            move |w: Worker<Task>| worker_main(Arc::clone(&body_ext), w),
        );
        core.set_stack_size(runtime::thread_stack_size(py));
        core.set_handoff(true);
        let _ = ext.core.set(Arc::downgrade(&core));
        let stoppable: Arc<dyn Stoppable> = ext.clone();
        runtime::register(&stoppable);
        // (Start and shutdown are logged by the Python class: logging can release the GIL,
        // which a daemon thread must not do in here while the interpreter exits.)
        Ok(WorkerPool {
            core,
            ext,
            born: Born::now(),
            prefix,
            contextvars: contextvars.0,
        })
    }

    // submit(fn, /, *args, **kwargs) is entry.rs's (no argument tuples).

    /// Like submit, but returns None instead of waiting when the bounded queue is full.
    #[pyo3(signature = (r#fn, /, *args, **kwargs))]
    fn try_submit(
        &self,
        py: Python<'_>,
        r#fn: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let kwargs = kwargs.filter(|k| !k.is_empty()).map(|k| k.clone().unbind());
        let (fut, task) = self.make_call(r#fn, Args::new(args), kwargs)?;
        match self.core.try_submit(task, 1) {
            Ok(()) => Ok(Some(fut)),
            Err(Rejected::Full(_)) => Ok(None),
            Err(Rejected::Closed(_)) => Err(closed_error(py, &self.ext)),
        }
    }

    /// Executor.map with Python 3.14 semantics; chunksize batches items into one job (None:
    /// automatic for an eager map, as multiprocessing's ThreadPool.map does; 1 with buffersize).
    #[pyo3(signature = (r#fn, *iterables, timeout=Timeout::FOREVER, chunksize=None, buffersize=BufferSize(None), progress=None),
           text_signature = "(self, fn, /, *iterables, timeout=None, chunksize=None, buffersize=None, progress=None)")]
    fn map(
        slf: &Bound<'_, Self>,
        r#fn: &Bound<'_, PyAny>,
        iterables: &Bound<'_, PyTuple>,
        timeout: Timeout,
        chunksize: Option<Count>,
        buffersize: BufferSize,
        progress: Option<Bound<'_, PyAny>>,
    ) -> PyResult<MapIterator> {
        slf.get().start_map(
            slf.py(),
            "map",
            r#fn,
            iterables,
            timeout,
            chunksize,
            buffersize,
            false,
            progress,
        )
    }

    /// Like multiprocessing's imap_unordered: results in the order they complete. An error is
    /// raised when its item is reached; leaving early cancels what has not started; with
    /// buffersize, the input is read lazily as for map.
    #[pyo3(signature = (r#fn, iterable, *, timeout=Timeout::FOREVER, chunksize=Count::ONE, buffersize=BufferSize(None), progress=None),
           text_signature = "(self, fn, iterable, /, *, timeout=None, chunksize=1, buffersize=None, progress=None)")]
    fn map_unordered(
        slf: &Bound<'_, Self>,
        r#fn: &Bound<'_, PyAny>,
        iterable: &Bound<'_, PyAny>,
        timeout: Timeout,
        chunksize: Count,
        buffersize: BufferSize,
        progress: Option<Bound<'_, PyAny>>,
    ) -> PyResult<MapIterator> {
        let py = slf.py();
        let iterables = PyTuple::new(py, [iterable])?;
        slf.get().start_map(
            py,
            "map_unordered",
            r#fn,
            &iterables,
            timeout,
            Some(chunksize),
            buffersize,
            true,
            progress,
        )
    }

    /// Stops accepting work; optionally cancels what is still queued and waits (at most
    /// `timeout` seconds) for workers. Returns whether every worker has stopped.
    #[pyo3(signature = (wait=Truthy(true), *, cancel_futures=Truthy(false), timeout=Timeout::FOREVER),
           text_signature = "(self, /, wait=True, *, cancel_futures=False, timeout=None)")]
    fn shutdown(
        &self,
        py: Python<'_>,
        wait: Truthy,
        cancel_futures: Truthy,
        timeout: Timeout,
    ) -> PyResult<bool> {
        self.shutdown_impl(py, wait.0, cancel_futures.0, timeout.deadline)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.shutdown_impl(py, true, false, None)?;
        Ok(false)
    }

    /// A snapshot of the pool's counters.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.core.snapshot();
        stats_dict!(py, {
            "workers" => s.workers,
            "idle" => s.idle,
            "queued" => s.queued,
            "running" => s.running,
            "submitted" => s.submitted,
            "completed" => s.completed,
            "failed" => s.failed,
            "cancelled" => s.cancelled,
            "waits" => s.waits,
            "max_workers" => self.core.max_workers(),
            "queue_size" => self.core.capacity(),
        })
    }

    #[getter]
    fn max_workers(&self) -> usize {
        self.core.max_workers()
    }

    #[getter]
    fn _max_workers(&self) -> usize {
        self.core.max_workers()
    }

    #[getter]
    fn queue_size(&self) -> usize {
        self.core.capacity()
    }

    #[getter]
    fn _thread_name_prefix(&self) -> &str {
        &self.prefix
    }

    #[getter]
    fn _broken(&self) -> Option<String> {
        self.ext.broken()
    }

    #[getter]
    fn contextvars(&self) -> bool {
        self.contextvars
    }

    #[getter]
    fn _shutdown(&self) -> bool {
        self.core.is_closed()
    }

    fn __repr__(&self) -> String {
        let s = self.core.snapshot();
        format!(
            "<chanpool.WorkerPool {} max_workers={} queue_size={} workers={} queued={}{}>",
            self.prefix,
            self.core.max_workers(),
            self.core.capacity(),
            s.workers,
            s.queued,
            if self.core.is_closed() {
                " shutdown"
            } else {
                ""
            }
        )
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.traverse(&visit)
    }

    fn __clear__(&self) {
        gc::clear(&[&*self.ext]);
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        // Created before fork(): its threads and locks belong to the parent.
        if self.born.inherited() {
            lifecycle::leak(&self.core);
            lifecycle::leak(&self.ext);
            return;
        }
        // Like an unreferenced ThreadPoolExecutor: queued work still runs, then workers exit.
        self.core.close();
    }
}

fn next_pool_id() -> usize {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
