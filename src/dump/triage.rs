//! Triage (small memory) dumps, DumpType 4: TRIAGE_DUMP64 at 0x2000 (crash-dumps.md §1.4.5).
//!
//! A triage dump has no physical memory. It has a driver list (names, bases, sizes,
//! timestamps; read by `modules`), a copy of KDBG, and "data blocks": a few virtual ranges stored
//! verbatim. All offsets in TRIAGE_DUMP64 are relative to the file start.

use super::budget::MAX_TRIAGE_COUNT;
use super::bytes::{u32_at, u64_at};
use super::header::DumpSummary;
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
    /// File offset of the driver list and its entry count (capped at the budget).
    pub(crate) driver_list: u64,
    pub(crate) driver_count: u32,
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
