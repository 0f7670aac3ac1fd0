//! Go channels: unbuffered, buffered, or unbounded; close() lets receivers drain what is buffered
//! and then reports Closed; select waits on several channels at once and chooses uniformly among
//! the ready ones; `forward` merges channels (fan_in). Also queue.Queue's extras (queue.rs).
//!
//! The shape is Go's runtime (and crossbeam-channel's files): one lock per channel (state.rs);
//! a blocked operation, a whole select included, is one waiter queued on each channel it waits
//! on, completed exactly once by the peer that pairs with it, value and all (waker.rs). So an
//! unbuffered send meets any receive (plain or select) and vice versa, a non-blocking operation
//! sees peers blocked in select, and no wait depends on polling: the binding's wait slices only
//! look at signals.

mod aio;
mod aio_select;
mod chan;
mod forward;
mod lifecycle;
mod queue;
mod select;
mod state;
mod waker;

pub use aio::{AsyncSend, Offer};
pub use aio_select::AsyncSelect;
pub use chan::Channel;
pub use forward::forward;
pub use select::{select, Case, Op};
pub use state::{Capacity, TryRecv, TrySend};
pub use waker::{Selected, Waiter};

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, not(loom)))]
mod select_tests;

#[cfg(all(test, loom))]
mod loom_tests;

#[cfg(all(test, not(loom)))]
mod aio_tests;

#[cfg(all(test, loom))]
mod aio_loom;

#[cfg(all(test, not(loom)))]
mod aio_select_tests;
