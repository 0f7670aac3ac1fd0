//! The concurrency core: plain Rust, no pyo3, unit-tested with `cargo test`.
pub mod broker;
pub mod mailbox;
pub mod pool;
pub mod topic;
