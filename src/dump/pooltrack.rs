//! The pool tag table (`!poolused`): POOL_TRACKER_TABLE entries summed per tag over the global
//! table and the per-processor tables, crash-dumps.md §3.
//!
//! KDBG.PoolTrackTable is the address of the variable nt!PoolTrackTable, which holds the table
//! pointer (§2.2, §3.2). The table has PoolTrackTableSize = 2^n + 1 entries; the last is the
//! overflow bucket. The table is found, sized and validated on its structure, never on what the
//! tags look like: any 32-bit key is a tag (chipsec's helper uses 0x00003184, shown
//! `\x841\x00\x00`; a zero key with counts is tag 0; the PROTECTED_POOL bit 0x80000000 is
//! stripped).
//!
//! Structure used (§3.1, §3.2):
//! * the entry layout by architecture and build, whose padding the kernel never writes (the table
//!   is allocated zeroed) and whose 64-bit counters no machine takes past 2^48, though a running
//!   total may dip a little below zero;
//! * the hash: a key sits at its home slot `(40543·key ⊕ (40543·key >> 32)) & (2^n − 1)` or after
//!   it, with every slot in between in use (linear probing). Only the right n puts (nearly) every
//!   used key where the hash says; a larger n puts about half of them before their home.
//!
//! Sizing: PoolTrackTableSize, the variable just before nt!PoolTrackTable (Volatility's rule), when
//! it is 2^n + 1, fits in the memory the dump holds and its entries have the shape and placement
//! of a table; else the largest 2^n + 1 whose used keys sit at their hash slots; else (a kernel
//! hashing differently) the variable on shape alone, or the largest 2^n + 1 of entry-shaped
//! memory. Each sizing tried and rejected is kept with its reason.
//!
//! One inconsistent entry (frees above allocs, as a wrapped 32-bit counter or a torn update
//! gives; a byte total below zero; bytes that are no entry at all) is an [`EntryAnomaly`] in the
//! result, not a reason to drop the table.
//!
//! On multiprocessor kernels the counts are spread over ExPoolTagTables[cpu]; without symbols the
//! array is found in ntoskrnl's data as pointers whose element 0 is the global table and whose
//! tables have their keys at the same slots (§3.2 step 3b). Every table is read once (page by
//! page, within the dump's pool budget) and checked for aliasing. The expansion and session
//! tables need symbols and are not read; [`PoolTables::not_included`] says so.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::pool::{PoolCounters, PoolSnapshot, TagUsage};

use super::budget::{
    self, BudgetExceeded, FrameSet, Limit, MAX_POOL_ENTRIES, MAX_PROCESSORS, MAX_TABLE_EXP,
    MIN_TABLE_EXP, TAG_TABLE_CANDIDATES, TAG_TABLE_SEARCH,
};
use super::bytes::{ptr_at, u32_at, u64_at};
use super::error::PoolTableError;
use super::header::Arch;
use super::kdbg::Kdbg;
use super::memory::Memory;
use super::modules::LoadedModule;
use super::pe::{Headers, SCN_EXECUTE};

/// Where a counter is and how wide it is.
#[derive(Debug, Clone, Copy)]
struct Field {
    at: usize,
    wide: bool,
}

/// One POOL_TRACKER_TABLE layout (§3.1).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub size: usize,
    np: [Field; 3],
    p: [Field; 3],
    /// Alignment padding the kernel never writes.
    pad: Option<(usize, usize)>,
    /// The LimitInfo pointer of the Win11 24H2 entry: null or a kernel address.
    limit_info: Option<usize>,
}

const fn f(at: usize, wide: bool) -> Field {
    Field { at, wide }
}

/// Win10 1709 changed the layout; Win11 24H2 (build 26100) grew the x64 entry to 0x50 bytes.
/// ARM64 kernels are all post-1709 64-bit builds and use the x64 layouts.
pub(crate) fn layout(arch: Arch, build: u32) -> Layout {
    match (arch, build) {
        (Arch::X86 | Arch::X86Pae, b) if b < 16299 => Layout {
            size: 0x1C,
            np: [f(4, false), f(8, false), f(0xC, false)],
            p: [f(0x10, false), f(0x14, false), f(0x18, false)],
            pad: None,
            limit_info: None,
        },
        (Arch::X86 | Arch::X86Pae, _) => Layout {
            size: 0x30,
            np: [f(8, true), f(0x10, true), f(4, false)],
            p: [f(0x20, true), f(0x28, true), f(0x18, false)],
            pad: Some((0x1C, 0x20)),
            limit_info: None,
        },
        (_, b) if b < 16299 => Layout {
            size: 0x28,
            np: [f(4, false), f(8, false), f(0x10, true)],
            p: [f(0x18, false), f(0x1C, false), f(0x20, true)],
            pad: Some((0xC, 0x10)),
            limit_info: None,
        },
        (_, b) if b < 26100 => Layout {
            size: 0x38,
            np: [f(0x10, true), f(0x18, true), f(8, true)],
            p: [f(0x28, true), f(0x30, true), f(0x20, true)],
            pad: Some((4, 8)),
            limit_info: None,
        },
        _ => Layout {
            size: 0x50,
            np: [f(0x10, true), f(0x18, true), f(8, true)],
            p: [f(0x28, true), f(0x30, true), f(0x20, true)],
            pad: Some((4, 8)),
            limit_info: Some(0x48),
        },
    }
}

/// Which pool a counter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PoolKind {
    /// NonPagedPool (NonPagedPoolNx included).
    NonPaged,
    /// PagedPool.
    Paged,
}

/// What is inconsistent about one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AnomalyKind {
    /// More frees than allocations. With 32-bit counters (x86, and x64 before Win10 1709) the
    /// allocation counter may have wrapped past 2^32; in a live dump the two counters may have
    /// been read in the middle of an update. Counted as stored; no allocation is outstanding.
    FreesAboveAllocs {
        /// Which pool.
        pool: PoolKind,
        /// Allocations as stored.
        allocs: u64,
        /// Frees as stored.
        frees: u64,
        /// The counters are 32 bits wide, so a wrap is possible.
        counters_32bit: bool,
    },
    /// The running byte total is below zero (more bytes freed than allocated, or a torn
    /// update): counted as 0 bytes.
    BytesBelowZero {
        /// Which pool.
        pool: PoolKind,
        /// The total as a signed value.
        bytes: i64,
    },
    /// The bytes are not a tracker entry (non-zero padding, a counter no machine reaches, a
    /// LimitInfo that is no kernel address): not counted.
    NotAnEntry {
        /// What gives it away.
        why: String,
    },
}

/// One inconsistent entry, flagged; the rest of its table is read as usual.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryAnomaly {
    /// The table holding it.
    #[serde(serialize_with = "super::hex::u64")]
    pub table: u64,
    /// `None` for the global table, else the processor whose ExPoolTagTables slot points at it.
    pub processor: Option<u32>,
    /// The entry's index in its table.
    pub index: u64,
    /// Its key, with the PROTECTED_POOL bit stripped.
    pub tag: u32,
    /// What is wrong.
    pub anomaly: AnomalyKind,
}

/// How the table's entry count was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "kebab-case")]
pub enum SizeSource {
    /// PoolTrackTableSize, the variable before nt!PoolTrackTable, with its entries in the shape
    /// and at the hash slots of a table of that size.
    Variable {
        /// The variable's value (2^n + 1).
        value: u64,
        /// Used keys (outside the overflow bucket) at their hash slots, and used keys.
        placed: u64,
        /// See `placed`.
        used: u64,
    },
    /// The largest 2^n + 1 whose used keys sit at their hash slots.
    Probed {
        /// n.
        exponent: u32,
        /// Used keys at their hash slots.
        placed: u64,
        /// Used keys.
        used: u64,
    },
    /// PoolTrackTableSize on the entries' shape alone: their keys do not sit at the hash slots
    /// this reader computes (a kernel that hashes differently?).
    VariableShapeOnly {
        /// The variable's value.
        value: u64,
    },
    /// The largest 2^n + 1 of entry-shaped memory: neither the variable nor the hash could size
    /// the table, so trailing memory may have been read as empty entries.
    ShapeOnly {
        /// n.
        exponent: u32,
    },
}

impl SizeSource {
    /// One line for a report.
    pub fn describe(&self) -> String {
        match self {
            SizeSource::Variable {
                value,
                placed,
                used,
            } => format!(
                "PoolTrackTableSize = {value}; {placed} of {used} used keys at their hash slots"
            ),
            SizeSource::Probed {
                exponent,
                placed,
                used,
            } => format!(
                "probed: 2^{exponent} + 1, the largest size with its used keys at their hash slots ({placed} of {used})"
            ),
            SizeSource::VariableShapeOnly { value } => format!(
                "PoolTrackTableSize = {value}, on the entries' shape only (keys not at the hash slots this reader computes)"
            ),
            SizeSource::ShapeOnly { exponent } => format!(
                "probed on the entries' shape only: 2^{exponent} + 1 (trailing memory may be read as empty entries)"
            ),
        }
    }
}

/// One table read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableInfo {
    /// Its address.
    #[serde(serialize_with = "super::hex::u64")]
    pub va: u64,
    /// `None` for the global table, else the processor whose ExPoolTagTables slot holds it.
    pub processor: Option<u32>,
    /// Entries read (the table size).
    pub entries: u64,
    /// Entries in use.
    pub used: u64,
    /// Entries in pages missing from the dump (their counts are not included).
    pub missing: u64,
}

/// Everything read from the pool tracker tables of a dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolTables {
    /// Per-tag totals over every table read: what ranking consumes. Not serialised: a report
    /// carries them as its `!poolused` rows.
    #[serde(skip)]
    pub snapshot: PoolSnapshot,
    /// &nt!PoolTrackTable (KDBG+0x1B8).
    #[serde(serialize_with = "super::hex::u64")]
    pub variable: u64,
    /// The global table's address.
    #[serde(serialize_with = "super::hex::u64")]
    pub table: u64,
    /// Bytes per entry (the layout chosen by architecture and build).
    pub entry_size: usize,
    /// Entries per table.
    pub entries: u64,
    /// How the size was found.
    pub size_source: SizeSource,
    /// Sizes tried and rejected, with the reason.
    pub rejected_sizes: Vec<String>,
    /// The tables read: the global table first, then per-processor tables.
    pub tables: Vec<TableInfo>,
    /// Inconsistent entries, flagged (counted as described by their kind).
    pub anomalies: Vec<EntryAnomaly>,
    /// What the totals leave out, and why (tables not found, entries missing, budget reached).
    pub not_included: Vec<String>,
    /// True when nothing the totals should hold is known to be left out, other than the
    /// expansion and session tables (always left out without symbols).
    pub complete: bool,
}

/// One decoded entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// The key as stored.
    raw_key: u32,
    np: PoolCounters,
    p: PoolCounters,
    /// All bytes zero: a free slot.
    empty: bool,
    /// Not a tracker entry, and why.
    not_entry: Option<String>,
}

impl Entry {
    fn tag(&self) -> u32 {
        self.raw_key & 0x7FFF_FFFF
    }
}

/// 64-bit counters stay below this; a total within this distance below 2^64 is a small
/// negative (a running total that dipped below zero).
const COUNTER_LIMIT: u64 = 1 << 48;

fn read_field(b: &[u8], fl: Field) -> u64 {
    if fl.wide {
        u64_at(b, fl.at).unwrap_or(0)
    } else {
        u32_at(b, fl.at).map(u64::from).unwrap_or(0)
    }
}

fn decode(b: &[u8], l: &Layout, kernel_ptr: &dyn Fn(u64) -> bool) -> Entry {
    let c = |fs: [Field; 3]| PoolCounters {
        allocs: read_field(b, fs[0]),
        frees: read_field(b, fs[1]),
        bytes: read_field(b, fs[2]),
    };
    let empty = b.iter().all(|&x| x == 0);
    let mut not_entry = None;
    if let Some((lo, hi)) = l.pad {
        if b[lo..hi].iter().any(|&x| x != 0) {
            not_entry = Some(format!("padding at +{lo:#x}..+{hi:#x} is not zero"));
        }
    }
    for (pool, fs) in [("NonPaged", l.np), ("Paged", l.p)] {
        for (name, fl) in ["allocs", "frees", "bytes"].iter().zip(fs) {
            let v = read_field(b, fl);
            let negative_bytes = *name == "bytes" && v > u64::MAX - COUNTER_LIMIT;
            if fl.wide && v >= COUNTER_LIMIT && !negative_bytes && not_entry.is_none() {
                not_entry = Some(format!("{pool} {name} {v:#x} is beyond any real count"));
            }
        }
    }
    if let Some(at) = l.limit_info {
        let v = u64_at(b, at).unwrap_or(0);
        if v != 0 && !kernel_ptr(v) && not_entry.is_none() {
            not_entry = Some(format!("LimitInfo {v:#x} is not a kernel address"));
        }
    }
    Entry {
        raw_key: u32_at(b, 0).unwrap_or(0),
        np: c(l.np),
        p: c(l.p),
        empty,
        not_entry,
    }
}

/// The anomalies of an entry that has the shape of one, and the counters to add.
fn check(e: &Entry, l: &Layout) -> (Vec<AnomalyKind>, PoolCounters, PoolCounters) {
    let mut out = Vec::new();
    let mut fix = |pool: PoolKind, c: PoolCounters, fs: [Field; 3]| {
        let mut c = c;
        if c.frees > c.allocs {
            out.push(AnomalyKind::FreesAboveAllocs {
                pool,
                allocs: c.allocs,
                frees: c.frees,
                counters_32bit: !fs[0].wide,
            });
        }
        if fs[2].wide && c.bytes > u64::MAX - COUNTER_LIMIT {
            out.push(AnomalyKind::BytesBelowZero {
                pool,
                bytes: c.bytes as i64,
            });
            c.bytes = 0;
        }
        c
    };
    let np = fix(PoolKind::NonPaged, e.np, l.np);
    let p = fix(PoolKind::Paged, e.p, l.p);
    (out, np, p)
}

/// The home slot of a key in a table of `mask + 1` hashed slots (§3.2).
fn home(key: u32, mask: u64) -> u64 {
    let t = u64::from(key).wrapping_mul(40543);
    (t ^ (t >> 32)) & mask
}

/// Used keys outside the overflow bucket at their hash slots, and used keys, for a table of
/// `size` = 2^n + 1 entries. A slot whose entry is missing from the dump counts as in use (it
/// may be). Linear-time: the run of in-use slots ending at each slot is computed once.
fn placement(entries: &[Option<Entry>], size: u64) -> (u64, u64) {
    let slots = (size - 1) as usize;
    let in_use = |i: usize| entries[i].as_ref().is_none_or(|e| !e.empty);
    // run[i]: the in-use slots ending at i, counted backwards and around the end.
    let mut run = vec![0usize; slots];
    let mut cur = 0usize;
    for (i, r) in run.iter_mut().enumerate() {
        cur = if in_use(i) { cur + 1 } else { 0 };
        *r = cur;
    }
    let mut carry = run[slots - 1];
    for (i, r) in run.iter_mut().enumerate() {
        if carry == 0 || !in_use(i) {
            break;
        }
        carry += 1;
        *r = carry.min(slots);
    }
    let mask = (slots - 1) as u64;
    let (mut placed, mut used) = (0u64, 0u64);
    for (i, e) in entries[..slots].iter().enumerate() {
        let Some(e) = e else { continue };
        if e.empty || e.not_entry.is_some() {
            continue;
        }
        used += 1;
        let ok = |key: u32| {
            let h = home(key, mask) as usize;
            let dist = (i + slots - h) % slots;
            dist < run[i]
        };
        if ok(e.tag()) || ok(e.raw_key) {
            placed += 1;
        }
    }
    (placed, used)
}

/// Placement good enough to accept a size: at least 9 in 10 used keys where the hash says, or
/// all but one.
fn placed_ok(placed: u64, used: u64) -> bool {
    used > 0 && (placed * 10 >= used * 9 || used - placed <= 1)
}

/// Entries that are not entries, tolerated inside a table otherwise well-formed.
fn shape_tolerance(size: u64) -> u64 {
    (size / 512).max(1)
}

/// A table as read so far: its entries and the pages behind them.
#[derive(Default)]
struct Read {
    entries: Vec<Option<Entry>>,
    /// Virtual pages read (a page read twice across a prefix extension counts once).
    pages: FrameSet,
    /// Physical page frames behind them.
    frames: FrameSet,
}

/// Reads tables page by page within the pool budget, each table once.
struct Reader<'a> {
    dump: &'a Memory,
    l: Layout,
    entry_limit: u64,
    entries_read: u64,
    /// Tables by address.
    cache: HashMap<u64, Read>,
}

impl Reader<'_> {
    /// The first `count` entries at `table`, reading only what is not cached yet; refused with
    /// the budget reached (entries summed over every table, or aliasing).
    fn read(
        &mut self,
        table: u64,
        count: u64,
        what: &str,
    ) -> Result<&[Option<Entry>], BudgetExceeded> {
        let dump = self.dump;
        let have = self.cache.get(&table).map_or(0, |c| c.entries.len() as u64);
        if count > have {
            let extra = count - have;
            if self.entries_read + extra > self.entry_limit {
                return Err(dump.over_budget(
                    Limit::PoolEntries,
                    format!("{what} at {table:#x}"),
                    self.entry_limit,
                    self.entries_read + extra,
                ));
            }
            self.entries_read += extra;
            let size = self.l.size as u64;
            let start = table.wrapping_add(have * size);
            let len = (extra * size) as usize;
            let mut bytes = vec![0u8; len];
            let mut ok = vec![true; len];
            let c = self.cache.entry(table).or_default();
            let mut done = 0usize;
            while done < len {
                let va = start.wrapping_add(done as u64);
                let n = ((0x1000 - (va & 0xFFF)) as usize).min(len - done);
                match dump.read_in_page(va, &mut bytes[done..done + n]) {
                    Ok(frame) => {
                        c.pages.insert(va & !0xFFF);
                        c.frames.extend(frame);
                    }
                    Err(_) => ok[done..done + n].fill(false),
                }
                done += n;
            }
            let kp = |p: u64| dump.plausible_kernel_ptr(p, 8);
            for i in 0..extra as usize {
                let r = i * self.l.size..(i + 1) * self.l.size;
                let whole = ok[r.clone()].iter().all(|&b| b);
                c.entries
                    .push(whole.then(|| decode(&bytes[r], &self.l, &kp)));
            }
            // Triage dumps have no frames; every other read page has one.
            let (pages, frames) = (c.pages.len() as u64, c.frames.len() as u64);
            if frames > 0 && budget::aliased(pages, frames) {
                return Err(dump.over_budget(
                    Limit::AliasedPages,
                    format!("{what} at {table:#x} ({} entries read)", c.entries.len()),
                    pages,
                    frames,
                ));
            }
        }
        let c = &self.cache[&table].entries;
        Ok(&c[..(count as usize).min(c.len())])
    }

    fn frames(&self, table: u64) -> Option<&FrameSet> {
        self.cache.get(&table).map(|c| &c.frames)
    }
}

/// First index whose entry is not an entry, or `len`.
fn shape_end(entries: &[Option<Entry>]) -> usize {
    entries
        .iter()
        .position(|e| e.as_ref().is_some_and(|e| e.not_entry.is_some()))
        .unwrap_or(entries.len())
}

fn not_entries(entries: &[Option<Entry>]) -> u64 {
    entries
        .iter()
        .filter(|e| e.as_ref().is_some_and(|e| e.not_entry.is_some()))
        .count() as u64
}

fn is_table_size(v: u64) -> bool {
    v > 1
        && (v - 1).is_power_of_two()
        && (MIN_TABLE_EXP..=MAX_TABLE_EXP).contains(&(v - 1).trailing_zeros())
}

/// Sizes the global table; see the module documentation for the order.
fn size_table(
    r: &mut Reader<'_>,
    var: u64,
    table: u64,
    held_entries: u64,
) -> Result<(u64, SizeSource, Vec<String>), PoolTableError> {
    let dump = r.dump;
    let esize = r.l.size as u64;
    let mut rejected = Vec::new();
    let ps = dump.pointer_size() as u64;
    // The variable, if it is one.
    let mut shape_only_variable = None;
    match dump.read_ptr(var.wrapping_sub(ps)) {
        Err(m) => rejected.push(format!(
            "PoolTrackTableSize (at {:#x}) is unreadable: {m}",
            var.wrapping_sub(ps)
        )),
        Ok(v) if !is_table_size(v) => rejected.push(format!(
            "the value before nt!PoolTrackTable is {v:#x}, not 2^n + 1 with n in {MIN_TABLE_EXP}..={MAX_TABLE_EXP}"
        )),
        Ok(v) if v > held_entries => {
            let e = dump.over_budget(
                Limit::PoolTableBytes,
                format!("PoolTrackTableSize {v} at {:#x}", var.wrapping_sub(ps)),
                budget::page_bytes(dump.physical_pages()),
                v.saturating_mul(esize),
            );
            rejected.push(format!(
                "PoolTrackTableSize {v} needs {:#x} bytes, more than the dump holds ({e})",
                v.saturating_mul(esize)
            ));
        }
        Ok(v) => {
            let entries = r
                .read(table, v, "pool tracker table")
                .map_err(PoolTableError::Budget)?;
            let bad = not_entries(entries);
            let (placed, used) = placement(entries, v);
            if bad > shape_tolerance(v) {
                rejected.push(format!(
                    "PoolTrackTableSize {v}: {bad} of its entries are not tracker entries"
                ));
            } else if placed_ok(placed, used) || used == 0 {
                return Ok((
                    v,
                    SizeSource::Variable {
                        value: v,
                        placed,
                        used,
                    },
                    rejected,
                ));
            } else {
                rejected.push(format!(
                    "PoolTrackTableSize {v}: only {placed} of {used} used keys at their hash slots"
                ));
                shape_only_variable = Some(v);
            }
        }
    }
    // Probe by placement, growing the read one size at a time.
    let max_exp = (MIN_TABLE_EXP..=MAX_TABLE_EXP)
        .rev()
        .find(|&n| (1u64 << n) < held_entries);
    let Some(max_exp) = max_exp else {
        return Err(PoolTableError::NoSize {
            table,
            why: format!(
                "the dump holds room for only {held_entries} entries of {esize:#x} bytes, fewer than the smallest table"
            ),
        });
    };
    let mut best: Option<(u32, u64, u64)> = None;
    let mut shape_best: Option<u32> = None;
    let mut fails_after_best = 0;
    for n in MIN_TABLE_EXP..=max_exp {
        let size = (1u64 << n) + 1;
        let entries = r
            .read(table, size, "pool tracker table")
            .map_err(PoolTableError::Budget)?;
        if shape_end(entries) < size as usize {
            rejected.push(format!(
                "2^{n} + 1: entry {} is not a tracker entry",
                shape_end(entries)
            ));
            break;
        }
        shape_best = Some(n);
        let (placed, used) = placement(entries, size);
        if placed_ok(placed, used) {
            best = Some((n, placed, used));
            fails_after_best = 0;
        } else {
            rejected.push(format!(
                "2^{n} + 1: {placed} of {used} used keys at their hash slots"
            ));
            if best.is_some() {
                fails_after_best += 1;
                if fails_after_best == 2 {
                    break;
                }
            }
        }
    }
    if let Some((n, placed, used)) = best {
        return Ok((
            (1u64 << n) + 1,
            SizeSource::Probed {
                exponent: n,
                placed,
                used,
            },
            rejected,
        ));
    }
    if let Some(v) = shape_only_variable {
        return Ok((v, SizeSource::VariableShapeOnly { value: v }, rejected));
    }
    if let Some(n) = shape_best {
        let size = (1u64 << n) + 1;
        let entries = r
            .read(table, size, "pool tracker table")
            .map_err(PoolTableError::Budget)?;
        if entries.iter().any(|e| e.as_ref().is_some_and(|e| !e.empty)) {
            return Ok((size, SizeSource::ShapeOnly { exponent: n }, rejected));
        }
        rejected.push(format!("no used entry in the first {size} entries"));
    }
    Err(PoolTableError::NoSize {
        table,
        why: rejected.join("; "),
    })
}

pub(crate) fn read(
    dump: &Memory,
    kdbg: Option<&Kdbg>,
    modules: Option<&[LoadedModule]>,
) -> Result<PoolTables, PoolTableError> {
    if dump.is_triage() {
        return Err(PoolTableError::Triage);
    }
    if dump.physical_pages() == 0 {
        return Err(PoolTableError::NoMemory);
    }
    let kdbg = kdbg.ok_or(PoolTableError::NoKdbg)?;
    let var = kdbg.pool_track_table;
    let ps = dump.pointer_size();
    if !dump.plausible_kernel_ptr(var, ps as u64) {
        return Err(PoolTableError::BadVariable { va: var });
    }
    let table = dump
        .read_ptr(var)
        .map_err(|m| PoolTableError::VariableUnreadable {
            va: var,
            why: m.to_string(),
        })?;
    if !dump.plausible_kernel_ptr(table, ps as u64) {
        return Err(PoolTableError::BadPointer {
            va: var,
            value: table,
        });
    }
    let s = dump.summary();
    let l = layout(s.arch, s.build);
    let held_entries = budget::page_bytes(dump.physical_pages()) / l.size as u64;
    let mut r = Reader {
        dump,
        l,
        entry_limit: MAX_POOL_ENTRIES.min(held_entries.saturating_mul(2)),
        entries_read: 0,
        cache: HashMap::new(),
    };
    let (size, size_source, rejected_sizes) = size_table(&mut r, var, table, held_entries)?;
    let mut not_included = Vec::new();
    let mut complete = true;
    let mut per_cpu: Vec<(u32, u64)> = Vec::new();
    if s.processors > 1 {
        match find_tag_tables(&mut r, var, table, size, modules) {
            Ok(Some(found)) => per_cpu = found,
            Ok(None) => {
                complete = false;
                not_included.push(format!(
                    "per-processor tables (ExPoolTagTables) were not found near nt!PoolTrackTable without symbols: totals cover the global table only and may undercount on this {}-processor machine",
                    s.processors
                ));
            }
            Err((found, e)) => {
                complete = false;
                per_cpu = found;
                not_included.push(format!("per-processor tables: {e}"));
            }
        }
    }
    not_included.push(
        "PoolTrackTableExpansion and the session pool tables need symbols and are not included"
            .into(),
    );
    let mut tags: BTreeMap<u32, TagUsage> = BTreeMap::new();
    let mut anomalies = Vec::new();
    let mut tables = Vec::new();
    let mut missing_total = 0u64;
    let all = std::iter::once((None, table)).chain(per_cpu.iter().map(|&(c, t)| (Some(c), t)));
    for (processor, t) in all {
        let entries = match r.read(t, size, "pool tracker table") {
            Ok(e) => e,
            Err(e) => {
                complete = false;
                not_included.push(format!("table at {t:#x}: {e}"));
                continue;
            }
        };
        let mut info = TableInfo {
            va: t,
            processor,
            entries: size,
            used: 0,
            missing: 0,
        };
        for (index, e) in entries.iter().enumerate() {
            let Some(e) = e else {
                info.missing += 1;
                continue;
            };
            if e.empty {
                continue;
            }
            info.used += 1;
            let flag = |anomaly| EntryAnomaly {
                table: t,
                processor,
                index: index as u64,
                tag: e.tag(),
                anomaly,
            };
            if let Some(why) = &e.not_entry {
                anomalies.push(flag(AnomalyKind::NotAnEntry { why: why.clone() }));
                continue;
            }
            let (found, np, p) = check(e, &l);
            anomalies.extend(found.into_iter().map(flag));
            if np == PoolCounters::default() && p == PoolCounters::default() {
                continue;
            }
            let u = tags.entry(e.tag()).or_insert(TagUsage {
                tag: e.tag(),
                nonpaged: PoolCounters::default(),
                paged: PoolCounters::default(),
            });
            u.nonpaged.add(&np);
            u.paged.add(&p);
        }
        missing_total += info.missing;
        tables.push(info);
    }
    if missing_total > 0 {
        complete = false;
        not_included.push(format!(
            "{missing_total} tracker entries are in pages missing from the dump; their counts are not included"
        ));
    }
    Ok(PoolTables {
        snapshot: PoolSnapshot {
            source: format!(
                "{}: pool tracker table at {table:#x}, {size} entries of {:#x} bytes (size: {}), {} table(s)",
                dump.path().display(),
                r.l.size,
                size_source.describe(),
                tables.len()
            ),
            tags: tags.into_values().collect(),
        },
        variable: var,
        table,
        entry_size: r.l.size,
        entries: size,
        size_source,
        rejected_sizes,
        tables,
        anomalies,
        not_included,
        complete,
    })
}

/// Physical pages two tables may share (a table's last page can hold the start of the next).
const SHARED_PAGES: usize = 2;

/// Finds ExPoolTagTables[] and returns (processor, table) for the distinct per-CPU tables other
/// than the global one. `Err` carries the tables validated before a budget stopped the search.
#[allow(clippy::type_complexity)]
fn find_tag_tables(
    r: &mut Reader<'_>,
    var: u64,
    table: u64,
    size: u64,
    modules: Option<&[LoadedModule]>,
) -> Result<Option<Vec<(u32, u64)>>, (Vec<(u32, u64)>, BudgetExceeded)> {
    let dump = r.dump;
    let ps = dump.pointer_size();
    let claimed = dump.summary().processors as usize;
    if claimed > MAX_PROCESSORS {
        dump.over_budget(
            Limit::Processors,
            "looking for ExPoolTagTables",
            MAX_PROCESSORS as u64,
            claimed as u64,
        );
    }
    let cpus = claimed.min(MAX_PROCESSORS);
    let (lo, hi) = search_range(dump, var, modules);
    let mut page = vec![0u8; 0x1000];
    let mut at = lo & !0xFFF;
    let mut candidates = 0usize;
    while at < hi {
        if dump.read_virt(at, &mut page).is_ok() {
            let mut o = 0;
            while o + ps <= page.len() {
                if ptr_at(&page, o, ps) == Some(table) {
                    candidates += 1;
                    match check_array(r, at + o as u64, cpus, table, size)? {
                        Some(found) => return Ok(Some(found)),
                        None if candidates >= TAG_TABLE_CANDIDATES => return Ok(None),
                        None => {}
                    }
                }
                o += ps;
            }
        }
        at = match at.checked_add(0x1000) {
            Some(a) => a,
            None => break,
        };
    }
    Ok(None)
}

/// The writable, non-executable section of the module that holds nt!PoolTrackTable, or a
/// window around the variable when that module or its header cannot be read.
fn search_range(dump: &Memory, var: u64, modules: Option<&[LoadedModule]>) -> (u64, u64) {
    const WINDOW: u64 = 64 << 10;
    let fallback = (var.saturating_sub(WINDOW), var.saturating_add(WINDOW));
    let Some(mods) = modules else {
        return fallback;
    };
    let Some(m) = mods.iter().find(|m| m.contains(var)) else {
        return fallback;
    };
    let mut head = vec![0u8; 0x1000];
    if dump.read_virt(m.base, &mut head).is_err() {
        return fallback;
    }
    let Some(h) = Headers::parse(&head) else {
        return fallback;
    };
    let rva = (var - m.base) as u32;
    match h.section_at(rva) {
        Some(sec) if sec.characteristics & SCN_EXECUTE == 0 => {
            let lo = m.base.saturating_add(u64::from(sec.rva));
            (
                lo,
                lo.saturating_add(u64::from(sec.vsize).min(TAG_TABLE_SEARCH)),
            )
        }
        _ => fallback,
    }
}

/// Checks a candidate ExPoolTagTables at `arr`: element 0 is the global table, the others are
/// null or distinct tables in their own memory, entry-shaped, whose used keys agree with the
/// global table's at the same slots (at least one key agreeing in some table).
#[allow(clippy::type_complexity)]
fn check_array(
    r: &mut Reader<'_>,
    arr: u64,
    cpus: usize,
    table: u64,
    size: u64,
) -> Result<Option<Vec<(u32, u64)>>, (Vec<(u32, u64)>, BudgetExceeded)> {
    let dump = r.dump;
    let ps = dump.pointer_size();
    let mut raw = vec![0u8; cpus * ps];
    if dump.read_virt(arr, &mut raw).is_err() {
        return Ok(None);
    }
    let global_keys: Vec<Option<u32>> = match r.read(table, size, "pool tracker table") {
        Ok(g) => g
            .iter()
            .map(|e| e.as_ref().filter(|e| !e.empty).map(Entry::tag))
            .collect(),
        Err(e) => return Err((Vec::new(), e)),
    };
    let mut out: Vec<(u32, u64)> = Vec::new();
    let mut agreeing = 0usize;
    for i in 1..cpus {
        let Some(p) = ptr_at(&raw, i * ps, ps) else {
            return Ok(None);
        };
        if p == 0 {
            continue;
        }
        if p == table || out.iter().any(|o| o.1 == p) || !dump.plausible_kernel_ptr(p, 8) {
            return Ok(None);
        }
        let local = match r.read(p, size, "per-processor pool tracker table") {
            Ok(l) => l,
            Err(e) => {
                // An aliased candidate is no table; a budget reached keeps what was validated.
                if e.kind == Limit::AliasedPages {
                    return Ok(None);
                }
                return Err((out, e));
            }
        };
        if not_entries(local) > shape_tolerance(size) {
            return Ok(None);
        }
        let mut agree = 0usize;
        for (g, e) in global_keys.iter().zip(local) {
            match (g, e.as_ref().filter(|e| !e.empty && e.not_entry.is_none())) {
                (Some(g), Some(e)) if *g != 0 && e.tag() != 0 => {
                    if *g != e.tag() {
                        return Ok(None);
                    }
                    agree += 1;
                }
                _ => {}
            }
        }
        agreeing += agree;
        // Distinct tables occupy distinct memory.
        let mine = r.frames(p).cloned().unwrap_or_default();
        for &(_, o) in out.iter().chain([(0, table)].iter()) {
            if let Some(theirs) = r.frames(o) {
                if mine.intersection(theirs).count() > SHARED_PAGES {
                    return Ok(None);
                }
            }
        }
        out.push((i as u32, p));
    }
    Ok((agreeing > 0 && !out.is_empty()).then_some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(l: &Layout, key: u32, np: (u64, u64, u64)) -> Vec<u8> {
        let mut b = vec![0u8; l.size];
        b[0..4].copy_from_slice(&key.to_le_bytes());
        for (fl, v) in l.np.iter().zip([np.0, np.1, np.2]) {
            if fl.wide {
                b[fl.at..fl.at + 8].copy_from_slice(&v.to_le_bytes());
            } else {
                b[fl.at..fl.at + 4].copy_from_slice(&(v as u32).to_le_bytes());
            }
        }
        b
    }

    fn yes(_: u64) -> bool {
        true
    }

    #[test]
    fn entry_layout_follows_arch_and_build() {
        assert_eq!(layout(Arch::X86, 7601).size, 0x1C);
        assert_eq!(layout(Arch::X86Pae, 16299).size, 0x30);
        assert_eq!(layout(Arch::X64, 15063).size, 0x28);
        assert_eq!(layout(Arch::X64, 16299).size, 0x38);
        assert_eq!(layout(Arch::Arm64, 22000).size, 0x38);
        assert_eq!(layout(Arch::X64, 26100).size, 0x50);
    }

    #[test]
    fn any_key_is_a_tag_and_shape_decides() {
        let l = layout(Arch::X64, 19041);
        // chipsec's non-printable tag, with the protected bit.
        let e = decode(&entry(&l, 0x8000_3184, (3, 1, 0x40)), &l, &yes);
        assert_eq!((e.tag(), e.not_entry.clone()), (0x3184, None));
        // A zero key with counts is tag 0, in use.
        let e = decode(&entry(&l, 0, (1, 0, 0x10)), &l, &yes);
        assert!(!e.empty && e.not_entry.is_none());
        // Garbage: padding and counters no machine reaches.
        assert!(decode(&[0xFF; 0x38], &l, &yes).not_entry.is_some());
        let mut b = entry(&l, 0x656E_6F42, (1, 0, 0x10));
        b[5] = 1;
        assert_eq!(
            decode(&b, &l, &yes).not_entry.as_deref(),
            Some("padding at +0x4..+0x8 is not zero")
        );
    }

    #[test]
    fn inconsistent_counters_are_flagged_and_counted_sensibly() {
        let l = layout(Arch::X64, 15063);
        let e = decode(&entry(&l, 0x3184, (2, 0xFFFF_FFF0, 0x20)), &l, &yes);
        let (a, np, _) = check(&e, &l);
        assert_eq!(
            a,
            [AnomalyKind::FreesAboveAllocs {
                pool: PoolKind::NonPaged,
                allocs: 2,
                frees: 0xFFFF_FFF0,
                counters_32bit: true
            }]
        );
        assert_eq!(np.live(), 0);
        let l = layout(Arch::X64, 19041);
        let e = decode(&entry(&l, 0x3184, (2, 1, (-0x40i64) as u64)), &l, &yes);
        assert!(e.not_entry.is_none());
        let (a, np, _) = check(&e, &l);
        assert_eq!(
            a,
            [AnomalyKind::BytesBelowZero {
                pool: PoolKind::NonPaged,
                bytes: -0x40
            }]
        );
        assert_eq!(np.bytes, 0);
    }

    #[test]
    fn placement_finds_keys_at_their_hash_slots_only_for_the_right_size() {
        let l = layout(Arch::X64, 19041);
        // A 65-entry table with 20 keys at their slots (linear probing), then zeros.
        let mut slots: Vec<Option<Entry>> = (0..1025)
            .map(|_| Some(decode(&[0u8; 0x38], &l, &yes)))
            .collect();
        let mut n = 0;
        let mut key = 0x4141_4141u32;
        while n < 20 {
            key = key.wrapping_mul(2_654_435_761).wrapping_add(7);
            let mut i = home(key, 63) as usize;
            while !slots[i].as_ref().unwrap().empty {
                i = (i + 1) % 64;
            }
            slots[i] = Some(decode(&entry(&l, key, (1, 0, 0x10)), &l, &yes));
            n += 1;
        }
        assert_eq!(placement(&slots, 65), (20, 20));
        let (placed, used) = placement(&slots, 129);
        assert_eq!(used, 20);
        assert!(
            !placed_ok(placed, used),
            "{placed} of {used} at 129 entries"
        );
    }
}
