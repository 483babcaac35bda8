//! Triage (small memory) dumps, DumpType 4: TRIAGE_DUMP64 at 0x2000 (crash-dumps.md §1.4.5).
//!
//! A triage dump has no physical memory. It has a driver list (names, bases, sizes,
//! timestamps), a copy of KDBG, and "data blocks": a few virtual ranges stored verbatim. All
//! offsets in TRIAGE_DUMP64 are relative to the file start.

use super::budget::MAX_TRIAGE_COUNT;
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
    /// SizeOfDump from the triage header: how long the writer says the file is.
    pub(crate) size_of_dump: u64,
    /// Data blocks (or their table) that lie past the end of the file: the file is cut short.
    pub(crate) blocks_past_end: u64,
}

impl Triage {
    /// Parses TRIAGE_DUMP64. Counts above [`MAX_TRIAGE_COUNT`] and blocks outside the file are
    /// noted in `notes`, never dropped silently.
    pub(crate) fn parse(
        data: &[u8],
        s: &DumpSummary,
        notes: &mut Vec<String>,
    ) -> Result<Triage, String> {
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
        let size_of_dump = u64::from(f(0x04)?);
        let driver_list = u64::from(f(0x30)?);
        let capped = |what: &str, n: u32, notes: &mut Vec<String>| {
            if n > MAX_TRIAGE_COUNT {
                notes.push(format!(
                    "triage header claims {n} {what}; only the first {MAX_TRIAGE_COUNT} are read (budget: the sample triage dumps hold at most 1,831)"
                ));
            }
            n.min(MAX_TRIAGE_COUNT)
        };
        let driver_count = capped("drivers", f(0x34)?, notes);
        let kd_off = f(0x70)? as usize;
        let kd_size = f(0x74)? as usize;
        let blocks_off = f(0x78)? as usize;
        let blocks_count = capped("data blocks", f(0x7C)?, notes);
        let mut blocks = Vec::with_capacity(blocks_count as usize);
        // Blocks the file does not hold (the table or the bytes cut off by the end of the file).
        let mut past_end = 0u64;
        let mut empty = 0u64;
        for i in 0..blocks_count as usize {
            let e = blocks_off + i * 16;
            let (Some(va), Some(fo), Some(size)) =
                (u64_at(data, e), u32_at(data, e + 8), u32_at(data, e + 12))
            else {
                past_end += u64::from(blocks_count) - i as u64;
                break;
            };
            let (fo, size) = (u64::from(fo), u64::from(size));
            if size == 0 {
                empty += 1;
            } else if fo.saturating_add(size) > data.len() as u64 {
                past_end += 1;
            } else {
                blocks.push(Block {
                    va,
                    file_offset: fo,
                    size,
                });
            }
        }
        if past_end > 0 {
            notes.push(format!(
                "{past_end} of {blocks_count} triage data blocks lie past the end of the file ({:#x} bytes): their memory is missing",
                data.len()
            ));
        }
        if empty > 0 {
            notes.push(format!(
                "{empty} triage data block(s) have size 0 and hold nothing"
            ));
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
            size_of_dump,
            blocks_past_end: past_end,
        })
    }

    /// The driver list: 0x90-byte entries `{u32 name offset; pad; KLDR_DATA_TABLE_ENTRY64}`,
    /// names as `{u32 chars; WCHAR[]}` in the string pool (§1.4.5). The embedded entry has the
    /// older LDR_DATA_TABLE_ENTRY layout: DllBase +0x30, SizeOfImage +0x40, CheckSum +0x78 and
    /// TimeDateStamp +0x80 of the entry, i.e. +0x38, +0x48, +0x80 and +0x88 of the list entry.
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
                checksum: u32_at(data, e + 0x80),
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
