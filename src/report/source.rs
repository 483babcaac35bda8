//! Where a finding is in the driver's source, from its debug information (PDB or DWARF).

use serde::Serialize;

/// A source file position as a report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourcePosition {
    /// The file: relative to the scan root (`SRCROOT`) when it lies inside it, after any
    /// `--source-map` rewrite; else the path as the debug information records it.
    pub path: String,
    /// Whether `path` is relative to the scan root.
    pub relative: bool,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, where recorded.
    pub column: Option<u32>,
}

/// One inlined call on the way to the finding's code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InlinedCall {
    /// The function that was inlined.
    pub function: Option<String>,
    /// Where it was inlined (in the next outer function), when recorded.
    pub at: Option<SourcePosition>,
}

/// A finding's source location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    /// Where the code is written (the innermost frame).
    pub at: SourcePosition,
    /// The function that owns the code in the image (replaces `sub_<rva>`).
    pub function: Option<String>,
    /// The inlining chain, innermost first.
    pub inlined: Vec<InlinedCall>,
    /// What the location was read from (`pdb:/path/x.pdb`, `dwarf`), for the log.
    pub from: String,
}
