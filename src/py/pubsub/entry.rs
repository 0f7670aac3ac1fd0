//! publish()'s entry as a METH_FASTCALL | METH_KEYWORDS method (py/fastcall): the arguments
//! are read straight from the caller's array, without pyo3's wrapper.

use super::PubSub;
use crate::py::fastcall::{self, entry, noted, required, Call, Method, Sig};
use pyo3::prelude::*;
use pyo3::types::{PyString, PyType};

const PUBLISH: Sig<2> = Sig {
    name: "PubSub.publish",
    params: ["topic", "data"],
    required: 1,
};

/// `PubSub.publish(self, topic, data=None)`.
fn publish(c: Call<'_, '_>) -> PyResult<Py<PyAny>> {
    let me = c.this::<PubSub>()?;
    let [topic, data] = c.bind(&PUBLISH)?;
    let topic = required(topic)?
        .cast::<PyString>()
        .map_err(|e| noted(c.py, "topic", e.into()))?;
    let data = data.map_or_else(|| c.py.None(), |d| d.to_owned().unbind());
    let n = me.get().publish(c.py, &topic, data)?;
    Ok(n.into_pyobject(c.py)?.into_any().unbind())
}

/// Puts the entry on the PubSub class (at module init).
pub fn install(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let cls = m.getattr("PubSub")?.cast_into::<PyType>()?;
    fastcall::install(
        &cls,
        &[Method {
            name: c"publish",
            entry: entry!("PubSub.publish", publish),
            doc: c"publish($self, topic, data=None)\n--\n\nPublishes `data` on `topic`; returns how many subscriptions it was queued to.",
        }],
    )
}
