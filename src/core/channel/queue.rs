//! What queue.Queue has and Go channels do not: task_done/join, shutdown(immediate=True)'s
//! drain, an assignable maxsize, and giving back a value a receiver could not use.

use super::chan::Channel;
use super::state::Capacity;
use crate::core::wait::{in_slices, Hook, Stop};
use std::time::Instant;

impl<T> Channel<T> {
    /// queue.Queue.task_done: false if called more times than values were sent.
    pub fn task_done(&self) -> bool {
        let mut st = self.state.lock();
        if st.unfinished == 0 {
            return false;
        }
        st.unfinished -= 1;
        if st.unfinished == 0 {
            self.all_done.notify_all();
        }
        true
    }

    pub fn unfinished(&self) -> u64 {
        self.state.lock().unfinished
    }

    /// queue.Queue.join: waits until every sent value was marked done. The hook runs between
    /// slices with no lock held.
    pub fn join(&self, deadline: Option<Instant>, hook: Hook<'_>) -> Result<(), Stop> {
        if self.unfinished() == 0 {
            return Ok(());
        }
        in_slices(deadline, hook, |slice| {
            let mut st = self.state.lock();
            if st.unfinished != 0 {
                self.all_done.wait_for(&mut st, slice);
            }
            (st.unfinished == 0).then_some(())
        })
    }

    /// Removes everything buffered and marks it done (queue.Queue.shutdown(immediate=True));
    /// returned so the caller decides where the values are dropped.
    pub fn drain(&self) -> Vec<T> {
        let mut st = self.state.lock();
        let out: Vec<T> = st.buf.drain(..).collect();
        st.unfinished = st.unfinished.saturating_sub(out.len() as u64);
        if st.unfinished == 0 {
            self.all_done.notify_all();
        }
        out
    }

    /// queue.Queue's `maxsize = n`: what is buffered stays (even beyond a smaller capacity);
    /// waiting senders move in if there is room now.
    pub fn set_capacity(&self, cap: Capacity) {
        let mut st = self.state.lock();
        st.cap = cap;
        st.refill();
        st.aio_send.wake_all();
    }

    /// Gives back a value received from this channel that could not be used (fan_in's output
    /// closed under it, a wait interrupted just as it completed): the next receiver gets it.
    pub fn put_back(&self, value: T) {
        self.state.lock().put_back(value);
    }
}
