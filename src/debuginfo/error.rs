//! Typed errors of the debug-information reader: what was being read, where, why, and the
//! underlying error as the source.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// A debug file (PDB, an image's DWARF, a `.gnu_debuglink` target) could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DebugInfoError {
    /// The file could not be opened or read.
    #[error("cannot read {what} {}: {source}", shown(path))]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than the limit set for its kind (hostile or absurd input).
    #[error(
        "{what} {} is {size} bytes, over the {limit}-byte limit for debug files",
        shown(path)
    )]
    TooLarge {
        what: &'static str,
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    /// The PDB's MSF container is damaged (checked before the PDB reader sees it).
    #[error("{} is not a usable PDB: {why}", shown(path))]
    BadMsf { path: PathBuf, why: String },
    /// The PDB reader rejected a stream.
    #[error("{}: cannot read the PDB's {what}: {source}", shown(path))]
    Pdb {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: pdb_addr2line::pdb::Error,
    },
    /// The PDB's symbols or line tables could not be indexed or looked up.
    #[error(
        "{}: cannot map addresses with the PDB ({what}): {source}",
        shown(path)
    )]
    PdbLookup {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: pdb_addr2line::Error,
    },
    /// The image (or the separate debug file) is not a PE/COFF file the reader accepts.
    #[error("{}: cannot parse the PE image ({what}): {source}", shown(path))]
    Object {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: object::Error,
    },
    /// The DWARF sections could not be parsed.
    #[error("{}: cannot read its DWARF ({what}): {source}", shown(path))]
    Dwarf {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: gimli::Error,
    },
    /// The DWARF is structurally unacceptable (checked before the DWARF reader sees it).
    #[error("{}: DWARF refused: {why}", shown(path))]
    BadDwarf { path: PathBuf, why: String },
    /// A reader crate panicked on this file. The panic was contained; the file is malformed in
    /// a way the checks made before calling the crate did not catch.
    #[error(
        "{}: the {reader} reader failed on this file while {what}; it is malformed",
        shown(path)
    )]
    ReaderFailed {
        reader: &'static str,
        what: &'static str,
        path: PathBuf,
    },
}

/// A path as it may be printed: control characters escaped (a hostile CodeView record or
/// symbol path can carry them).
pub(crate) fn shown(path: &Path) -> String {
    crate::util::printable_text(path.display().to_string())
}

/// Runs a reader call, turning a panic into [`DebugInfoError::ReaderFailed`].
pub(crate) fn contained<T>(
    path: &Path,
    reader: &'static str,
    what: &'static str,
    f: impl FnOnce() -> Result<T, DebugInfoError>,
) -> Result<T, DebugInfoError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(DebugInfoError::ReaderFailed {
            reader,
            what,
            path: path.to_path_buf(),
        })
    })
}
