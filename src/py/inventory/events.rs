//! The inventory manager's threshold events: queued while the stock is locked (so those about
//! one product keep their order) and published on the bus by one thread of their own, so a
//! subscriber whose queue is full (overflow="block") slows only event delivery, never the
//! operations or their futures.

use crate::core::inventory::{Event, EventBooks, EventKind};
use crate::core::pool::{Pool, Worker};
use crate::core::sync::RwLock;
use crate::py::runtime::{self, Stoppable};
use crate::py::{errors, worker};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};

pub(super) struct EvJob {
    product: String,
    kind: EventKind,
    stock: i64,
}

pub(super) type EvPool = Pool<EvJob>;

/// The event side, shared with its publisher thread.
pub(super) struct Events {
    pub(super) bus: RwLock<Option<Py<PyAny>>>,
    pub(super) prefix: String,
    threshold: Option<i64>,
    pool: OnceLock<Weak<EvPool>>,
    /// Exit or a closed bus: pending events are counted as dropped instead of published.
    discard: AtomicBool,
    pub(super) books: EventBooks,
}

crate::py::gc::gc_fields!(Events { bus });

impl Events {
    /// The event side and its publisher pool (one thread, unbounded queue).
    pub(super) fn start(
        bus: Py<PyAny>,
        prefix: &str,
        threshold: Option<i64>,
    ) -> (Arc<Events>, Arc<EvPool>) {
        let ev = Arc::new(Events {
            bus: RwLock::new(Some(bus)),
            prefix: prefix.to_string(),
            threshold,
            pool: OnceLock::new(),
            discard: AtomicBool::new(false),
            books: EventBooks::default(),
        });
        let body_ev = Arc::clone(&ev);
        let pool = Pool::new(1, 0, "chanpool-ims-events".into(), move |w| {
            publisher_main(Arc::clone(&body_ev), w)
        });
        let _ = ev.pool.set(Arc::downgrade(&pool));
        (ev, pool)
    }

    /// Queues a crossing for the publisher; called with the product's shard locked, so it
    /// never waits (unbounded queue, closed only at exit or after the workers stopped).
    pub(super) fn emit(&self, pool: &Arc<EvPool>, e: Event<'_>) {
        EventBooks::add(&self.books.emitted, 1);
        let job = EvJob {
            product: e.product.to_owned(),
            kind: e.kind,
            stock: e.stock,
        };
        if pool.try_submit(job, 1).is_err() {
            EventBooks::add(&self.books.dropped, 1);
        }
    }

    fn publish(&self, py: Python<'_>, ev: EvJob) {
        let bus = self.bus.read().as_ref().map(|b| b.clone_ref(py));
        let Some(bus) = bus.filter(|_| !self.discard.load(Ordering::Acquire)) else {
            EventBooks::add(&self.books.dropped, 1);
            return;
        };
        let r = (|| -> PyResult<()> {
            let topic = format!("{}.{}.{}", self.prefix, ev.product, ev.kind.as_str());
            let data = PyDict::new(py);
            data.set_item(pyo3::intern!(py, "product"), &ev.product)?;
            data.set_item(pyo3::intern!(py, "event"), ev.kind.as_str())?;
            data.set_item(pyo3::intern!(py, "stock"), ev.stock)?;
            data.set_item(pyo3::intern!(py, "threshold"), self.threshold)?;
            bus.bind(py)
                .call_method1(pyo3::intern!(py, "publish"), (topic, data))?;
            Ok(())
        })();
        match r {
            Ok(()) => {
                EventBooks::add(&self.books.published, 1);
            }
            Err(e) => {
                EventBooks::add(&self.books.failed, 1);
                let closed = bus
                    .bind(py)
                    .getattr(pyo3::intern!(py, "closed"))
                    .and_then(|c| c.is_truthy())
                    .unwrap_or(false);
                if closed {
                    // Say it once; everything after this would fail the same way.
                    self.discard.store(true, Ordering::Release);
                    log::warn!(target: "chanpool", "InventoryManager: the PubSub is closed; stock events are dropped from now on");
                } else {
                    errors::log_exception(
                        py,
                        "InventoryManager: publishing a stock event failed",
                        e,
                    );
                }
            }
        }
    }

    /// Stops the publisher; pending events are dropped when `discard`, else published first.
    pub(super) fn stop(&self, py: Python<'_>, discard: bool) -> PyResult<()> {
        let Some(pool) = self.pool.get().and_then(Weak::upgrade) else {
            return Ok(());
        };
        if discard {
            self.discard.store(true, Ordering::Release);
        }
        pool.close();
        if discard {
            let left = pool.drain();
            EventBooks::add(&self.books.dropped, left.len() as u64);
        }
        worker::join(py, &pool)
    }
}

impl Stoppable for Events {
    fn stop_for_exit(&self, py: Python<'_>) {
        let _ = self.stop(py, true);
    }
}

fn publisher_main(ev: Arc<Events>, w: Worker<EvJob>) {
    if runtime::exiting() {
        return;
    }
    worker::serve(&w, |py, job| ev.publish(py, job));
}
