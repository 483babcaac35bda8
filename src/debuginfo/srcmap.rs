//! Source path mapping: from the path a compiler recorded to a path in the reader's checkout.
//!
//! Debug information records the build machine's paths (`C:\Users\…\KSystemInformer\alloc.c`,
//! `/fixtures/src/pooltest.c`, `./dlls/hidclass.sys/pnp.c`). `--source-map BUILD_PREFIX=DIR`
//! rules rewrite a recorded prefix onto a checkout, and [`relative_to_root`] turns a path inside
//! `SRCROOT` into the relative form SARIF's `uriBaseId` wants (ci-and-ide.md §3–4).
//!
//! Invariants: both functions are pure (no file-system access); paths are compared after
//! lexical normalisation (`\` → `/`, repeated separators, `.` and `..` components); a recorded
//! path that looks like a Windows path (a drive letter, a UNC `\\` start, or any backslash) is
//! compared case-insensitively, as Windows file systems do; prefixes only match at a component
//! boundary (`C:\src` does not match `C:\srcx\a.c`); among several matching rules the longest
//! prefix wins.

use std::path::{Component, Path, PathBuf};

/// One `--source-map BUILD_PREFIX=DIR` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceMapRule {
    /// The recorded prefix, as the user wrote it (`C:\Users\aione\source\repos\systeminformer`).
    pub build_prefix: String,
    /// The directory it maps to (a checkout).
    pub dir: PathBuf,
}

/// `--source-map` text that is not `BUILD_PREFIX=DIR`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--source-map {text:?}: {why} (expected BUILD_PREFIX=DIR)")]
pub struct SourceMapParseError {
    pub text: String,
    pub why: &'static str,
}

impl std::str::FromStr for SourceMapRule {
    type Err = SourceMapParseError;

    /// Splits at the first `=`: build prefixes are Windows or POSIX paths, which hardly ever
    /// contain `=`, while the local directory may.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |why| SourceMapParseError {
            text: text.to_string(),
            why,
        };
        let (prefix, dir) = text.split_once('=').ok_or_else(|| err("no `=`"))?;
        if normalise(prefix).is_empty() {
            return Err(err("empty BUILD_PREFIX"));
        }
        if dir.is_empty() {
            return Err(err("empty DIR"));
        }
        Ok(SourceMapRule {
            build_prefix: prefix.to_string(),
            dir: PathBuf::from(dir),
        })
    }
}

/// Whether `path` is written the Windows way (so compared case-insensitively).
pub fn is_windows_path(path: &str) -> bool {
    let b = path.as_bytes();
    path.contains('\\') || (b.len() >= 2 && b[1] == b':' && b[0].is_ascii_alphabetic())
}

/// The path's components after lexical normalisation: separators unified to `/`, empty and `.`
/// components dropped, `..` resolved against the previous component (kept when there is none,
/// so a path climbing above its start never matches a prefix it is not under). A leading `/`
/// or `//` (UNC) is kept as the first component.
fn normalise(path: &str) -> Vec<String> {
    let unified = path.replace('\\', "/");
    let mut out: Vec<String> = Vec::new();
    if unified.starts_with("//") {
        out.push("//".into());
    } else if unified.starts_with('/') {
        out.push("/".into());
    }
    for part in unified.split('/') {
        match part {
            "" | "." => {}
            ".." => match out.last().map(String::as_str) {
                Some(last) if last != ".." && last != "/" && last != "//" && !is_drive(last) => {
                    out.pop();
                }
                _ => out.push("..".into()),
            },
            p => out.push(p.to_string()),
        }
    }
    out
}

fn is_drive(c: &str) -> bool {
    let b = c.as_bytes();
    b.len() == 2 && b[1] == b':' && b[0].is_ascii_alphabetic()
}

fn same(a: &str, b: &str, fold: bool) -> bool {
    if fold {
        a.to_lowercase() == b.to_lowercase()
    } else {
        a == b
    }
}

/// Applies the longest matching rule to a recorded source path: the rule's `DIR` joined with the
/// rest of the path. `None` when no rule matches.
pub fn map_source_path(rules: &[SourceMapRule], recorded: &str) -> Option<PathBuf> {
    let path = normalise(recorded);
    let mut best: Option<(usize, &SourceMapRule)> = None;
    for rule in rules {
        let prefix = normalise(&rule.build_prefix);
        let fold = is_windows_path(recorded) || is_windows_path(&rule.build_prefix);
        if prefix.is_empty() || prefix.len() > path.len() {
            continue;
        }
        if prefix.iter().zip(&path).all(|(a, b)| same(a, b, fold))
            && best.is_none_or(|(n, _)| prefix.len() > n)
        {
            best = Some((prefix.len(), rule));
        }
    }
    let (n, rule) = best?;
    let mut out = rule.dir.clone();
    for part in &path[n..] {
        out.push(part);
    }
    Some(out)
}

/// `path` relative to `root`, with `/` separators, when `path` is inside `root` (compared
/// component by component after lexical normalisation; case-insensitively when either looks
/// like a Windows path). A relative `path` is taken as relative to `root` already (DWARF
/// records `./dlls/x/pnp.c` under a `.` compilation directory) and returned normalised, unless
/// it climbs out with `..`. `None` when the path is outside `root`, or is `root` itself.
pub fn relative_to_root(path: &Path, root: &Path) -> Option<String> {
    let p = path.to_string_lossy();
    let r = root.to_string_lossy();
    let fold = is_windows_path(&p) || is_windows_path(&r);
    let pc = normalise(&p);
    if !path_is_absolute(&p) {
        if pc.is_empty() || pc[0] == ".." {
            return None;
        }
        return Some(pc.join("/"));
    }
    let rc = normalise(&r);
    if rc.is_empty() || pc.len() <= rc.len() || !rc.iter().zip(&pc).all(|(a, b)| same(a, b, fold)) {
        return None;
    }
    Some(pc[rc.len()..].join("/"))
}

/// Absolute in either convention: `/x`, `\\server\share`, `C:\x`, `C:/x`, or absolute for this
/// host's `Path`.
fn path_is_absolute(p: &str) -> bool {
    let b = p.as_bytes();
    p.starts_with('/')
        || p.starts_with('\\')
        || (b.len() >= 3 && is_drive(&p[..2]) && (b[2] == b'\\' || b[2] == b'/'))
        || Path::new(p)
            .components()
            .next()
            .is_some_and(|c| matches!(c, Component::RootDir | Component::Prefix(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> SourceMapRule {
        s.parse().unwrap()
    }

    #[test]
    fn windows_prefix_matches_case_insensitively_with_backslashes() {
        let rules = [rule(r"C:\Users\aione\source\repos\systeminformer=/src/si")];
        assert_eq!(
            map_source_path(
                &rules,
                r"c:\users\AIONE\source\repos\systeminformer\KSystemInformer\alloc.c"
            ),
            Some(PathBuf::from("/src/si/KSystemInformer/alloc.c"))
        );
        assert_eq!(
            map_source_path(&rules, "C:/Users/aione/source/repos/systeminformer/x.c"),
            Some(PathBuf::from("/src/si/x.c"))
        );
    }

    #[test]
    fn prefix_matches_only_at_a_component_boundary() {
        let rules = [rule(r"C:\src=/co")];
        assert_eq!(map_source_path(&rules, r"C:\srcx\a.c"), None);
        assert_eq!(
            map_source_path(&rules, r"C:\src\a.c"),
            Some(PathBuf::from("/co/a.c"))
        );
    }

    #[test]
    fn posix_prefix_is_case_sensitive_and_longest_rule_wins() {
        let rules = [
            rule("/fixtures=/a"),
            rule("/fixtures/src=/b"),
            rule("/FIXTURES/src=/c"),
        ];
        assert_eq!(
            map_source_path(&rules, "/fixtures/src/pooltest.c"),
            Some(PathBuf::from("/b/pooltest.c"))
        );
        assert_eq!(
            map_source_path(&rules, "/fixtures/include/x.h"),
            Some(PathBuf::from("/a/include/x.h"))
        );
        assert_eq!(map_source_path(&rules, "/Fixtures/src/x.c"), None);
    }

    #[test]
    fn dot_dot_is_resolved_before_matching() {
        let rules = [rule(r"C:\build\src=/co")];
        assert_eq!(
            map_source_path(&rules, r"C:\build\src\sub\..\a.c"),
            Some(PathBuf::from("/co/a.c"))
        );
        assert_eq!(map_source_path(&rules, r"C:\build\src\..\..\etc\a.c"), None);
    }

    #[test]
    fn bad_rules_are_refused() {
        assert!("no-equals".parse::<SourceMapRule>().is_err());
        assert!("=/x".parse::<SourceMapRule>().is_err());
        assert!(r"C:\x=".parse::<SourceMapRule>().is_err());
        assert_eq!(rule("/a=/b=c").dir, PathBuf::from("/b=c"));
    }

    #[test]
    fn relative_to_root_inside_outside_and_relative() {
        assert_eq!(
            relative_to_root(Path::new("/co/src/pooltest.c"), Path::new("/co")),
            Some("src/pooltest.c".into())
        );
        assert_eq!(
            relative_to_root(Path::new("/co2/a.c"), Path::new("/co")),
            None
        );
        assert_eq!(relative_to_root(Path::new("/co"), Path::new("/co")), None);
        assert_eq!(
            relative_to_root(Path::new(r"C:\Repo\Src\a.c"), Path::new(r"c:\repo")),
            Some("Src/a.c".into())
        );
        assert_eq!(
            relative_to_root(Path::new("./dlls/hidclass.sys/pnp.c"), Path::new("/co")),
            Some("dlls/hidclass.sys/pnp.c".into())
        );
        assert_eq!(
            relative_to_root(Path::new("../x.c"), Path::new("/co")),
            None
        );
    }
}
