//! A line-level pre-pass that blanks the subtrees of unwanted keys in block-style YAML before
//! the YAML parser sees it, so the parser scans a quarter of the LOLDrivers text (imports,
//! section tables and certificate signature blobs are most of it).
//!
//! It is exact for the subset it accepts and declines everything else: [`prune`] returns
//! `None` (and the caller parses the original text) on any line it cannot classify with
//! certainty — tabs, directives and document markers, anchors, aliases and tags at a value's
//! start, complex or quoted keys, flow collections or quoted scalars left open at the end of a
//! line in front of a dropped key, block scalars in front of a dropped key. Why the rest is
//! exact (YAML 1.2 §6.1, §7, §8): a block mapping value's continuation lines (multi-line plain
//! or quoted scalars, nested collections) are indented more than its key, except a compact
//! block sequence, whose `- ` items may sit at the key's own column when the key has no inline
//! value; plain scalars cannot contain `": "` nor end a line with `:`, so a line shaped
//! `key: ...` outside a quoted scalar, block scalar or flow collection is a key. The lines of a
//! dropped value are left out (the first key of a mapping stays, without its value, so the
//! mapping starts where it did); [`Pruned::lines`] maps every kept line to its line in the file,
//! so positions in the tree and in errors are the file's. Leaving lines out is the same as
//! blanking them: a dropped region never falls inside a kept scalar.
//!
//! The equivalence (same tree, same lines, with and without the pre-pass) is tested on all 661
//! LOLDrivers files. One difference is by design: text inside a dropped subtree is bounded by
//! its indentation but not otherwise checked, so a syntax error there (in data the loader does
//! not read) is not reported; an anchor or alias in kept text still sends the whole file to the
//! parser, which refuses aliases.

/// Which keys to keep, given the enclosing mapping keys (as in `yaml::Keep`).
pub type Keep = fn(path: &[&str], key: &str) -> bool;

/// What the current line continues.
enum Open {
    None,
    /// A kept multi-line quoted scalar (`true` = double-quoted).
    Quote(bool),
    /// A kept block scalar whose content is indented more than this column.
    Block(usize),
    /// A kept plain scalar whose continuation lines are indented more than this column (they
    /// are passed on untouched: the parser sees exactly the original text there).
    Plain(usize),
    /// A dropped key at this column; `compact` if `- ` items at the same column belong to it.
    Drop {
        col: usize,
        compact: bool,
    },
    /// A dropped key at this column whose quoted scalar value is still open.
    DropQuote {
        col: usize,
        dq: bool,
    },
}

/// The pruned text, or `None` if the file uses something the pre-pass does not handle.
pub fn prune(text: &str, keep: Keep) -> Option<Pruned> {
    let mut out = Pruned {
        text: String::with_capacity(text.len() / 3),
        lines: Vec::new(),
    };
    let mut n = 0u32;
    // Open mapping keys with nested values: (key column, key).
    let mut stack: Vec<(usize, &str)> = Vec::new();
    let mut open = Open::None;
    // Whether the next key line starts a mapping (at the start, after `key:` with a nested
    // value): a mapping's line is its first key's, which therefore stays even when dropped.
    let mut map_start = true;
    // The enclosing keys of the current line, rebuilt from `stack` for each key line (one
    // buffer for the file rather than one per line).
    let mut path: Vec<&str> = Vec::new();
    for line in lines(text) {
        n += 1;
        let body = line.strip_suffix('\n').unwrap_or(line);
        let body = body.strip_suffix('\r').unwrap_or(body);
        let indent = body.len() - body.trim_start_matches(' ').len();
        let rest = &body[indent..];
        let blank = rest.is_empty() || rest.starts_with('#');
        match open {
            Open::Quote(dq) => {
                out.keep(line, n);
                if closes_quote(rest, dq).is_some() {
                    // Closed: anything after it must be a comment or nothing, as on one line.
                    open = Open::None;
                }
                continue;
            }
            Open::Block(col) | Open::Plain(col) => {
                if blank || indent > col {
                    out.keep(line, n);
                    continue;
                }
                open = Open::None;
            }
            Open::Drop { col, compact } => {
                let item = rest == "-" || rest.starts_with("- ");
                if blank || indent > col || (compact && indent == col && item) {
                    continue;
                }
                open = Open::None;
            }
            Open::DropQuote { col, dq } => {
                // Continuation lines of the quoted value are indented more than its key; a
                // line that is not is invalid YAML, left for the parser to report.
                if !rest.is_empty() && indent <= col {
                    return None;
                }
                if let Some(after) = closes_quote(rest, dq) {
                    let after = after.trim_start_matches(' ');
                    if !(after.is_empty() || after.starts_with('#')) {
                        return None;
                    }
                    open = Open::Drop {
                        col,
                        compact: false,
                    };
                }
                continue;
            }
            Open::None => {}
        }
        if blank {
            out.keep(line, n);
            continue;
        }
        if rest.starts_with('\t') {
            return None;
        }
        // Sequence markers in front of the node.
        let mut col = indent;
        let mut node = rest;
        while node == "-" || node.starts_with("- ") {
            let skip = 1 + node[1..].len() - node[1..].trim_start_matches(' ').len();
            col += skip;
            node = &node[skip..];
        }
        if node.is_empty() {
            out.keep(line, n);
            continue;
        }
        let first = node.as_bytes()[0];
        if matches!(
            first,
            b'%' | b'?' | b'&' | b'*' | b'!' | b'"' | b'\'' | b'@' | b'`'
        ) || node.starts_with("---")
            || node.starts_with("...")
        {
            // Directives, markers, complex or quoted keys, anchors/aliases/tags, quoted item
            // values: only the quoted item values are common, and they are handled below.
            if !matches!(first, b'"' | b'\'') || col == indent {
                return None;
            }
        }
        match key_of(node)? {
            Some((key, value)) => {
                while stack.last().is_some_and(|&(c, _)| c >= col) {
                    stack.pop();
                }
                path.clear();
                path.extend(stack.iter().map(|&(_, k)| k));
                if !keep(&path, key) {
                    let kind = value_kind(value);
                    if !matches!(kind, Value::Simple | Value::Empty | Value::OpenQuote(_)) {
                        return None;
                    }
                    if col > indent || map_start {
                        // The first key of a mapping stays, without its value: the mapping
                        // still starts on this line and an item is not merged into its
                        // neighbour; the tree builder drops the key again.
                        out.keep(&format!("{}{key}:\n", &body[..col]), n);
                    }
                    map_start = false;
                    open = match kind {
                        Value::OpenQuote(dq) => Open::DropQuote { col, dq },
                        _ => Open::Drop {
                            col,
                            compact: matches!(kind, Value::Empty),
                        },
                    };
                    continue;
                }
                out.keep(line, n);
                map_start = false;
                match value_kind(value) {
                    Value::Empty => {
                        stack.push((col, key));
                        map_start = true;
                    }
                    Value::Simple => open = Open::Plain(col),
                    Value::OpenQuote(dq) => open = Open::Quote(dq),
                    Value::BlockScalar => open = Open::Block(col),
                    Value::Unsupported => return None,
                }
            }
            None => {
                // A scalar item or a plain-scalar continuation line.
                out.keep(line, n);
                map_start = false;
                if col > indent {
                    match value_kind(node) {
                        Value::Simple => open = Open::Plain(indent),
                        Value::OpenQuote(dq) => open = Open::Quote(dq),
                        _ => return None,
                    }
                }
            }
        }
    }
    if matches!(open, Open::Quote(_) | Open::DropQuote { .. }) {
        return None;
    }
    Some(out)
}

/// The lines of `text`, each with its `\n` (the last one without, if the text does not end
/// with one): `str::split_inclusive('\n')` with the `memchr` crate's vector search for the
/// line ends (the standard library's search was 12 % of loading the LOLDrivers folder, 19 MB
/// of short lines; with this and one key-path buffer per file the load takes 10 % less CPU).
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut ends = memchr::memchr_iter(b'\n', text.as_bytes());
    std::iter::from_fn(move || {
        let end = match ends.next() {
            Some(i) => i + 1,
            None if start < text.len() => text.len(),
            None => return None,
        };
        let line = &text[start..end];
        start = end;
        Some(line)
    })
}

/// The kept lines of a file and the (1-based) line each came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    pub text: String,
    pub lines: Vec<u32>,
}

impl Pruned {
    fn keep(&mut self, line: &str, n: u32) {
        self.text.push_str(line);
        if !line.ends_with('\n') {
            self.text.push('\n');
        }
        self.lines.push(n);
    }
}

/// `key: value` → `Some(Some((key, value after the colon)))` for a plain key, `Some(None)`
/// for a line that is not a key, `None` when unsure (the caller then declines the file).
fn key_of(node: &str) -> Option<Option<(&str, &str)>> {
    let b = node.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b':' && (i + 1 == b.len() || b[i + 1] == b' ') {
            let key = &node[..i];
            if key.is_empty() || key.ends_with(' ') || key.contains(" #") {
                return None;
            }
            return Some(Some((key, node[i + 1..].trim_start_matches(' '))));
        }
        if matches!(b[i], b'#' | b'[' | b']' | b'{' | b'}' | b',' | b'"' | b'\'') {
            return Some(None);
        }
        i += 1;
    }
    Some(None)
}

enum Value {
    /// Nothing (or a comment) after the colon: the value is on the next lines.
    Empty,
    /// A plain scalar, a quoted scalar closed on this line, or a closed flow collection.
    Simple,
    /// A quoted scalar still open at the end of the line.
    OpenQuote(bool),
    BlockScalar,
    Unsupported,
}

fn value_kind(v: &str) -> Value {
    if v.is_empty() || v.starts_with('#') {
        return Value::Empty;
    }
    match v.as_bytes()[0] {
        b'"' | b'\'' => {
            let dq = v.starts_with('"');
            match closes_quote(&v[1..], dq) {
                None => Value::OpenQuote(dq),
                Some(after) => {
                    let after = after.trim_start_matches(' ');
                    if after.is_empty() || after.starts_with('#') {
                        Value::Simple
                    } else {
                        Value::Unsupported
                    }
                }
            }
        }
        b'|' | b'>' => Value::BlockScalar,
        b'&' | b'*' | b'!' | b'%' | b'@' | b'`' => Value::Unsupported,
        b'[' | b'{' => {
            if flow_closes(v) {
                Value::Simple
            } else {
                Value::Unsupported
            }
        }
        _ => Value::Simple,
    }
}

/// Where a quoted scalar that started before `s` closes: the text after the closing quote.
fn closes_quote(s: &str, dq: bool) -> Option<&str> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if dq {
            match b[i] {
                b'\\' => i += 1,
                b'"' => return Some(&s[i + 1..]),
                _ => {}
            }
        } else if b[i] == b'\'' {
            if b.get(i + 1) == Some(&b'\'') {
                i += 1;
            } else {
                return Some(&s[i + 1..]);
            }
        }
        i += 1;
    }
    None
}

/// Whether a flow collection opened at the start of `v` closes on this line (and nothing but a
/// comment follows).
fn flow_closes(v: &str) -> bool {
    let b = v.as_bytes();
    let mut depth = 0i32;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'[' | b'{' => depth += 1,
            b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    let after = v[i + 1..].trim_start_matches(' ');
                    return after.is_empty() || after.starts_with('#');
                }
            }
            b'"' | b'\'' => match closes_quote(&v[i + 1..], b[i] == b'"') {
                Some(after) => i = v.len() - after.len() - 1,
                None => return false,
            },
            b'&' | b'*' | b'!' => return false,
            _ => {}
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocklist::yaml;

    #[test]
    fn lines_are_split_inclusive() {
        for text in [
            "",
            "a",
            "a\n",
            "a\nb",
            "\n\n",
            "a\r\nb\n\nc",
            "\u{e9}\n\u{e9}",
        ] {
            let want: Vec<&str> = text.split_inclusive('\n').collect();
            assert_eq!(lines(text).collect::<Vec<_>>(), want, "{text:?}");
        }
    }

    fn keep(path: &[&str], key: &str) -> bool {
        match path {
            [] => key != "Drop",
            ["Items"] => key != "Big",
            _ => true,
        }
    }

    fn same(text: &str) -> String {
        let p = prune(text, keep).expect("pruned");
        assert_eq!(
            yaml::parse_mapped(&p.text, keep, Some(&p.lines)).unwrap(),
            yaml::parse(text, keep).unwrap(),
            "{}",
            p.text
        );
        assert_eq!(p.lines.len(), p.text.lines().count());
        p.text
    }

    #[test]
    fn drops_subtrees_and_keeps_lines() {
        let t = "Id: x\nDrop:\n  a: 1\n  b:\n  - 2\n  - c: 'd: e'\nItems:\n- Big:\n  - 1\n  - 2\n  Small: 3\n- Small: \"4\n    5\"\n  Text: |\n    k: v\nTail: >\n  Drop: 9\nEnd: [1, {a: 'b]'}]\n";
        let p = same(t);
        assert!(
            !p.contains("c: 'd: e'") && !p.contains("Drop:\n") && p.contains("- Big:\n"),
            "{p}"
        );
        assert!(
            p.contains("Drop: 9"),
            "block scalar content is not a key: {p}"
        );
        // A dropped key's multi-line quoted value.
        let p = same("Drop: \"a\\\n  b: c\n  d\"\nId: 1\n");
        assert!(!p.contains("b: c"), "{p}");
    }

    #[test]
    fn declines_what_it_cannot_classify() {
        for t in [
            "a: &x 1\nb: *x\n",
            "%YAML 1.2\n---\na: 1\n",
            "? complex\n: v\n",
            "\"quoted key\": 1\n",
            "Drop: [1,\n  2]\n",
            "Drop: \"open\nquote\"\n",
            "Drop: |\n  text\n",
            "a:\n\t- tab\n",
            "a: !tag x\n",
            "key : 1\n",
            "- |\n  k: v\n",
        ] {
            assert!(prune(t, keep).is_none(), "{t:?}");
        }
        // Declined files still parse (or fail) the same way without the pre-pass.
        assert!(yaml::parse("a: &x 1\nb: *x\n", keep).is_err());
    }
}
