//! Triage (small memory) dumps, DumpType 4: TRIAGE_DUMP64 at 0x2000 (crash-dumps.md §1.4.5).
//!
//! A triage dump has no physical memory. It has a driver list (names, bases, sizes,
//! timestamps), a copy of KDBG, and "data blocks": a few virtual ranges stored verbatim. All
//! offsets in TRIAGE_DUMP64 are relative to the file start.

use super::bytes::{u32_at, u64_at};
use super::header::DumpSummary;
use super::modules::LoadedModule;
use super::paging::Miss;

/// One stored virtual range.
#[derive(Debug, Clone, Copy)]
struct Block {
    va: u64,
    file_offset: u64,
    size: u64,
}

pub(crate) struct Triage {
    blocks: Vec<Block>,
    driver_list: u64,
    driver_count: u32,
    /// File offset and size of the KDBG copy.
    pub(crate) kdbg_copy: Option<(usize, usize)>,
}

/// Sanity bound on counts read from the triage header: the samples have 151/245 drivers and
/// 1831 blocks; a count beyond this is damage.
const MAX_COUNT: u32 = 65_536;

impl Triage {
    pub(crate) fn parse(data: &[u8], s: &DumpSummary) -> Result<Triage, String> {
        if !s.is_64bit_header {
            return Err("32-bit triage dumps (TRIAGE_DUMP32) are not supported: the reference documents only their header, not the driver list entries".into());
        }
        let at = 0x2000usize;
        let f = |o: usize| {
            u32_at(data, at + o)
                .ok_or_else(|| format!("TRIAGE_DUMP64 at {at:#x} is cut short at +{o:#x}"))
        };
        let valid = f(0x08)? as usize;
        if data.get(valid..valid + 4) != Some(b"TRGD") {
            return Err(format!(
                "triage ValidOffset {valid:#x} does not point at a TRGD marker"
            ));
        }
        let driver_list = u64::from(f(0x30)?);
        let driver_count = f(0x34)?.min(MAX_COUNT);
        let kd_off = f(0x70)? as usize;
        let kd_size = f(0x74)? as usize;
        let blocks_off = f(0x78)? as usize;
        let blocks_count = f(0x7C)?.min(MAX_COUNT);
        let mut blocks = Vec::with_capacity(blocks_count as usize);
        for i in 0..blocks_count as usize {
            let e = blocks_off + i * 16;
            let (Some(va), Some(fo), Some(size)) =
                (u64_at(data, e), u32_at(data, e + 8), u32_at(data, e + 12))
            else {
                break;
            };
            let (fo, size) = (u64::from(fo), u64::from(size));
            if fo.saturating_add(size) <= data.len() as u64 && size > 0 {
                blocks.push(Block {
                    va,
                    file_offset: fo,
                    size,
                });
            }
        }
        blocks.sort_by_key(|b| b.va);
        let kdbg_copy =
            (kd_off != 0 && kd_size >= 0x20 && kd_off.saturating_add(kd_size) <= data.len())
                .then_some((kd_off, kd_size));
        Ok(Triage {
            blocks,
            driver_list,
            driver_count,
            kdbg_copy,
        })
    }

    /// The driver list: 0x90-byte entries `{u32 name offset; pad; KLDR_DATA_TABLE_ENTRY64}`,
    /// names as `{u32 chars; WCHAR[]}` in the string pool (§1.4.5).
    pub(crate) fn drivers(&self, data: &[u8], notes: &mut Vec<String>) -> Vec<LoadedModule> {
        let mut out = Vec::with_capacity(self.driver_count as usize);
        for i in 0..u64::from(self.driver_count) {
            let e = (self.driver_list + i * 0x90) as usize;
            let (Some(name_off), Some(base), Some(size)) = (
                u32_at(data, e),
                u64_at(data, e + 0x38),
                u32_at(data, e + 0x48),
            ) else {
                notes.push(format!("triage driver list entry {i} at {e:#x} is past the end of the file; list cut there"));
                break;
            };
            let full_path = name_at(data, name_off as usize).unwrap_or_else(|| {
                notes.push(format!(
                    "triage driver {i}: name at {name_off:#x} unreadable"
                ));
                String::new()
            });
            let name = full_path
                .rsplit('\\')
                .next()
                .unwrap_or_default()
                .to_string();
            out.push(LoadedModule {
                name,
                full_path,
                base,
                size,
                time_date_stamp: u32_at(data, e + 0x88),
            });
        }
        out
    }

    /// Reads from the data blocks; anything not covered is a miss.
    pub(crate) fn read(&self, data: &[u8], va: u64, buf: &mut [u8]) -> Result<(), Miss> {
        let mut done = 0usize;
        while done < buf.len() {
            let cur = va.wrapping_add(done as u64);
            let i = self
                .blocks
                .partition_point(|b| b.va <= cur)
                .checked_sub(1)
                .ok_or(Miss::NotInDataBlocks)?;
            let b = self.blocks[i];
            let into = cur - b.va;
            if into >= b.size {
                return Err(Miss::NotInDataBlocks);
            }
            let n = ((b.size - into) as usize).min(buf.len() - done);
            let src = (b.file_offset + into) as usize;
            let bytes = data.get(src..src + n).ok_or(Miss::NotInDataBlocks)?;
            buf[done..done + n].copy_from_slice(bytes);
            done += n;
        }
        Ok(())
    }
}

/// A string-pool name: u32 length in characters, then UTF-16.
fn name_at(data: &[u8], off: usize) -> Option<String> {
    let chars = u32_at(data, off)? as usize;
    if chars > 0x1000 {
        return None;
    }
    let raw = data.get(off + 4..off + 4 + chars * 2)?;
    let units: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    Some(crate::printable_text(String::from_utf16_lossy(&units)))
}

impl Triage {
    /// The parts of `[va, va + len)` the data blocks hold, as (offset from `va`, bytes).
    pub(crate) fn covered<'a>(&self, data: &'a [u8], va: u64, len: u64) -> Vec<(u64, &'a [u8])> {
        let end = va.saturating_add(len);
        let start_i = self
            .blocks
            .partition_point(|b| b.va.saturating_add(b.size) <= va);
        let mut out = Vec::new();
        for b in &self.blocks[start_i..] {
            if b.va >= end {
                break;
            }
            let lo = b.va.max(va);
            let hi = b.va.saturating_add(b.size).min(end);
            if lo >= hi {
                continue;
            }
            let src = (b.file_offset + (lo - b.va)) as usize;
            if let Some(bytes) = data.get(src..src + (hi - lo) as usize) {
                out.push((lo - va, bytes));
            }
        }
        out
    }
}
