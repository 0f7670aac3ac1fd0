//! The `threading.Thread` a task sees on a worker: named like the OS thread ("WorkerPool-N_i",
//! or the given prefix), as ThreadPoolExecutor's workers are, instead of threading's "Dummy-N".
//!
//! A native thread has no `threading.Thread`, so `threading.current_thread()` makes a
//! `_DummyThread` and registers it in `threading._active` for good (3.11 and 3.12 never remove
//! it). A worker makes it once when it attaches, names it, and removes it from `_active` when it
//! exits, so `threading.enumerate()` does not keep listing gone workers. Everything is looked up
//! when a pool is built (an import can release the GIL, which a worker must not do mid-exit).

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

struct Api {
    current_thread: Py<PyAny>,
    active: Py<PyDict>,
}

static API: PyOnceLock<Api> = PyOnceLock::new();

/// Looks threading up, on the thread that builds a pool.
pub fn init(py: Python<'_>) -> PyResult<()> {
    API.get_or_try_init(py, || {
        let threading = py.import("threading")?;
        Ok::<_, PyErr>(Api {
            current_thread: threading.getattr("current_thread")?.unbind(),
            active: threading
                .getattr("_active")?
                .cast_into::<PyDict>()?
                .unbind(),
        })
    })
    .map(drop)
}

/// This worker's entry in `threading._active`, removed again by [`Adopted::release`].
pub struct Adopted {
    ident: Py<PyAny>,
    thread: Py<PyAny>,
}

/// Gives the calling worker a `threading.Thread` named like its OS thread. None when there is
/// nothing to name (no name, or threading refused: the task then sees threading's own name).
pub fn adopt(py: Python<'_>) -> Option<Adopted> {
    let api = API.get(py)?;
    let name = std::thread::current().name()?.to_owned();
    let thread = api.current_thread.bind(py).call0().ok()?;
    thread.setattr(pyo3::intern!(py, "name"), name).ok()?;
    let ident = thread.getattr(pyo3::intern!(py, "ident")).ok()?;
    Some(Adopted {
        ident: ident.unbind(),
        thread: thread.unbind(),
    })
}

impl Adopted {
    /// At the worker's exit: removes its entry unless something else replaced it meanwhile.
    pub fn release(self, py: Python<'_>) {
        let Some(api) = API.get(py) else { return };
        let active = api.active.bind(py);
        let ours = active
            .get_item(self.ident.bind(py))
            .ok()
            .flatten()
            .is_some_and(|t| t.is(self.thread.bind(py)));
        if ours {
            let _ = active.del_item(self.ident.bind(py));
        }
    }
}
