//! The pub/sub broker's routing: which subscriptions a topic reaches, with NATS-style queue
//! groups (members of one group on one pattern compete: each message goes to one of them).
//! Delivery itself (pushing into mailboxes, running handlers) belongs to the caller.

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

pub struct Group<M, X> {
    members: RwLock<Vec<Arc<Subscription<M, X>>>>,
    next: AtomicUsize,
}

impl<M, X> Group<M, X> {
    /// Round robin over the members.
    pub fn pick(&self) -> Option<Arc<Subscription<M, X>>> {
        let m = self.members.read();
        if m.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % m.len();
        Some(Arc::clone(&m[i]))
    }
}

#[derive(Clone, PartialEq)]
enum Target {
    Sub(u64),
    Group(u64),
}

/// Where one topic goes: plain subscriptions, and groups that each pick one member.
pub struct Route<M, X> {
    pub subs: Vec<Arc<Subscription<M, X>>>,
    pub groups: Vec<Arc<Group<M, X>>>,
}

impl<M, X> Route<M, X> {
    /// Every subscription one message goes to.
    pub fn targets(&self) -> impl Iterator<Item = Arc<Subscription<M, X>>> + '_ {
        self.subs
            .iter()
            .cloned()
            .chain(self.groups.iter().filter_map(|g| g.pick()))
    }

    pub fn is_empty(&self) -> bool {
        self.subs.is_empty() && self.groups.is_empty()
    }
}

struct State<M, X> {
    tree: TopicTree<Target>,
    subs: HashMap<u64, Arc<Subscription<M, X>>>,
    groups: HashMap<u64, Arc<Group<M, X>>>,
    group_ids: HashMap<(String, String), u64>,
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
                group_ids: HashMap::new(),
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
        match opts.group {
            None => st.tree.insert(pattern, Target::Sub(id)),
            Some(g) => {
                let key = (pattern.to_string(), g);
                let gid = match st.group_ids.get(&key) {
                    Some(gid) => *gid,
                    None => {
                        let gid = self.next_id.fetch_add(1, Ordering::Relaxed);
                        st.group_ids.insert(key, gid);
                        st.groups.insert(
                            gid,
                            Arc::new(Group {
                                members: RwLock::new(Vec::new()),
                                next: AtomicUsize::new(0),
                            }),
                        );
                        st.tree.insert(pattern, Target::Group(gid));
                        gid
                    }
                };
                st.groups[&gid].members.write().push(Arc::clone(&sub));
            }
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        drop(st);
        self.cache.lock().clear();
        sub
    }

    /// Removes the subscription from routing; false if it was already gone.
    pub fn unsubscribe(&self, sub: &Subscription<M, X>) -> bool {
        let mut st = self.state.write();
        let Some(s) = st.subs.remove(&sub.id) else {
            return false;
        };
        s.active.store(false, Ordering::Release);
        match &s.group {
            None => {
                st.tree.remove(&s.pattern, &Target::Sub(s.id));
            }
            Some(g) => {
                let key = (s.pattern.clone(), g.clone());
                if let Some(&gid) = st.group_ids.get(&key) {
                    let empty = {
                        let grp = &st.groups[&gid];
                        let mut m = grp.members.write();
                        m.retain(|x| x.id != s.id);
                        m.is_empty()
                    };
                    if empty {
                        st.group_ids.remove(&key);
                        st.groups.remove(&gid);
                        st.tree.remove(&s.pattern, &Target::Group(gid));
                    }
                }
            }
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        drop(st);
        self.cache.lock().clear();
        true
    }

    /// Where `topic` (valid, no wildcards) goes.
    pub fn route(&self, topic: &str) -> Arc<Route<M, X>> {
        if let Some(r) = self.cache.lock().get(topic) {
            return Arc::clone(r);
        }
        let st = self.state.read();
        let seen_before = self.generation.load(Ordering::Acquire);
        let mut route = Route {
            subs: Vec::new(),
            groups: Vec::new(),
        };
        let mut targets = st.tree.matching(topic);
        // Deterministic delivery order: oldest subscription first.
        targets.sort_by_key(|t| match t {
            Target::Sub(id) | Target::Group(id) => *id,
        });
        for t in targets {
            match t {
                Target::Sub(id) => route.subs.push(Arc::clone(&st.subs[&id])),
                Target::Group(gid) => route.groups.push(Arc::clone(&st.groups[&gid])),
            }
        }
        let seen = seen_before;
        drop(st);
        let route = Arc::new(route);
        let mut cache = self.cache.lock();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        // A change after our read bumps the generation before it clears the cache, so a stale
        // route is either not inserted or cleared right after.
        if self.generation.load(Ordering::Acquire) == seen {
            cache.insert(topic.to_string(), Arc::clone(&route));
        }
        route
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

    fn ids(r: &Route<u32, ()>) -> Vec<u64> {
        r.targets().map(|s| s.id).collect()
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
}
