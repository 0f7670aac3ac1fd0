//! Process-wide rules every binding follows, one concept a file: `exit` (stop native workers
//! before the interpreter finalizes; never re-attach a thread once that is unsafe), `fork`
//! (objects inherited across fork() refuse or rebuild themselves), `wait` (the one way to
//! block: detached, in slices, Ctrl-C checked, deadlines saturated) and `threads` (which thread
//! is main, how big a native thread's stack is, whether the interpreter is finalizing).

mod exit;
mod fork;
mod threads;
mod wait;

pub use exit::*;
pub use fork::*;
pub use threads::*;
pub use wait::*;
