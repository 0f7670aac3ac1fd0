//! Completing the inventory manager's futures, off the workers, in two phases.
//!
//! Operation workers never attach to the interpreter: they hand their finished operations over
//! in batches to one completer thread, which attaches once and completes batch after batch: it
//! sets each future's outcome and wakes whoever waits on it, and runs no user code. The futures
//! that have done-callbacks then go to callback threads. So a callback that waits for another
//! operation never holds up the workers that run it, nor the completer that completes it; a
//! callback thread stuck in such a callback is noticed (callbacks waiting, none taken) and
//! another one starts, up to CALLBACK_THREADS.

use crate::core::inventory::{self, Books, StockError};
use crate::core::pool::{Pool, Rejected, Worker};
use crate::py::{errors, worker};
use pyo3::exceptions::{PyOverflowError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// Callback threads at most: one runs the callbacks; more start only while others are stuck.
pub(super) const CALLBACK_THREADS: usize = 32;
/// Batches waiting for the completer before the workers wait (backpressure that reaches a
/// bounded queue_size while completion lags).
pub(super) const BACKLOG: usize = 64;

/// A finished operation whose future is still to be completed.
pub(super) type Done = inventory::Done<Py<PyAny>>;

pub(super) type CompPool = Pool<Vec<Done>>;
type CbPool = Pool<Vec<Py<PyAny>>>;

thread_local! {
    /// On a callback thread: the futures of its batch whose callbacks have not run yet. A
    /// callback that calls shutdown(wait=True) runs the rest itself instead of waiting for its
    /// own thread.
    static CURRENT: RefCell<VecDeque<Py<PyAny>>> = const { RefCell::new(VecDeque::new()) };
    /// On a callback thread: the address of the Completion it works for.
    static CALLBACKS_OF: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// On the completer: the same (its Python code can in principle reach shutdown, through a
    /// finalizer run by the GC).
    static COMPLETER_OF: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// What completion needs from Python, looked up once so that completers never import.
struct Api {
    insufficient: Py<PyType>,
}

static API: PyOnceLock<Api> = PyOnceLock::new();

fn api(py: Python<'_>) -> PyResult<&Api> {
    API.get_or_try_init(py, || {
        let inventory = py.import("chanpool.inventory")?;
        Ok(Api {
            insufficient: inventory
                .getattr("InsufficientStock")?
                .cast_into::<PyType>()?
                .unbind(),
        })
    })
}

/// Imports what completion needs, on the constructing thread.
pub(super) fn prepare(py: Python<'_>) -> PyResult<()> {
    api(py).map(|_| ())
}

/// The completer's books and the callback threads, shared with the manager.
pub(super) struct Completion {
    pub(super) books: Books,
    pub(super) callbacks: Arc<CbPool>,
}

impl Completion {
    /// The books, their callback threads (lazy: a second one starts only when the first is
    /// stuck) and the completer pool (one thread, bounded backlog).
    pub(super) fn start(stack_size: usize, starve_after: Duration) -> (Arc<Self>, Arc<CompPool>) {
        let books = Arc::new_cyclic(|me: &std::sync::Weak<Completion>| {
            // The callback threads know their Completion by address only: a strong reference
            // from them would keep it (and so their own pool) alive forever.
            let owner = me.as_ptr() as usize;
            let callbacks = Pool::new(CALLBACK_THREADS, 0, "chanpool-ims-cb".into(), move |w| {
                callbacks_main(owner, w)
            });
            callbacks.set_lazy(1, starve_after);
            callbacks.set_stack_size(stack_size);
            Completion {
                books: Books::default(),
                callbacks,
            }
        });
        let body = Arc::clone(&books);
        let done = Pool::new(1, BACKLOG, "chanpool-ims-done".into(), move |w| {
            completer_main(&body, w)
        });
        done.set_stack_size(stack_size);
        (books, done)
    }

    /// Whether the calling thread is one of this manager's callback threads.
    pub(super) fn on_callback_thread(&self) -> bool {
        CALLBACKS_OF.with(|c| c.get()) == self as *const Completion as usize
    }

    /// Whether the calling thread is this manager's completer.
    pub(super) fn on_completer_thread(&self) -> bool {
        COMPLETER_OF.with(|c| c.get()) == self as *const Completion as usize
    }

    /// Completes a batch; the futures with callbacks go to the callback threads (or run here
    /// once those have stopped).
    pub(super) fn complete(&self, py: Python<'_>, batch: Vec<Done>) {
        let api = match api(py) {
            Ok(api) => api,
            Err(e) => return errors::log_exception(py, "InventoryManager: completion failed", e),
        };
        let mut later = Vec::new();
        for d in batch {
            let fut = d.token.clone_ref(py);
            if self.finish(py, api, d) {
                later.push(fut);
            }
        }
        if later.is_empty() {
            return;
        }
        let n = later.len() as u64;
        if let Err(Rejected::Closed(futs) | Rejected::Full(futs)) =
            self.callbacks.try_submit(later, n)
        {
            run_callbacks(py, futs);
        }
    }

    /// Sets one future's outcome; true when it has callbacks to run.
    fn finish(&self, py: Python<'_>, api: &Api, d: Done) -> bool {
        // Counted first: whoever sees the future done also sees it counted.
        self.books.count(&d.outcome);
        let outcome = match d.outcome {
            Ok(stock) => Ok(stock.into_pyobject(py).unwrap().into_any()),
            Err(StockError::Insufficient {
                requested,
                available,
            }) => {
                let made = api
                    .insufficient
                    .bind(py)
                    .call1((&d.product, requested, available));
                Err(made.unwrap_or_else(|e| e.into_value(py).into_bound(py).into_any()))
            }
            Err(StockError::Overflow { stock, requested }) => {
                Err(PyOverflowError::new_err(format!(
                    "adding {requested} to {:?} (stock {stock}) would exceed the maximum stock \
                     of {}",
                    d.product,
                    i64::MAX
                ))
                .into_value(py)
                .into_bound(py)
                .into_any())
            }
            Err(e @ StockError::InvalidQuantity(_)) => Err(PyValueError::new_err(e.to_string())
                .into_value(py)
                .into_bound(py)
                .into_any()),
        };
        match crate::py::future::settle(d.token.bind(py), outcome) {
            Ok(callbacks) => callbacks,
            Err(e) => {
                errors::log_exception(py, "InventoryManager: could not complete a future", e);
                false
            }
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        // The completer is gone: no more callbacks come; the threads run what they have.
        self.callbacks.close();
    }
}

/// Runs the futures' done-callbacks (Future._invoke_callbacks logs what they raise), then
/// whatever a nested call left of the current batch. No borrow is held while they run.
pub(super) fn run_callbacks(py: Python<'_>, futs: Vec<Py<PyAny>>) {
    CURRENT.with(|c| c.borrow_mut().extend(futs));
    while let Some(f) = CURRENT.with(|c| c.borrow_mut().pop_front()) {
        if let Err(e) = f
            .bind(py)
            .call_method0(pyo3::intern!(py, "_invoke_callbacks"))
        {
            errors::log_exception(py, "InventoryManager: running done-callbacks failed", e);
        }
    }
}

fn completer_main(c: &Arc<Completion>, w: Worker<Vec<Done>>) {
    COMPLETER_OF.with(|me| me.set(Arc::as_ptr(c) as usize));
    c.books.batch();
    worker::attached(&w, |py, w| {
        while let Some(batch) = worker::next_job_counted(py, w, || c.books.batch()) {
            c.complete(py, batch);
        }
    });
}

fn callbacks_main(owner: usize, w: Worker<Vec<Py<PyAny>>>) {
    CALLBACKS_OF.with(|c| c.set(owner));
    worker::serve(&w, run_callbacks);
}
