//! KDDEBUGGER_DATA64 ("KDBG"), crash-dumps.md §2.
//!
//! Windows decodes the block in place before it writes a dump (§2.1), so the block at the
//! header's KdDebuggerDataBlock VA is used as is when its OwnerTag reads `KDBG`. Triage dumps
//! carry their own copy (§1.4.5). When the header field is unset (`PAGE`, as in LiveKD's 32-bit
//! headers) the present physical pages are scanned for the signature (§2.2). An encoded block
//! (converted raw memory) can only be decoded with KiWaitNever/KiWaitAlways from symbols, which
//! this reader does not have: [`decode_words`] implements the transform for a caller that does.

use serde::Serialize;

use super::budget::KDBG_SCAN_PAGES;
use super::bytes::{u32_at, u64_at};
use super::error::NoticeKind;
use super::header::Arch;
use super::memory::Memory;

/// 'KDBG' as the u32 at +0x10.
const OWNER_TAG: u32 = 0x4742_444B;
/// Sizes seen across versions (Volatility 2 `kdbgsize`, §2.2); used to confirm a scan hit.
const KNOWN_SIZES: [u32; 8] = [0x290, 0x318, 0x328, 0x330, 0x340, 0x360, 0x368, 0x380];

/// The KDBG fields the reader uses. Offsets are §2.2; most are addresses of kernel variables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kdbg {
    /// VA of the block, when known (unknown for a signature-scan hit or a triage copy).
    #[serde(serialize_with = "super::hex::opt")]
    pub va: Option<u64>,
    /// Where the block came from.
    pub source: String,
    /// Header.Size (+0x14).
    pub size: u32,
    /// KernBase (+0x18), a value.
    #[serde(serialize_with = "super::hex::u64")]
    pub kern_base: u64,
    /// &PsLoadedModuleList (+0x48).
    #[serde(serialize_with = "super::hex::u64")]
    pub ps_loaded_module_list: u64,
    /// &MmPfnDatabase (+0xC0).
    #[serde(serialize_with = "super::hex::u64")]
    pub mm_pfn_database: u64,
    /// &PoolTrackTable (+0x1B8): the address of the variable holding the table pointer.
    #[serde(serialize_with = "super::hex::u64")]
    pub pool_track_table: u64,
    /// PteBase (+0x360), when the block is large enough (RS1+).
    #[serde(serialize_with = "super::hex::opt")]
    pub pte_base: Option<u64>,
}

impl Kdbg {
    fn parse(raw: &[u8], arch: Arch, va: Option<u64>, source: &str) -> Option<Kdbg> {
        if u32_at(raw, 0x10)? != OWNER_TAG {
            return None;
        }
        let size = u32_at(raw, 0x14)?;
        // Pointers are stored as 64 bits on every architecture; x86 uses the low half (§2.2).
        let mask = if arch.pointer_size() == 4 {
            0xFFFF_FFFF
        } else {
            u64::MAX
        };
        let f = |o: usize| u64_at(raw, o).map(|v| v & mask).unwrap_or(0);
        Some(Kdbg {
            va,
            source: source.to_string(),
            size,
            kern_base: f(0x18),
            ps_loaded_module_list: f(0x48),
            mm_pfn_database: f(0xC0),
            pool_track_table: f(0x1B8),
            pte_base: (size >= 0x368).then(|| f(0x360)),
        })
    }
}

/// Finds and parses KDBG; every failure becomes a notice and `None`.
pub(crate) fn locate(dump: &Memory) -> Option<Kdbg> {
    let arch = dump.summary().arch;
    if let Some(t) = &dump.triage {
        let (off, size) = t.kdbg_copy?;
        let raw = dump.data().get(off..off + size)?;
        let k = Kdbg::parse(
            raw,
            arch,
            dump.summary().kd_debugger_data_block,
            "triage KDBG copy",
        );
        if k.is_none() {
            dump.notice(
                NoticeKind::Malformed,
                format!("triage KDBG copy at file offset {off:#x} has no KDBG tag"),
            );
        }
        return k;
    }
    if dump.physical_pages() == 0 {
        return None;
    }
    if let Some(va) = dump.summary().kd_debugger_data_block {
        let mut raw = vec![0u8; 0x380];
        // Read the header first, then as much of the block as its Size claims.
        if let Err(miss) = dump.read_virt(va, &mut raw[..0x20]) {
            dump.notice(
                NoticeKind::Missing,
                format!("KdDebuggerDataBlock {va:#x} is unreadable: {miss}"),
            );
            return None;
        }
        let size = (u32_at(&raw, 0x14).unwrap_or(0) as usize).clamp(0x20, 0x380);
        if let Err(miss) = dump.read_virt(va.wrapping_add(0x20), &mut raw[0x20..size]) {
            dump.notice(
                NoticeKind::Missing,
                format!("KdDebuggerDataBlock {va:#x} is only partly readable: {miss}"),
            );
        }
        return match Kdbg::parse(&raw, arch, Some(va), "header KdDebuggerDataBlock") {
            Some(k) => Some(k),
            None => {
                dump.notice(
                    NoticeKind::Unsupported,
                    format!(
                        "KDBG at {va:#x} has no KDBG tag: the block is encoded (a dump converted from raw memory?); decoding needs KiWaitNever, KiWaitAlways and KdpDataBlockEncoded from symbols"
                    ),
                );
                None
            }
        };
    }
    scan(dump, arch)
}

/// Signature scan over the present physical pages (§2.2), for headers without the VA.
fn scan(dump: &Memory, arch: Arch) -> Option<Kdbg> {
    for pfn in dump.phys.pfns(dump.data(), KDBG_SCAN_PAGES) {
        let Some(page) = dump.phys_page(pfn * 0x1000) else {
            continue;
        };
        let mut o = 0x10;
        while o + 8 <= page.len() {
            if u32_at(page, o) == Some(OWNER_TAG)
                && u32_at(page, o + 4).is_some_and(|s| KNOWN_SIZES.contains(&s))
            {
                // Read the whole block from physical memory: it may cross into the next page,
                // which need not be the next PFN, so keep only what this page holds and fill the
                // rest from the following PFN when present.
                let start = o - 0x10;
                let mut raw = page[start..].to_vec();
                if let Some(next) = dump.phys_page((pfn + 1) * 0x1000) {
                    raw.extend_from_slice(next);
                }
                if let Some(k) = Kdbg::parse(&raw, arch, None, "signature scan") {
                    dump.notice(
                        NoticeKind::Missing,
                        format!(
                            "KdDebuggerDataBlock unset in the header; KDBG found by signature at physical address {:#x}",
                            pfn * 0x1000 + start as u64
                        ),
                    );
                    return Some(k);
                }
            }
            o += 8;
        }
    }
    dump.notice(
        NoticeKind::Missing,
        "KdDebuggerDataBlock unset in the header and no KDBG signature found in physical memory"
            .into(),
    );
    None
}

/// Decodes an encoded KDBG, one 64-bit word at a time (§2.1): rotate-left by the low byte of
/// KiWaitNever after XOR with it, XOR with `&KdpDataBlockEncoded | 0xFFFF000000000000`,
/// byte-swap, then XOR with KiWaitAlways. The three values come from symbols.
pub fn decode_words(
    words: &mut [u64],
    ki_wait_never: u64,
    ki_wait_always: u64,
    kdp_data_block_encoded: u64,
) {
    for w in words {
        let mut v = (*w ^ ki_wait_never).rotate_left((ki_wait_never & 0xFF) as u32);
        v = (v ^ (kdp_data_block_encoded | 0xFFFF_0000_0000_0000)).swap_bytes();
        *w = v ^ ki_wait_always;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inverse of [`decode_words`], written from the same description, step by step backwards.
    fn encode(w: u64, never: u64, always: u64, at: u64) -> u64 {
        let v = (w ^ always).swap_bytes() ^ (at | 0xFFFF_0000_0000_0000);
        v.rotate_right((never & 0xFF) as u32) ^ never
    }

    #[test]
    fn decoding_inverts_the_documented_encoding() {
        let (never, always, at) = (
            0x1234_5678_9ABC_DEF1,
            0x0FED_CBA9_8765_4321,
            0xFFFF_F804_7C60_0000,
        );
        let plain = [0u64, 0x4742_444B_0000_0000 | 0x380, 0xFFFF_F804_7BA0_0000];
        let mut words: Vec<u64> = plain
            .iter()
            .map(|&w| encode(w, never, always, at))
            .collect();
        assert_ne!(words, plain);
        decode_words(&mut words, never, always, at);
        assert_eq!(words, plain);
    }
}
