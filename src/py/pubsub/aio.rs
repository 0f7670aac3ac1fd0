//! PubSub's face for coroutines: the steps `chanpool._aio_pubsub`'s coroutines take. Each
//! completes at once or registers the coroutine's asyncio future with its loop's waker in the
//! mailbox, in one critical section (`Mailbox::pop_or_register` / `push_or_register`); none
//! waits. A publish that meets a full overflow="block" mailbox stops there and resumes at that
//! very subscription once woken, so a cancellation reaches no subscription after it.

use super::delivery::{BusInner, Tally};
use super::message::Message;
use super::{closed_error, now, Sub};
use crate::core::mailbox::{Overflow, Push};
use crate::core::notify::Registration;
use crate::core::sync::Mutex;
use crate::py::aio::{LoopWaker, PassOn};
use crate::py::errors;
use crate::py::runtime;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyString;
use pyo3::PyTraverseError;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A coroutine function of `chanpool._aio_pubsub`, looked up once (lazily: it imports `_core`).
pub(super) fn coroutine<'py>(py: Python<'py>, name: &'static str) -> PyResult<Bound<'py, PyAny>> {
    static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let m = MODULE.get_or_try_init(py, || py.import("chanpool._aio_pubsub").map(|m| m.unbind()))?;
    m.bind(py).getattr(name)
}

/// The event loop an async handler runs on (`loop`, else the running one), or None for a plain
/// handler; raises before anything is subscribed.
pub(super) fn handler_loop(
    py: Python<'_>,
    handler: &Py<PyAny>,
    r#loop: Option<Py<PyAny>>,
) -> PyResult<Option<Py<PyAny>>> {
    let l = coroutine(py, "handler_loop")?.call1((handler, r#loop))?;
    Ok((!l.is_none()).then(|| l.unbind()))
}

/// Whether this thread runs the event loop of one of the bus's async handlers (a drain
/// waiting there would wait for itself).
pub(super) fn on_a_handlers_loop(py: Python<'_>, bus: &BusInner) -> PyResult<bool> {
    let subs = bus.broker.subscriptions();
    let loops: Vec<Py<PyAny>> = subs
        .iter()
        .filter_map(|s| {
            s.extra
                .handlers
                .read()
                .aio_loop
                .as_ref()
                .map(|l| l.clone_ref(py))
        })
        .collect();
    if loops.is_empty() {
        return Ok(false);
    }
    let running = py.import("asyncio")?.call_method0("_get_running_loop")?;
    Ok(loops.iter().any(|l| l.bind(py).is(&running)))
}

/// A coroutine's registration on a subscription's mailbox, handed back to leave it.
#[pyclass(module = "chanpool._core", name = "_SubWait", frozen)]
pub struct SubWait {
    reg: Registration,
}

/// A reader's wake-up that reached a closing loop goes to the mailbox's next reader.
fn pass_on(sub: &Arc<Sub>) -> PassOn {
    let sub = Arc::downgrade(sub);
    Box::new(move || {
        if let Some(s) = sub.upgrade() {
            s.mailbox.pass_on_reader();
        }
    })
}

/// `(message, True)` now, or `(registration, False)`; chanpool.Closed once ended and empty.
/// With `handle` (async handlers), the message stays active for a drain until `handled`.
pub(super) fn get(
    py: Python<'_>,
    sub: &Arc<Sub>,
    waker: &LoopWaker,
    fut: Py<PyAny>,
    handle: bool,
) -> PyResult<(Py<PyAny>, bool)> {
    let reg: Registration = waker.wake(fut, Some(pass_on(sub)));
    match sub.mailbox.pop_or_register(&reg, handle) {
        Ok(m) => Ok((m.into_any(), true)),
        Err(true) => Err(errors::closed(py, "the subscription has ended")),
        Err(false) => Ok((Py::new(py, SubWait { reg })?.into_any(), false)),
    }
}

/// Off `l`'s thread, while `l` runs: waits until the async handler's calls in progress are
/// done (the mailbox is idle). On `l`'s own thread it cannot: they finish on their own.
pub(super) fn wait_handled(py: Python<'_>, sub: &Sub, l: &Bound<'_, PyAny>) -> PyResult<()> {
    let running = py.import("asyncio")?.call_method0("_get_running_loop")?;
    if running.is(l) {
        return Ok(());
    }
    let idle = |slice| sub.mailbox.wait_idle(slice).then_some(());
    while l.call_method0("is_running")?.is_truthy()? {
        let slice = Instant::now().checked_add(Duration::from_millis(50));
        if runtime::slices_detached(py, slice, idle)?.is_some() {
            break;
        }
    }
    Ok(())
}

pub(super) fn leave(sub: &Sub, w: &SubWait) {
    sub.mailbox.leave_readers(&w.reg);
}

/// Where a publish goes: each plain subscription, and each queue group's candidates in order
/// (true: a group, which takes the first member that has not left).
type Targets = Vec<(bool, Vec<Arc<Sub>>)>;

struct State {
    msg: Py<Message>,
    targets: Targets,
    /// The target being offered to, and the candidate within it.
    at: (usize, usize),
    tally: Tally,
    /// The room registration of the blocked step, to leave on cancel.
    waiting: Option<(Arc<Sub>, Registration)>,
}

/// An async publish stopped at a full overflow="block" subscription (`step` resumes it).
#[pyclass(module = "chanpool._core", name = "_Publishing", frozen)]
pub struct Publishing {
    bus: Arc<BusInner>,
    state: Mutex<Option<State>>,
}

/// Starts an async publish: everything that needs no waiting happens now. Returns the count
/// (as publish) or the `_Publishing` to step once there is room.
pub(super) fn publish(
    py: Python<'_>,
    bus: &Arc<BusInner>,
    topic: &Bound<'_, PyString>,
    data: Py<PyAny>,
) -> PyResult<Py<PyAny>> {
    if !bus.accepting() {
        return Err(closed_error());
    }
    let route = bus.route_of(topic)?;
    let seq = bus.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if route.is_empty() {
        bus.unrouted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return Ok(0usize.into_pyobject(py)?.into_any().unbind());
    }
    let mut targets: Targets = route
        .subs
        .iter()
        .map(|s| (false, vec![Arc::clone(s)]))
        .collect();
    targets.extend(
        route
            .groups
            .iter()
            .map(|g| (true, g.candidates().cloned().collect())),
    );
    let st = State {
        msg: Message::new(py, topic, data, seq, now())?,
        targets,
        at: (0, 0),
        tally: Tally::default(),
        waiting: None,
    };
    let p = Publishing {
        bus: Arc::clone(bus),
        state: Mutex::new(None),
    };
    match p.run(py, st, None)? {
        Ok(n) => Ok(n.into_pyobject(py)?.into_any().unbind()),
        Err(st) => {
            *p.state.lock() = Some(st);
            Ok(Py::new(py, p)?.into_any())
        }
    }
}

impl Publishing {
    /// Offers from `st.at` on; stops at a full Block mailbox (registering `reg` there, if
    /// given) and hands the state back.
    fn run(
        &self,
        py: Python<'_>,
        mut st: State,
        reg: Option<&Registration>,
    ) -> PyResult<Result<usize, State>> {
        let bus = &self.bus;
        while st.at.0 < st.targets.len() {
            let (group, ref members) = st.targets[st.at.0];
            let Some(sub) = members.get(st.at.1).cloned() else {
                st.at = (st.at.0 + 1, 0); // every member of the group has left
                continue;
            };
            if group && !sub.is_active() {
                st.at.1 += 1;
                continue;
            }
            let m = st.msg.clone_ref(py);
            let r = match reg {
                Some(reg) => sub.mailbox.push_or_register(m, reg),
                None => sub.mailbox.push(m),
            };
            if matches!(r, Push::Full(_)) && sub.mailbox.overflow() == Overflow::Block {
                if let Some(reg) = reg {
                    st.waiting = Some((sub, Arc::clone(reg)));
                }
                return Ok(Err(st));
            }
            if st.tally.add(bus.settle(&sub, r), &sub) || !group {
                st.at = (st.at.0 + 1, 0);
            } else {
                st.at.1 += 1; // that member has left: the next one
            }
        }
        bus.report(py, st.tally).map(Ok)
    }

    fn take(&self) -> Option<State> {
        let mut st = self.state.lock().take()?;
        if let Some((sub, reg)) = st.waiting.take() {
            sub.mailbox.leave_room(&reg);
        }
        Some(st)
    }
}

#[pymethods]
impl Publishing {
    /// Resumes: the count once every subscription has the message, or None after registering
    /// `fut` to be woken when the full subscription has room.
    fn step(
        &self,
        py: Python<'_>,
        waker: PyRef<'_, LoopWaker>,
        fut: Py<PyAny>,
    ) -> PyResult<Option<usize>> {
        let Some(st) = self.take() else {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "this publish has finished",
            ));
        };
        let reg: Registration = waker.wake(fut, None);
        match self.run(py, st, Some(&reg))? {
            Ok(n) => Ok(Some(n)),
            Err(st) => {
                *self.state.lock() = Some(st);
                Ok(None)
            }
        }
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(g) = self.state.try_lock() {
            if let Some(st) = g.as_ref() {
                visit.call(&st.msg)?;
            }
        }
        Ok(())
    }

    /// Cancelled: the subscriptions not reached yet never get the message; the one it waited
    /// for counts it as dropped (as a publish interrupted by Ctrl-C).
    fn cancel(&self) {
        if let Some(st) = self.take() {
            if let Some(sub) = st.targets.get(st.at.0).and_then(|t| t.1.get(st.at.1)) {
                sub.count_dropped(1);
            }
        }
    }
}
