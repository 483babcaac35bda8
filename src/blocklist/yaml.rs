//! A small YAML document tree built from saphyr-parser's events, keeping only the mapping keys
//! a caller asks for.
//!
//! Why events and not a serde deserializer: the LOLDrivers files are 90 % data the matcher never
//! reads (import lists, section entropies, certificate signatures), and skipping those subtrees
//! without building them is what keeps the 661-file folder under the load budget.
//!
//! Bounds (hostile input): aliases are refused (no anchor is ever expanded, so a
//! billion-laughs document fails at its first `*alias`), nesting is limited to [`MAX_DEPTH`],
//! and the caller caps the input size. Tags are ignored (every scalar is text), as the data
//! does not use them. Only the first document of a stream is read; a second one is an error,
//! since a LOLDrivers file describes one driver.

use saphyr_parser::{Event, Parser};

/// Deepest nesting accepted (the LOLDrivers layout needs 6).
pub const MAX_DEPTH: usize = 64;

/// A node of the kept tree, with the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Scalar(String, usize),
    Seq(Vec<Node>, usize),
    Map(Vec<(String, Node)>, usize),
}

impl Node {
    pub fn line(&self) -> usize {
        match self {
            Node::Scalar(_, l) | Node::Seq(_, l) | Node::Map(_, l) => *l,
        }
    }
    /// The value of `key` in a mapping (first occurrence).
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(m, _) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Scalar(s, _) => Some(s),
            _ => None,
        }
    }
}

/// A parse failure: line, column (1-based) and why.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Decides which mapping keys to keep, given the keys of the enclosing mappings (outermost
/// first). Sequence levels do not add to the path.
pub type Keep = fn(path: &[&str], key: &str) -> bool;

enum Frame {
    Seq(Vec<Node>, usize),
    /// Entries so far, the pending key (waiting for its value) with whether it is kept, and
    /// the line.
    Map(Vec<(String, Node)>, Option<(String, bool)>, usize),
}

/// Parses the first document of `text` into a [`Node`], dropping the subtrees of keys that
/// `keep` rejects. `None` for an empty stream.
pub fn parse(text: &str, keep: Keep) -> Result<Option<Node>, YamlError> {
    parse_mapped(text, keep, None)
}

/// [`parse`] of text whose line `i` (1-based) is line `lines[i - 1]` of the original file.
pub fn parse_mapped(
    text: &str,
    keep: Keep,
    lines: Option<&[u32]>,
) -> Result<Option<Node>, YamlError> {
    let map = |l: usize| -> usize {
        match lines {
            Some(m) => m
                .get(l.wrapping_sub(1))
                .map_or_else(|| m.last().map_or(l, |&x| x as usize + 1), |&x| x as usize),
            None => l,
        }
    };
    let mut stack: Vec<Frame> = Vec::new();
    // Keys of the open mappings (outermost first), for `keep`.
    let mut path: Vec<String> = Vec::new();
    // While > 0, events belong to a dropped subtree of that many open collections (or to one
    // pending dropped scalar when 1 and nothing is open yet).
    let mut skip_depth = 0usize;
    let mut skipping = false;
    let mut root: Option<Node> = None;
    let mut documents = 0;
    for item in Parser::new_from_str(text) {
        let (ev, span) = item.map_err(|e| YamlError {
            line: map(e.marker().line()),
            column: e.marker().col() + 1,
            message: e.info().to_string(),
        })?;
        let line = map(span.start.line());
        let err = |message: String| YamlError {
            line,
            column: span.start.col() + 1,
            message,
        };
        match ev {
            Event::Alias(_) => {
                return Err(err(
                    "aliases are not supported (no anchor is expanded)".into()
                ))
            }
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(err("more than one YAML document in the file".into()));
                }
                continue;
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => continue,
            _ => {}
        }
        if skipping {
            match ev {
                Event::SequenceStart(..) | Event::MappingStart(..) => skip_depth += 1,
                Event::SequenceEnd | Event::MappingEnd => skip_depth -= 1,
                _ => {}
            }
            if skip_depth == 0 {
                skipping = false;
            }
            if skip_depth > MAX_DEPTH {
                return Err(err(format!("nesting deeper than {MAX_DEPTH}")));
            }
            continue;
        }
        // Is this event the value of a key the caller drops?
        if let Some(Frame::Map(_, pending @ Some((_, false)), _)) = stack.last_mut() {
            *pending = None;
            if matches!(ev, Event::SequenceStart(..) | Event::MappingStart(..)) {
                skipping = true;
                skip_depth = 1;
            }
            continue;
        }
        let node = match ev {
            Event::Scalar(value, ..) => Some(Node::Scalar(value.into_owned(), line)),
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(err(format!("nesting deeper than {MAX_DEPTH}")));
                }
                if matches!(ev, Event::SequenceStart(..)) {
                    stack.push(Frame::Seq(Vec::new(), line));
                } else {
                    stack.push(Frame::Map(Vec::new(), None, line));
                }
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(v, l)) => Some(Node::Seq(v, l)),
                _ => return Err(err("unbalanced sequence end".into())),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(v, None, l)) => Some(Node::Map(v, l)),
                _ => return Err(err("unbalanced mapping end".into())),
            },
            _ => None,
        };
        let Some(node) = node else { continue };
        place(
            &mut stack,
            &mut path,
            &mut root,
            node,
            line,
            span.start.col() + 1,
            keep,
        )?;
    }
    Ok(root)
}

/// Puts a finished node into its parent (as a key, a value or an item) or makes it the root.
fn place(
    stack: &mut [Frame],
    path: &mut Vec<String>,
    root: &mut Option<Node>,
    node: Node,
    line: usize,
    column: usize,
    keep: Keep,
) -> Result<(), YamlError> {
    let err = |message: &str| YamlError {
        line,
        column,
        message: message.into(),
    };
    match stack.last_mut() {
        None => {
            if root.is_some() {
                return Err(err("more than one root node"));
            }
            *root = Some(node);
        }
        Some(Frame::Seq(items, _)) => items.push(node),
        Some(Frame::Map(entries, pending, _)) => match pending.take() {
            None => match node {
                Node::Scalar(k, _) => {
                    // The enclosing keys as `&str`s without allocating (depth <= MAX_DEPTH).
                    let mut buf = [""; MAX_DEPTH];
                    for (slot, p) in buf.iter_mut().zip(path.iter()) {
                        *slot = p;
                    }
                    let kept = keep(&buf[..path.len().min(MAX_DEPTH)], &k);
                    if kept {
                        path.push(k.clone());
                    }
                    *pending = Some((k, kept));
                }
                _ => return Err(err("a mapping key is not a scalar")),
            },
            Some((k, _)) => {
                path.pop();
                entries.push((k, node));
            }
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(_: &[&str], _: &str) -> bool {
        true
    }
    fn no_b(path: &[&str], key: &str) -> bool {
        !(path.is_empty() && key == "b")
    }

    #[test]
    fn builds_and_skips() {
        let y = "a: 1\nb:\n  - x: [1, 2]\n  - {y: 2}\nc:\n  d: 'q'\n";
        let n = parse(y, all).unwrap().unwrap();
        assert_eq!(n.get("c").unwrap().get("d").unwrap().as_str(), Some("q"));
        assert!(matches!(n.get("b"), Some(Node::Seq(v, 3)) if v.len() == 2));
        let n = parse(y, no_b).unwrap().unwrap();
        assert!(n.get("b").is_none());
        assert_eq!(n.get("a").unwrap().as_str(), Some("1"));
        assert_eq!(n.get("c").unwrap().line(), 6);
        // A dropped scalar value.
        let n = parse("b: 3\na: 4\n", no_b).unwrap().unwrap();
        assert_eq!(
            n,
            Node::Map(vec![("a".into(), Node::Scalar("4".into(), 2))], 1)
        );
    }

    #[test]
    fn hostile_documents_are_refused() {
        // Billion laughs: refused at the first alias, without expanding anything.
        let mut bomb = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for (i, c) in "bcdefghi".chars().enumerate() {
            let prev = (b'a' + i as u8) as char;
            bomb.push_str(&format!(
                "{c}: &{c} [{}]\n",
                vec![format!("*{prev}"); 9].join(",")
            ));
        }
        let t = std::time::Instant::now();
        let e = parse(&bomb, all).unwrap_err();
        assert!(e.message.contains("aliases"), "{e:?}");
        assert_eq!(e.line, 2);
        assert!(t.elapsed().as_millis() < 100);
        // Also when the alias sits under a dropped key.
        assert!(parse("b: &x 1\nb2: *x\n", no_b).is_err());
        // Deep nesting.
        let deep = "[".repeat(10_000);
        let e = parse(&deep, all).unwrap_err();
        assert!(
            e.message.contains("nesting") || e.message.contains("recursion"),
            "{e:?}"
        );
        // Syntax errors carry a position.
        let e = parse("a: [1, 2\nb: c: d\n", all).unwrap_err();
        assert!(e.line >= 1);
        assert!(parse("a: 1\n---\nb: 2\n", all)
            .unwrap_err()
            .message
            .contains("more than one"));
        assert_eq!(parse("", all).unwrap(), None);
    }
}
