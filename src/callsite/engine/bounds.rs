//! The bounds that keep the analysis of hostile code cheap, in one place, for both
//! architectures. Each is far above what compilers produce for real drivers; reaching one never
//! panics and never produces a guess: the analysis then knows less (values become unknown,
//! code is left out) and says so through fewer recovered values.

/// Largest stretch of code decoded as one function (or one heuristic region), in bytes.
/// A `.pdata` entry claiming more is cut to this size.
pub(crate) const MAX_FUNCTION: u32 = 1 << 20;

/// Most instructions kept for one function (a 1 MiB function of one-byte instructions would
/// otherwise hold a million).
pub(crate) const MAX_INSNS: usize = 200_000;

/// Most entries read from one jump table; a table that runs on past it is treated as unknown
/// (its function's blocks then take no constants across merges).
pub(crate) const MAX_TABLE_ENTRIES: u32 = 4096;

/// Most jump-table entries (and x64 MSVC index bytes) read in one image, over all its tables:
/// many table jumps through overlapping tables would otherwise read `MAX_TABLE_ENTRIES` each.
/// Past it the remaining tables are unknown.
pub(crate) const MAX_TABLE_READS: u32 = 1 << 18;

/// Most members of a set of constants; a merge producing more gives `Unknown`.
pub(crate) const MAX_SET: usize = 16;

/// Most stack slots one state tracks; further stores are dropped (their slots read as unknown).
pub(crate) const MAX_SLOTS: usize = 256;

/// Solver work per function: every block may be stepped through at most this many times on
/// average (with widening at re-visits a block is usually stepped through once or twice).
/// Past it the function's states are all unknown.
pub(crate) const VISITS_PER_BLOCK: usize = 16;

/// Most callers of one wrapper whose arguments are resolved (each becomes a site of its own).
/// Callers in one block are stepped to one after the other, so the work is linear in the
/// code; 65,536 is above the 32,763 callers of a 256 KiB ARM64 function of nothing but calls
/// (testdata/regress/pe_file/arm64-wrapper-callers.sys), each of which is reported.
pub(crate) const MAX_CALLERS: usize = 1 << 16;

/// Most specialised solves of one function (a wrapper solved again with a caller's constant
/// arguments), and the largest function (instructions) that is specialised at all.
pub(crate) const MAX_SPECIALISATIONS: usize = 64;
pub(crate) const MAX_SPECIALISED_INSNS: usize = 4096;

/// Most writable globals whose stored values are searched for in one image.
pub(crate) const MAX_RUNTIME_GLOBALS: usize = 64;
