//! Collecting inputs: the command-line paths expanded into files, classified, in path order.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use crate::report::{Level, Notice, NoticeKind};
use crate::util::display_path;

/// What kind of input a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InputKind {
    /// A driver image.
    Image,
    /// A `.zip` package.
    Zip,
    /// A `.cab` package.
    Cab,
    /// A crash dump (by its signature).
    Dump,
    /// An INF: its folder is a driver package.
    Inf,
}

/// One file to analyse.
#[derive(Debug, Clone)]
pub(crate) struct Input {
    pub(crate) path: PathBuf,
    pub(crate) kind: InputKind,
}

/// What the walk found besides the files it handed on.
pub(crate) struct Walked {
    /// Unreadable paths, link loops.
    pub(crate) notices: Vec<Notice>,
    /// Files named on the command line that are crash dumps (analysed after every file).
    pub(crate) dumps: Vec<PathBuf>,
}

/// Expands the command-line paths into inputs, handing each file to `emit` once as it is
/// found. Directories are walked (links followed, so loops are detected and reported);
/// explicit files are taken whatever their name.
pub(crate) fn collect(paths: &[PathBuf], mut emit: impl FnMut(Input)) -> Walked {
    let mut walked = Walked {
        notices: Vec::new(),
        dumps: Vec::new(),
    };
    // Overlapping arguments (`dir dir/a.sys`) name a file twice; it is analysed once. One
    // directory alone never yields a path twice, so nothing is remembered then.
    let overlap = paths.len() > 1;
    let mut seen = HashSet::new();
    let mut take = |input: Input, walked: &mut Walked| {
        if input.kind == InputKind::Dump {
            walked.dumps.push(input.path);
        } else if !overlap || seen.insert(input.path.clone()) {
            emit(input);
        }
    };
    // Roots in path order, and each directory's entries by name: the inputs then come out in
    // path order (component by component), the order the report lists them in.
    let mut roots: Vec<&PathBuf> = paths.iter().collect();
    roots.sort();
    for root in roots {
        match std::fs::metadata(root) {
            Err(e) => walked.notices.push(Notice::new(
                display_path(root),
                NoticeKind::Unreadable,
                Level::Error,
                format!("cannot read: {e}"),
            )),
            Ok(m) if m.is_file() => {
                let input = Input {
                    path: root.clone(),
                    kind: kind_of_explicit(root),
                };
                take(input, &mut walked);
            }
            Ok(_) => {
                for entry in WalkDir::new(root).follow_links(true).sort_by_file_name() {
                    match entry {
                        Err(e) => walked.notices.push(Notice::new(
                            e.path().map_or_else(|| display_path(root), display_path),
                            if e.loop_ancestor().is_some() {
                                NoticeKind::Partial
                            } else {
                                NoticeKind::Unreadable
                            },
                            Level::Warning,
                            walk_error_message(&e),
                        )),
                        Ok(e) if e.file_type().is_file() => {
                            if let Some(kind) = kind_by_extension(e.path()) {
                                let path = e.into_path();
                                take(Input { path, kind }, &mut walked);
                            }
                        }
                        Ok(_) => {}
                    }
                }
            }
        }
    }
    walked.dumps.sort();
    walked.dumps.dedup();
    walked
}

fn walk_error_message(e: &walkdir::Error) -> String {
    if let Some(ancestor) = e.loop_ancestor() {
        format!(
            "symbolic link loop back to {}; not followed",
            display_path(ancestor)
        )
    } else if let Some(io) = e.io_error() {
        format!("cannot read directory entry: {io}")
    } else {
        e.to_string()
    }
}

fn kind_by_extension(path: &Path) -> Option<InputKind> {
    let ext = path.extension()?.to_str()?;
    [
        ("sys", InputKind::Image),
        ("zip", InputKind::Zip),
        ("cab", InputKind::Cab),
        ("inf", InputKind::Inf),
    ]
    .into_iter()
    .find(|(e, _)| ext.eq_ignore_ascii_case(e))
    .map(|(_, k)| k)
}

/// A file named on the command line: a package by extension, a dump by its `PAGE` signature,
/// otherwise an image.
pub(crate) fn kind_of_explicit(path: &Path) -> InputKind {
    if let Some(k @ (InputKind::Zip | InputKind::Cab | InputKind::Inf)) = kind_by_extension(path) {
        return k;
    }
    let mut magic = [0u8; 8];
    let is_dump = File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && (&magic == b"PAGEDU64" || &magic == b"PAGEDUMP");
    if is_dump {
        InputKind::Dump
    } else {
        InputKind::Image
    }
}

/// The artifact URI of a path: relative to `root` when inside it, else absolute.
pub(crate) fn uri_for(path: &Path, root: &Path) -> String {
    // The working directory is read once: `absolute` of a relative path asks the kernel for it
    // every time, a system call per input on a tree of thousands.
    static CWD: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    let joined = match CWD.get_or_init(|| std::env::current_dir().ok()) {
        Some(cwd) if path.is_relative() => cwd.join(path),
        _ => path.to_path_buf(),
    };
    let abs = std::path::absolute(&joined).unwrap_or(joined);
    match abs.strip_prefix(root) {
        Ok(rel) => display_path(rel),
        Err(_) => display_path(&abs),
    }
}
