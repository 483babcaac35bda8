//! Every limit on the work one dump can cause, in one place, each with the reason for its figure.
//!
//! A crash dump is untrusted input: its header, page tables and kernel structures can claim
//! anything. Two kinds of limit keep the work bounded:
//!
//! * **Totals bounded by what the dump can hold.** A dump cannot describe more distinct memory
//!   than the physical pages it contains. Every structure the reader follows (the module list,
//!   each image, each pool tracker table) is read once, and distinct structures live in distinct
//!   physical pages, so the page-table walks of a whole dump are bounded by a small multiple of
//!   the pages it holds ([`walk_limit`]), and a region whose virtual pages map onto a few physical
//!   pages is refused as aliased ([`aliased`]): 1 GB of virtual addresses mapped onto one page
//!   is a hostile structure, not 1 GB of evidence.
//! * **Caps on each piece** (entries in a list, bytes of one image), far above every real system,
//!   so that a damaged count stops early instead of running to 2^32.
//!
//! A limit reached is a [`BudgetExceeded`]: a value naming the dump, the limit, its figure and the
//! figure that exceeded it. It is recorded on the dump (see `Dump::budget_events`) or returned as
//! the error of the one operation it stopped; everything else in the dump is still read.
//!
//! | Limit | Figure | Why |
//! |---|---|---|
//! | [`Limit::PageWalks`] | 4 × pages held + 65,536 per dump | each structure is walked once; 4× covers the few read twice (PE headers, the export directories read before the images), 65,536 walks (256 MiB) covers small dumps whose every page is evidence |
//! | [`Limit::AliasedPages`] | ≥ [`ALIAS_MIN_PAGES`] pages with under half of them distinct | no kernel image or pool table maps one physical page twice; page-table self-maps are never read as data |
//! | [`Limit::CarvedBytes`] | [`MAX_CARVED_TOTAL`] = 1 GiB per dump (holes included) | about 3× the largest driver sets seen (ntoskrnl ~16 MiB, display drivers up to ~100 MiB, a few hundred others) |
//! | [`Limit::ImageSize`] | [`MAX_IMAGE`] = 128 MiB per image | larger than any real driver; a bigger SizeOfImage is clipped to the PE header's value or to this |
//! | [`Limit::ModuleEntries`] | [`MAX_MODULES`] = 4096 list entries | real systems load a few hundred drivers (151 and 245 in the sample triage dumps) |
//! | [`Limit::PoolEntries`] | [`MAX_POOL_ENTRIES`] = 2^23 tracker entries summed over every table | a 512-processor machine with 16,385-entry tables; WRK's default table is 2,049 entries |
//! | [`Limit::PoolTableBytes`] | the bytes of memory the dump holds | a table larger than the dump cannot be in it; its size field is damage |
//! | [`Limit::Processors`] | [`MAX_PROCESSORS`] = 2048 | ExPoolTagTables has 0x800 slots (the Win10 crash-dump writer walks 0..0x800) |
//! | [`Limit::TriageCount`] | [`MAX_TRIAGE_COUNT`] = 65,536 drivers or data blocks | the samples have 151 / 245 drivers and 1,831 / 679 blocks |
//!
//! Smaller fixed bounds that only stop damaged counts, each at its use: the KDBG signature scan
//! ([`KDBG_SCAN_PAGES`], 1 GiB of physical memory), the ExPoolTagTables search
//! ([`TAG_TABLE_SEARCH`], 16 MiB of ntoskrnl data, [`TAG_TABLE_CANDIDATES`] arrays checked),
//! module names ([`MAX_NAME_BYTES`]), exports per image (65,536), import descriptors (1,024) and
//! thunks (8,192) per image, table exponents 6..=20 ([`MIN_TABLE_EXP`], [`MAX_TABLE_EXP`]).

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;

/// Bytes of one page.
const PAGE: u64 = 0x1000;

/// Walks allowed per page the dump holds.
pub(crate) const WALKS_PER_PAGE: u64 = 4;
/// Walks allowed on top of that, whatever the dump holds (256 MiB of reads).
pub(crate) const WALK_SLACK: u64 = 1 << 16;
/// Smallest region (in pages) judged for aliasing: below it a repeat can be chance.
pub(crate) const ALIAS_MIN_PAGES: u64 = 4;
/// Total bytes carved from one dump, holes included.
pub(crate) const MAX_CARVED_TOTAL: u64 = 1 << 30;
/// The largest image the carver will allocate.
pub(crate) const MAX_IMAGE: u32 = 128 << 20;
/// Module-list entries walked.
pub(crate) const MAX_MODULES: usize = 4096;
/// UNICODE_STRING lengths beyond this are damage (paths are at most a few hundred chars).
pub(crate) const MAX_NAME_BYTES: u16 = 0x800;
/// Pool tracker entries read, summed over every table of one dump.
pub(crate) const MAX_POOL_ENTRIES: u64 = 1 << 23;
/// Processors whose tag tables are looked for.
pub(crate) const MAX_PROCESSORS: usize = 2048;
/// Table sizes are 2^n + 1 with n in this range (WRK uses at least 64 entries; 2^20 is far
/// above any table seen).
pub(crate) const MIN_TABLE_EXP: u32 = 6;
/// See [`MIN_TABLE_EXP`].
pub(crate) const MAX_TABLE_EXP: u32 = 20;
/// Bytes of ntoskrnl data searched for ExPoolTagTables.
pub(crate) const TAG_TABLE_SEARCH: u64 = 16 << 20;
/// Candidate ExPoolTagTables arrays checked before giving up.
pub(crate) const TAG_TABLE_CANDIDATES: usize = 16;
/// Physical pages the KDBG signature scan may touch (1 GiB).
pub(crate) const KDBG_SCAN_PAGES: usize = 1 << 18;
/// Drivers or data blocks read from a triage header.
pub(crate) const MAX_TRIAGE_COUNT: u32 = 65_536;

/// Which limit was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Limit {
    /// Page-table walks for the whole dump.
    PageWalks,
    /// A region whose virtual pages map onto few physical pages.
    AliasedPages,
    /// Bytes carved from the dump, holes included.
    CarvedBytes,
    /// Bytes of one image.
    ImageSize,
    /// Entries of the loaded module list.
    ModuleEntries,
    /// Pool tracker entries summed over every table.
    PoolEntries,
    /// A pool tracker table larger than the memory the dump holds.
    PoolTableBytes,
    /// Processors whose tag tables are looked for.
    Processors,
    /// Drivers or data blocks of a triage header.
    TriageCount,
}

impl Limit {
    /// The unit the figures are counted in.
    pub fn unit(self) -> &'static str {
        match self {
            Limit::PageWalks => "page-table walks",
            Limit::AliasedPages => "distinct physical pages",
            Limit::CarvedBytes | Limit::ImageSize | Limit::PoolTableBytes => "bytes",
            Limit::ModuleEntries | Limit::TriageCount => "entries",
            Limit::PoolEntries => "tracker entries",
            Limit::Processors => "processors",
        }
    }

    /// A figure in this limit's unit as text: bytes in hex, counts in decimal.
    pub fn figure(self, v: u64) -> String {
        match self {
            Limit::CarvedBytes | Limit::ImageSize | Limit::PoolTableBytes => format!("{v:#x}"),
            _ => v.to_string(),
        }
    }

    /// Why the figure is what it is, in a few words.
    pub fn reason(self) -> &'static str {
        match self {
            Limit::PageWalks => {
                "4 per page the dump holds, plus 65,536: each structure is read once"
            }
            Limit::AliasedPages => {
                "a kernel image or pool table never maps one physical page twice"
            }
            Limit::CarvedBytes => "about 3 times the largest driver sets seen",
            Limit::ImageSize => "larger than any real driver",
            Limit::ModuleEntries => "real systems load a few hundred drivers",
            Limit::PoolEntries => "a 512-processor machine with 16,385-entry tables",
            Limit::PoolTableBytes => "a table cannot be larger than the memory the dump holds",
            Limit::Processors => "ExPoolTagTables has 2048 slots",
            Limit::TriageCount => "the sample triage dumps hold at most 1,831",
        }
    }
}

/// A limit reached: the input, what was being read, the limit and the figure that exceeded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{input}: {}", self.detail())]
pub struct BudgetExceeded {
    /// The dump (its path, or the name given to an in-memory dump).
    pub input: String,
    /// Which limit.
    pub kind: Limit,
    /// What was being read when the limit was reached ("carving big.sys@0xfffff80020000000").
    pub what: String,
    /// The limit's figure for this dump.
    pub limit: u64,
    /// The figure that reached or exceeded it. For [`Limit::AliasedPages`] the limit is the
    /// number of virtual pages read and the figure the distinct physical pages behind them.
    pub figure: u64,
}

impl BudgetExceeded {
    /// The message without the input's name, for a caller that already names it.
    pub fn detail(&self) -> String {
        if self.kind == Limit::AliasedPages {
            return format!(
                "{}: budget reached: {} virtual pages on {} distinct physical page(s) ({})",
                self.what,
                self.limit,
                self.figure,
                self.kind.reason()
            );
        }
        format!(
            "{}: budget reached: {} {} against a limit of {} ({})",
            self.what,
            self.kind.figure(self.figure),
            self.kind.unit(),
            self.kind.figure(self.limit),
            self.kind.reason()
        )
    }
}

/// The page-walk limit of a dump holding `pages` physical pages.
pub(crate) fn walk_limit(pages: u64) -> u64 {
    pages
        .saturating_mul(WALKS_PER_PAGE)
        .saturating_add(WALK_SLACK)
}

/// True when `read` virtual pages landed on only `distinct` physical pages: at least
/// [`ALIAS_MIN_PAGES`] pages, fewer than half of them distinct.
pub(crate) fn aliased(read: u64, distinct: u64) -> bool {
    read >= ALIAS_MIN_PAGES && distinct.saturating_mul(2) < read
}

/// A set of page frame numbers, hashed by one multiplication: the aliasing check inserts one
/// frame per page read, and SipHash would cost more than the copy of the page.
pub(crate) type FrameSet = HashSet<u64, BuildHasherDefault<FrameHasher>>;

/// Fibonacci hashing of a u64 key (frame numbers are small and dense; the multiply spreads them).
#[derive(Default)]
pub(crate) struct FrameHasher(u64);

impl Hasher for FrameHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Bytes of `pages` pages.
pub(crate) fn page_bytes(pages: u64) -> u64 {
    pages.saturating_mul(PAGE)
}

/// The running count of page walks of one dump. Shared by every thread reading the dump.
#[derive(Debug)]
pub(crate) struct Walks {
    limit: u64,
    used: AtomicU64,
    tripped: AtomicBool,
}

impl Walks {
    pub(crate) fn new(limit: u64) -> Walks {
        Walks {
            limit,
            used: AtomicU64::new(0),
            tripped: AtomicBool::new(false),
        }
    }

    /// Takes one walk. `Err(true)` the first time the limit is reached (the caller records it
    /// once), `Err(false)` after that.
    pub(crate) fn take(&self) -> Result<(), bool> {
        let used = self.used.fetch_add(1, Ordering::Relaxed);
        if used < self.limit {
            return Ok(());
        }
        Err(!self.tripped.swap(true, Ordering::Relaxed))
    }

    /// Walks still allowed.
    pub(crate) fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used.load(Ordering::Relaxed))
    }

    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    pub(crate) fn used(&self) -> u64 {
        self.used
            .load(Ordering::Relaxed)
            .min(self.limit.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliasing_needs_enough_pages_and_mostly_repeats() {
        assert!(!aliased(3, 1), "too few pages to judge");
        assert!(aliased(4, 1));
        assert!(!aliased(4, 2), "half distinct is not aliasing");
        assert!(!aliased(262_144, 262_144));
        assert!(aliased(262_144, 1));
    }

    #[test]
    fn walks_trip_once_at_the_limit() {
        let w = Walks::new(2);
        assert_eq!(w.take(), Ok(()));
        assert_eq!(w.take(), Ok(()));
        assert_eq!(w.remaining(), 0);
        assert_eq!(w.take(), Err(true));
        assert_eq!(w.take(), Err(false));
        assert_eq!(walk_limit(10), 65_576);
    }
}
