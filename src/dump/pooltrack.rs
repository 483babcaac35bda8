//! The pool tag table (`!poolused`): POOL_TRACKER_TABLE entries summed per tag over the global
//! table and the per-processor tables, crash-dumps.md §3.
//!
//! KDBG.PoolTrackTable is the address of the variable nt!PoolTrackTable, which holds the table
//! pointer (§2.2, §3.2). The entry count (PoolTrackTableSize, always 2^n + 1) is not in KDBG:
//! it is taken from the variable just before nt!PoolTrackTable when that holds a 2^n + 1 value
//! whose entries look right, else found by probing n upwards (§3.2 step 2). On multiprocessor
//! kernels the counts are spread over ExPoolTagTables[cpu]; without symbols the array is found
//! next to nt!PoolTrackTable as pointers whose element 0 is the global table and whose tables
//! have their keys at the same slots (§3.2 step 3b). The expansion and session tables need
//! symbols and are not read; a notice says so.

use std::collections::BTreeMap;

use crate::pool::{PoolCounters, PoolSnapshot, TagUsage};

use super::bytes::{ptr_at, u32_at, u64_at};
use super::header::Arch;
use super::pe::{Headers, SCN_EXECUTE};
use super::{Dump, DumpError};

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
        },
        (Arch::X86 | Arch::X86Pae, _) => Layout {
            size: 0x30,
            np: [f(8, true), f(0x10, true), f(4, false)],
            p: [f(0x20, true), f(0x28, true), f(0x18, false)],
        },
        (_, b) if b < 16299 => Layout {
            size: 0x28,
            np: [f(4, false), f(8, false), f(0x10, true)],
            p: [f(0x18, false), f(0x1C, false), f(0x20, true)],
        },
        (_, b) if b < 26100 => Layout {
            size: 0x38,
            np: [f(0x10, true), f(0x18, true), f(8, true)],
            p: [f(0x28, true), f(0x30, true), f(0x20, true)],
        },
        _ => Layout {
            size: 0x50,
            np: [f(0x10, true), f(0x18, true), f(8, true)],
            p: [f(0x28, true), f(0x30, true), f(0x20, true)],
        },
    }
}

/// One decoded entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    key: u32,
    np: PoolCounters,
    p: PoolCounters,
}

fn read_field(b: &[u8], fl: Field) -> u64 {
    if fl.wide {
        u64_at(b, fl.at).unwrap_or(0)
    } else {
        u32_at(b, fl.at).map(u64::from).unwrap_or(0)
    }
}

fn decode(b: &[u8], l: &Layout) -> Entry {
    let c = |fs: [Field; 3]| PoolCounters {
        allocs: read_field(b, fs[0]),
        frees: read_field(b, fs[1]),
        bytes: read_field(b, fs[2]),
    };
    // The PROTECTED_POOL bit (0x80000000) is not part of the tag (§3.1).
    Entry {
        key: u32_at(b, 0).unwrap_or(0) & 0x7FFF_FFFF,
        np: c(l.np),
        p: c(l.p),
    }
}

/// Does an entry look like a tracker entry? Printable (or zero) key, and counters in a range a
/// real machine can reach. Used to size the table and to reject wrong candidates.
fn plausible(e: &Entry) -> bool {
    const LIMIT: u64 = 1 << 48;
    let key_ok = e.key == 0
        || e.key
            .to_le_bytes()
            .iter()
            .all(|&c| (0x20..=0x7E).contains(&c));
    key_ok
        && [e.np, e.p].iter().all(|c| {
            c.allocs < LIMIT
                && c.frees < LIMIT
                && c.bytes < LIMIT
                && c.frees <= c.allocs.saturating_add(c.allocs / 64 + 64)
        })
}

/// Reads entries [from, to) of a table; `None` for an entry whose bytes are not in the dump.
fn entries(dump: &Dump, table: u64, l: &Layout, from: u64, to: u64) -> Vec<Option<Entry>> {
    let mut out = Vec::with_capacity(to.saturating_sub(from) as usize);
    let mut buf = vec![0u8; l.size];
    for i in from..to {
        let va = table.wrapping_add(i * l.size as u64);
        out.push(dump.read_virt(va, &mut buf).ok().map(|_| decode(&buf, l)));
    }
    out
}

/// Smallest and largest table exponent considered (WRK uses at least 64 entries; the size is a
/// registry-overridable power of two; 2^20 entries is far above any table seen and bounds
/// the probing work on a hostile dump).
const MIN_EXP: u32 = 6;
const MAX_EXP: u32 = 20;

fn size_of_table(dump: &Dump, var: u64, table: u64, l: &Layout) -> Option<(u64, &'static str)> {
    let ps = dump.pointer_size() as u64;
    if let Ok(v) = dump.read_ptr(var.wrapping_sub(ps)) {
        let n = v.wrapping_sub(1);
        if v > 1
            && n.is_power_of_two()
            && (MIN_EXP..=MAX_EXP).contains(&n.trailing_zeros())
            && entries(dump, table, l, 0, v)
                .iter()
                .all(|e| e.as_ref().is_some_and(plausible))
        {
            return Some((v, "PoolTrackTableSize before nt!PoolTrackTable"));
        }
    }
    // Probe: the table is 2^n + 1 plausible entries followed by something that is not one.
    let mut checked = 0u64;
    for n in MIN_EXP..=MAX_EXP {
        let size = (1u64 << n) + 1;
        if !entries(dump, table, l, checked, size)
            .iter()
            .all(|e| e.as_ref().is_some_and(plausible))
        {
            return None;
        }
        checked = size;
        let after = entries(dump, table, l, size, size + 1);
        if !after[0].as_ref().is_some_and(plausible) {
            return Some((size, "probed (2^n + 1 plausible entries)"));
        }
    }
    None
}

pub(crate) fn usage(dump: &Dump) -> Result<PoolSnapshot, DumpError> {
    const WHAT: &str = "the pool tracker table";
    if dump.is_triage() {
        return Err(dump.unavailable(
            WHAT,
            "a triage dump does not contain the pool tracker table (§1.4.5)",
        ));
    }
    if dump.physical_pages() == 0 {
        return Err(dump.unavailable(WHAT, "the file holds no physical memory"));
    }
    let kdbg = dump.kdbg().ok_or_else(|| {
        dump.unavailable(
            WHAT,
            "KDDEBUGGER_DATA64 was not found, so &PoolTrackTable is unknown",
        )
    })?;
    let var = kdbg.pool_track_table;
    let ps = dump.pointer_size();
    if !dump.plausible_kernel_ptr(var, ps as u64) {
        return Err(dump.unreadable(
            "nt!PoolTrackTable (KDBG+0x1b8)",
            var,
            "not a kernel address",
        ));
    }
    let table = dump
        .read_ptr(var)
        .map_err(|m| dump.unreadable("nt!PoolTrackTable", var, m))?;
    if !dump.plausible_kernel_ptr(table, ps as u64) {
        return Err(dump.unreadable(
            "pool tracker table pointer",
            var,
            format!("value {table:#x} is not a kernel address"),
        ));
    }
    let s = dump.summary();
    let l = layout(s.arch, s.build);
    let (size, how) = size_of_table(dump, var, table, &l).ok_or_else(|| {
        dump.unreadable(
            "pool tracker table",
            table,
            format!("no 2^n + 1 run of plausible {:#x}-byte entries", l.size),
        )
    })?;
    let global = entries(dump, table, &l, 0, size);
    let mut tables = vec![table];
    if s.processors > 1 {
        match per_cpu(dump, var, table, &l, &global) {
            Some(more) => tables.extend(more),
            None => dump.notice(format!(
                "pool: per-processor tables (ExPoolTagTables) not found near nt!PoolTrackTable without symbols; totals cover the global table only and may undercount on this {}-processor machine (§3.2)",
                s.processors
            )),
        }
    }
    dump.notice("pool: PoolTrackTableExpansion and session pool tables need symbols and are not included (§3.2)".into());
    let mut tags: BTreeMap<u32, TagUsage> = BTreeMap::new();
    let mut missing = 0u64;
    for (ti, &t) in tables.iter().enumerate() {
        let list = if ti == 0 {
            global.clone()
        } else {
            entries(dump, t, &l, 0, size)
        };
        for e in list {
            let Some(e) = e else {
                missing += 1;
                continue;
            };
            if e.np == PoolCounters::default() && e.p == PoolCounters::default() {
                continue;
            }
            let u = tags.entry(e.key).or_insert(TagUsage {
                tag: e.key,
                nonpaged: PoolCounters::default(),
                paged: PoolCounters::default(),
            });
            u.nonpaged.add(&e.np);
            u.paged.add(&e.p);
        }
    }
    if missing > 0 {
        dump.notice(format!("pool: {missing} tracker entries are in pages missing from the dump; their counts are not included"));
    }
    Ok(PoolSnapshot {
        source: format!(
            "{}: pool tracker table at {table:#x}, {size} entries of {:#x} bytes (size: {how}), {} table(s)",
            dump.path().display(),
            l.size,
            tables.len()
        ),
        tags: tags.into_values().collect(),
    })
}

/// Bounds the search for ExPoolTagTables (ntoskrnl's .data is a few MiB).
const MAX_SCAN: u64 = 16 << 20;
const WINDOW: u64 = 64 << 10;

/// Finds ExPoolTagTables[] and returns the distinct per-CPU tables other than the global one.
fn per_cpu(
    dump: &Dump,
    var: u64,
    table: u64,
    l: &Layout,
    global: &[Option<Entry>],
) -> Option<Vec<u64>> {
    let ps = dump.pointer_size();
    let cpus = dump.summary().processors.min(2048) as usize;
    let (lo, hi) = search_range(dump, var);
    let mut page = vec![0u8; 0x1000];
    let mut at = lo & !0xFFF;
    while at < hi {
        if dump.read_virt(at, &mut page).is_ok() {
            let mut o = 0;
            while o + ps <= page.len() {
                if ptr_at(&page, o, ps) == Some(table) {
                    if let Some(found) = check_array(dump, at + o as u64, cpus, table, l, global) {
                        return Some(found);
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
    None
}

/// The writable, non-executable section of the module that holds nt!PoolTrackTable, or a
/// window around the variable when that module or its header cannot be read.
fn search_range(dump: &Dump, var: u64) -> (u64, u64) {
    let fallback = (var.saturating_sub(WINDOW), var.saturating_add(WINDOW));
    let Ok(mods) = dump.modules() else {
        return fallback;
    };
    let Some(m) = mods
        .iter()
        .find(|m| var >= m.base && var < m.base.saturating_add(u64::from(m.size)))
    else {
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
            (lo, lo.saturating_add(u64::from(sec.vsize).min(MAX_SCAN)))
        }
        _ => fallback,
    }
}

/// Checks a candidate ExPoolTagTables at `arr`: element 0 is the global table, the others are
/// null or tables whose populated keys agree with the global table's at the same slots.
fn check_array(
    dump: &Dump,
    arr: u64,
    cpus: usize,
    table: u64,
    l: &Layout,
    global: &[Option<Entry>],
) -> Option<Vec<u64>> {
    let ps = dump.pointer_size();
    let mut raw = vec![0u8; cpus * ps];
    dump.read_virt(arr, &mut raw).ok()?;
    let mut out = Vec::new();
    for i in 1..cpus {
        let p = ptr_at(&raw, i * ps, ps)?;
        if p == 0 {
            continue;
        }
        if p == table || out.contains(&p) || !dump.plausible_kernel_ptr(p, 8) {
            return None;
        }
        let local = entries(dump, p, l, 0, global.len() as u64);
        let mut agree = 0usize;
        for (g, e) in global.iter().zip(&local) {
            match (g, e) {
                (Some(g), Some(e)) if g.key != 0 && e.key != 0 => {
                    if g.key != e.key {
                        return None;
                    }
                    agree += 1;
                }
                (_, Some(e)) if !plausible(e) => return None,
                _ => {}
            }
        }
        if agree == 0 {
            return None;
        }
        out.push(p);
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn protected_bit_is_stripped_and_garbage_is_implausible() {
        let l = layout(Arch::X64, 19041);
        let mut b = vec![0u8; 0x38];
        b[0..4].copy_from_slice(&(0x656E_6F42u32 | 0x8000_0000).to_le_bytes());
        b[0x10] = 3;
        let e = decode(&b, &l);
        assert_eq!(e.key, 0x656E_6F42);
        assert!(plausible(&e));
        assert!(!plausible(&decode(&[0xFF; 0x38], &l)));
    }
}
