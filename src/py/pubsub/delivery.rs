//! The bus's shared state: routing a publish into mailboxes (with the overflow policies), ending
//! subscriptions, and shutting the bus down.

use super::message::Message;
use super::routes::{BusRoute, Routes};
use super::{closed_error, now, Dispatch, Sub, IN_DISPATCH};
use crate::core::broker::Broker;
use crate::core::mailbox::{Overflow, Push};
use crate::core::sync::RwLock;
use crate::core::topic;
use crate::py::errors;
use crate::py::fastcall;
use crate::py::ratelimit::TokenBucket;
use crate::py::runtime;
use pyo3::exceptions::{PyKeyboardInterrupt, PyValueError};
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
    /// An async handler's event loop (its consumer tasks run there).
    pub(super) aio_loop: Option<Py<PyAny>>,
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
    /// The publish counter: the next message's seq, so also how many were published (one
    /// atomic per publish for both).
    pub(super) seq: AtomicU64,
    /// Publishes that reached no subscription at all.
    pub(super) unrouted: AtomicU64,
    pub(super) discarded: AtomicU64,
    /// Messages queued while draining: a drain is over when a whole pass saw it unchanged.
    pub(super) pushes: AtomicU64,
    pub(super) totals: Arc<Totals>,
    /// No more publishes from outside (close() has begun).
    pub(super) closed: AtomicBool,
    /// close(drain=True) is delivering what is queued: handlers may still publish.
    pub(super) draining: AtomicBool,
    /// The publish fast path: routes by topic object.
    pub(super) routes: Routes,
}

/// What one delivery attempt did with a message.
pub(super) enum Offer {
    /// Queued (under drop_oldest perhaps in place of an older message).
    Queued,
    /// Dropped and counted: drop_newest, or the bus closed under the publish.
    Dropped,
    /// overflow="error" and full (counted as dropped).
    Full,
    /// The subscription has ended.
    Gone,
}

/// What one publish did, subscription by subscription.
#[derive(Default)]
pub(super) struct Tally {
    queued: usize,
    /// Subscriptions that have the message or counted it as dropped.
    reached: usize,
    /// Names of the overflow="error" subscriptions that were full.
    full: Vec<String>,
}

impl Tally {
    /// Records one offer; false if the subscription had ended (try another group member).
    #[inline(always)]
    pub(super) fn add(&mut self, o: Offer, sub: &Sub) -> bool {
        match o {
            Offer::Queued => self.queued += 1,
            Offer::Dropped => {}
            Offer::Full => self.full.push(sub.name()),
            Offer::Gone => return false,
        }
        self.reached += 1;
        true
    }
}

/// How many times a group whose members all left is looked up again before the message
/// counts as reaching nobody in it (each retry needs a member to leave meanwhile).
const GROUP_RETRIES: usize = 8;

impl BusInner {
    pub(super) fn schedule(&self, sub: &Arc<Sub>) {
        // The dispatch queue is unbounded: this never waits. A refusal means the bus is closing.
        let _ = self.dispatch.try_submit(Arc::clone(sub), 0);
    }

    /// Counts a queued message for a drain in progress. Read after the push: a push that a
    /// drain pass could miss comes after that pass began, so it sees `draining` (and only a
    /// drain needs the count: off the hot path otherwise).
    #[inline(always)]
    fn count_push(&self) {
        if self.draining.load(Ordering::SeqCst) {
            self.pushes.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Whether a publish is accepted: always while open; while draining, from handlers only.
    pub(super) fn accepting(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
            || (self.draining.load(Ordering::Acquire) && IN_DISPATCH.with(Cell::get))
    }

    /// Offers `msg` to `sub` under its overflow policy.
    #[inline(always)]
    fn offer(&self, py: Python<'_>, sub: &Arc<Sub>, msg: Py<Message>) -> PyResult<Offer> {
        let r = sub.mailbox.push(msg);
        if let Push::Queued { schedule } = r {
            // Holds nothing to drop: skip the drop glue on the hottest path.
            std::mem::forget(r);
            self.count_push();
            if schedule {
                self.schedule(sub);
            }
            return Ok(Offer::Queued);
        }
        self.offer_slow(py, sub, r)
    }

    /// `offer` for queue groups, kept out of line so the plain subscriptions' loop stays small.
    #[inline(never)]
    fn offer_member(&self, py: Python<'_>, sub: &Arc<Sub>, msg: Py<Message>) -> PyResult<Offer> {
        self.offer(py, sub, msg)
    }

    /// The rest of `offer`: a full mailbox, a drop, an ended subscription.
    #[cold]
    #[inline(never)]
    fn offer_slow(
        &self,
        py: Python<'_>,
        sub: &Arc<Sub>,
        first: Push<Py<Message>>,
    ) -> PyResult<Offer> {
        let mb = &sub.mailbox;
        let mut r = first;
        if let Push::Full(m) = r {
            r = match mb.overflow() {
                Overflow::Error => {
                    sub.count_dropped(1);
                    return Ok(Offer::Full);
                }
                // Waiting here could mean waiting for ourselves (or for the thread we hold).
                _ if IN_DISPATCH.with(Cell::get) => mb.push_force(m),
                _ => match runtime::wait_detached(py, |hook| mb.push_blocking(m, hook)) {
                    (Push::Full(m), err) => {
                        // Offered and not taken: counted, then the interrupt.
                        drop(m);
                        sub.count_dropped(1);
                        return Err(err.unwrap_or_else(|| {
                            PyKeyboardInterrupt::new_err("publish interrupted")
                        }));
                    }
                    (other, _) => other,
                },
            };
        }
        Ok(self.settle(sub, r))
    }

    /// Counts and schedules what a push did (any outcome but a Block wait's Full). What it
    /// drops is released at once even from publish's entry (see py/fastcall).
    pub(super) fn settle(&self, sub: &Arc<Sub>, r: Push<Py<Message>>) -> Offer {
        match r {
            Push::Queued { schedule } => {
                self.count_push();
                if schedule {
                    self.schedule(sub);
                }
                Offer::Queued
            }
            Push::Replaced { schedule, dropped } => {
                self.count_push();
                sub.count_bus_dropped(1);
                if schedule {
                    self.schedule(sub);
                }
                fastcall::release(dropped);
                Offer::Queued
            }
            Push::Dropped(m) => {
                sub.count_bus_dropped(1);
                fastcall::release(m);
                Offer::Dropped
            }
            Push::Closed(m) => {
                fastcall::release(m);
                if self.closed.load(Ordering::Acquire) {
                    // Accepted, then the bus closed under it: counted on the subscription.
                    sub.count_dropped(1);
                    Offer::Dropped
                } else {
                    Offer::Gone // unsubscribed meanwhile: as if published just after
                }
            }
            Push::Full(_) => match sub.mailbox.overflow() {
                Overflow::Error => {
                    sub.count_dropped(1);
                    Offer::Full
                }
                _ => unreachable!("a Block push only returns Full on timeout"),
            },
        }
    }

    /// The route of a topic object not in the fast cache: validated unless the broker knows
    /// it (only valid topics are routed), then remembered for this object.
    #[inline(never)]
    fn route_slow(&self, topic: &Bound<'_, PyString>) -> PyResult<Arc<BusRoute>> {
        let t = topic.to_cow()?;
        let (route, generation) = match self.broker.cached(&t) {
            Some(hit) => hit,
            None => {
                topic::validate_topic(&t).map_err(|e| PyValueError::new_err(e.0))?;
                self.broker.route_tagged(&t)
            }
        };
        self.routes.put(topic, generation, &route);
        Ok(route)
    }

    /// The route of `topic` (fast cache first); raises for an invalid topic.
    #[inline(always)]
    pub(super) fn route_of(&self, topic: &Bound<'_, PyString>) -> PyResult<Arc<BusRoute>> {
        match self.routes.get(topic, self.broker.generation()) {
            Some(r) => Ok(r),
            None => self.route_slow(topic),
        }
    }

    pub(super) fn publish(
        &self,
        py: Python<'_>,
        topic: &Bound<'_, PyString>,
        data: Py<PyAny>,
    ) -> PyResult<usize> {
        if !self.accepting() {
            return Err(closed_error());
        }
        let route = self.route_of(topic)?;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        if route.is_empty() {
            self.unrouted.fetch_add(1, Ordering::Relaxed);
            data.drop_ref(py); // at once: see py/fastcall
            return Ok(0);
        }
        let msg = Message::new(py, topic, data, seq, now())?;
        let mut tally = Tally::default();
        for sub in &route.subs {
            let o = self.offer(py, sub, msg.clone_ref(py))?;
            tally.add(o, sub);
        }
        for group in &route.groups {
            let mut done = false;
            for sub in group.candidates() {
                if sub.is_active() && tally.add(self.offer_member(py, sub, msg.clone_ref(py))?, sub)
                {
                    done = true;
                    break;
                }
            }
            // Every member this route knew has left: look again, one may have joined.
            let mut tries = 0;
            while !done && tries < GROUP_RETRIES {
                tries += 1;
                let now = self.broker.route_now(&topic.to_cow()?);
                let Some(g) = now.groups.iter().find(|g| g.name == group.name) else {
                    break;
                };
                for sub in g.candidates() {
                    if tally.add(self.offer_member(py, sub, msg.clone_ref(py))?, sub) {
                        done = true;
                        break;
                    }
                }
            }
        }
        // At once (publish is an entry's body: see py/fastcall): the last reference when no
        // subscription took it.
        msg.drop_ref(py);
        self.report(py, tally)
    }

    /// A publish's result: how many subscriptions queued it, or QueueFull naming the full
    /// overflow="error" ones.
    pub(super) fn report(&self, py: Python<'_>, tally: Tally) -> PyResult<usize> {
        if tally.reached == 0 {
            self.unrouted.fetch_add(1, Ordering::Relaxed);
        }
        if !tally.full.is_empty() {
            let others = tally.reached - tally.full.len();
            let what = match tally.full.len() {
                1 => "subscription",
                _ => "subscriptions",
            };
            return Err(errors::queue_full(
                py,
                &format!(
                    "{what} {} full (overflow='error'): the message was not queued there; it \
                     reached {others} other subscription(s)",
                    tally.full.join(", "),
                ),
            ));
        }
        Ok(tally.queued)
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

    /// Closes the bus: with `drain`, first delivers what push subscriptions have queued (up to
    /// `deadline`); with `keep_pull`, pull subscriptions keep what is queued for their readers
    /// (close(drain=True)); everything else still queued is discarded and counted.
    pub(super) fn shutdown(
        &self,
        py: Python<'_>,
        drain: bool,
        keep_pull: bool,
        deadline: Option<std::time::Instant>,
    ) -> PyResult<bool> {
        let first = !self.closed.swap(true, Ordering::AcqRel);
        let mut complete = true;
        if drain && first {
            // Handlers may publish while we drain (dead letters too): a pass that waited for
            // every push subscription to be idle and saw no new message queued meanwhile
            // leaves nothing behind, since only a push can make a subscription busy again.
            self.draining.store(true, Ordering::SeqCst);
            let r = self.drain(py, deadline);
            self.draining.store(false, Ordering::Release);
            complete = r?;
        }
        let subs = self.broker.subscriptions();
        // Close every mailbox before anything can run Python (dropping messages can): no
        // handler call starts after this point.
        for sub in &subs {
            self.broker.unsubscribe(sub);
            sub.mailbox.close();
        }
        let mut left = Vec::new();
        for sub in &subs {
            let pull = sub.extra.handlers.read().handler.is_none();
            if !(keep_pull && pull) {
                let l = sub.mailbox.clear();
                self.discarded.fetch_add(l.len() as u64, Ordering::Relaxed);
                sub.mailbox
                    .dropped
                    .fetch_add(l.len() as u64, Ordering::Relaxed);
                left.push(l);
            }
        }
        self.dispatch.close();
        drop(left);
        // Handler calls in progress finish; a deadline bounds the wait for them too.
        let join = |slice| self.dispatch.join(Some(slice)).then_some(());
        let joined = runtime::slices_detached(py, deadline, join)?.is_some();
        Ok(complete && joined)
    }

    /// Waits until no push subscription has work left; false if the deadline came first.
    fn drain(&self, py: Python<'_>, deadline: Option<std::time::Instant>) -> PyResult<bool> {
        loop {
            let before = self.pushes.load(Ordering::SeqCst);
            for sub in self.broker.subscriptions() {
                if sub.extra.handlers.read().handler.is_none() {
                    continue; // pull subscriptions keep what is queued for their reader
                }
                let idle = |slice| sub.mailbox.wait_idle(slice).then_some(());
                if runtime::slices_detached(py, deadline, idle)?.is_none() {
                    return Ok(false);
                }
            }
            if self.pushes.load(Ordering::SeqCst) == before {
                return Ok(true);
            }
        }
    }
}
