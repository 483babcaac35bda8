//! The errors and notices of the dump reader: what could not be read, where and why, and the
//! kind of each anomaly met on the way.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use super::budget::BudgetExceeded;

/// A failure to read a dump, or a part of one. Every variant carries the dump's path and says
/// what was being read, where, and why it failed. Cloneable, so that the module list and the
/// pool tables can be read once and their outcome handed to every caller.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DumpError {
    /// The file could not be opened or mapped.
    #[error("{path}: cannot open dump: {source}")]
    Io {
        /// The dump file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The header or a type-specific header is not a dump this reader understands.
    #[error("{path}: not a readable crash dump: {why}")]
    Format {
        /// The dump file.
        path: PathBuf,
        /// What was wrong, with the offset.
        why: String,
    },
    /// A kernel structure could not be read from the dump's memory.
    #[error("{path}: cannot read {what} at {va:#x}: {why}")]
    Unreadable {
        /// The dump file.
        path: PathBuf,
        /// Which structure.
        what: String,
        /// Its virtual address.
        va: u64,
        /// Why (the page-walk miss, or the sanity check that failed).
        why: String,
    },
    /// The dump type does not carry what was asked for (the module list of a header-only file …).
    #[error("{path}: {what} is not available: {why}")]
    Unavailable {
        /// The dump file.
        path: PathBuf,
        /// What was asked for.
        what: String,
        /// Why this dump cannot provide it.
        why: String,
    },
    /// The pool tracker table could not be found, sized or read.
    #[error("{path}: the pool tracker table cannot be read: {source}")]
    PoolTable {
        /// The dump file.
        path: PathBuf,
        /// Why.
        #[source]
        source: PoolTableError,
    },
    /// A budget stopped the operation (the notice names the limit and the figure).
    #[error(transparent)]
    Budget(#[from] BudgetExceeded),
}

/// What kind of anomaly a notice reports, so that outputs and exit codes can tell missing
/// evidence from damage or from a refused hostile structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoticeKind {
    /// Memory or data the headers describe is not in the file (truncated, header-only, holes).
    Missing,
    /// A structure is damaged or inconsistent.
    Malformed,
    /// A format or mode this reader does not support.
    Unsupported,
    /// A result is partial (tables not found, counts the reader cannot include).
    Partial,
    /// A budget was reached or a hostile structure refused (aliasing, overlapping modules).
    Budget,
}

/// One anomaly met while reading a dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DumpNotice {
    /// What kind of anomaly.
    pub kind: NoticeKind,
    /// What, where and why, in words.
    pub message: String,
}

/// Why the pool tracker table could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum PoolTableError {
    /// Triage dumps carry no pool tables.
    #[error("a triage dump does not contain the pool tracker table (only the driver list and some data blocks)")]
    Triage,
    /// Header-only or cut-short files.
    #[error("the file holds no physical memory")]
    NoMemory,
    /// Without KDBG the variable is unknown.
    #[error("KDDEBUGGER_DATA64 was not found, so the address of nt!PoolTrackTable is unknown")]
    NoKdbg,
    /// KDBG.PoolTrackTable is not a kernel address.
    #[error("KDBG.PoolTrackTable {va:#x} is not a kernel address")]
    BadVariable {
        /// The value.
        va: u64,
    },
    /// The variable could not be read.
    #[error("nt!PoolTrackTable at {va:#x} is unreadable: {why}")]
    VariableUnreadable {
        /// Its address.
        va: u64,
        /// The miss.
        why: String,
    },
    /// The variable holds no kernel address.
    #[error("nt!PoolTrackTable at {va:#x} holds {value:#x}, not a kernel address")]
    BadPointer {
        /// The variable's address.
        va: u64,
        /// What it holds.
        value: u64,
    },
    /// No size fits: the memory at the pointer has no table structure.
    #[error("no table size fits the memory at {table:#x}: {why}")]
    NoSize {
        /// The table pointer.
        table: u64,
        /// Every size tried and why it was rejected.
        why: String,
    },
    /// A budget stopped the read (the table aliases, or is larger than the dump).
    #[error("{}", .0.detail())]
    Budget(BudgetExceeded),
}
