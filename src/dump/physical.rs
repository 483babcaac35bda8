//! Physical memory: which file offset holds a given page frame (PFN), per DumpType (§1.3, §1.4).
//!
//! The map is built once at open from the (small) descriptor, bitmap or range list; page data
//! itself is only touched when read. Anything a descriptor claims beyond the end of the file is
//! clipped at open with a notice, so a later lookup can never point outside the mapping.

use super::bytes::{u32_at, u64_at};
use super::header::HeaderRun;

pub(crate) const PAGE: u64 = 0x1000;

/// Bitmap words per rank entry (4096 PFNs).
const BLOCK_WORDS: usize = 64;

/// A built map and what the descriptor describes, for the dump's coverage.
pub(crate) struct Built {
    pub map: PhysMap,
    /// Physical pages the descriptor describes (before clipping to the file).
    pub described: u64,
    /// The descriptor or its pages run past the end of the file.
    pub cut: bool,
}

/// A contiguous run of PFNs stored contiguously in the file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    base_pfn: u64,
    pages: u64,
    file_offset: u64,
}

/// PFN → file offset for the dump types that carry physical memory.
pub(crate) enum PhysMap {
    /// No physical memory (triage, header only, or a file cut after the header).
    None,
    /// Runs (DumpType 1) or ranges (8/9/0xA), sorted by PFN.
    Runs(Vec<Run>),
    /// A presence bitmap (DumpType 2 and 5/6): pages of set bits are packed in PFN order.
    Bitmap {
        /// File offset of the bitmap.
        bitmap_at: usize,
        /// Number of bits the reader accepted (after clipping to the file).
        bits: u64,
        /// File offset of the first page.
        first_page: u64,
        /// Number of set bits before each block of [`BLOCK_WORDS`] words: a lookup counts at
        /// most one block's words, and the index stays 1/64 of the bitmap's size.
        rank: Vec<u64>,
        /// Pages the file really holds: the set bits whose pages lie before the end of the file.
        held: u64,
    },
}

impl PhysMap {
    /// File offset of page `pfn`, if the dump holds it and the file is long enough.
    pub(crate) fn offset(&self, data: &[u8], pfn: u64) -> Option<u64> {
        let off = match self {
            PhysMap::None => return None,
            PhysMap::Runs(runs) => {
                let i = runs.partition_point(|r| r.base_pfn <= pfn).checked_sub(1)?;
                let r = runs[i];
                if pfn - r.base_pfn >= r.pages {
                    return None;
                }
                r.file_offset
                    .checked_add((pfn - r.base_pfn).checked_mul(PAGE)?)?
            }
            PhysMap::Bitmap {
                bitmap_at,
                bits,
                first_page,
                rank,
                ..
            } => {
                if pfn >= *bits {
                    return None;
                }
                let w = word(data, *bitmap_at, (pfn / 64) as usize, *bits);
                let bit = pfn % 64;
                if w & (1 << bit) == 0 {
                    return None;
                }
                let wi = (pfn / 64) as usize;
                let block = wi / BLOCK_WORDS;
                let mut before = rank[block];
                for j in block * BLOCK_WORDS..wi {
                    before += u64::from(word(data, *bitmap_at, j, *bits).count_ones());
                }
                before += u64::from((w & ((1u64 << bit) - 1)).count_ones());
                first_page.checked_add(before.checked_mul(PAGE)?)?
            }
        };
        (off.checked_add(PAGE)? <= data.len() as u64).then_some(off)
    }

    /// Number of pages the map holds (for the summary).
    pub(crate) fn page_count(&self) -> u64 {
        match self {
            PhysMap::None => 0,
            PhysMap::Runs(r) => r.iter().map(|r| r.pages).sum(),
            PhysMap::Bitmap { held, .. } => *held,
        }
    }

    /// Every PFN present, in order (used by the signature scan for an unset KDBG pointer).
    pub(crate) fn pfns(&self, data: &[u8], limit: usize) -> Vec<u64> {
        let mut out = Vec::new();
        match self {
            PhysMap::None => {}
            PhysMap::Runs(runs) => {
                'o: for r in runs {
                    for p in r.base_pfn..r.base_pfn.saturating_add(r.pages) {
                        if out.len() >= limit {
                            break 'o;
                        }
                        out.push(p);
                    }
                }
            }
            PhysMap::Bitmap {
                bitmap_at, bits, ..
            } => {
                let words = bits.div_ceil(64) as usize;
                'w: for wi in 0..words {
                    let mut w = word(data, *bitmap_at, wi, *bits);
                    while w != 0 {
                        if out.len() >= limit {
                            break 'w;
                        }
                        let b = u64::from(w.trailing_zeros());
                        out.push(wi as u64 * 64 + b);
                        w &= w - 1;
                    }
                }
            }
        }
        out
    }
}

/// Word `i` of a bitmap of `bits` bits at `at`, with bits past the end cleared. The last word
/// may be partial in the file, so it is assembled byte by byte.
fn word(data: &[u8], at: usize, i: usize, bits: u64) -> u64 {
    let start = at + i * 8;
    let mut w = match u64_at(data, start) {
        Some(w) => w,
        None => {
            let mut b = [0u8; 8];
            for (k, slot) in b.iter_mut().enumerate() {
                *slot = data.get(start + k).copied().unwrap_or(0);
            }
            u64::from_le_bytes(b)
        }
    };
    let first_bit = i as u64 * 64;
    if first_bit + 64 > bits {
        let keep = bits.saturating_sub(first_bit);
        w &= if keep == 0 {
            0
        } else {
            u64::MAX >> (64 - keep)
        };
    }
    w
}

/// Builds the map for DumpType 1 from the header runs (§1.4.1): pages are packed in run order
/// from the end of the header.
pub(crate) fn from_runs(
    runs: &[HeaderRun],
    header_size: u64,
    file_len: u64,
    notes: &mut Vec<String>,
) -> Built {
    let mut out = Vec::new();
    let mut off = header_size;
    for r in runs {
        let Some(bytes) = r.page_count.checked_mul(PAGE) else {
            notes.push(format!(
                "physical run at page frame {:#x} claims {:#x} pages; ignored",
                r.base_page, r.page_count
            ));
            break;
        };
        out.push(Run {
            base_pfn: r.base_page,
            pages: r.page_count,
            file_offset: off,
        });
        off = off.saturating_add(bytes);
    }
    finish_runs(out, file_len, "run list", notes)
}

/// Sorts runs, drops overlaps and clips to the file, noting when the file is shorter than
/// the descriptor says (header-only LiveKD samples, truncated copies).
fn finish_runs(mut runs: Vec<Run>, file_len: u64, what: &str, notes: &mut Vec<String>) -> Built {
    let claimed: u64 = runs.iter().map(|r| r.pages).fold(0, u64::saturating_add);
    let mut held = 0u64;
    for r in &mut runs {
        let room = file_len.saturating_sub(r.file_offset) / PAGE;
        if room < r.pages {
            r.pages = room;
        }
        held += r.pages;
    }
    if held < claimed {
        notes.push(format!(
            "{what} claims {claimed:#x} pages but the file holds only {held:#x}: the rest of physical memory is missing (truncated or header-only file)"
        ));
    }
    runs.retain(|r| r.pages > 0);
    runs.sort_by_key(|r| r.base_pfn);
    let mut clean: Vec<Run> = Vec::with_capacity(runs.len());
    for r in runs {
        if let Some(prev) = clean.last() {
            if r.base_pfn < prev.base_pfn.saturating_add(prev.pages) {
                notes.push(format!(
                    "{what}: run at page frame {:#x} overlaps the previous one; ignored",
                    r.base_pfn
                ));
                continue;
            }
        }
        clean.push(r);
    }
    let map = if clean.is_empty() {
        PhysMap::None
    } else {
        PhysMap::Runs(clean)
    };
    Built {
        map,
        described: claimed,
        cut: held < claimed,
    }
}

/// Builds a bitmap map. `bitmap_at` is where the bits start, `bits` the claimed count,
/// `first_page` the offset of the first page.
pub(crate) fn from_bitmap(
    data: &[u8],
    bitmap_at: usize,
    bits: u64,
    first_page: u64,
    notes: &mut Vec<String>,
) -> Built {
    // A hostile bit count would make the rank index huge: clip it to the bitmap bytes present,
    // which end where the first page starts.
    let mut room = (data.len().saturating_sub(bitmap_at) as u64).saturating_mul(8);
    if first_page > bitmap_at as u64 {
        room = room.min((first_page - bitmap_at as u64).saturating_mul(8));
    }
    let mut bits = bits;
    if bits > room {
        notes.push(format!("bitmap claims {bits:#x} pages but the file holds only {room:#x} bits of bitmap; clipped"));
        bits = room;
    }
    let words = bits.div_ceil(64) as usize;
    let mut rank = Vec::with_capacity(words / BLOCK_WORDS + 2);
    let mut total = 0u64;
    for i in 0..words {
        if i % BLOCK_WORDS == 0 {
            rank.push(total);
        }
        total += u64::from(word(data, bitmap_at, i, bits).count_ones());
    }
    rank.push(total);
    let held = (data.len() as u64).saturating_sub(first_page) / PAGE;
    if total > held {
        notes.push(format!(
            "bitmap marks {total:#x} pages present but the file holds only {held:#x} after offset {first_page:#x}: pages past the end are treated as missing"
        ));
    }
    // A bitmap cut short by the end of the file describes more pages than can be counted; the
    // pages it still marks are the best figure, and `cut` says it was cut.
    Built {
        map: PhysMap::Bitmap {
            bitmap_at,
            bits,
            first_page,
            rank,
            held: total.min(held),
        },
        described: total,
        cut: total > held,
    }
}

/// BITMAP_DUMP (DumpType 5/6, §1.4.3) at `at` (0x2000 on x64, 0x1000 on x86).
pub(crate) fn from_bitmap_dump(
    data: &[u8],
    at: usize,
    notes: &mut Vec<String>,
) -> Result<Built, String> {
    let sig = data
        .get(at..at + 8)
        .ok_or_else(|| format!("file ends before the bitmap header at {at:#x}"))?;
    if &sig[..4] != b"SDMP" && &sig[..4] != b"FDMP" || &sig[4..] != b"DUMP" {
        return Err(format!(
            "bitmap header at {at:#x} has signature {sig:02x?}, expected SDMP/FDMP + DUMP"
        ));
    }
    let first_page = u64_at(data, at + 0x20).ok_or("bitmap header cut short")?;
    // 0x30 is the bit count (Volatility 3, Rekall, kdmp-parser, LeechCore; §1.4.3).
    let bits = u64_at(data, at + 0x30).ok_or("bitmap header cut short")?;
    Ok(from_bitmap(data, at + 0x38, bits, first_page, notes))
}

/// SUMMARY_DUMP32 (x86 DumpType 2, §1.4.2) at 0x1000.
pub(crate) fn from_summary32(data: &[u8], notes: &mut Vec<String>) -> Result<Built, String> {
    let at = 0x1000;
    let sig = data
        .get(at..at + 8)
        .ok_or("file ends before the summary header at 0x1000")?;
    if sig != b"SDMPDUMP" {
        return Err(format!(
            "summary header at 0x1000 has signature {sig:02x?}, expected SDMP + DUMP"
        ));
    }
    let header_size = u32_at(data, at + 0xC).ok_or("summary header cut short")?;
    let bits = u32_at(data, at + 0x10).ok_or("summary header cut short")?;
    Ok(from_bitmap(
        data,
        at + 0x20,
        u64::from(bits),
        u64::from(header_size),
        notes,
    ))
}

/// RDMP range list (DumpType 8/9/0xA, §1.4.4) at 0x2000.
pub(crate) fn from_rdmp(
    data: &[u8],
    dump_type: u32,
    notes: &mut Vec<String>,
) -> Result<Built, String> {
    let at = 0x2000;
    let head = data
        .get(at..at + 0x30)
        .ok_or("file ends before the RDMP header at 0x2000")?;
    if &head[4..8] != b"RDMP" || &head[8..12] != b"DUMP" {
        return Err(format!(
            "RDMP header at 0x2000 has signature {:02x?}",
            &head[4..12]
        ));
    }
    let metadata = u64_at(data, at + 8 + 8).ok_or("RDMP header cut short")?;
    let first = u64_at(data, at + 0x18).ok_or("RDMP header cut short")?;
    if metadata.checked_sub(0x20) != first.checked_sub(0x2040) {
        notes.push(format!("RDMP MetadataSize {metadata:#x} and FirstPageOffset {first:#x} disagree (MetadataSize - 0x20 should equal FirstPageOffset - 0x2040); using FirstPageOffset"));
    }
    let total = if dump_type == 0xA {
        u64_at(data, at + 0x28)
    } else {
        None
    };
    // The list cannot extend past the first page nor past the file.
    let max_entries = (metadata / 16)
        .min(first.saturating_sub(0x2030) / 16)
        .min((data.len().saturating_sub(0x2030) / 16) as u64);
    let mut runs = Vec::new();
    let mut off = first;
    let mut pages_seen = 0u64;
    for i in 0..max_entries {
        let e = 0x2030 + (i as usize) * 16;
        let (Some(start), Some(n)) = (u64_at(data, e), u64_at(data, e + 8)) else {
            break;
        };
        if dump_type != 0xA && start == 0 {
            break;
        }
        if total.is_some_and(|t| pages_seen >= t) {
            break;
        }
        runs.push(Run {
            base_pfn: start,
            pages: n,
            file_offset: off,
        });
        off = off.saturating_add(n.saturating_mul(PAGE));
        pages_seen = pages_seen.saturating_add(n);
    }
    Ok(finish_runs(runs, data.len() as u64, "range list", notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_pages_are_packed_from_an_unaligned_first_page() {
        // Bits 1, 64 and 70 set; pages start at 0x38 + 16 bytes of bitmap (not page aligned).
        let mut data = vec![0u8; 0x48 + 3 * 0x1000];
        data[0x38] = 0b10;
        data[0x38 + 8] = 0b0100_0001;
        let mut notes = Vec::new();
        let m = from_bitmap(&data, 0x38, 128, 0x48, &mut notes).map;
        assert_eq!(m.offset(&data, 1), Some(0x48));
        assert_eq!(m.offset(&data, 64), Some(0x1048));
        assert_eq!(m.offset(&data, 70), Some(0x2048));
        assert_eq!(m.offset(&data, 2), None);
        assert_eq!(m.page_count(), 3);
        assert_eq!(m.pfns(&data, 10), [1, 64, 70]);
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn rank_blocks_count_across_block_boundaries() {
        let set = [0u64, 4095, 4096, 10_000, 20_479];
        let bits = 20_480u64;
        let first = 0x38 + bits / 8;
        let mut data = vec![0u8; (first + set.len() as u64 * 0x1000) as usize];
        for p in set {
            data[0x38 + (p / 8) as usize] |= 1 << (p % 8);
        }
        let mut notes = Vec::new();
        let m = from_bitmap(&data, 0x38, bits, first, &mut notes).map;
        for (i, p) in set.iter().enumerate() {
            assert_eq!(
                m.offset(&data, *p),
                Some(first + i as u64 * 0x1000),
                "pfn {p}"
            );
        }
        assert_eq!(m.offset(&data, 4097), None);
        assert_eq!(m.page_count(), 5);
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn runs_are_packed_in_header_order_and_clipped_to_the_file() {
        let runs = [
            HeaderRun {
                base_page: 0x100,
                page_count: 2,
            },
            HeaderRun {
                base_page: 0x10,
                page_count: 1,
            },
        ];
        let data = vec![0u8; 0x1000 + 3 * 0x1000];
        let mut notes = Vec::new();
        let built = from_runs(&runs, 0x1000, data.len() as u64, &mut notes);
        assert_eq!(built.described, 3);
        let m = built.map;
        assert_eq!(m.offset(&data, 0x100), Some(0x1000));
        assert_eq!(m.offset(&data, 0x101), Some(0x2000));
        assert_eq!(m.offset(&data, 0x10), Some(0x3000));
        let short = &data[..0x2800];
        let mut notes = Vec::new();
        let m = from_runs(&runs, 0x1000, short.len() as u64, &mut notes).map;
        assert_eq!(m.offset(short, 0x100), Some(0x1000));
        assert_eq!(m.offset(short, 0x101), None);
        assert_eq!(notes, ["run list claims 0x3 pages but the file holds only 0x1: the rest of physical memory is missing (truncated or header-only file)"]);
    }
}
