//! The pool's door: the queue's one long-lived sender behind a lock. Submits hold it shared
//! for as long as they may add a job (including a blocked send and the start of a thread for
//! the job); close() takes it exclusively and drops the sender. So once close() returns no
//! submit can succeed, and every accepted job is in the queue or with a started thread.

use crate::core::sync::{RwLock, RwLockReadGuard};
use std::ops::Deref;

pub struct Gate<S>(RwLock<Option<S>>);

/// The gate held open (shared); derefs to the sender.
pub struct Open<'a, S>(RwLockReadGuard<'a, Option<S>>);

impl<S> Deref for Open<'_, S> {
    type Target = S;

    fn deref(&self) -> &S {
        self.0.as_ref().expect("checked open")
    }
}

impl<S> Gate<S> {
    pub fn new(sender: S) -> Self {
        Gate(RwLock::new(Some(sender)))
    }

    /// The sender, held shared until the guard drops; None once closed.
    pub fn enter(&self) -> Option<Open<'_, S>> {
        let g = self.0.read();
        g.is_some().then(|| Open(g))
    }

    /// Closes for good, after every holder has let go; returns the sender (None if closed).
    pub fn close(&self) -> Option<S> {
        self.0.write().take()
    }
}
