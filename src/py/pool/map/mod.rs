//! WorkerPool.map: ordered fan-in of results without a Future per item.
//!
//! Items are cut into chunks of `chunksize`, the unit of parallel work. A worker runs every item
//! of a chunk (an exception stays attached to its own item, as with ThreadPoolExecutor) and
//! publishes each outcome to its chunk's run in this map's inbox as soon as the item is done;
//! the iterator swaps out the run of the chunk it is in, taking its outcomes in order, many at
//! a time, and sleeps only until that chunk gets an outcome.
//!
//! Eager maps (no buffersize) queue at most `max_workers` runner jobs instead of one job per
//! chunk: runners claim chunks from a shared cursor, so a chunk costs an atomic increment rather
//! than a queue round trip. Lazy maps queue one job per chunk as the input is read. Dropping a
//! started iterator or failing it, and shutdown(cancel_futures=True), make work that has not
//! started skip.
//!
//! map_unordered is the same machinery with one difference: every outcome is published to a
//! single run, so the iterator takes them in the order they completed.

mod work;

use super::task::{CorePool, Task};
use super::worker::{enqueue, Ext};
use crate::core::sync::Mutex;
use crate::core::wait::in_slices;
use crate::py::errors;
use crate::py::gc::{gc_fields, Traverse};
use crate::py::lifecycle::Born;
use crate::py::runtime;
use pyo3::prelude::*;
use pyo3::types::{PyIterator, PyTuple};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Weak};
use std::time::Instant;
use work::{ChunkJob, EagerWork, MapShared, Outcome, Run, Runner};

struct Source {
    iter: Py<PyIterator>,
    buffersize: usize,
}

gc_fields!(Source { iter });
gc_fields!(MapState {
    func,
    source,
    progress
});

/// The iterator WorkerPool.map returns. Like a generator, one thread at a time: a second
/// thread calling in while the first is inside gets a ValueError instead of waiting.
#[pyclass(module = "chanpool", name = "MapIterator", frozen)]
pub struct MapIterator {
    state: std::mem::ManuallyDrop<Mutex<MapState>>,
    /// In a fork()ed child the state (and its locks) belong to the parent's threads.
    born: Born,
}

pub struct MapState {
    shared: Arc<MapShared>,
    /// Outcomes of the current chunk from `next_item` on, taken from the inbox in one lock.
    ready: Run,
    next_item: usize,
    submitted_items: usize,
    submitted_chunks: usize,
    /// Lazy input (buffersize given); None once exhausted, and always in eager mode.
    source: Option<Source>,
    func: Py<PyAny>,
    star: bool,
    chunksize: usize,
    core: Weak<CorePool>,
    deadline: Option<Instant>,
    done: bool,
    /// Like a generator's `finally`, cancelling only happens once iteration has begun: a map
    /// whose results are never read still runs every item (CPython #11777).
    started: bool,
    /// progress(n): called by the iterating thread, once per batch taken from the inbox, with
    /// the number of items that ran since its last call (never by a worker).
    progress: Option<Py<PyAny>>,
    reported: usize,
}

/// Starts `func` over `iterables` (zipped when several): eager (every item read and queued
/// now) or, with `buffersize`, lazy.
#[allow(clippy::too_many_arguments)]
pub fn start(
    py: Python<'_>,
    core: &Arc<CorePool>,
    ext: &Arc<Ext>,
    func: &Bound<'_, PyAny>,
    iterables: &Bound<'_, PyTuple>,
    deadline: Option<Instant>,
    chunksize: Option<usize>,
    buffersize: Option<usize>,
    unordered: bool,
    progress: Option<Py<PyAny>>,
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
    let mut it = MapState {
        shared: Arc::new(MapShared::new(Arc::clone(ext), unordered)),
        ready: Run::new(),
        next_item: 0,
        submitted_items: 0,
        submitted_chunks: 0,
        source: None,
        func: func.clone().unbind(),
        star,
        // Set from the input's length in eager mode; a lazy map reads one item per chunk.
        chunksize: chunksize.unwrap_or(1),
        core: Arc::downgrade(core),
        deadline,
        done: false,
        started: false,
        progress,
        reported: 0,
    };
    match buffersize {
        None => it.start_eager(py, core, iter, chunksize)?,
        Some(b) => {
            let mut more = true;
            for _ in 0..b {
                more = it.submit_chunk(py, &iter)?;
                if !more {
                    break;
                }
            }
            if more {
                it.source = Some(Source {
                    iter: iter.unbind(),
                    buffersize: b,
                });
            }
        }
    }
    Ok(MapIterator {
        state: std::mem::ManuallyDrop::new(Mutex::new(it)),
        born: Born::now(),
    })
}

/// multiprocessing's rule: about four chunks per worker, so per-chunk costs vanish while the
/// workers still share the input evenly (results are still published item by item).
fn auto_chunksize(n_items: usize, workers: usize) -> usize {
    n_items.div_ceil(workers.max(1).saturating_mul(4)).max(1)
}

impl MapState {
    /// Like Executor.map: all input is read and queued before map() returns.
    fn start_eager(
        &mut self,
        py: Python<'_>,
        core: &Arc<CorePool>,
        iter: Bound<'_, PyIterator>,
        chunksize: Option<usize>,
    ) -> PyResult<()> {
        let mut items = Vec::new();
        for item in iter {
            items.push(item?.unbind());
        }
        let n_items = items.len();
        if chunksize.is_none() {
            self.chunksize = auto_chunksize(n_items, core.max_workers());
        }
        let n_chunks = n_items.div_ceil(self.chunksize);
        if n_chunks == 0 {
            return Ok(());
        }
        let runners = n_chunks.min(core.max_workers());
        let work = Arc::new(EagerWork {
            shared: Arc::clone(&self.shared),
            func: self.func.clone_ref(py),
            items,
            star: self.star,
            chunksize: self.chunksize,
            n_chunks,
            cursor: AtomicUsize::new(0),
            runners: AtomicUsize::new(runners),
        });
        self.submitted_items = n_items;
        self.submitted_chunks = n_chunks;
        for r in 0..runners {
            let weight = if r == 0 { n_items as u64 } else { 0 };
            let task = Task::Batch(Box::new(Runner(Arc::clone(&work))));
            if let Err(e) = enqueue(py, core, self.shared.ext(), task, weight) {
                // Runners that were never queued must still be accounted for.
                for _ in r..runners {
                    work.runner_exit();
                }
                self.finish();
                return Err(e);
            }
        }
        Ok(())
    }

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
        // Like 3.14's map, which holds the executor weakly: no executor, no more submissions.
        let Some(core) = self.core.upgrade() else {
            return Ok(false);
        };
        let n = items.len();
        let job = ChunkJob {
            shared: Arc::clone(&self.shared),
            chunk: self.submitted_chunks,
            func: self.func.clone_ref(py),
            items,
            star: self.star,
        };
        let task = Task::Batch(Box::new(job));
        enqueue(py, &core, self.shared.ext(), task, n as u64)?;
        self.submitted_items += n;
        self.submitted_chunks += 1;
        Ok(true)
    }

    /// Keeps `buffersize` chunks ahead of the one being consumed (3.14's buffersize rule).
    fn refill(&mut self, py: Python<'_>) -> PyResult<()> {
        let Some(src) = self.source.as_ref() else {
            return Ok(());
        };
        let iter = src.iter.bind(py).clone();
        let want = self.next_item / self.chunksize + 1 + src.buffersize;
        while self.submitted_chunks < want {
            if !self.submit_chunk(py, &iter)? {
                self.source = None;
                break;
            }
        }
        Ok(())
    }

    /// Waits until the next item's outcome is in; detached, in slices, honouring the deadline.
    fn wait_next(&mut self, py: Python<'_>) -> PyResult<Outcome> {
        // Every chunk but the last holds `chunksize` items, so this is the next item's chunk
        // (for map_unordered, the one completion-order run).
        let chunk = self.shared.run_of(self.next_item / self.chunksize);
        loop {
            if let Some(o) = self.ready.pop_front() {
                self.next_item += 1;
                return Ok(o);
            }
            let (runners_done, ran) = self.shared.take(chunk, &mut self.ready);
            self.report(py, ran)?;
            if !self.ready.is_empty() {
                continue;
            }
            if runners_done {
                // Every runner stopped before reaching this item.
                return Ok(Outcome::Cancelled);
            }
            let (shared, deadline) = (&self.shared, self.deadline);
            let woke = runtime::acquire_detached(py, |hook| {
                in_slices(deadline, hook, |slice| {
                    shared.wait(chunk, slice).then_some(())
                })
            })?;
            if !woke {
                return Err(errors::timeout_error(py));
            }
        }
    }

    /// Tells the progress hook how many more items ran; its exception ends the map.
    fn report(&mut self, py: Python<'_>, ran: usize) -> PyResult<()> {
        if ran > self.reported {
            if let Some(hook) = &self.progress {
                let delta = ran - self.reported;
                self.reported = ran;
                hook.bind(py).call1((delta,))?;
            }
        }
        Ok(())
    }

    fn step(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.refill(py)?;
        if self.next_item >= self.submitted_items {
            return Ok(None);
        }
        match self.wait_next(py)? {
            Outcome::Value(v) => Ok(Some(v)),
            Outcome::Error(e) => Err(*e),
            Outcome::Cancelled => Err(match self.shared.ext().broken() {
                Some(msg) => errors::broken_thread_pool(py, &msg),
                None => errors::cancelled_error(py),
            }),
        }
    }

    fn finish(&mut self) {
        self.done = true;
        if self.started {
            self.shared.cancel();
        }
        self.source = None;
        self.ready.clear();
        drop(self.shared.close());
    }
}

impl MapState {
    fn next(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        if self.done {
            return Ok(None);
        }
        self.started = true;
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
}

impl MapIterator {
    /// The state, for the one thread inside; never waits for it while attached.
    fn enter(&self) -> PyResult<crate::core::sync::MutexGuard<'_, MapState>> {
        self.born.check("map iterator")?;
        self.state
            .try_lock()
            .ok_or_else(|| pyo3::exceptions::PyValueError::new_err("MapIterator already executing"))
    }
}

#[pymethods]
impl MapIterator {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.enter()?.next(py)
    }

    /// Stops the iteration and cancels the items that have not started.
    fn close(&self) -> PyResult<()> {
        self.enter()?.finish();
        Ok(())
    }

    fn __traverse__(&self, visit: pyo3::gc::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        if self.born.inherited() {
            return Ok(());
        }
        self.state.traverse(&visit)
    }
}

impl Drop for MapIterator {
    fn drop(&mut self) {
        if !self.born.inherited() {
            // SAFETY: dropped exactly once, here, and never used after.
            unsafe { std::mem::ManuallyDrop::drop(&mut self.state) }
        }
        // Otherwise created before fork(): its locks may be held by the parent's threads, so
        // the state is leaked rather than touched.
    }
}

impl Drop for MapState {
    fn drop(&mut self) {
        if self.started {
            self.shared.cancel();
        }
        drop(self.shared.close());
    }
}
