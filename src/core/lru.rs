//! The recency order of a bounded cache: a doubly linked list in a slab, addressed by
//! generational handles. The cache's index (a Python dict in the binding) maps keys to entries
//! that carry their handle; a handle whose slot was freed and reused is stale, and every
//! operation on it is a no-op, so an entry found in the index just before it was evicted can
//! never touch the slot's next owner. Not synchronised: its owner keeps it under one lock.

/// A slot's place in the list: index and the generation it was filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handle {
    index: u32,
    gen: u32,
}

impl Handle {
    /// The handle packed into one word (an atomic field of an entry).
    pub fn pack(self) -> u64 {
        (u64::from(self.gen) << 32) | u64::from(self.index)
    }

    pub fn unpack(word: u64) -> Handle {
        Handle {
            index: word as u32,
            gen: (word >> 32) as u32,
        }
    }
}

const NIL: u32 = u32::MAX;

struct Node<T> {
    prev: u32,
    next: u32,
    gen: u32,
    value: Option<T>,
}

/// Most recently used at the head, least at the tail.
pub struct Lru<T> {
    nodes: Vec<Node<T>>,
    free: Vec<u32>,
    head: u32,
    tail: u32,
    len: usize,
}

impl<T> Default for Lru<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Lru<T> {
    pub const fn new() -> Self {
        Lru {
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn live(&self, h: Handle) -> bool {
        self.nodes
            .get(h.index as usize)
            .is_some_and(|n| n.gen == h.gen && n.value.is_some())
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let n = &self.nodes[i as usize];
            (n.prev, n.next)
        };
        match prev {
            NIL => self.head = next,
            p => self.nodes[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.nodes[n as usize].prev = prev,
        }
    }

    fn link_front(&mut self, i: u32) {
        let old = self.head;
        {
            let n = &mut self.nodes[i as usize];
            n.prev = NIL;
            n.next = old;
        }
        match old {
            NIL => self.tail = i,
            o => self.nodes[o as usize].prev = i,
        }
        self.head = i;
    }

    /// Adds `value` as the most recently used.
    pub fn push_front(&mut self, value: T) -> Handle {
        let index = match self.free.pop() {
            Some(i) => {
                let n = &mut self.nodes[i as usize];
                n.gen = n.gen.wrapping_add(1);
                n.value = Some(value);
                i
            }
            None => {
                let i = u32::try_from(self.nodes.len()).expect("fewer than 2^32 entries");
                self.nodes.push(Node {
                    prev: NIL,
                    next: NIL,
                    gen: 0,
                    value: Some(value),
                });
                i
            }
        };
        self.link_front(index);
        self.len += 1;
        Handle {
            index,
            gen: self.nodes[index as usize].gen,
        }
    }

    /// Marks the entry most recently used; false (and nothing done) for a stale handle.
    pub fn touch(&mut self, h: Handle) -> bool {
        if !self.live(h) {
            return false;
        }
        if self.head != h.index {
            self.unlink(h.index);
            self.link_front(h.index);
        }
        true
    }

    fn take(&mut self, i: u32) -> Option<T> {
        self.unlink(i);
        self.free.push(i);
        self.len -= 1;
        self.nodes[i as usize].value.take()
    }

    /// Takes the entry out; None for a stale handle.
    pub fn remove(&mut self, h: Handle) -> Option<T> {
        if !self.live(h) {
            return None;
        }
        self.take(h.index)
    }

    /// Takes the least recently used entry out.
    pub fn pop_back(&mut self) -> Option<T> {
        match self.tail {
            NIL => None,
            t => self.take(t),
        }
    }

    /// Empties the list, handing every entry back (the caller drops them after unlocking).
    pub fn drain(&mut self) -> Vec<T> {
        let out = self
            .nodes
            .iter_mut()
            .filter_map(|n| n.value.take())
            .collect();
        *self = Lru::new();
        out
    }

    /// Every entry, most recently used first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        let mut i = self.head;
        std::iter::from_fn(move || {
            let n = self.nodes.get(i as usize)?;
            i = n.next;
            n.value.as_ref()
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn order(l: &Lru<u32>) -> Vec<u32> {
        l.iter().copied().collect()
    }

    #[test]
    fn push_touch_pop_keep_recency_order() {
        let mut l = Lru::new();
        let a = l.push_front(1);
        let _b = l.push_front(2);
        let c = l.push_front(3);
        assert_eq!(order(&l), [3, 2, 1]);
        assert!(l.touch(a));
        assert_eq!(order(&l), [1, 3, 2]);
        assert_eq!(l.pop_back(), Some(2));
        assert_eq!(l.remove(c), Some(3));
        assert_eq!(order(&l), [1]);
        assert_eq!(l.len(), 1);
        assert_eq!(l.pop_back(), Some(1));
        assert_eq!(l.pop_back(), None);
        assert!(l.is_empty());
    }

    #[test]
    fn a_stale_handle_never_touches_the_slots_next_owner() {
        let mut l = Lru::new();
        let a = l.push_front(1);
        let _b = l.push_front(2);
        assert_eq!(l.remove(a), Some(1));
        let c = l.push_front(3); // reuses a's slot
        assert_eq!(c.index, a.index);
        assert!(!l.touch(a));
        assert_eq!(l.remove(a), None);
        assert_eq!(order(&l), [3, 2]);
        assert_eq!(Handle::unpack(c.pack()), c);
    }

    #[test]
    fn many_operations_match_a_reference_list() {
        let mut l = Lru::new();
        let mut model: Vec<u32> = Vec::new(); // most recent first
        let mut handles = std::collections::HashMap::new();
        let mut x: u64 = 12345;
        for step in 0..20_000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let k = ((x >> 33) % 50) as u32;
            match (x >> 20) % 4 {
                0 | 1 => {
                    if let Some(&h) = handles.get(&k) {
                        assert!(l.touch(h));
                        model.retain(|&v| v != k);
                    } else {
                        handles.insert(k, l.push_front(k));
                    }
                    model.insert(0, k);
                }
                2 => {
                    if let Some(h) = handles.remove(&k) {
                        assert_eq!(l.remove(h), Some(k));
                        model.retain(|&v| v != k);
                    }
                }
                _ => {
                    let popped = l.pop_back();
                    assert_eq!(popped, model.pop(), "step {step}");
                    if let Some(p) = popped {
                        handles.remove(&p);
                    }
                }
            }
            assert_eq!(l.len(), model.len());
        }
        assert_eq!(order(&l), model);
        assert_eq!(l.drain().len(), model.len());
        assert!(l.is_empty());
    }
}
