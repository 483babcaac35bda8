//! The layering, checked: the module graph derived from the sources has no cycle.
//!
//! Every source file under `src/` is a node (`pipeline/audit.rs` is `pipeline::audit`, a
//! `mod.rs` its folder's module). A file depends on the module a path names: `crate::a::b::…`
//! and `super::…` paths (grouped `use crate::{a, b}` included), and paths through a child
//! module it declares (`mod x;` then `x::…`). Each path resolves to the deepest module it
//! names; comments are ignored. A cycle — two files reaching each other through such paths —
//! fails the test with the files on it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::common::root;

/// Module path of a source file relative to `src/` (`None` for the binary's `main.rs`).
fn module_of(rel: &str) -> Option<Vec<String>> {
    let rel = rel.strip_suffix(".rs")?;
    if rel == "main" {
        return None;
    }
    if rel == "lib" {
        return Some(Vec::new());
    }
    let mut parts: Vec<String> = rel.split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    Some(parts)
}

/// The text with `//` comments removed (string literals holding `//` are rare enough in this
/// code base to ignore; `crate::` inside a string would only add an edge), and without its
/// unit tests: an inline `#[cfg(test)] mod tests` sits at the end of its file by convention,
/// and its `super::` is the file's own module.
fn strip_comments(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod ") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The identifier starting at `s`.
fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Every path (as segments) that follows `prefix` in `text`: `prefix a::b::c`, and each member
/// of a group `prefix {a::b, c}` (one level of braces).
fn paths_after(text: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for member in group[..end].split(',') {
                let segs = segments(member.trim());
                if !segs.is_empty() {
                    out.push(segs);
                }
            }
        } else {
            out.push(segments(rest));
        }
    }
    out
}

/// `a::b::c` at the start of `s`, as segments.
fn segments(mut s: &str) -> Vec<String> {
    let mut segs = Vec::new();
    loop {
        let id = ident(s);
        if id.is_empty() {
            break;
        }
        segs.push(id.to_string());
        match s[id.len()..].strip_prefix("::") {
            Some(next) => s = next,
            None => break,
        }
    }
    segs
}

/// The deepest known module named by `path` (absolute segments).
fn resolve(path: &[String], modules: &BTreeSet<Vec<String>>) -> Vec<String> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
        .unwrap_or_default()
}

/// `module → modules it depends on`, for every file under `src/`.
fn module_graph(src: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p
                    .strip_prefix(src)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                if let Some(m) = module_of(&rel) {
                    files.insert(m, strip_comments(&std::fs::read_to_string(&p).unwrap()));
                }
            }
        }
    }
    let modules: BTreeSet<Vec<String>> = files.keys().cloned().collect();
    let mut graph = BTreeMap::new();
    for (module, text) in &files {
        let mut deps = BTreeSet::new();
        let mut add = |path: Vec<String>| {
            let target = resolve(&path, &modules);
            if &target != module {
                deps.insert(target);
            }
        };
        for p in paths_after(text, "crate::") {
            add(p);
        }
        for p in paths_after(text, "super::") {
            // `super` of a module is its parent; `super::super::` its grandparent.
            let mut base = module.clone();
            base.pop();
            let mut p = p.as_slice();
            while p.first().is_some_and(|s| s == "super") {
                base.pop();
                p = &p[1..];
            }
            base.extend(p.iter().cloned());
            add(base);
        }
        // Paths through the file's own child modules (`mod x;` then `x::…` or `use x::…`).
        for line in text.lines() {
            let l = line.trim_start();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            let l = l
                .strip_prefix("pub(crate) ")
                .or_else(|| l.strip_prefix("pub(super) "))
                .unwrap_or(l);
            if let Some(child) = l.strip_prefix("mod ") {
                let child = ident(child).to_string();
                let mut child_path = module.clone();
                child_path.push(child.clone());
                if !modules.contains(&child_path) {
                    continue; // an inline `mod tests { … }`
                }
                for p in paths_after(text, &format!("{child}::")) {
                    let mut full = child_path.clone();
                    full.extend(p);
                    add(full);
                }
            }
        }
        graph.insert(module.clone(), deps);
    }
    graph
}

/// A cycle in `graph`, as the modules on it, if there is one.
fn find_cycle(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        m: &Vec<String>,
        graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        marks: &mut BTreeMap<Vec<String>, Mark>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<String>> {
        match marks.get(m) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let at = stack.iter().position(|s| s == m).unwrap_or(0);
                let mut cycle: Vec<String> = stack[at..].iter().map(|s| name(s)).collect();
                cycle.push(name(m));
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(m.clone(), Mark::Open);
        stack.push(m.clone());
        for d in graph.get(m).into_iter().flatten() {
            if let Some(c) = visit(d, graph, marks, stack) {
                return Some(c);
            }
        }
        stack.pop();
        marks.insert(m.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for m in graph.keys() {
        let mut stack = Vec::new();
        if let Some(c) = visit(m, graph, &mut marks, &mut stack) {
            return Some(c);
        }
    }
    None
}

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = module_graph(&root().join("src"));
    assert!(graph.len() > 40, "only {} modules found", graph.len());
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

/// The checker itself finds what it must: a cycle through `super::`, a grouped `use`, and a
/// child module's path; none in a chain.
#[test]
fn the_cycle_check_finds_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    let write = |rel: &str, text: &str| {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("lib.rs", "mod a;\nmod b;\n");
    write("a/mod.rs", "mod x;\nuse x::thing; // uses its child\n");
    write("a/x.rs", "use super::Shared;\n");
    write("b.rs", "use crate::{a::x, lib_item};\n");
    let graph = module_graph(src);
    let cycle = find_cycle(&graph).expect("a <-> a::x is a cycle");
    assert!(cycle.contains(&"a".to_string()) && cycle.contains(&"a::x".to_string()));
    write("a/x.rs", "// use super::Shared;\nfn f() {}\n");
    assert_eq!(find_cycle(&module_graph(src)), None);
}
