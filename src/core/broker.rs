//! The pub/sub broker's routing: which subscriptions a topic reaches, with NATS-style queue
//! groups. A group is a queue name: each message goes to one member of every group among all
//! the subscriptions it matches, whatever pattern each member used (a message matching
//! `foo.*` and `foo.bar`, both in group "workers", reaches ONE member). Delivery itself
//! (pushing into mailboxes, running handlers) belongs to the caller.

use crate::core::mailbox::{Mailbox, Overflow};
use crate::core::sync::{Mutex, RwLock};
use crate::core::topic::TopicTree;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

pub struct SubOptions {
    pub capacity: usize,
    pub overflow: Overflow,
    /// 0 for a pull subscription (no handler runs).
    pub workers: usize,
    pub group: Option<String>,
}

/// A subscription's shared state; `X` is what the caller attaches (e.g. the handler).
pub struct Subscription<M, X> {
    pub id: u64,
    pub pattern: String,
    pub group: Option<String>,
    pub mailbox: Mailbox<M>,
    pub extra: X,
    pub delivered: AtomicU64,
    pub errors: AtomicU64,
    active: AtomicBool,
}

impl<M, X> Subscription<M, X> {
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    pub fn name(&self) -> String {
        match &self.group {
            Some(g) => format!("#{} {:?} (group {:?})", self.id, self.pattern, g),
            None => format!("#{} {:?}", self.id, self.pattern),
        }
    }
}

/// The members of one queue group that one topic reaches, oldest first.
pub struct RouteGroup<M, X> {
    pub name: String,
    pub members: Vec<Arc<Subscription<M, X>>>,
    /// The group's round-robin position, shared by every route of the group.
    next: Arc<AtomicUsize>,
}

impl<M, X> RouteGroup<M, X> {
    /// The members in the order to try them: the round-robin pick first, then the others (a
    /// member that turns out to be gone is skipped in favour of the next).
    pub fn candidates(&self) -> impl Iterator<Item = &Arc<Subscription<M, X>>> + '_ {
        let n = self.members.len();
        let start = if n == 0 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % n
        };
        (0..n).map(move |k| &self.members[(start + k) % n])
    }
}

/// Where one topic goes: plain subscriptions, and groups that each take one member.
pub struct Route<M, X> {
    pub subs: Vec<Arc<Subscription<M, X>>>,
    pub groups: Vec<RouteGroup<M, X>>,
}

impl<M, X> Route<M, X> {
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty() && self.groups.is_empty()
    }
}

struct GroupState {
    next: Arc<AtomicUsize>,
    members: usize,
}

struct State<M, X> {
    tree: TopicTree<u64>,
    subs: HashMap<u64, Arc<Subscription<M, X>>>,
    groups: HashMap<String, GroupState>,
}

/// Cached routes are dropped wholesale when subscriptions change; past this many topics too.
const CACHE_LIMIT: usize = 4096;

pub struct Broker<M, X> {
    state: RwLock<State<M, X>>,
    cache: Mutex<HashMap<String, Arc<Route<M, X>>>>,
    /// Bumped (under the state lock) by every subscribe and unsubscribe.
    generation: AtomicU64,
    next_id: AtomicU64,
}

impl<M, X> Default for Broker<M, X> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M, X> Broker<M, X> {
    pub fn new() -> Self {
        Broker {
            state: RwLock::new(State {
                tree: TopicTree::new(),
                subs: HashMap::new(),
                groups: HashMap::new(),
            }),
            cache: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
        }
    }

    /// `pattern` must be valid (topic::validate_pattern).
    pub fn subscribe(&self, pattern: &str, opts: SubOptions, extra: X) -> Arc<Subscription<M, X>> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let sub = Arc::new(Subscription {
            id,
            pattern: pattern.to_string(),
            group: opts.group.clone(),
            mailbox: Mailbox::new(opts.capacity, opts.overflow, opts.workers),
            extra,
            delivered: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            active: AtomicBool::new(true),
        });
        let mut st = self.state.write();
        st.subs.insert(id, Arc::clone(&sub));
        st.tree.insert(pattern, id);
        if let Some(g) = opts.group {
            st.groups
                .entry(g)
                .or_insert_with(|| GroupState {
                    next: Arc::new(AtomicUsize::new(0)),
                    members: 0,
                })
                .members += 1;
        }
        let stale = self.changed();
        drop(st);
        drop(stale);
        sub
    }

    /// Removes the subscription from routing; false if it was already gone.
    pub fn unsubscribe(&self, sub: &Subscription<M, X>) -> bool {
        let mut st = self.state.write();
        let Some(s) = st.subs.remove(&sub.id) else {
            return false;
        };
        s.active.store(false, Ordering::Release);
        st.tree.remove(&s.pattern, &s.id);
        if let Some(g) = &s.group {
            if let Some(gs) = st.groups.get_mut(g) {
                gs.members -= 1;
                if gs.members == 0 {
                    st.groups.remove(g);
                }
            }
        }
        let stale = self.changed();
        drop(st);
        drop(stale);
        true
    }

    /// Under the state lock: a new generation and an empty cache, in one step under the cache
    /// lock, so a route read from the cache always belongs to the generation read with it.
    /// The stale routes are returned, to be dropped after both locks are released.
    fn changed(&self) -> HashMap<String, Arc<Route<M, X>>> {
        let mut cache = self.cache.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        std::mem::take(&mut *cache)
    }

    /// Bumped by every subscribe and unsubscribe: a route tagged with an older generation may
    /// be stale.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The cached route of `topic`, with the generation it is current for; None if `topic` is
    /// not cached (then it may also be invalid: only valid topics are ever routed).
    pub fn cached(&self, topic: &str) -> Option<(Arc<Route<M, X>>, u64)> {
        let cache = self.cache.lock();
        let r = cache.get(topic)?;
        Some((Arc::clone(r), self.generation.load(Ordering::Acquire)))
    }

    /// `route`, with the generation the route is current for.
    pub fn route_tagged(&self, topic: &str) -> (Arc<Route<M, X>>, u64) {
        if let Some(hit) = self.cached(topic) {
            return hit;
        }
        let (route, seen) = self.compute(topic);
        let route = Arc::new(route);
        let mut cache = self.cache.lock();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        // Changes bump the generation and clear the cache under this lock: a route computed
        // before a change is not inserted.
        if self.generation.load(Ordering::Acquire) == seen {
            cache.insert(topic.to_string(), Arc::clone(&route));
        }
        (route, seen)
    }

    /// Where `topic` (valid, no wildcards) goes.
    pub fn route(&self, topic: &str) -> Arc<Route<M, X>> {
        self.route_tagged(topic).0
    }

    /// The route as of now, bypassing the cache: for a publish whose cached route named only
    /// members of a group that have left meanwhile.
    pub fn route_now(&self, topic: &str) -> Route<M, X> {
        self.compute(topic).0
    }

    fn compute(&self, topic: &str) -> (Route<M, X>, u64) {
        let st = self.state.read();
        let seen = self.generation.load(Ordering::Acquire);
        let mut ids = st.tree.matching(topic);
        // Deterministic delivery order: oldest subscription first.
        ids.sort_unstable();
        let mut route = Route {
            subs: Vec::new(),
            groups: Vec::new(),
        };
        for id in ids {
            let sub = Arc::clone(&st.subs[&id]);
            match &sub.group {
                None => route.subs.push(sub),
                Some(g) => match route.groups.iter_mut().find(|rg| rg.name == *g) {
                    Some(rg) => rg.members.push(sub),
                    None => route.groups.push(RouteGroup {
                        name: g.clone(),
                        next: Arc::clone(&st.groups[g].next),
                        members: vec![sub],
                    }),
                },
            }
        }
        (route, seen)
    }

    pub fn subscriptions(&self) -> Vec<Arc<Subscription<M, X>>> {
        let mut v: Vec<_> = self.state.read().subs.values().cloned().collect();
        v.sort_by_key(|s| s.id);
        v
    }

    /// Like `subscriptions` but gives up (None) instead of waiting for the lock: for callers
    /// that must never block, such as a garbage collector's traversal.
    pub fn try_subscriptions(&self) -> Option<Vec<Arc<Subscription<M, X>>>> {
        let st = self.state.try_read()?;
        Some(st.subs.values().cloned().collect())
    }

    pub fn len(&self) -> usize {
        self.state.read().subs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(group: Option<&str>) -> SubOptions {
        SubOptions {
            capacity: 16,
            overflow: Overflow::Block,
            workers: 1,
            group: group.map(str::to_string),
        }
    }

    /// Every subscription one message goes to, if no member turns out to be gone.
    fn ids(r: &Route<u32, ()>) -> Vec<u64> {
        let firsts = r.groups.iter().filter_map(|g| g.candidates().next());
        r.subs.iter().chain(firsts).map(|s| s.id).collect()
    }

    #[test]
    fn routes_follow_subscribe_and_unsubscribe() {
        let b: Broker<u32, ()> = Broker::new();
        let a = b.subscribe("orders.*", opts(None), ());
        let c = b.subscribe("orders.>", opts(None), ());
        let d = b.subscribe("users.x", opts(None), ());
        assert_eq!(ids(&b.route("orders.new")), vec![a.id, c.id]);
        assert_eq!(ids(&b.route("orders.eu.new")), vec![c.id]);
        assert!(b.route("nothing").is_empty());
        assert!(b.unsubscribe(&a));
        assert!(!b.unsubscribe(&a));
        assert!(!a.is_active());
        // The cached route must have been invalidated.
        assert_eq!(ids(&b.route("orders.new")), vec![c.id]);
        assert_eq!(ids(&b.route("users.x")), vec![d.id]);
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn a_group_gets_each_message_once_round_robin() {
        let b: Broker<u32, ()> = Broker::new();
        let g1 = b.subscribe("jobs.*", opts(Some("w")), ());
        let g2 = b.subscribe("jobs.*", opts(Some("w")), ());
        let other = b.subscribe("jobs.*", opts(Some("v")), ());
        let plain = b.subscribe("jobs.*", opts(None), ());
        let mut counts = HashMap::new();
        for _ in 0..100 {
            let r = b.route("jobs.a");
            let t = ids(&r);
            assert_eq!(t.len(), 3, "plain + one of w + v");
            for id in t {
                *counts.entry(id).or_insert(0) += 1;
            }
        }
        assert_eq!(counts[&plain.id], 100);
        assert_eq!(counts[&other.id], 100);
        assert_eq!(counts[&g1.id], 50);
        assert_eq!(counts[&g2.id], 50);
        b.unsubscribe(&g1);
        let mut now = ids(&b.route("jobs.a"));
        now.sort();
        assert_eq!(now, vec![g2.id, other.id, plain.id]);
        b.unsubscribe(&g2);
        let mut left = ids(&b.route("jobs.a"));
        left.sort();
        assert_eq!(left, vec![other.id, plain.id]);
    }

    #[test]
    fn a_tagged_route_goes_stale_with_every_change() {
        let b: Broker<u32, ()> = Broker::new();
        let (r, g) = b.route_tagged("a.b");
        assert!(r.is_empty());
        assert_eq!(g, b.generation());
        assert!(b.cached("a.b").is_some_and(|(_, g2)| g2 == g));
        let s = b.subscribe("a.*", opts(None), ());
        assert!(b.generation() > g, "subscribe moves the generation");
        assert!(b.cached("a.b").is_none(), "and empties the cache");
        let (r, g) = b.route_tagged("a.b");
        assert_eq!((ids(&r), g), (vec![s.id], b.generation()));
        b.unsubscribe(&s);
        assert!(b.generation() > g && b.cached("a.b").is_none());
        assert!(b.route_tagged("a.b").0.is_empty());
    }

    #[test]
    fn a_group_spans_patterns() {
        let b: Broker<u32, ()> = Broker::new();
        let wide = b.subscribe("foo.*", opts(Some("w")), ());
        let narrow = b.subscribe("foo.bar", opts(Some("w")), ());
        let mut counts = HashMap::new();
        for _ in 0..100 {
            let t = ids(&b.route("foo.bar"));
            assert_eq!(t.len(), 1, "one member of the group");
            *counts.entry(t[0]).or_insert(0) += 1;
        }
        assert_eq!((counts[&wide.id], counts[&narrow.id]), (50, 50));
        assert_eq!(ids(&b.route("foo.baz")), vec![wide.id]);
        let r = b.route("foo.bar");
        let all: Vec<u64> = r.groups[0].candidates().map(|s| s.id).collect();
        assert_eq!(all.len(), 2, "every member is a candidate");
        b.unsubscribe(&wide);
        b.unsubscribe(&narrow);
        assert!(b.route("foo.bar").is_empty());
        assert!(b.state.read().groups.is_empty());
    }
}
