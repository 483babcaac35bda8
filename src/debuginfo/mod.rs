//! Source locations from debug information: RVA → file, line, column, function, inlining chain.
//!
//! A self-contained leaf module (it depends on the standard library, its reader crates and
//! [`crate::util::printable_text`] only): the pipeline hands it what it knows about one image
//! ([`ImageRef`]) and where to look ([`SymbolSearch`]); [`open`] finds and opens the image's
//! debug information once, and the [`Symbolizer`] it returns answers [`Symbolizer::locate`] and
//! [`Symbolizer::function_name`] for any number of RVAs. Nothing is read until [`open`] is
//! called, so images without findings cost nothing.
//!
//! Sources, in order (issue 13; ci-and-ide.md §4):
//! 1. DWARF inside the image (`.debug_*` sections, mingw-w64 gcc / clang `-g`): [`dwarf`];
//! 2. the PDB named by the image's CodeView (RSDS) record, found as [`locate`] describes and
//!    used only when its GUID and age match: [`pdb`];
//! 3. the separate file named by `.gnu_debuglink` (CRC-32 checked), beside the image, in its
//!    `.debug/` folder, and in the symbol folders.
//!
//! When none is usable, [`Unavailable`] says so in one line: no debug information recorded, or
//! the search with every file looked at and why it did not match (absent, GUID differs, age
//! differs, CRC differs, unreadable), or why a found file could not be read.
//!
//! Invariants: file paths are reported as the debug information records them (mapping onto a
//! checkout is [`srcmap`]'s job); a line is never 0 (0 means "no line" in both formats); columns
//! are `None` where not recorded (DWARF column 0; PDB line tables here carry none and
//! `pdb-addr2line` does not read them); lookups never panic (see the bounding notes of [`pdb`]
//! and [`dwarf`]).

pub mod dwarf;
mod error;
pub mod locate;
mod location;
pub mod pdb;
pub mod srcmap;

use std::fmt;
use std::path::{Path, PathBuf};

use object::Object;

pub use error::DebugInfoError;
pub use locate::{
    parse_symbol_path, Attempt, CodeViewRef, Guid, Layout, Mismatch, Place, SearchReport,
    SymbolFolder, SymbolPath, SymbolSearch, Wanted,
};
pub use location::{Frame, FunctionInfo, SourceLocation};
pub use srcmap::{map_source_path, relative_to_root, SourceMapParseError, SourceMapRule};

/// What the pipeline knows about one image.
#[derive(Debug, Clone, Copy)]
pub struct ImageRef<'a> {
    /// The image file, for the lookups beside it; `None` for an image carved from a dump.
    pub path: Option<&'a Path>,
    /// The name used in messages (the file name, or `dump!module`).
    pub display_name: &'a str,
    /// The image's bytes in file layout, when it is a file: read for DWARF, `.gnu_debuglink`
    /// and (when `codeview` is `None`) the CodeView record. `None` for a carved image, whose
    /// bytes are in memory layout; then only `codeview` is used.
    pub file_bytes: Option<&'a [u8]>,
    /// The CodeView record, when the caller has parsed it already (always, for carved images).
    pub codeview: Option<&'a CodeViewRef>,
}

/// What was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DebugSource {
    /// A PDB whose GUID and age match the image's CodeView record.
    Pdb(PathBuf),
    /// DWARF sections inside the image itself.
    DwarfInImage,
    /// A separate DWARF file named by `.gnu_debuglink`, CRC-32 checked.
    DebugLink(PathBuf),
}

/// Why an image gets no source locations. `Display` is one line, for a note-level
/// notification (one per driver).
#[derive(Debug)]
pub enum Unavailable {
    /// The image records no debug information: no CodeView record, no DWARF, no debuglink.
    NoDebugInfo { image: String },
    /// The debug file was looked for and not found, or every candidate differed.
    NotFound(SearchReport),
    /// The debug information was found but could not be read.
    Failed(DebugInfoError),
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::NoDebugInfo { image } => write!(
                f,
                "{} records no debug information (no CodeView record, no DWARF, no .gnu_debuglink)",
                crate::util::printable_text(image.clone())
            ),
            Unavailable::NotFound(r) => r.fmt(f),
            Unavailable::Failed(e) => write!(f, "debug information not used: {e}"),
        }
    }
}

// The pipeline moves an image's symbolizer to the worker thread that renders its findings.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<Symbolizer>();
};

enum Inner {
    Pdb(pdb::PdbSymbols),
    Dwarf(dwarf::DwarfSymbols),
}

/// The opened debug information of one image.
pub struct Symbolizer {
    inner: Inner,
    source: DebugSource,
}

impl fmt::Debug for Symbolizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Symbolizer")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Symbolizer {
    /// What was opened.
    pub fn source(&self) -> &DebugSource {
        &self.source
    }

    /// The source location of the instruction at `rva`; `Ok(None)` when the debug information
    /// has no line for it.
    pub fn locate(&self, rva: u32) -> Result<Option<SourceLocation>, DebugInfoError> {
        match &self.inner {
            Inner::Pdb(p) => p.locate(rva),
            Inner::Dwarf(d) => d.locate(rva),
        }
    }

    /// The function containing `rva` (PDB procedure or public symbol; DWARF subprogram).
    pub fn function(&self, rva: u32) -> Result<Option<FunctionInfo>, DebugInfoError> {
        match &self.inner {
            Inner::Pdb(p) => p.function(rva),
            Inner::Dwarf(d) => d.function(rva),
        }
    }

    /// The name of the function containing `rva`, when known.
    pub fn function_name(&self, rva: u32) -> Result<Option<String>, DebugInfoError> {
        Ok(self.function(rva)?.map(|f| f.name))
    }
}

impl CodeViewRef {
    /// The CodeView (RSDS) record of a PE image in file layout, if it has one.
    pub fn from_image(bytes: &[u8], path: &Path) -> Result<Option<CodeViewRef>, DebugInfoError> {
        let file = object::File::parse(bytes).map_err(|source| DebugInfoError::Object {
            what: "headers",
            path: path.to_path_buf(),
            source,
        })?;
        codeview_of(&file, path)
    }
}

fn codeview_of(
    file: &object::File<'_>,
    path: &Path,
) -> Result<Option<CodeViewRef>, DebugInfoError> {
    let cv = file.pdb_info().map_err(|source| DebugInfoError::Object {
        what: "CodeView record",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(cv.map(|cv| CodeViewRef {
        pdb_path: String::from_utf8_lossy(cv.path()).into_owned(),
        guid: Guid::from_codeview_bytes(cv.guid()),
        age: cv.age(),
    }))
}

/// Finds and opens the debug information of one image (see the module documentation for the
/// order). Call it once per image, when its findings need locations; the result answers any
/// number of lookups.
pub fn open(image: &ImageRef<'_>, search: &SymbolSearch) -> Result<Symbolizer, Unavailable> {
    let label = image.path.unwrap_or(Path::new(image.display_name));
    let parsed = match image.file_bytes.map(object::File::parse) {
        Some(Ok(file)) => Some(file),
        // A caller that parsed the record itself (its PE reader accepted the image) can still
        // have the PDB looked up; DWARF and .gnu_debuglink need this parse.
        Some(Err(_)) if image.codeview.is_some() => None,
        Some(Err(source)) => {
            return Err(Unavailable::Failed(DebugInfoError::Object {
                what: "headers",
                path: label.to_path_buf(),
                source,
            }))
        }
        None => None,
    };
    let facts = parsed.as_ref().map(dwarf::facts);
    if let (Some(bytes), Some(f)) = (image.file_bytes, &facts) {
        if f.has_dwarf {
            let d = dwarf::DwarfSymbols::from_pe(bytes, label).map_err(Unavailable::Failed)?;
            return Ok(Symbolizer {
                inner: Inner::Dwarf(d),
                source: DebugSource::DwarfInImage,
            });
        }
    }
    let codeview = match (image.codeview, &parsed) {
        (Some(cv), _) => Some(cv.clone()),
        (None, Some(file)) => codeview_of(file, label).map_err(Unavailable::Failed)?,
        (None, None) => None,
    };
    let mut reports = Vec::new();
    if let Some(cv) = codeview {
        match find_pdb(image, &cv, search) {
            Ok(s) => return Ok(s),
            Err(Unavailable::NotFound(r)) => reports.push(r),
            Err(other) => return Err(other),
        }
    }
    if let Some((name, crc)) = facts.and_then(|f| f.debuglink) {
        match find_debuglink(image, &name, crc, search) {
            Ok(s) => return Ok(s),
            Err(Unavailable::NotFound(r)) => reports.push(r),
            Err(other) => return Err(other),
        }
    }
    match reports.into_iter().next() {
        Some(r) => Err(Unavailable::NotFound(r)),
        None => Err(Unavailable::NoDebugInfo {
            image: image.display_name.to_string(),
        }),
    }
}

fn find_pdb(
    image: &ImageRef<'_>,
    cv: &CodeViewRef,
    search: &SymbolSearch,
) -> Result<Symbolizer, Unavailable> {
    let mut names = vec![cv.file_name().to_string()];
    if let Some(stem) = image.path.and_then(Path::file_stem) {
        names.push(format!("{}.pdb", stem.to_string_lossy()));
    }
    let key = cv.guid.store_key(cv.age);
    let mut report = SearchReport {
        image: image.display_name.to_string(),
        wanted: Wanted::Pdb(cv.clone()),
        attempts: Vec::new(),
        skipped: Vec::new(),
    };
    for (path, place) in locate::candidates(
        image.path,
        &names,
        Some(&cv.pdb_path),
        Some(&key),
        search,
        &mut report.skipped,
    ) {
        let mismatch = match pdb::open_pdb(&path) {
            Ok(opened) => match pdb::matches(&opened, cv) {
                Ok(()) => {
                    let p = pdb::PdbSymbols::new(opened, &path).map_err(Unavailable::Failed)?;
                    return Ok(Symbolizer {
                        inner: Inner::Pdb(p),
                        source: DebugSource::Pdb(path),
                    });
                }
                Err(m) => m,
            },
            Err(m) => m,
        };
        report.attempts.push(Attempt {
            path,
            place,
            mismatch,
        });
    }
    Err(Unavailable::NotFound(report))
}

fn find_debuglink(
    image: &ImageRef<'_>,
    name: &str,
    crc: u32,
    search: &SymbolSearch,
) -> Result<Symbolizer, Unavailable> {
    let mut report = SearchReport {
        image: image.display_name.to_string(),
        wanted: Wanted::DebugLink {
            file_name: name.to_string(),
            crc,
        },
        attempts: Vec::new(),
        skipped: Vec::new(),
    };
    let names = vec![name.to_string()];
    let mut cands = locate::candidates(image.path, &names, None, None, search, &mut report.skipped);
    // GDB's second place: the image folder's `.debug/` subfolder.
    if let Some(dir) = image.path.and_then(Path::parent) {
        if !name.is_empty() && !name.contains(['/', '\\']) && name != ".." {
            cands.insert(
                cands.len().min(1),
                (dir.join(".debug").join(name), Place::BesideImage),
            );
        }
    }
    for (path, place) in cands {
        let mismatch = match dwarf::read_capped(&path, "separate debug file") {
            Err(DebugInfoError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Mismatch::Absent
            }
            Err(e) => Mismatch::Unreadable(e.to_string()),
            Ok(bytes) => {
                let found = dwarf::crc32(&bytes);
                if found != crc {
                    Mismatch::CrcDiffers { found }
                } else {
                    let d =
                        dwarf::DwarfSymbols::from_pe(&bytes, &path).map_err(Unavailable::Failed)?;
                    return Ok(Symbolizer {
                        inner: Inner::Dwarf(d),
                        source: DebugSource::DebugLink(path),
                    });
                }
            }
        };
        report.attempts.push(Attempt {
            path,
            place,
            mismatch,
        });
    }
    Err(Unavailable::NotFound(report))
}
