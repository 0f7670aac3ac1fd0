//! chanpool: Go's concurrency patterns for Python on native threads.
//!
//! `core` holds the concurrency primitives in plain Rust; `py` adapts them to Python.

pub mod core;
#[cfg(not(loom))]
mod py;

#[cfg(not(loom))]
#[pyo3::pymodule(gil_used = false)]
mod _core {
    use pyo3::prelude::*;

    #[pymodule_export]
    use crate::py::aio::{AioWait, LoopWaker};
    #[pymodule_export]
    use crate::py::cache::{
        flight::{Flight as _Flight, SingleFlight},
        Cache, Entry as _CacheEntry,
    };
    #[pymodule_export]
    use crate::py::channel::{fan_in, select, Channel, SelectWait};
    #[pymodule_export]
    use crate::py::future::{_finish_unobserved, _wait_future};
    #[pymodule_export]
    use crate::py::futuregc::_track;
    #[pymodule_export]
    use crate::py::inventory::InventoryManager;
    #[pymodule_export]
    use crate::py::oneshot::OneShot;
    #[pymodule_export]
    use crate::py::pool::MapIterator;
    #[pymodule_export]
    use crate::py::pool::WorkerPool;
    #[pymodule_export]
    use crate::py::pubsub::{Message, PubSub, Subscription};
    #[pymodule_export]
    use crate::py::ratelimit::TokenBucket;
    #[pymodule_export]
    use crate::py::runtime::{
        _after_fork_child, _after_fork_parent, _before_fork, _shutdown_all, _threading_exit,
    };
    #[pymodule_export]
    use crate::py::semaphore::Semaphore;
    #[pymodule_export]
    use crate::py::waitgroup::WaitGroup;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        let py = m.py();
        crate::py::runtime::init_main_thread(py)?;
        // Rust log records go to Python's `logging` (logger "chanpool"). Levels are looked up per
        // record, which is fine because nothing logs on a hot path.
        let _ = pyo3_log::Logger::new(py, pyo3_log::Caching::Nothing)?
            .filter(log::LevelFilter::Debug)
            .install();
        crate::py::future::init(py)?;
        crate::py::oneshot::init(m)?;
        crate::py::cache::flight::init(py)?;
        crate::py::pool::install(m)?;
        crate::py::channel::install(m)?;
        crate::py::pubsub::install(m)?;
        // Pools stop where ThreadPoolExecutor's do, in threading's exit hooks (queued work
        // runs, later atexit hooks can no longer submit); everything else at atexit.
        // (Refused when imported during threading's own shutdown: the atexit hook still runs.)
        let _ = py
            .import("threading")?
            .call_method1("_register_atexit", (m.getattr("_threading_exit")?,));
        // Native workers must be gone before the interpreter finalizes.
        py.import("atexit")?
            .call_method1("register", (m.getattr("_shutdown_all")?,))?;
        let os = py.import("os")?;
        if os.hasattr("register_at_fork")? {
            let kw = pyo3::types::PyDict::new(py);
            kw.set_item("before", m.getattr("_before_fork")?)?;
            kw.set_item("after_in_parent", m.getattr("_after_fork_parent")?)?;
            kw.set_item("after_in_child", m.getattr("_after_fork_child")?)?;
            os.call_method("register_at_fork", (), Some(&kw))?;
        }
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        Ok(())
    }
}
