//! What a channel needs to live inside Python: a garbage collector's visit and clear, and the
//! first use in a fork() child, where the threads that were waiting do not exist. None of these
//! ever waits for a lock.

use super::chan::Channel;
use crate::core::sync::Arc;

impl<T> Channel<T> {
    /// Visits every value the channel holds (buffered, waiting senders', the close reason if
    /// only the channel has it); gives up (Ok) rather than wait if another thread holds a lock.
    pub fn try_visit<E>(&self, mut f: impl FnMut(&T) -> Result<(), E>) -> Result<(), E> {
        let Some(st) = self.state.try_lock() else {
            return Ok(());
        };
        for v in &st.buf {
            f(v)?;
        }
        st.senders.try_visit(&mut f)?;
        if let Some(r) = &st.reason {
            if Arc::strong_count(r) == 1 {
                f(r)?;
            }
        }
        Ok(())
    }

    /// Takes out every buffered value and the close reason (a garbage collector breaking a
    /// reference cycle), without waiting for the lock.
    pub fn try_take_all(&self) -> (Vec<T>, Option<Arc<T>>) {
        let Some(mut st) = self.state.try_lock() else {
            return (Vec::new(), None);
        };
        let n = st.buf.len() as u64;
        st.unfinished = st.unfinished.saturating_sub(n);
        (st.buf.drain(..).collect(), st.reason.take())
    }

    /// In a fork() child: forgets the operations other threads had in progress and returns the
    /// values of their sends. None if another thread held the channel's lock when the process
    /// forked: its state may be half-updated, so the channel is unusable.
    pub fn after_fork(&self) -> Option<Vec<T>> {
        let mut st = self.state.try_lock()?;
        st.receivers.forget_for_fork();
        st.watchers.forget_for_fork();
        st.aio_recv.forget();
        st.aio_send.forget();
        Some(st.senders.forget_for_fork())
    }
}
