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

/// A drop-in for concurrent.futures.ThreadPoolExecutor on native threads.
#[pyclass(module = "chanpool", name = "WorkerPool", subclass, frozen)]
pub struct WorkerPool {
    core: Arc<CorePool>,
    ext: Arc<Ext>,
    born: Born,
    prefix: String,
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
        let fut = future::new_future(py)?.unbind();
        let job = CallJob {
            fut: fut.clone_ref(py),
            func: func.clone().unbind(),
            args,
            kwargs,
        };
        Ok((fut, Task::Call(job)))
    }

    fn shutdown_impl(&self, py: Python<'_>, wait: bool, cancel_futures: bool) -> PyResult<()> {
        if self.born.inherited() {
            return Ok(());
        }
        if cancel_futures {
            self.ext.discard.store(true, Ordering::Release);
        }
        // Detached: close() waits for submits blocked on a full queue to give up their slice.
        runtime::detach(py, || self.core.close());
        if cancel_futures {
            cancel_queued(py, &self.core);
        }
        if wait {
            let core = &self.core;
            runtime::acquire_detached(py, |hook| {
                in_slices(None, hook, |slice| core.join(Some(slice)).then_some(()))
            })?;
        }
        Ok(())
    }
}

#[pymethods]
impl WorkerPool {
    #[new]
    #[pyo3(signature = (max_workers=None, *, queue_size=Count::ZERO, thread_name_prefix="", initializer=None, initargs=None, rate_limit=RateLimit(None)),
           text_signature = "(max_workers=None, *, queue_size=0, thread_name_prefix='', initializer=None, initargs=(), rate_limit=None)")]
    fn new(
        py: Python<'_>,
        max_workers: Option<Count>,
        queue_size: Count,
        thread_name_prefix: &str,
        initializer: Option<Bound<'_, PyAny>>,
        initargs: Option<Bound<'_, PyAny>>,
        rate_limit: RateLimit,
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
    #[pyo3(signature = (r#fn, *iterables, timeout=Timeout::FOREVER, chunksize=None, buffersize=BufferSize(None)),
           text_signature = "(self, fn, /, *iterables, timeout=None, chunksize=None, buffersize=None)")]
    fn map(
        slf: &Bound<'_, Self>,
        r#fn: &Bound<'_, PyAny>,
        iterables: &Bound<'_, PyTuple>,
        timeout: Timeout,
        chunksize: Option<Count>,
        buffersize: BufferSize,
    ) -> PyResult<MapIterator> {
        let me = slf.get();
        let py = slf.py();
        if !r#fn.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "map() needs a callable, got {}",
                r#fn.get_type().name()?
            )));
        }
        let chunksize = chunksize.map(|c| c.size(1, "chunksize")).transpose()?;
        me.check(py)?;
        map::start(
            py,
            &me.core,
            &me.ext,
            r#fn,
            iterables,
            timeout.deadline,
            chunksize,
            buffersize.0,
        )
    }

    /// Stops accepting work; optionally cancels what is still queued and waits for workers.
    #[pyo3(signature = (wait=Truthy(true), *, cancel_futures=Truthy(false)),
           text_signature = "(self, /, wait=True, *, cancel_futures=False)")]
    fn shutdown(&self, py: Python<'_>, wait: Truthy, cancel_futures: Truthy) -> PyResult<()> {
        self.shutdown_impl(py, wait.0, cancel_futures.0)
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
        self.shutdown_impl(py, true, false)?;
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
