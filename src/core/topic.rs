//! NATS-style subjects: dot-separated tokens; in patterns `*` matches exactly one token and `>`
//! (only as the last token) matches one or more trailing tokens.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicError(pub String);

impl std::fmt::Display for TopicError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn check_tokens(s: &str, what: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError(format!("{what} must not be empty")));
    }
    if s.chars().any(char::is_whitespace) {
        return Err(TopicError(format!(
            "{what} {s:?} must not contain whitespace"
        )));
    }
    if s.split('.').any(str::is_empty) {
        return Err(TopicError(format!(
            "{what} {s:?} has an empty token (leading, trailing or double dot)"
        )));
    }
    Ok(())
}

/// A topic one publishes to: no wildcards.
pub fn validate_topic(topic: &str) -> Result<(), TopicError> {
    check_tokens(topic, "topic")?;
    if topic.split('.').any(|t| t.contains('*') || t.contains('>')) {
        return Err(TopicError(format!(
            "topic {topic:?} contains a wildcard; wildcards are for subscription patterns"
        )));
    }
    Ok(())
}

/// A subscription pattern: `*` and `>` only as whole tokens, `>` only last.
pub fn validate_pattern(pattern: &str) -> Result<(), TopicError> {
    check_tokens(pattern, "pattern")?;
    let tokens: Vec<&str> = pattern.split('.').collect();
    for (i, t) in tokens.iter().enumerate() {
        let wild = t.contains('*') || t.contains('>');
        if wild && *t != "*" && *t != ">" {
            return Err(TopicError(format!(
                "pattern {pattern:?}: wildcards must be whole tokens, got {t:?}"
            )));
        }
        if *t == ">" && i + 1 != tokens.len() {
            return Err(TopicError(format!(
                "pattern {pattern:?}: '>' must be the last token"
            )));
        }
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

#[derive(Default)]
struct Node<T> {
    children: HashMap<String, Node<T>>,
    star: Option<Box<Node<T>>>,
    /// Values whose pattern ends here.
    here: Vec<T>,
    /// Values whose pattern ends with `>` right after this node.
    rest: Vec<T>,
}

impl<T> Node<T> {
    fn new() -> Self {
        Node {
            children: HashMap::new(),
            star: None,
            here: Vec::new(),
            rest: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.star.is_none()
            && self.here.is_empty()
            && self.rest.is_empty()
    }
}

/// Patterns mapped to values, matched against topics by walking a token trie.
pub struct TopicTree<T> {
    root: Node<T>,
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
            root: Node::new(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `pattern` must be valid (see validate_pattern).
    pub fn insert(&mut self, pattern: &str, value: T) {
        let mut node = &mut self.root;
        let mut tokens = pattern.split('.').peekable();
        while let Some(tok) = tokens.next() {
            if tok == ">" {
                node.rest.push(value);
                self.len += 1;
                return;
            }
            node = if tok == "*" {
                node.star.get_or_insert_with(|| Box::new(Node::new()))
            } else {
                node.children
                    .entry(tok.to_string())
                    .or_insert_with(Node::new)
            };
            if tokens.peek().is_none() {
                node.here.push(value);
                self.len += 1;
                return;
            }
        }
    }

    /// Removes one occurrence of `value` under `pattern`; true if it was there.
    pub fn remove(&mut self, pattern: &str, value: &T) -> bool {
        let tokens: Vec<&str> = pattern.split('.').collect();
        let removed = Self::remove_in(&mut self.root, &tokens, value);
        if removed {
            self.len -= 1;
        }
        removed
    }

    fn remove_in(node: &mut Node<T>, tokens: &[&str], value: &T) -> bool {
        let take = |v: &mut Vec<T>| match v.iter().position(|x| x == value) {
            Some(i) => {
                v.remove(i);
                true
            }
            None => false,
        };
        let (tok, rest) = match tokens.split_first() {
            Some(x) => x,
            None => return false,
        };
        if *tok == ">" {
            return take(&mut node.rest);
        }
        let child: Option<&mut Node<T>> = if *tok == "*" {
            node.star.as_deref_mut()
        } else {
            node.children.get_mut(*tok)
        };
        let Some(child) = child else { return false };
        let removed = if rest.is_empty() {
            take(&mut child.here)
        } else {
            Self::remove_in(child, rest, value)
        };
        if removed && child.is_empty() {
            if *tok == "*" {
                node.star = None;
            } else {
                node.children.remove(*tok);
            }
        }
        removed
    }

    /// Every value whose pattern matches `topic` (valid, no wildcards), in no particular order.
    pub fn matching(&self, topic: &str) -> Vec<T> {
        let tokens: Vec<&str> = topic.split('.').collect();
        let mut out = Vec::new();
        Self::collect(&self.root, &tokens, &mut out);
        out
    }

    fn collect(node: &Node<T>, tokens: &[&str], out: &mut Vec<T>) {
        let Some((tok, rest)) = tokens.split_first() else {
            out.extend(node.here.iter().cloned());
            return;
        };
        // `>` needs at least one more token, which `tok` is.
        out.extend(node.rest.iter().cloned());
        if let Some(child) = node.children.get(*tok) {
            Self::collect(child, rest, out);
        }
        if let Some(star) = &node.star {
            Self::collect(star, rest, out);
        }
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
        for bad in ["", ".", "a.", ".a", "a..b", "a b", "a.*", "a.>", "a*"] {
            assert!(validate_topic(bad).is_err(), "{bad:?}");
        }
        for ok in ["*", ">", "a.*", "a.>", "*.b.>", "*.*"] {
            validate_pattern(ok).unwrap();
        }
        for bad in ["", "a.>.b", ">.a", "a*", "a.b*", "a.>>", "a..>"] {
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
        assert!(tree.root.is_empty());
    }
}
