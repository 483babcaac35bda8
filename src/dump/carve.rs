//! Carving: rebuilding a module's image from memory in LOADED layout (RVA == offset),
//! crash-dumps.md §6.
//!
//! The range [DllBase, DllBase + SizeOfImage) is read page by page; pages that cannot be read
//! are zero-filled and listed as holes (as Volatility's moddump does with its presence bitmap).
//! A hole in a discardable section (INIT, freed after DriverEntry) is expected and labelled so;
//! other holes (paged-out PAGE sections, pages the dump skipped) are listed as missing.
//!
//! An image whose pages alias a few physical pages is refused, not handed on (`budget`).

use serde::Serialize;

use super::budget::{self, BudgetExceeded, FrameSet, Limit, MAX_IMAGE};
use super::memory::Memory;
use super::modules::LoadedModule;
use super::pe::{Headers, SCN_DISCARDABLE};

const PAGE: u32 = 0x1000;

/// A carved image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CarvedImage {
    /// The image in loaded layout; holes are zero.
    #[serde(skip)]
    pub bytes: Vec<u8>,
    /// Missing ranges as (rva, len), sorted and coalesced.
    pub holes: Vec<(u32, u32)>,
    /// What the holes are (section names, "discardable: expected"), and any size clipping.
    pub notes: Vec<String>,
    /// Every hole lies in a discardable section (INIT, .reloc): nothing unexpected is missing.
    pub holes_expected: bool,
}

impl CarvedImage {
    /// True when the byte at `rva` was read from the dump.
    pub fn present(&self, rva: u32) -> bool {
        (rva as usize) < self.bytes.len()
            && !self
                .holes
                .iter()
                .any(|&(r, l)| rva >= r && u64::from(rva) < u64::from(r) + u64::from(l))
    }

    /// Bytes read from the dump (the image size minus the holes).
    pub fn present_bytes(&self) -> u64 {
        let missing: u64 = self.holes.iter().map(|&(_, l)| u64::from(l)).sum();
        (self.bytes.len() as u64).saturating_sub(missing)
    }
}

/// Carves one module; an image whose pages alias is refused with the budget event.
pub(crate) fn carve_checked(
    dump: &Memory,
    m: &LoadedModule,
) -> Result<CarvedImage, BudgetExceeded> {
    let mut notes = Vec::new();
    let size = clip_size(dump, m, &mut notes);
    let mut bytes = vec![0u8; size as usize];
    let mut holes: Vec<(u32, u32)> = Vec::new();
    let mut add_hole = |rva: u32, len: u32| match holes.last_mut() {
        Some((r, l)) if *r + *l == rva => *l += len,
        _ => holes.push((rva, len)),
    };
    if let Some(t) = &dump.triage {
        // Triage data blocks are byte ranges, not pages: copy what they cover, the rest is holes.
        let mut at = 0u64;
        for (off, chunk) in t.covered(dump.data(), m.base, u64::from(size)) {
            if off > at {
                add_hole(at as u32, (off - at) as u32);
            }
            bytes[off as usize..off as usize + chunk.len()].copy_from_slice(chunk);
            at = off + chunk.len() as u64;
        }
        if at < u64::from(size) {
            add_hole(at as u32, size - at as u32);
        }
    } else if m.base % u64::from(PAGE) != 0 {
        notes.push(format!(
            "DllBase {:#x} is not page aligned; nothing carved",
            m.base
        ));
        if size > 0 {
            add_hole(0, size);
        }
    } else {
        let mut frames = FrameSet::default();
        let mut read = 0u64;
        let mut rva = 0u32;
        while rva < size {
            let n = PAGE.min(size - rva);
            let va = m.base.wrapping_add(u64::from(rva));
            match dump.read_in_page(va, &mut bytes[rva as usize..(rva + n) as usize]) {
                Ok(frame) => {
                    read += 1;
                    frames.extend(frame);
                    if budget::aliased(read, frames.len() as u64) {
                        return Err(dump.over_budget(
                            Limit::AliasedPages,
                            format!("carving {}@{:#x}", m.name, m.base),
                            read,
                            frames.len() as u64,
                        ));
                    }
                }
                Err(_) => add_hole(rva, n),
            }
            rva += n;
        }
    }
    let holes_expected = describe_holes(&bytes, &holes, &mut notes);
    Ok(CarvedImage {
        bytes,
        holes,
        notes,
        holes_expected,
    })
}

/// [`carve_checked`], with a refused image turned into an empty one whose note says why.
pub(crate) fn carve(dump: &Memory, m: &LoadedModule) -> CarvedImage {
    carve_checked(dump, m).unwrap_or_else(|e| CarvedImage {
        notes: vec![format!("not carved: {e}")],
        ..CarvedImage::default()
    })
}

/// SizeOfImage from the loader entry is authoritative (§6) unless it is absurd; then the PE
/// header's value is used if it is sane, else the cap.
fn clip_size(dump: &Memory, m: &LoadedModule, notes: &mut Vec<String>) -> u32 {
    if m.size <= MAX_IMAGE {
        return m.size;
    }
    let mut head = vec![0u8; PAGE as usize];
    let from_header = dump
        .read_virt(m.base, &mut head)
        .ok()
        .and_then(|_| Headers::parse(&head))
        .map(|h| h.size_of_image);
    let size = match from_header {
        Some(s) if s > 0 && s <= MAX_IMAGE => s,
        _ => MAX_IMAGE,
    };
    dump.over_budget(
        Limit::ImageSize,
        format!(
            "carving {}@{:#x}: SizeOfImage clipped to {size:#x}",
            m.name, m.base
        ),
        u64::from(MAX_IMAGE),
        u64::from(m.size),
    );
    notes.push(format!(
        "{}: SizeOfImage {:#x} is absurd (over {MAX_IMAGE:#x}); carving {size:#x} bytes",
        m.name, m.size
    ));
    size
}

/// Labels each hole with the sections it falls in, using the carved header when present.
/// Returns whether every hole is an expected one (a discardable section such as INIT).
fn describe_holes(bytes: &[u8], holes: &[(u32, u32)], notes: &mut Vec<String>) -> bool {
    let headers = Headers::parse(bytes);
    let mut expected = true;
    for &(rva, len) in holes {
        let end = rva + len;
        let label = match &headers {
            None if rva == 0 => "PE header missing".to_string(),
            None => "no PE header to name the section".to_string(),
            Some(h) => {
                // One note per section piece, so a discarded INIT next to a paged-out PAGE
                // section is still labelled as expected.
                let mut any = false;
                for s in &h.sections {
                    let (lo, hi) = (
                        s.rva.max(rva),
                        s.rva.saturating_add(s.vsize.max(1)).min(end),
                    );
                    if lo >= hi {
                        continue;
                    }
                    any = true;
                    let why = if s.characteristics & SCN_DISCARDABLE != 0 {
                        "discardable, freed after load (expected)"
                    } else {
                        expected = false;
                        "not in the dump"
                    };
                    notes.push(format!("rva {lo:#x}..{hi:#x} missing ({}: {why})", s.name));
                }
                if any {
                    continue;
                }
                "outside every section".to_string()
            }
        };
        expected = false;
        notes.push(format!("rva {rva:#x}..{end:#x} missing ({label})"));
    }
    expected
}
