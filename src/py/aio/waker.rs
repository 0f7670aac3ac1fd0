//! The per-loop waker: one for every event loop that awaits chanpool objects. A wake-up comes
//! from any thread, often inside a core lock and often from a thread that is not attached to
//! the interpreter, so it must not call Python: it pushes the registration onto the loop's
//! pending queue and, if the queue was empty, writes one byte to the loop's wake-up pipe. The
//! loop reads the pipe (`loop.add_reader`) and drains the queue on its own thread, resolving
//! every pending asyncio future that is not cancelled. So a batch of wake-ups costs one pipe
//! write and one loop callback, like one `call_soon_threadsafe`, without taking the GIL on the
//! waking side.

use crate::core::notify::Notify;
use crate::core::sync::Mutex;
use pyo3::prelude::*;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;

/// A loop's pending queue and its wake-up pipe.
pub struct LoopQueue {
    pending: Mutex<Pending>,
    reader: std::io::PipeReader,
    writer: std::io::PipeWriter,
}

#[derive(Default)]
struct Pending {
    wakes: Vec<Arc<Wake>>,
    /// The loop is closed: its registrations no longer listen, wake-ups go to the next waiter.
    /// Set under the same lock as the pushes, so a wake-up is either refused or seen by `kill`.
    dead: bool,
}

impl LoopQueue {
    fn push(&self, w: Arc<Wake>) -> bool {
        let first = {
            let mut p = self.pending.lock();
            if p.dead {
                return false;
            }
            p.wakes.push(w);
            p.wakes.len() == 1
        };
        if first {
            // Non-blocking: a full pipe already holds a wake-up the drain has not read.
            let _ = (&self.writer).write(&[1]);
        }
        true
    }
}

/// Hands a wake-up its waiter can no longer use to the next waiter of the same object.
pub type PassOn = Box<dyn Fn() + Send + Sync>;

/// One registration: resolving `fut` on its loop tells the coroutine to try again.
pub struct Wake {
    fut: Py<PyAny>,
    queue: Arc<LoopQueue>,
    /// For a wake-up that reached the loop just before it closed (None: nothing to pass on).
    pass_on: Option<PassOn>,
}

impl Wake {
    /// For the GC, by a holder of the last reference (`Arc::strong_count == 1`): then no
    /// object's queue has the registration any more (woken, or swept out after its loop
    /// closed), the holder owns the future, and a coroutine, task and future left by a closed
    /// loop are a cycle the collector sees and frees.
    pub fn traverse_if_sole(
        self: &Arc<Self>,
        others: usize,
        visit: &pyo3::gc::PyVisit<'_>,
    ) -> Result<(), pyo3::PyTraverseError> {
        if Arc::strong_count(self) == 1 + others {
            visit.call(&self.fut)?;
        }
        Ok(())
    }
}

impl Notify for Wake {
    fn notify(self: Arc<Self>) -> bool {
        let q = Arc::clone(&self.queue);
        q.push(self)
    }

    fn listening(&self) -> bool {
        !self.queue.pending.lock().dead
    }
}

fn nonblocking(fd: &impl AsRawFd) -> std::io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: fcntl on a descriptor this process owns; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// An event loop's waker (made once per loop by `chanpool._aio`, which registers `drain` as
/// the reader of `fileno()`).
#[pyclass(module = "chanpool._core", name = "_LoopWaker", frozen)]
pub struct LoopWaker {
    pub(crate) queue: Arc<LoopQueue>,
}

impl LoopWaker {
    /// A registration whose wake-up resolves `fut` on this waker's loop.
    pub fn wake(&self, fut: Py<PyAny>, pass_on: Option<PassOn>) -> Arc<Wake> {
        Arc::new(Wake {
            fut,
            queue: Arc::clone(&self.queue),
            pass_on,
        })
    }
}

#[pymethods]
impl LoopWaker {
    #[new]
    fn py_new() -> PyResult<Self> {
        let (reader, writer) = std::io::pipe()?;
        nonblocking(&reader)?;
        nonblocking(&writer)?;
        Ok(LoopWaker {
            queue: Arc::new(LoopQueue {
                pending: Mutex::new(Pending::default()),
                reader,
                writer,
            }),
        })
    }

    fn fileno(&self) -> i32 {
        self.queue.reader.as_raw_fd()
    }

    /// On the loop thread: takes every pending future (chanpool._aio's reader resolves them).
    /// The pipe is emptied before the queue is taken, so a wake-up pushed meanwhile writes
    /// again. The futures are resolved in Python, not here: resolving runs loop code, which
    /// may switch threads, and a daemon loop thread must not be stopped at interpreter exit
    /// inside a native frame (PYO3-NOTES: finalization).
    fn take(&self, py: Python<'_>) -> Vec<Py<PyAny>> {
        let mut buf = [0u8; 64];
        while matches!((&self.queue.reader).read(&mut buf), Ok(n) if n > 0) {}
        let batch = std::mem::take(&mut self.queue.pending.lock().wakes);
        batch.iter().map(|w| w.fut.clone_ref(py)).collect()
    }

    /// The loop is closing: wake-ups no longer reach it (its registrations are skipped from
    /// now on), and those it got and never drained go to the next waiters.
    fn kill(&self) {
        let lost = {
            let mut p = self.queue.pending.lock();
            p.dead = true;
            std::mem::take(&mut p.wakes)
        };
        // Its registrations still queued in objects are swept out at their next push.
        crate::core::notify::registrations_died();
        for w in lost {
            if let Some(pass_on) = &w.pass_on {
                pass_on();
            }
        }
    }
}

/// A registration for a concurrent.futures.Future: its done callback (on whatever thread
/// completes the future) wakes the awaiting coroutine through the loop's waker.
#[pyclass(module = "chanpool._core", name = "_AioWait", frozen)]
pub struct AioWait {
    pub(crate) wake: Arc<Wake>,
}

impl AioWait {
    /// This wait as a core registration (the same allocation, so `leave` finds it).
    pub fn registration(&self) -> crate::core::notify::Registration {
        Arc::clone(&self.wake) as crate::core::notify::Registration
    }
}

#[pymethods]
impl AioWait {
    #[new]
    fn py_new(waker: PyRef<'_, LoopWaker>, fut: Py<PyAny>) -> Self {
        AioWait {
            wake: waker.wake(fut, None),
        }
    }

    fn __traverse__(&self, visit: pyo3::gc::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        self.wake.traverse_if_sole(0, &visit)
    }

    /// The done callback.
    fn __call__(&self, _done: &Bound<'_, PyAny>) {
        Arc::clone(&self.wake).notify();
    }
}
