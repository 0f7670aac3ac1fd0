//! InventoryManager: the stock table on a native worker pool.
//!
//! Workers run operations without ever attaching to the interpreter and hand finished ones
//! over in batches to a completer thread ([`complete`]), which attaches once and completes
//! batch after batch, so 100,000 futures take a handful of GIL acquisitions; done-callbacks run
//! on callback threads, never on (or in the way of) the workers or the completer. Threshold
//! events go to their own publisher ([`events`]).

mod complete;
mod events;
mod work;

use crate::core::inventory::{Books, Inventory, Kind, Op};
use crate::core::pool::{Pool, Rejected};
use crate::py::args::{Count, Truthy};
use crate::py::gc::{self, gc_fields, Traverse};
use crate::py::lifecycle::{self, stats_dict, Born};
use crate::py::runtime::{self, Stoppable};
use crate::py::{future, worker};
use complete::Completion;
use events::Events;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use pyo3::PyTraverseError;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use work::{worker_main, OpPool, Shared};

fn closed_error() -> PyErr {
    if runtime::exiting() {
        PyRuntimeError::new_err(
            "cannot schedule new inventory operations after interpreter shutdown",
        )
    } else {
        PyRuntimeError::new_err("cannot schedule new inventory operations after shutdown")
    }
}

/// An operation's product argument (checked by `product`) and what the call returns.
type Arg<'py> = Bound<'py, PyAny>;
type Fut = PyResult<Py<PyAny>>;

/// The shortest wait for a callback thread before another one starts.
const MIN_STARVE: Duration = Duration::from_millis(5);

/// A product becomes one token of an event topic, so with a bus it must be one.
fn topic_token_error(p: &str) -> Option<&'static str> {
    if p.chars().any(char::is_whitespace) {
        Some("whitespace")
    } else if p.contains('.') {
        Some("'.'")
    } else if p.contains('*') || p.contains('>') {
        Some("a wildcard ('*' or '>')")
    } else {
        None
    }
}

/// Stock kept in Rust and changed by a native worker pool; every operation returns a future.
#[pyclass(
    module = "chanpool.inventory",
    name = "InventoryManager",
    subclass,
    frozen
)]
pub struct InventoryManager {
    core: Arc<OpPool>,
    shared: Arc<Shared>,
    born: Born,
}

gc_fields!(InventoryManager { shared });

impl InventoryManager {
    fn check(&self) -> PyResult<()> {
        self.born.check("InventoryManager")?;
        if self.core.is_closed() || runtime::exiting() {
            return Err(closed_error());
        }
        Ok(())
    }

    fn product(&self, product: &Bound<'_, PyAny>) -> PyResult<String> {
        let s = product.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!(
                "product must be a str, got {}",
                product
                    .get_type()
                    .name()
                    .map_or_else(|_| "?".to_string(), |n| n.to_string())
            ))
        })?;
        let p = s.to_cow()?;
        if p.is_empty() {
            return Err(PyValueError::new_err("product must be a non-empty str"));
        }
        if self.shared.events.is_some() {
            if let Some(bad) = topic_token_error(&p) {
                return Err(PyValueError::new_err(format!(
                    "product {p:?} contains {bad}: with a bus, product names become one token \
                     of the event topic"
                )));
            }
        }
        Ok(p.into_owned())
    }

    fn submit(
        &self,
        py: Python<'_>,
        kind: Kind,
        product: &Bound<'_, PyAny>,
        qty: i64,
    ) -> PyResult<Py<PyAny>> {
        let product = self.product(product)?;
        self.check()?;
        let fut = future::new_future(py)?;
        // Running from the start: an accepted operation cannot be cancelled, so a future's
        // outcome always says whether the stock changed.
        future::start(&fut)?;
        let fut = fut.unbind();
        let job = Op {
            kind,
            product,
            qty,
            token: fut.clone_ref(py),
        };
        let job = match self.core.try_submit(job, 1) {
            Ok(()) => return Ok(fut),
            Err(Rejected::Closed(_)) => return Err(closed_error()),
            Err(Rejected::Full(j)) => j,
        };
        match worker::submit_waiting(py, &self.core, job, 1) {
            Ok(()) => {
                if self.core.is_closed() {
                    // Shutdown may have finished before our job got in.
                    self.shared.run_leftovers(py, &self.core);
                }
                Ok(fut)
            }
            Err(None) => Err(closed_error()),
            Err(Some(e)) => Err(e),
        }
    }
}

#[pymethods]
impl InventoryManager {
    #[new]
    #[pyo3(
        signature = (workers = Count::of(10), queue_size = Count::of(0), *, bus = None, low_threshold = None, topic_prefix = "inventory"),
        text_signature = "(workers=10, queue_size=0, *, bus=None, low_threshold=None, topic_prefix='inventory')"
    )]
    fn new(
        py: Python<'_>,
        workers: Count,
        queue_size: Count,
        bus: Option<Bound<'_, PyAny>>,
        low_threshold: Option<Count>,
        topic_prefix: &str,
    ) -> PyResult<Self> {
        let too_many = |what: &str| PyValueError::new_err(format!("{what} is too large"));
        let workers =
            usize::try_from(workers.at_least(1, "workers")?).map_err(|_| too_many("workers"))?;
        let queue_size = match queue_size.at_least(0, "queue_size") {
            Ok(q) => usize::try_from(q).map_err(|_| too_many("queue_size"))?,
            Err(_) if queue_size.below(0) => {
                return Err(PyValueError::new_err(
                    "queue_size must be >= 0 (0 means unbounded)",
                ))
            }
            Err(e) => return Err(e),
        };
        let bus = bus.filter(|b| !b.is_none());
        if let Some(b) = &bus {
            let ok = b
                .getattr(pyo3::intern!(py, "publish"))
                .map(|p| p.is_callable())
                .unwrap_or(false);
            if !ok {
                return Err(PyTypeError::new_err(format!(
                    "bus must be a chanpool.PubSub (something with publish(topic, data)), got {}",
                    b.get_type().name()?
                )));
            }
        }
        let low_threshold = match low_threshold {
            None => None,
            Some(t) => {
                let n = t.stock(0, "low_threshold")?;
                if bus.is_none() {
                    return Err(PyValueError::new_err(
                        "low_threshold needs a bus: low-stock events are published on it",
                    ));
                }
                Some(n)
            }
        };
        if bus.is_some() {
            crate::core::topic::validate_topic(topic_prefix)
                .map_err(|e| PyValueError::new_err(format!("topic_prefix: {}", e.0)))?;
        }
        if runtime::exiting() {
            return Err(closed_error());
        }
        // Resolved now so that completers never import.
        complete::prepare(py)?;

        let (events, ev_pool) = bus
            .map(|b| Events::start(b.unbind(), topic_prefix, low_threshold))
            .unzip();
        let (completion, done) = Completion::start(
            runtime::thread_stack_size(py),
            runtime::starve_after(py, MIN_STARVE),
        );
        let shared = Arc::new(Shared {
            inv: Inventory::new(low_threshold),
            events,
            ev_pool,
            core: OnceLock::new(),
            done,
            completion,
        });
        let body = Arc::clone(&shared);
        let core = Pool::new(workers, queue_size, "chanpool-ims".into(), move |w| {
            worker_main(Arc::clone(&body), w)
        });
        let _ = shared.core.set(Arc::downgrade(&core));
        // Workers first: at exit they must stop before the publisher they feed.
        let stoppable: Arc<dyn Stoppable> = shared.clone();
        runtime::register(&stoppable);
        if let Some(ev) = &shared.events {
            let stoppable: Arc<dyn Stoppable> = ev.clone();
            runtime::register(&stoppable);
        }
        Ok(InventoryManager {
            core,
            shared,
            born: Born::now(),
        })
    }

    /// Adds qty units; the future's result is the new stock.
    fn add_stock(&self, py: Python<'_>, product: &Arg<'_>, qty: Count) -> Fut {
        self.submit(py, Kind::Add, product, qty.stock(1, "qty")?)
    }

    /// Removes qty units if that many are in stock; the future's result is the new stock, or
    /// it raises InsufficientStock and nothing changed.
    fn remove_stock(&self, py: Python<'_>, product: &Arg<'_>, qty: Count) -> Fut {
        self.submit(py, Kind::Remove, product, qty.stock(1, "qty")?)
    }

    /// The stock when the operation runs (0 for an unknown product).
    fn check_stock(&self, py: Python<'_>, product: &Arg<'_>) -> Fut {
        self.submit(py, Kind::Check, product, 0)
    }

    /// Every product's stock at one instant, read now on the calling thread.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.born.check("InventoryManager")?;
        let items = runtime::detach(py, || self.shared.inv.snapshot());
        let d = PyDict::new(py);
        for (k, v) in items {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// Counters: operations (submitted, completed, refused, overflowed, queued), how many
    /// times the workers attached to complete futures, and the event publisher's books.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.born.check("InventoryManager")?;
        let s = self.core.snapshot();
        let sh = &self.shared;
        let products = runtime::detach(py, || sh.inv.products());
        let books = &sh.completion.books;
        let none = Default::default();
        let ev = sh.events.as_ref().map_or(&none, |ev| &ev.books);
        stats_dict!(py, {
            "workers" => s.workers,
            "idle" => s.idle,
            "queued" => s.queued,
            "submitted" => s.submitted,
            "completed" => Books::get(&books.completed),
            "refused" => Books::get(&books.refused),
            "overflowed" => Books::get(&books.overflowed),
            "completion_batches" => Books::get(&books.batches),
            "callback_threads" => sh.completion.callbacks.snapshot().workers,
            "products" => products,
            "events_emitted" => Books::get(&ev.emitted),
            "events_published" => Books::get(&ev.published),
            "events_failed" => Books::get(&ev.failed),
            "events_dropped" => Books::get(&ev.dropped),
            "events_pending" => ev.pending(),
            "max_workers" => self.core.max_workers(),
            "queue_size" => self.core.capacity(),
        })
    }

    /// Stops accepting operations. Queued ones still run; with wait, returns once they have
    /// all completed and their events have been published.
    #[pyo3(signature = (wait = Truthy(true)), text_signature = "($self, wait=True)")]
    fn shutdown(&self, py: Python<'_>, wait: Truthy) -> PyResult<()> {
        if self.born.inherited() {
            return Ok(());
        }
        if wait.0 {
            self.shared.stop(py, false)
        } else {
            self.core.close();
            Ok(())
        }
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
        self.shutdown(py, Truthy(true))?;
        Ok(false)
    }

    #[getter]
    fn bus(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        let ev = self.shared.events.as_ref()?;
        let b = ev.bus.read().as_ref().map(|b| b.clone_ref(py));
        b
    }

    #[getter]
    fn low_threshold(&self) -> Option<i64> {
        self.shared.inv.low_threshold()
    }

    #[getter]
    fn topic_prefix(&self) -> Option<&str> {
        self.shared.events.as_ref().map(|ev| ev.prefix.as_str())
    }

    #[getter]
    fn max_workers(&self) -> usize {
        self.core.max_workers()
    }

    #[getter]
    fn queue_size(&self) -> usize {
        self.core.capacity()
    }

    #[getter]
    fn closed(&self) -> bool {
        self.core.is_closed()
    }

    fn __repr__(&self) -> String {
        let s = self.core.snapshot();
        format!(
            "<chanpool.inventory.InventoryManager workers={} queue_size={} queued={}{}>",
            self.core.max_workers(),
            self.core.capacity(),
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
        if let Some(ev) = &self.shared.events {
            gc::clear(&[&ev.bus]);
        }
    }
}

impl Drop for InventoryManager {
    fn drop(&mut self) {
        if self.born.inherited() {
            // Created before fork(): its threads and locks belong to the parent.
            lifecycle::leak(&self.core);
            lifecycle::leak(&self.shared);
            return;
        }
        // Like an unreferenced executor: queued operations still run, then workers exit.
        self.core.close();
    }
}
