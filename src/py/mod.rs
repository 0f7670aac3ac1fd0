//! The binding layer: adapts the core to Python and owns the GIL rules.
pub mod aio;
pub mod args;
pub mod call;
pub mod channel;
pub mod errors;
pub mod future;
pub mod gc;
pub mod inventory;
pub mod lifecycle;
pub mod oneshot;
pub mod pool;
pub mod pubsub;
pub mod ratelimit;
pub mod runtime;
pub mod semaphore;
pub mod worker;
