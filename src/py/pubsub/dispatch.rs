//! Dispatch threads: each run delivers one subscription's queued messages to its handler, and
//! failing handlers' messages become dead letters.

use super::exit;
use super::message::Message;
use super::{Dispatch, Sub, IN_DISPATCH, TURN};
use crate::core::pool::Worker;
use crate::py::call;
use crate::py::errors;
use crate::py::worker;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use std::sync::Arc;

pub(super) fn dispatch_main(w: Worker<Arc<Sub>>) {
    let Some(_live) = exit::Live::enter() else {
        return;
    };
    IN_DISPATCH.with(|c| c.set(true));
    // Once exit gives up on this thread, runtime::detach parks it instead of re-attaching.
    worker::serve(&w, |py, sub| run_turn(py, w.pool(), sub));
}

/// Delivers up to TURN messages of one subscription, then requeues it if more are waiting.
pub(super) fn run_turn(py: Python<'_>, pool: &Arc<Dispatch>, sub: Arc<Sub>) {
    let (handler, on_error, rate) = {
        let h = sub.extra.handlers.read();
        (
            h.handler.as_ref().map(|x| x.clone_ref(py)),
            h.on_error.as_ref().map(|x| x.clone_ref(py)),
            h.rate.as_ref().map(|x| x.clone_ref(py)),
        )
    };
    let mut done = 0;
    loop {
        if exit::halted() {
            sub.mailbox.end_run();
            return;
        }
        // One message at a time: what is still queued can be discarded by unsubscribe or
        // close, and another run of a workers>1 subscription can take it meanwhile.
        let Some(msg) = sub.mailbox.pop_run() else {
            return; // the run has ended; the next publish schedules a new one
        };
        if let Some(bucket) = &rate {
            // Stop holding the message once the subscription ends (unsubscribed, or the bus
            // closing past any drain) or the interpreter exits.
            if !bucket
                .get()
                .pace(py, || exit::halted() || sub.mailbox.is_closed())
            {
                sub.count_dropped(1);
                sub.mailbox.end_run();
                return;
            }
        }
        match handler.as_ref() {
            None => sub.count_dropped(1), // cleared by the garbage collector
            Some(h) => match call::call1(h.bind(py), msg.bind(py).as_any()) {
                Ok(_) => sub.count_delivered(),
                Err(e) => handler_failed(py, &sub, on_error.as_ref(), msg, e),
            },
        }
        done += 1;
        // A turn ends only if another subscription waits for a thread: requeueing wakes an idle
        // dispatch thread, which then only contends for the interpreter with this one.
        if done >= TURN && pool.queued() == 0 {
            done = 0;
        }
        if done >= TURN {
            match pool.requeue(Arc::clone(&sub), 0) {
                Ok(()) => return,
                Err(_) => done = 0, // closing: finish the queue here
            }
        }
    }
}

pub(super) fn handler_failed(
    py: Python<'_>,
    sub: &Sub,
    on_error: Option<&Py<PyAny>>,
    msg: Py<Message>,
    e: PyErr,
) {
    sub.count_error();
    let exc = e.value(py).clone();
    if let Some(cb) = on_error {
        if let Err(e2) = cb.bind(py).call1((exc, msg.bind(py))) {
            errors::log_exception(
                py,
                &format!("on_error of subscription {} failed", sub.name()),
                e2,
            );
        }
        return;
    }
    let topic = msg.get().topic.bind(py).to_string();
    errors::log_exception(
        py,
        &format!(
            "handler of subscription {} failed on topic {topic:?}",
            sub.name()
        ),
        e,
    );
    // Dead letters, unless this already is one (no loops).
    if topic.starts_with("_errors.") {
        return;
    }
    let Some(bus) = sub.extra.bus.upgrade() else {
        return;
    };
    let dead = format!("_errors.{topic}");
    // While close(drain=True) delivers what is queued, dead letters are still published.
    if !bus.accepting() || bus.broker.route(&dead).is_empty() {
        return;
    }
    let letter = PyDict::new(py);
    let ok = letter.set_item("topic", &topic).is_ok()
        && letter.set_item("message", msg.bind(py)).is_ok()
        && letter.set_item("error", exc).is_ok()
        && letter.set_item("subscription", sub.name()).is_ok();
    if ok {
        let t = PyString::new(py, &dead);
        if let Err(e3) = bus.publish(py, &t, letter.into_any().unbind()) {
            errors::log_exception(py, "could not publish a dead letter", e3);
        }
    }
}
