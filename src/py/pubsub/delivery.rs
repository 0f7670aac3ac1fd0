//! The bus's shared state: routing a publish into mailboxes (with the overflow policies), ending
//! subscriptions, and shutting the bus down.

use super::message::Message;
use super::{closed_error, now, Dispatch, Sub, IN_DISPATCH};
use crate::core::broker::Broker;
use crate::core::mailbox::{Overflow, Push};
use crate::core::sync::RwLock;
use crate::core::topic;
use crate::py::errors;
use crate::py::ratelimit::TokenBucket;
use crate::py::runtime::{self, SLICE};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyString;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

#[derive(Default)]
pub(super) struct Handlers {
    pub(super) handler: Option<Py<PyAny>>,
    pub(super) on_error: Option<Py<PyAny>>,
    /// rate_limit: each handler call first takes a token. Holds no Python references.
    pub(super) rate: Option<Py<TokenBucket>>,
}

pub struct Extra {
    pub(super) handlers: RwLock<Handlers>,
    pub(super) bus: Weak<BusInner>,
    pub(super) totals: Arc<Totals>,
}

/// The bus's running totals: kept apart from the subscriptions so that they survive
/// unsubscribe() and close().
#[derive(Default)]
pub struct Totals {
    pub(super) delivered: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) errors: AtomicU64,
}

impl Sub {
    pub(super) fn count_delivered(&self) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.extra.totals.delivered.fetch_add(1, Ordering::Relaxed);
    }

    /// For drops the mailbox counted itself (overflow policies).
    pub(super) fn count_bus_dropped(&self, n: u64) {
        self.extra.totals.dropped.fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn count_dropped(&self, n: u64) {
        self.mailbox.dropped.fetch_add(n, Ordering::Relaxed);
        self.count_bus_dropped(n);
    }

    pub(super) fn count_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.extra.totals.errors.fetch_add(1, Ordering::Relaxed);
    }
}

pub struct BusInner {
    pub(super) broker: Broker<Py<Message>, Extra>,
    pub(super) dispatch: Arc<Dispatch>,
    pub(super) seq: AtomicU64,
    pub(super) published: AtomicU64,
    pub(super) discarded: AtomicU64,
    pub(super) totals: Arc<Totals>,
    pub(super) closed: AtomicBool,
}

impl BusInner {
    pub(super) fn schedule(&self, sub: &Arc<Sub>) {
        // The dispatch queue is unbounded: this never waits. A refusal means the bus is closing.
        let _ = self.dispatch.try_submit(Arc::clone(sub), 0);
    }

    /// Queues `msg` for `sub`; true if it was queued.
    pub(super) fn deliver(
        &self,
        py: Python<'_>,
        sub: &Arc<Sub>,
        msg: Py<Message>,
    ) -> PyResult<bool> {
        let mb = &sub.mailbox;
        let in_handler = IN_DISPATCH.with(Cell::get);
        let mut r = mb.push(msg);
        if let Push::Full(m) = r {
            r = match mb.overflow() {
                Overflow::Error => {
                    sub.count_dropped(1);
                    return Err(errors::queue_full(
                        py,
                        &format!(
                            "subscription {} is full ({} messages queued, overflow='error')",
                            sub.name(),
                            mb.capacity()
                        ),
                    ));
                }
                // Waiting here could mean waiting for ourselves (or for the thread we hold).
                _ if in_handler => mb.push_force(m),
                _ => {
                    let mut m = m;
                    loop {
                        match py.detach(|| mb.push_timeout(m, SLICE)) {
                            Push::Full(back) => {
                                m = back;
                                py.check_signals()?;
                                if self.closed.load(Ordering::Acquire) {
                                    return Err(closed_error());
                                }
                            }
                            other => break other,
                        }
                    }
                }
            };
        }
        Ok(match r {
            Push::Queued { schedule } => {
                if schedule {
                    self.schedule(sub);
                }
                true
            }
            Push::Replaced { schedule, dropped } => {
                sub.count_bus_dropped(1);
                if schedule {
                    self.schedule(sub);
                }
                drop(dropped);
                true
            }
            Push::Dropped(m) => {
                sub.count_bus_dropped(1);
                drop(m);
                false
            }
            Push::Closed(_) | Push::Full(_) => false,
        })
    }

    pub(super) fn publish(
        &self,
        py: Python<'_>,
        topic: &Bound<'_, PyString>,
        data: Py<PyAny>,
    ) -> PyResult<usize> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed_error());
        }
        let t = topic.to_cow()?;
        let t: &str = &t;
        topic::validate_topic(t).map_err(|e| PyValueError::new_err(e.0))?;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.published.fetch_add(1, Ordering::Relaxed);
        let route = self.broker.route(t);
        if route.is_empty() {
            return Ok(0);
        }
        let msg = Py::new(
            py,
            Message {
                topic: topic.clone().unbind(),
                data,
                seq,
                timestamp: now(),
            },
        )?;
        let mut n = 0;
        for sub in route.targets() {
            if self.deliver(py, &sub, msg.clone_ref(py))? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Ends a subscription: no more routing, queued messages discarded (and counted). A run
    /// delivering to it finds nothing more to take, so only the call in progress completes.
    pub(super) fn end(&self, sub: &Sub) {
        self.broker.unsubscribe(sub);
        sub.mailbox.close();
        let left = sub.mailbox.clear();
        sub.count_dropped(left.len() as u64);
        drop(left);
    }

    pub(super) fn shutdown(
        &self,
        py: Python<'_>,
        drain: bool,
        deadline: Option<std::time::Instant>,
    ) -> PyResult<bool> {
        let first = !self.closed.swap(true, Ordering::AcqRel);
        let mut complete = true;
        let subs = self.broker.subscriptions();
        if drain && first {
            for sub in subs.iter().filter(|s| s.is_active()) {
                if sub.extra.handlers.read().handler.is_none() {
                    continue; // pull subscriptions keep what is queued for their reader
                }
                loop {
                    let Some(slice) = runtime::next_slice(deadline) else {
                        complete = false;
                        break;
                    };
                    if py.detach(|| sub.mailbox.wait_idle(slice)) {
                        break;
                    }
                    py.check_signals()?;
                }
            }
        }
        // Close every mailbox before anything can run Python (dropping messages can): no
        // handler call starts after this point.
        for sub in &subs {
            self.broker.unsubscribe(sub);
            sub.mailbox.close();
        }
        let mut left = Vec::new();
        for sub in &subs {
            let pull = sub.extra.handlers.read().handler.is_none();
            if !(drain && pull) {
                let l = sub.mailbox.clear();
                self.discarded.fetch_add(l.len() as u64, Ordering::Relaxed);
                left.push(l);
            }
        }
        self.dispatch.close();
        drop(left);
        // Handler calls in progress finish; a deadline bounds the wait for them too.
        loop {
            let Some(slice) = runtime::next_slice(deadline) else {
                return Ok(false);
            };
            if py.detach(|| self.dispatch.join(Some(slice))) {
                break;
            }
            py.check_signals()?;
        }
        Ok(complete)
    }
}
