//! fan_in's loop: moves values from its inputs to its output until every input is closed.

use super::chan::Channel;
use super::select::{select, Case};
use super::waker::Selected;
use crate::core::sync::Arc;
use crate::core::wait::Hook;

/// Passes values from `inputs` to `out` until every input is closed, then closes `out` with the
/// first input's close reason. Stops early if `out` is closed (by its reader): a value already
/// taken then goes back to the front of its input, so nothing accepted is lost. Values from one
/// input keep their order.
pub fn forward<T>(mut inputs: Vec<&Channel<T>>, out: &Channel<T>, hook: Hook<'_>) {
    let mut first_reason: Option<Arc<T>> = None;
    while !inputs.is_empty() {
        let r = {
            let mut cases: Vec<Case<'_, T>> = inputs.iter().map(|c| Case::recv(*c)).collect();
            cases.push(Case::closed(out));
            select(&mut cases, true, None, hook)
        };
        match r {
            Ok(Some(Selected::Received(i, v))) => {
                if let Err((_, v)) = out.send(v, None, hook) {
                    inputs[i].put_back(v);
                    return;
                }
            }
            Ok(Some(Selected::RecvClosed(i))) => {
                let c = inputs.swap_remove(i);
                if first_reason.is_none() {
                    first_reason = c.close_reason();
                }
            }
            // The output was closed, or the hook stopped the wait.
            _ => return,
        }
    }
    out.close_shared(first_reason);
}
