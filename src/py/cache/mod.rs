//! Cache: a thread-safe, single-flight cache of Python objects. The index is a Python dict
//! (key -> `_CacheEntry`), read and written with the GIL held and no core lock taken, so keys
//! use Python's hash and eq (which may run Python code and even release the GIL). The core
//! lock guards only the recency list (`core::lru`), is taken attached with nothing inside that
//! can run Python (an entry dropped while evicting is dropped after the unlock), and so is never
//! held across fork(). A hit is one dict lookup, one expiry check and one touch, all native.

pub mod flight;

use crate::core::lru::{Handle, Lru};
use crate::core::sync::Mutex;
use crate::core::sync::RwLock;
use crate::py::args::{Callback, Count, Timeout};
use crate::py::gc::{self, gc_fields, Clear, Traverse};
use crate::py::lifecycle::stats_dict;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3::{PyTraverseError, PyVisit};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Instant;

/// One cached value, with its key (to forget it on eviction), its expiry and its place in the
/// recency list.
#[pyclass(module = "chanpool._core", name = "_CacheEntry", frozen)]
pub struct Entry {
    key: Py<PyAny>,
    value: Py<PyAny>,
    expires: f64,
    handle: AtomicU64,
}

gc_fields!(Entry { key, value });

#[pymethods]
impl Entry {
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.traverse(&visit)
    }
}

/// The recency list (only kept when the cache is bounded).
struct Order(Mutex<Lru<Py<Entry>>>);

impl Traverse for Order {
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        match self.0.try_lock() {
            Some(g) => g.iter().try_for_each(|e| e.traverse(visit)),
            None => Ok(()),
        }
    }
}

impl Clear for Order {
    fn take(&self) -> Vec<Py<PyAny>> {
        self.0.try_lock().map_or_else(Vec::new, |mut g| {
            g.drain().into_iter().map(Py::into_any).collect()
        })
    }
}

#[derive(Default)]
struct Stats {
    hits: AtomicU64,
    misses: AtomicU64,
    loads: AtomicU64,
    coalesced: AtomicU64,
    evictions: AtomicU64,
    expired: AtomicU64,
}

/// Seconds on the native monotonic clock (the default when no `clock` is given).
fn monotonic() -> f64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// What to call on a miss: the loader with the key, or (for @cached) the function with the
/// call's own arguments.
enum Load<'a, 'py> {
    Key(&'a Py<PyAny>),
    Call(
        &'a Bound<'py, PyAny>,
        &'a Bound<'py, PyTuple>,
        Option<&'a Bound<'py, PyDict>>,
    ),
}

#[pyclass(module = "chanpool", name = "Cache", frozen)]
pub struct Cache {
    index: Py<PyDict>,
    loading: Py<PyDict>,
    lock: flight::MissLock,
    order: Order,
    loader: RwLock<Option<Py<PyAny>>>,
    clock: RwLock<Option<Py<PyAny>>>,
    maxsize: Option<usize>,
    ttl: Option<f64>,
    stats: Stats,
}

gc_fields!(Cache {
    index,
    loading,
    order,
    loader,
    clock
});

impl Cache {
    fn now(&self, py: Python<'_>) -> PyResult<f64> {
        let clock = self.clock.read().as_ref().map(|c| c.clone_ref(py));
        match clock {
            None => Ok(monotonic()),
            Some(c) => crate::py::args::real(&c.call0(py)?.into_bound(py), "clock()"),
        }
    }

    /// Takes `entry` out of the index (if it is still the key's entry) and the recency list.
    fn drop_entry(&self, py: Python<'_>, entry: &Bound<'_, Entry>) -> PyResult<()> {
        let index = self.index.bind(py);
        let key = entry.get().key.bind(py);
        let unlinked = self.maxsize.and_then(|_| {
            let h = Handle::unpack(entry.get().handle.load(Relaxed));
            self.order.0.lock().remove(h)
        });
        drop(unlinked);
        if let Some(cur) = index.get_item(key)? {
            if cur.is(entry) {
                index.del_item(key)?;
            }
        }
        Ok(())
    }

    /// The fresh value of `key`, touching it; None when missing or expired (then dropped).
    #[inline]
    fn lookup(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        self.find(py, key, true)
    }

    /// `lookup`, touching the entry only if `touch` (peek and `in` leave the order alone).
    #[inline]
    fn find(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        touch: bool,
    ) -> PyResult<Option<Py<PyAny>>> {
        let Some(found) = self.index.bind(py).get_item(key)? else {
            return Ok(None);
        };
        let entry = found.cast_into::<Entry>()?;
        let e = entry.get();
        if self.ttl.is_some() && self.now(py)? >= e.expires {
            self.stats.expired.fetch_add(1, Relaxed);
            let _held = self.lock.hold(py)?;
            self.drop_entry(py, &entry)?;
            return Ok(None);
        }
        if touch && self.maxsize.is_some() {
            self.order
                .0
                .lock()
                .touch(Handle::unpack(e.handle.load(Relaxed)));
        }
        Ok(Some(e.value.clone_ref(py)))
    }

    /// Stores `value` for `key`, evicting the least recently used entries beyond maxsize.
    fn store(&self, py: Python<'_>, key: &Bound<'_, PyAny>, value: &Py<PyAny>) -> PyResult<()> {
        if self.maxsize == Some(0) {
            return Ok(());
        }
        let expires = match self.ttl {
            Some(ttl) => self.now(py)? + ttl,
            None => f64::INFINITY,
        };
        let entry = Py::new(
            py,
            Entry {
                key: key.clone().unbind(),
                value: value.clone_ref(py),
                expires,
                handle: AtomicU64::new(u64::MAX),
            },
        )?;
        let index = self.index.bind(py);
        let old = index.get_item(key)?;
        index.set_item(key, &entry)?;
        let Some(max) = self.maxsize else {
            return Ok(());
        };
        let mut evicted = Vec::new();
        let replaced = {
            let mut g = self.order.0.lock();
            let replaced = old
                .as_ref()
                .and_then(|o| o.cast::<Entry>().ok())
                .and_then(|o| g.remove(Handle::unpack(o.get().handle.load(Relaxed))));
            let h = g.push_front(entry.clone_ref(py));
            entry.get().handle.store(h.pack(), Relaxed);
            while g.len() > max {
                evicted.extend(g.pop_back());
            }
            replaced
        };
        drop(replaced);
        for gone in evicted {
            self.stats.evictions.fetch_add(1, Relaxed);
            let gone = gone.into_bound(py);
            let key = gone.get().key.bind(py);
            if let Some(cur) = index.get_item(key)? {
                if cur.is(&gone) {
                    index.del_item(key)?;
                }
            }
        }
        Ok(())
    }

    fn fetch(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        load: Load<'_, '_>,
        timeout: Timeout,
    ) -> PyResult<Py<PyAny>> {
        if let Some(v) = self.lookup(py, key)? {
            self.stats.hits.fetch_add(1, Relaxed);
            return Ok(v);
        }
        self.stats.misses.fetch_add(1, Relaxed);
        let loader = match &load {
            Load::Key(l) => Some(l.clone_ref(py)),
            Load::Call(..) => None,
        };
        let done = flight::run(
            py,
            self.loading.bind(py),
            &self.lock,
            key,
            timeout.deadline,
            || self.lookup(py, key),
            || {
                self.stats.loads.fetch_add(1, Relaxed);
                match (&load, &loader) {
                    (Load::Call(f, args, kwargs), _) => Ok(f.call(*args, *kwargs)?.unbind()),
                    (_, Some(l)) => l.call1(py, (key,)),
                    _ => unreachable!("a Key load has its loader"),
                }
            },
            |value| self.store(py, key, value),
            || {
                self.stats.coalesced.fetch_add(1, Relaxed);
            },
        )?;
        Ok(done.value)
    }
}

#[pymethods]
impl Cache {
    #[new]
    #[pyo3(
        signature = (loader = Callback(None), *, maxsize = None, ttl = None, clock = Callback(None)),
        text_signature = "(loader=None, *, maxsize=None, ttl=None, clock=None)"
    )]
    fn new(
        py: Python<'_>,
        loader: Callback,
        maxsize: Option<Count>,
        ttl: Option<&Bound<'_, PyAny>>,
        clock: Callback,
    ) -> PyResult<Self> {
        let maxsize = maxsize.map(|m| m.size(0, "maxsize")).transpose()?;
        let ttl = match ttl.filter(|t| !t.is_none()) {
            None => None,
            Some(t) => {
                let t = crate::py::args::real(t, "ttl")?;
                if t.is_nan() || t <= 0.0 {
                    return Err(pyo3::exceptions::PyValueError::new_err(
                        "ttl must be a positive number of seconds or None",
                    ));
                }
                Some(t)
            }
        };
        Ok(Cache {
            index: PyDict::new(py).unbind(),
            loading: PyDict::new(py).unbind(),
            lock: flight::MissLock::new(py)?,
            order: Order(Mutex::new(Lru::new())),
            loader: RwLock::new(loader.0),
            clock: RwLock::new(clock.0),
            maxsize,
            ttl,
            stats: Stats::default(),
        })
    }

    /// The value for key: cached, or loaded once by `loader(key)` (this call's loader, else the
    /// cache's) while concurrent callers of the same key wait for that load. A loader's
    /// exception is raised in every caller that waited for it and is not cached.
    #[pyo3(
        signature = (key, loader = Callback(None), *, timeout = Timeout::FOREVER),
        text_signature = "($self, key, loader=None, *, timeout=None)"
    )]
    fn get(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        loader: Callback,
        timeout: Timeout,
    ) -> PyResult<Py<PyAny>> {
        if let Some(v) = self.lookup(py, key)? {
            self.stats.hits.fetch_add(1, Relaxed);
            return Ok(v);
        }
        let loader = match loader.0 {
            Some(l) => l,
            None => self
                .loader
                .read()
                .as_ref()
                .map(|l| l.clone_ref(py))
                .ok_or_else(|| {
                    PyTypeError::new_err("Cache.get: no loader given here nor to Cache()")
                })?,
        };
        self.fetch(py, key, Load::Key(&loader), timeout)
    }

    /// For @cached: the value for key, computed on a miss as fn(*args, **kwargs).
    #[pyo3(signature = (key, r#fn, args, kwargs = None))]
    fn _call(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        r#fn: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        self.fetch(py, key, Load::Call(r#fn, args, kwargs), Timeout::FOREVER)
    }

    /// The cached value for key, or `default`; never loads, counts nothing, keeps the order.
    #[pyo3(signature = (key, default = None))]
    fn peek(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: Option<Py<PyAny>>,
    ) -> PyResult<Option<Py<PyAny>>> {
        Ok(self.find(py, key, false)?.or(default))
    }

    /// Stores a value (replacing the key's entry, as the most recently used).
    fn put(&self, py: Python<'_>, key: &Bound<'_, PyAny>, value: Py<PyAny>) -> PyResult<()> {
        let _held = self.lock.hold(py)?;
        self.store(py, key, &value)
    }

    /// Forgets key's value; True if there was one. A load in flight is not stopped.
    fn invalidate(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let _held = self.lock.hold(py)?;
        match self.index.bind(py).get_item(key)? {
            Some(e) => {
                self.drop_entry(py, &e.cast_into::<Entry>()?)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Forgets every value (loads in flight still store theirs when they finish).
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        let _held = self.lock.hold(py)?;
        let drained = self.order.0.lock().drain();
        drop(drained);
        self.index.bind(py).clear();
        Ok(())
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        self.index.bind(py).len()
    }

    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.find(py, key, false)?.is_some())
    }

    #[getter]
    fn maxsize(&self) -> Option<usize> {
        self.maxsize
    }

    #[getter]
    fn ttl(&self) -> Option<f64> {
        self.ttl
    }

    /// hits, misses (= loads + coalesced + misses found on the recheck), loads (loader calls),
    /// coalesced (callers that waited for another's load), evictions (LRU), expired (TTL),
    /// size, maxsize.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = &self.stats;
        stats_dict!(py, {
            "hits" => s.hits.load(Relaxed),
            "misses" => s.misses.load(Relaxed),
            "loads" => s.loads.load(Relaxed),
            "coalesced" => s.coalesced.load(Relaxed),
            "evictions" => s.evictions.load(Relaxed),
            "expired" => s.expired.load(Relaxed),
            "size" => self.index.bind(py).len(),
            "maxsize" => self.maxsize,
        })
    }

    /// Zeroes the counters (cache_clear of @cached does it, as lru_cache's does).
    fn reset_stats(&self) {
        let s = &self.stats;
        for c in [
            &s.hits,
            &s.misses,
            &s.loads,
            &s.coalesced,
            &s.evictions,
            &s.expired,
        ] {
            c.store(0, Relaxed);
        }
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let size = self.index.bind(py).len();
        let max = self.maxsize.map_or("None".to_string(), |m| m.to_string());
        format!("<chanpool.Cache size={size} maxsize={max}>")
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.traverse(&visit)
    }

    fn __clear__(&self) {
        gc::clear(&[&self.order, &self.loader, &self.clock]);
        Python::attach(|py| {
            self.index.bind(py).clear();
            self.loading.bind(py).clear();
        });
    }
}
