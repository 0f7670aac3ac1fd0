//! The publish fast path: the routes of the last topics published to, keyed by the topic `str`
//! object itself. A hit skips decoding, validating, splitting and hashing the topic (most
//! callers pass the same literal, an interned constant, every time). Holding the `str` keeps its
//! address from being reused, so identity is a safe key; an entry is current while the broker's
//! generation has not moved. Entries hold their route weakly: the broker's cache owns it, so an
//! ended subscription is never kept alive (or hidden from the garbage collector) here.

use super::delivery::Extra;
use super::message::Message;
use crate::core::broker::Route;
use crate::core::sync::Mutex;
use pyo3::prelude::*;
use pyo3::types::PyString;
use std::sync::{Arc, Weak};

pub(super) type BusRoute = Route<Py<Message>, Extra>;

/// Slots, picked by the topic object's address: a few topics published in turn all hit.
const SLOTS: usize = 8;

struct Slot {
    topic: Py<PyString>,
    generation: u64,
    route: Weak<BusRoute>,
}

#[derive(Default)]
pub(super) struct Routes {
    slots: Mutex<[Option<Slot>; SLOTS]>,
}

fn index(topic: &Bound<'_, PyString>) -> usize {
    // Objects are 16-byte aligned: the low bits carry nothing.
    (topic.as_ptr() as usize >> 4) % SLOTS
}

impl Routes {
    /// The route cached for this very `topic` object, if it is current for `generation`.
    #[inline]
    pub(super) fn get(
        &self,
        topic: &Bound<'_, PyString>,
        generation: u64,
    ) -> Option<Arc<BusRoute>> {
        let slots = self.slots.lock();
        let s = slots[index(topic)].as_ref()?;
        if s.topic.as_ptr() != topic.as_ptr() || s.generation != generation {
            return None;
        }
        s.route.upgrade()
    }

    /// Remembers `route` (current for `generation`) for this `topic` object.
    pub(super) fn put(&self, topic: &Bound<'_, PyString>, generation: u64, route: &Arc<BusRoute>) {
        let slot = Slot {
            topic: topic.clone().unbind(),
            generation,
            route: Arc::downgrade(route),
        };
        let old = self.slots.lock()[index(topic)].replace(slot);
        // A str reference: released outside the lock, and at once (publish's entry: see
        // py/fastcall).
        crate::py::fastcall::release(old);
    }
}
