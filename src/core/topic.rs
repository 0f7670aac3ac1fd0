//! NATS-style subjects: dot-separated tokens; in patterns `*` matches exactly one token and `>`
//! (only as the last token) matches one or more trailing tokens. Only a whole token is a
//! wildcard: `foo*` and `*bar` are literal tokens, as in NATS.
//!
//! The tree is an arena of nodes addressed by index, walked with loops: no recursion anywhere
//! (insert, remove, match, drop), so a pattern of 50,000 tokens is fine on a 256 KiB stack.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicError(pub String);

impl std::fmt::Display for TopicError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Characters of a bad topic or pattern quoted in an error message (head and tail).
const QUOTE_HEAD: usize = 60;
const QUOTE_TAIL: usize = 30;

/// `s` quoted for an error message: at most about 100 characters of it.
pub fn quote(s: &str) -> String {
    let n = s.chars().count();
    if n <= QUOTE_HEAD + QUOTE_TAIL + 10 {
        return format!("{s:?}");
    }
    let head: String = s.chars().take(QUOTE_HEAD).collect();
    let tail: String = s.chars().skip(n - QUOTE_TAIL).collect();
    format!("{head:?}...{tail:?} ({n} characters)")
}

/// Err(what, quoted, why) when `bad` holds: every refusal names the string the same way.
fn refuse(bad: bool, what: &str, s: &str, why: &str) -> Result<(), TopicError> {
    if bad {
        return Err(TopicError(format!("{what} {}{why}", quote(s))));
    }
    Ok(())
}

fn check_tokens(s: &str, what: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError(format!("{what} must not be empty")));
    }
    let white = s.chars().any(char::is_whitespace);
    refuse(white, what, s, " must not contain whitespace")?;
    let empty = s.split('.').any(str::is_empty);
    refuse(
        empty,
        what,
        s,
        " has an empty token (leading, trailing or double dot)",
    )
}

/// A topic one publishes to: no wildcard tokens (`foo*` is a literal token, `*` is not).
pub fn validate_topic(topic: &str) -> Result<(), TopicError> {
    check_tokens(topic, "topic")?;
    let wild = topic.split('.').any(|t| t == "*" || t == ">");
    let why = " contains a wildcard token; wildcards are for subscription patterns";
    refuse(wild, "topic", topic, why)
}

/// A subscription pattern: `>` only as the last token.
pub fn validate_pattern(pattern: &str) -> Result<(), TopicError> {
    check_tokens(pattern, "pattern")?;
    let mut tokens = pattern.split('.').peekable();
    while let Some(t) = tokens.next() {
        let early = t == ">" && tokens.peek().is_some();
        refuse(early, "pattern", pattern, ": '>' must be the last token")?;
    }
    Ok(())
}

/// Does `topic` match `pattern`? Both assumed valid.
pub fn matches(pattern: &str, topic: &str) -> bool {
    let mut p = pattern.split('.');
    let mut t = topic.split('.');
    loop {
        match (p.next(), t.next()) {
            (None, None) => return true,
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

type Id = usize;

struct Node<T> {
    children: HashMap<Box<str>, Id>,
    star: Option<Id>,
    /// Values whose pattern ends here.
    here: Vec<T>,
    /// Values whose pattern ends with `>` right after this node.
    rest: Vec<T>,
    parent: Option<(Id, Edge)>,
}

/// How a node hangs from its parent (to unlink it when it empties).
enum Edge {
    Literal(Box<str>),
    Star,
}

impl<T> Node<T> {
    fn new(parent: Option<(Id, Edge)>) -> Self {
        Node {
            children: HashMap::new(),
            star: None,
            here: Vec::new(),
            rest: Vec::new(),
            parent,
        }
    }

    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.star.is_none()
            && self.here.is_empty()
            && self.rest.is_empty()
    }
}

const ROOT: Id = 0;

/// Patterns mapped to values, matched against topics by walking a token trie.
pub struct TopicTree<T> {
    /// Slot 0 is the root; freed slots are None and listed in `free`.
    nodes: Vec<Option<Node<T>>>,
    free: Vec<Id>,
    len: usize,
}

impl<T: Clone + PartialEq> Default for TopicTree<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone + PartialEq> TopicTree<T> {
    pub fn new() -> Self {
        TopicTree {
            nodes: vec![Some(Node::new(None))],
            free: Vec::new(),
            len: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Nodes in use, the root included (1 when empty).
    pub fn node_count(&self) -> usize {
        self.nodes.len() - self.free.len()
    }

    fn node(&self, id: Id) -> &Node<T> {
        self.nodes[id].as_ref().expect("live node")
    }

    fn node_mut(&mut self, id: Id) -> &mut Node<T> {
        self.nodes[id].as_mut().expect("live node")
    }

    fn alloc(&mut self, parent: Id, edge: Edge) -> Id {
        let n = Some(Node::new(Some((parent, edge))));
        match self.free.pop() {
            Some(id) => {
                self.nodes[id] = n;
                id
            }
            None => {
                self.nodes.push(n);
                self.nodes.len() - 1
            }
        }
    }

    /// `pattern` must be valid (see validate_pattern).
    pub fn insert(&mut self, pattern: &str, value: T) {
        let mut at = ROOT;
        let mut tokens = pattern.split('.').peekable();
        while let Some(tok) = tokens.next() {
            if tok == ">" {
                self.node_mut(at).rest.push(value);
                self.len += 1;
                return;
            }
            let next = if tok == "*" {
                self.node(at).star
            } else {
                self.node(at).children.get(tok).copied()
            };
            at = match next {
                Some(id) => id,
                None if tok == "*" => {
                    let id = self.alloc(at, Edge::Star);
                    self.node_mut(at).star = Some(id);
                    id
                }
                None => {
                    let id = self.alloc(at, Edge::Literal(tok.into()));
                    self.node_mut(at).children.insert(tok.into(), id);
                    id
                }
            };
            if tokens.peek().is_none() {
                self.node_mut(at).here.push(value);
                self.len += 1;
                return;
            }
        }
    }

    /// Removes one occurrence of `value` under `pattern`; true if it was there. Nodes left
    /// empty are unlinked, bottom up.
    pub fn remove(&mut self, pattern: &str, value: &T) -> bool {
        let mut at = ROOT;
        let mut tokens = pattern.split('.').peekable();
        let mut in_rest = false;
        while let Some(tok) = tokens.next() {
            if tok == ">" {
                in_rest = true;
                break;
            }
            let next = if tok == "*" {
                self.node(at).star
            } else {
                self.node(at).children.get(tok).copied()
            };
            let Some(id) = next else { return false };
            at = id;
            if tokens.peek().is_none() {
                break;
            }
        }
        let list = if in_rest {
            &mut self.node_mut(at).rest
        } else {
            &mut self.node_mut(at).here
        };
        let Some(i) = list.iter().position(|x| x == value) else {
            return false;
        };
        list.remove(i);
        self.len -= 1;
        while at != ROOT && self.node(at).is_empty() {
            let node = self.nodes[at].take().expect("live node");
            self.free.push(at);
            let (parent, edge) = node.parent.expect("non-root has a parent");
            let p = self.node_mut(parent);
            match edge {
                Edge::Star => p.star = None,
                Edge::Literal(k) => {
                    p.children.remove(&k);
                }
            }
            at = parent;
        }
        if self.node_count() == 1 {
            // Everything is gone: give the arena's memory back.
            self.nodes.truncate(1);
            self.nodes.shrink_to(16);
            self.free.clear();
            self.free.shrink_to(16);
        }
        true
    }

    /// Every value whose pattern matches `topic` (valid, no wildcards), in no particular order.
    pub fn matching(&self, topic: &str) -> Vec<T> {
        let tokens: Vec<&str> = topic.split('.').collect();
        let mut out = Vec::new();
        // (node, index of the next token to match)
        let mut stack = vec![(ROOT, 0usize)];
        while let Some((id, i)) = stack.pop() {
            let node = self.node(id);
            let Some(tok) = tokens.get(i) else {
                out.extend(node.here.iter().cloned());
                continue;
            };
            // `>` needs at least one more token, which `tok` is.
            out.extend(node.rest.iter().cloned());
            if let Some(&c) = node.children.get(*tok) {
                stack.push((c, i + 1));
            }
            if let Some(s) = node.star {
                stack.push((s, i + 1));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        for ok in ["a", "a.b.c", "orders.eu-1.created", "_errors.x"] {
            validate_topic(ok).unwrap();
            validate_pattern(ok).unwrap();
        }
        for bad in ["", ".", "a.", ".a", "a..b", "a b", "a.*", "a.>", "*", ">"] {
            assert!(validate_topic(bad).is_err(), "{bad:?}");
        }
        for ok in [
            "*", ">", "a.*", "a.>", "*.b.>", "*.*", "a*", "*a", "a.>>", "foo.>bar",
        ] {
            validate_pattern(ok).unwrap();
        }
        for ok in ["a*", "*a", "a.>>", "foo.>bar", "foo.***.bar"] {
            validate_topic(ok).unwrap();
        }
        for bad in ["", "a.>.b", ">.a", "a..>", "a.>.>"] {
            assert!(validate_pattern(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn matching_rules() {
        let cases = [
            ("a.b", "a.b", true),
            ("a.b", "a.c", false),
            ("a.*", "a.b", true),
            ("a.*", "a.b.c", false),
            ("a.*", "a", false),
            ("a.>", "a.b", true),
            ("a.>", "a.b.c", true),
            ("a.>", "a", false),
            (">", "x", true),
            (">", "x.y.z", true),
            ("*.b.>", "a.b.c", true),
            ("*.b.>", "a.b", false),
            ("*", "a.b", false),
        ];
        for (p, t, want) in cases {
            assert_eq!(matches(p, t), want, "{p} ~ {t}");
            let mut tree = TopicTree::new();
            tree.insert(p, 1);
            assert_eq!(!tree.matching(t).is_empty(), want, "tree {p} ~ {t}");
        }
    }

    #[test]
    fn tree_agrees_with_matches_on_many_patterns() {
        let patterns = [
            "a", "a.b", "a.*", "a.>", "*", ">", "*.b", "*.*", "a.b.c", "a.*.c", "*.b.>", "x.y",
        ];
        let topics = [
            "a", "b", "a.b", "a.c", "a.b.c", "a.x.c", "x.b.c.d", "x.y", "q.b",
        ];
        let mut tree = TopicTree::new();
        for (i, p) in patterns.iter().enumerate() {
            tree.insert(p, i);
        }
        for t in topics {
            let mut got = tree.matching(t);
            got.sort_unstable();
            let want: Vec<usize> = (0..patterns.len())
                .filter(|&i| matches(patterns[i], t))
                .collect();
            assert_eq!(got, want, "topic {t}");
        }
        for (i, p) in patterns.iter().enumerate() {
            assert!(tree.remove(p, &i));
            assert!(!tree.remove(p, &i));
        }
        assert!(tree.is_empty());
        assert_eq!(tree.node_count(), 1, "every node but the root was unlinked");
    }

    #[test]
    fn literal_tokens_with_wildcard_characters() {
        let mut tree = TopicTree::new();
        tree.insert("foo.*-", 1);
        tree.insert("foo.>-", 2);
        tree.insert("*bar", 3);
        assert!(tree.matching("foo.bar").is_empty());
        assert_eq!(tree.matching("foo.*-"), vec![1]);
        assert_eq!(tree.matching("foo.>-"), vec![2]);
        assert_eq!(tree.matching("*bar"), vec![3]);
        assert!(tree.matching("xbar").is_empty());
        assert!(matches("*bar", "*bar") && !matches("*bar", "xbar"));
    }

    #[test]
    fn deep_patterns_need_no_recursion() {
        // On a small stack: recursion over 100,000 tokens would overflow it.
        std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(|| {
                let deep: String = vec!["t"; 100_000].join(".");
                let mut tree = TopicTree::new();
                tree.insert(&deep, 1);
                let stars: String = vec!["*"; 100_000].join(".");
                tree.insert(&stars, 2);
                let mut got = tree.matching(&deep);
                got.sort_unstable();
                assert_eq!(got, vec![1, 2]);
                assert!(tree.remove(&deep, &1));
                assert_eq!(tree.matching(&deep), vec![2]);
                drop(tree); // dropping a deep tree recurses in no destructor
                let mut t2 = TopicTree::new();
                t2.insert(&deep, 3);
                assert!(t2.remove(&deep, &3));
                assert_eq!(t2.node_count(), 1);
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn error_messages_quote_a_bounded_part() {
        let long = format!("{}..x", "y".repeat(10_000));
        let e = validate_pattern(&long).unwrap_err();
        assert!(e.0.len() < 200, "{}", e.0);
        assert!(e.0.contains("10003 characters"), "{}", e.0);
        assert_eq!(quote("a.b"), "\"a.b\"");
    }
}
