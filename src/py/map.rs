//! WorkerPool.map: ordered fan-in of results without a Future per item.
//!
//! Items are cut into chunks of `chunksize`; each chunk is one job whose worker runs every item
//! (an exception stays attached to its own item, as with ThreadPoolExecutor) and sends the chunk's
//! results to this map's channel. The iterator reorders chunks and yields. Dropping or failing
//! the iterator sets a flag that makes still-queued chunks skip their work.

use crate::core::pool::Counters;
use crate::py::errors;
use crate::py::pool::{enqueue, CorePool, Ext, Task};
use crate::py::runtime;
use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};
use pyo3::prelude::*;
use pyo3::types::{PyIterator, PyTuple};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

type ItemResult = PyResult<Py<PyAny>>;

struct MapShared {
    cancelled: AtomicBool,
    tx: Sender<(usize, Vec<ItemResult>)>,
}

pub struct ChunkJob {
    shared: Arc<MapShared>,
    index: usize,
    func: Py<PyAny>,
    items: Vec<Py<PyAny>>,
    /// Items are argument tuples (several iterables) rather than single arguments.
    star: bool,
}

impl ChunkJob {
    pub fn len(&self) -> usize {
        self.items.len()
    }
}

pub fn run_chunk(py: Python<'_>, counters: &Counters, job: ChunkJob) {
    let n = job.items.len();
    if job.shared.cancelled.load(Ordering::Relaxed) {
        Counters::add(&counters.cancelled, n as u64);
        return;
    }
    let func = job.func.bind(py);
    let mut out = Vec::with_capacity(n);
    let (mut ok, mut failed) = (0u64, 0u64);
    counters.running.fetch_add(1, Ordering::Relaxed);
    for item in job.items {
        if job.shared.cancelled.load(Ordering::Relaxed) {
            break;
        }
        let item = item.into_bound(py);
        let r = if job.star {
            func.call1(item.cast_into::<PyTuple>().expect("map args are tuples"))
        } else {
            func.call1((item,))
        };
        match r {
            Ok(v) => {
                ok += 1;
                out.push(Ok(v.unbind()));
            }
            Err(e) => {
                failed += 1;
                out.push(Err(e));
            }
        }
    }
    counters.running.fetch_sub(1, Ordering::Relaxed);
    Counters::add(&counters.completed, ok);
    Counters::add(&counters.failed, failed);
    Counters::add(&counters.cancelled, n as u64 - ok - failed);
    // The iterator may be gone; its results are then simply dropped (attached, here).
    let _ = job.shared.tx.send((job.index, out));
}

pub fn cancel_chunk(counters: &Counters, job: ChunkJob) {
    Counters::add(&counters.cancelled, job.items.len() as u64);
    job.shared.cancelled.store(true, Ordering::Relaxed);
    let _ = job.shared.tx.send((job.index, Vec::new()));
}

pub fn fail_chunk(counters: &Counters, job: ChunkJob, make: impl Fn() -> PyErr) {
    Counters::add(&counters.failed, job.items.len() as u64);
    let out = job.items.iter().map(|_| Err(make())).collect();
    let _ = job.shared.tx.send((job.index, out));
}

struct Source {
    iter: Py<PyIterator>,
    buffersize: usize,
}

#[pyclass(module = "chanpool", name = "MapIterator")]
pub struct MapIterator {
    shared: Arc<MapShared>,
    rx: Receiver<(usize, Vec<ItemResult>)>,
    pending: HashMap<usize, Vec<ItemResult>>,
    current: std::vec::IntoIter<ItemResult>,
    next_chunk: usize,
    submitted: usize,
    /// Lazy input (buffersize given); None once exhausted or in eager mode.
    source: Option<Source>,
    func: Py<PyAny>,
    star: bool,
    chunksize: usize,
    core: Weak<CorePool>,
    ext: Arc<Ext>,
    deadline: Option<Instant>,
    done: bool,
}

#[allow(clippy::too_many_arguments)]
pub fn start(
    py: Python<'_>,
    core: &Arc<CorePool>,
    ext: &Arc<Ext>,
    func: &Bound<'_, PyAny>,
    iterables: &Bound<'_, PyTuple>,
    deadline: Option<Instant>,
    chunksize: usize,
    buffersize: Option<usize>,
) -> PyResult<MapIterator> {
    let star = iterables.len() != 1;
    let iter = if star {
        py.import("builtins")?
            .getattr("zip")?
            .call1(iterables)?
            .try_iter()?
    } else {
        iterables.get_item(0)?.try_iter()?
    };
    let (tx, rx) = unbounded();
    let mut it = MapIterator {
        shared: Arc::new(MapShared {
            cancelled: AtomicBool::new(false),
            tx,
        }),
        rx,
        pending: HashMap::new(),
        current: Vec::new().into_iter(),
        next_chunk: 0,
        submitted: 0,
        source: None,
        func: func.clone().unbind(),
        star,
        chunksize,
        core: Arc::downgrade(core),
        ext: Arc::clone(ext),
        deadline,
        done: false,
    };
    match buffersize {
        None => {
            // Eager, like Executor.map: everything is submitted before map() returns.
            while it.submit_chunk(py, &iter)? {}
        }
        Some(b) => {
            for _ in 0..b {
                if !it.submit_chunk(py, &iter)? {
                    return Ok(it);
                }
            }
            it.source = Some(Source {
                iter: iter.unbind(),
                buffersize: b,
            });
        }
    }
    Ok(it)
}

impl MapIterator {
    /// Reads up to chunksize items and queues them. False when the input is exhausted.
    fn submit_chunk(&mut self, py: Python<'_>, iter: &Bound<'_, PyIterator>) -> PyResult<bool> {
        let mut items = Vec::with_capacity(self.chunksize.min(1024));
        for item in iter.clone() {
            items.push(item?.unbind());
            if items.len() == self.chunksize {
                break;
            }
        }
        if items.is_empty() {
            return Ok(false);
        }
        let Some(core) = self.core.upgrade() else {
            return Ok(false);
        };
        let job = ChunkJob {
            shared: Arc::clone(&self.shared),
            index: self.submitted,
            func: self.func.clone_ref(py),
            items,
            star: self.star,
        };
        enqueue(py, &core, &self.ext, Task::Chunk(job))?;
        self.submitted += 1;
        Ok(true)
    }

    fn refill(&mut self, py: Python<'_>) -> PyResult<()> {
        let Some(src) = self.source.as_ref() else {
            return Ok(());
        };
        let iter = src.iter.bind(py).clone();
        let want = self.next_chunk + src.buffersize;
        while self.submitted < want {
            if !self.submit_chunk(py, &iter)? {
                self.source = None;
                break;
            }
        }
        Ok(())
    }

    /// Receives results until chunk `want` is in; detached, in slices, honouring the deadline.
    fn wait_for(&mut self, py: Python<'_>, want: usize) -> PyResult<()> {
        loop {
            while let Ok((i, v)) = self.rx.try_recv() {
                self.pending.insert(i, v);
            }
            if self.pending.contains_key(&want) {
                return Ok(());
            }
            let Some(slice) = runtime::next_slice(self.deadline) else {
                return Err(errors::timeout_error(py));
            };
            let rx = &self.rx;
            match py.detach(|| rx.recv_timeout(slice)) {
                Ok((i, v)) => {
                    self.pending.insert(i, v);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(pyo3::exceptions::PyRuntimeError::new_err("map results lost"))
                }
            }
            py.check_signals()?;
        }
    }

    fn step(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        loop {
            if let Some(r) = self.current.next() {
                return r.map(Some);
            }
            if self.next_chunk >= self.submitted {
                self.refill(py)?;
                if self.next_chunk >= self.submitted {
                    return Ok(None);
                }
            }
            let want = self.next_chunk;
            self.wait_for(py, want)?;
            let chunk = self.pending.remove(&want).unwrap_or_default();
            if chunk.is_empty() {
                // Cancelled by shutdown(cancel_futures=True).
                return Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "map() work was cancelled by shutdown(cancel_futures=True)",
                ));
            }
            self.current = chunk.into_iter();
            self.next_chunk += 1;
            self.refill(py)?;
        }
    }

    fn finish(&mut self) {
        self.done = true;
        self.shared.cancelled.store(true, Ordering::Relaxed);
        self.source = None;
        self.pending.clear();
        self.current = Vec::new().into_iter();
    }
}

#[pymethods]
impl MapIterator {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        if self.done {
            return Ok(None);
        }
        match self.step(py) {
            Ok(Some(v)) => Ok(Some(v)),
            Ok(None) => {
                self.finish();
                Ok(None)
            }
            Err(e) => {
                // Like the generator's `finally`: what has not started is cancelled.
                self.finish();
                Err(e)
            }
        }
    }

    /// Stops the iteration and cancels the items that have not started.
    fn close(&mut self) {
        self.finish();
    }

    fn __traverse__(&self, visit: pyo3::gc::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.func)?;
        if let Some(s) = &self.source {
            visit.call(&s.iter)?;
        }
        Ok(())
    }
}

impl Drop for MapIterator {
    fn drop(&mut self) {
        self.shared.cancelled.store(true, Ordering::Relaxed);
    }
}
