//! The per-loop waker: one for every event loop that awaits chanpool objects. A wake-up comes
//! from any thread, often inside a core lock and often from a thread that is not attached to
//! the interpreter, so it must not call Python: it pushes the registration onto the loop's
//! pending queue and, if the queue was empty, writes one byte to the loop's wake-up pipe. The
//! loop reads the pipe (`loop.add_reader`) and drains the queue on its own thread, resolving
//! every pending asyncio future that is not cancelled. So a batch of wake-ups costs one pipe
//! write and one loop callback, like one `call_soon_threadsafe`, without taking the GIL on the
//! waking side.
//!
//! The same-loop fast path (`direct`): a channel call made attached runs in a scope; a wake-up
//! it makes for a loop last seen on this thread is collected in a thread-local list (still
//! inside the core lock: no Python), and after the call, outside every core lock, the scope
//! resolves the futures whose loop is running on this thread right now, as asyncio.Queue does
//! (`set_result` schedules the woken task with `call_soon`): no pipe write, no trip through
//! the selector. Every other wake-up takes the pipe.

use crate::core::notify::Notify;
use crate::core::sync::Mutex;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A loop's pending queue and its wake-up pipe.
pub struct LoopQueue {
    pending: Mutex<Pending>,
    /// The thread its loop last ran on, as seen by `waker()` and the drain (`this_thread`):
    /// only wake-ups made there may be resolved directly.
    thread: AtomicUsize,
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
    fn on_this_thread(&self) -> bool {
        self.thread.load(Ordering::Relaxed) == this_thread()
    }

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

/// Registrations alive (made and not yet dropped), in every loop: `direct` skips its scope at 0.
static LIVE: AtomicUsize = AtomicUsize::new(0);

impl Drop for Wake {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

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
        // A closed loop's registration (not swept out yet) answers no at once, so the queue
        // wakes the next one (collected first, its wake-up would be lost in `resolve`).
        if !self.listening() {
            return false;
        }
        let mut me = Some(self);
        if me.as_ref().is_some_and(|w| w.queue.on_this_thread()) {
            // Err only while this thread's locals are torn down: then the pipe.
            let _ = DIRECT.try_with(|d| {
                if let Some(woken) = d.borrow_mut().as_mut() {
                    woken.extend(me.take());
                }
            });
        }
        match me {
            None => true,
            Some(w) => {
                let q = Arc::clone(&w.queue);
                q.push(w)
            }
        }
    }

    fn listening(&self) -> bool {
        !self.queue.pending.lock().dead
    }
}

thread_local! {
    /// The wake-ups collected by this thread's innermost `direct` scope (None: no scope).
    static DIRECT: RefCell<Option<Vec<Arc<Wake>>>> = const { RefCell::new(None) };
    /// Its address names this thread while it lives (a reused one is caught by `direct`'s
    /// running-loop check).
    static MARK: u8 = const { 0 };
}

fn this_thread() -> usize {
    MARK.with(|m| m as *const u8 as usize)
}

/// Leaves the scope (restoring an enclosing one). Dropped without `leave` (a panic), the
/// wake-ups collected take the pipe: none is lost.
struct Scope {
    outer: Option<Vec<Arc<Wake>>>,
    done: bool,
}

impl Scope {
    fn enter() -> Scope {
        Scope {
            outer: DIRECT.with(|d| d.borrow_mut().replace(Vec::new())),
            done: false,
        }
    }

    fn leave(&mut self) -> Vec<Arc<Wake>> {
        self.done = true;
        DIRECT
            .with(|d| std::mem::replace(&mut *d.borrow_mut(), self.outer.take()))
            .unwrap_or_default()
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if !self.done {
            for w in self.leave() {
                w.through_pipe();
            }
        }
    }
}

/// Runs `f`, a non-blocking core call made attached (its locks held inside it only), with the
/// wake-ups for loops whose thread this is collected; then, outside those locks, resolves the
/// ones whose loop is running right here (the woken task is scheduled with call_soon, as
/// asyncio.Queue does) and sends the others through their pipes.
pub fn direct<R>(py: Python<'_>, f: impl FnOnce() -> R) -> R {
    // No registration exists anywhere (threads only): nothing to collect, and the scope's
    // thread-local accesses (~130 instructions a call) stay off the sync hot paths. A
    // registration made meanwhile by another thread is woken through its pipe, as without a
    // scope; one made by this thread is seen (program order).
    if LIVE.load(Ordering::Relaxed) == 0 {
        return f();
    }
    let mut scope = Scope::enter();
    let r = f();
    let woken = scope.leave();
    if !woken.is_empty() {
        resolve(py, woken);
    }
    r
}

fn resolve(py: Python<'_>, woken: Vec<Arc<Wake>>) {
    static RUNNING: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let running = RUNNING
        .import(py, "asyncio.events", "_get_running_loop")
        .and_then(|f| f.call0())
        .ok()
        .filter(|l| !l.is_none());
    for w in woken {
        let here = running.as_ref().is_some_and(|l| {
            w.fut
                .bind(py)
                .call_method0(intern!(py, "get_loop"))
                .is_ok_and(|fl| fl.is(l))
        });
        if here {
            w.resolve(py);
        } else {
            w.through_pipe();
        }
    }
}

impl Wake {
    /// A wake-up collected by a scope and not resolved there, outside every core lock: onto
    /// its loop's pending queue; if that loop closed meanwhile, to the next waiter.
    fn through_pipe(self: Arc<Self>) {
        let q = Arc::clone(&self.queue);
        if !q.push(Arc::clone(&self)) {
            if let Some(pass_on) = &self.pass_on {
                pass_on();
            }
        }
    }

    /// On its loop's thread, the loop running: the drain's
    /// `if not fut.done(): fut.set_result(None)`.
    fn resolve(&self, py: Python<'_>) {
        let fut = self.fut.bind(py);
        let r = fut
            .call_method0(intern!(py, "done"))
            .and_then(|d| d.is_truthy())
            .and_then(|done| match done {
                true => Ok(()),
                false => fut
                    .call_method1(intern!(py, "set_result"), (py.None(),))
                    .map(drop),
            });
        if let Err(e) = r {
            e.write_unraisable(py, Some(fut));
            // Its coroutine will not wake: the wake-up goes to the next waiter.
            if let Some(pass_on) = &self.pass_on {
                pass_on();
            }
        }
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
        // Made by a coroutine of this loop: the loop runs on this thread.
        self.queue.thread.store(this_thread(), Ordering::Relaxed);
        LIVE.fetch_add(1, Ordering::Relaxed);
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
                thread: AtomicUsize::new(this_thread()),
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
        self.queue.thread.store(this_thread(), Ordering::Relaxed);
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
