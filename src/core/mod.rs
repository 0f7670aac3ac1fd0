//! The concurrency core: plain Rust, no pyo3, unit-tested with `cargo test`.
pub mod broker;
pub mod channel;
pub mod flight;
pub mod forkcell;
pub mod inventory;
pub mod line;
pub mod lru;
pub mod mailbox;
pub mod notify;
pub mod oneshot;
pub mod pool;
pub mod ratelimit;
pub mod semaphore;
pub mod sync;
pub mod topic;
pub mod wait;
pub mod waitgroup;
