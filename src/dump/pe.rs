//! Just enough PE parsing for images in LOADED layout (RVA == offset), as carved from memory:
//! headers, sections, data directories and the export directory. Hand-written rather than
//! pelite because a carved image has zero-filled holes anywhere, and every field must be
//! treated as possibly absent; each read is bounds-checked and returns `None` on damage.

use super::bytes::{cstr_at, u16_at, u32_at};

/// Bounds-checked reads from an image in loaded layout: a carved buffer, or an image read page by
/// page on demand (the export directories the export map needs, without carving the image).
pub(crate) trait ImageBytes {
    fn u16_at(&self, off: usize) -> Option<u16>;
    fn u32_at(&self, off: usize) -> Option<u32>;
    /// A NUL-terminated ASCII string of at most `max` bytes.
    fn cstr_at(&self, off: usize, max: usize) -> Option<String>;
}

impl ImageBytes for [u8] {
    fn u16_at(&self, off: usize) -> Option<u16> {
        u16_at(self, off)
    }
    fn u32_at(&self, off: usize) -> Option<u32> {
        u32_at(self, off)
    }
    fn cstr_at(&self, off: usize, max: usize) -> Option<String> {
        cstr_at(self, off, max)
    }
}

pub(crate) const SCN_EXECUTE: u32 = 0x2000_0000;
pub(crate) const SCN_DISCARDABLE: u32 = 0x0200_0000;

/// A section header.
#[derive(Debug, Clone)]
pub(crate) struct Section {
    pub name: String,
    pub rva: u32,
    pub vsize: u32,
    pub characteristics: u32,
}

/// The headers of an image.
#[derive(Debug, Clone)]
pub(crate) struct Headers {
    pub pe64: bool,
    pub size_of_image: u32,
    pub sections: Vec<Section>,
    dirs: Vec<(u32, u32)>,
}

impl Headers {
    pub(crate) fn parse(b: &[u8]) -> Option<Headers> {
        if b.get(0..2)? != b"MZ" {
            return None;
        }
        let pe = u32_at(b, 0x3C)? as usize;
        if pe > 0x1000 || b.get(pe..pe + 4)? != b"PE\0\0" {
            return None;
        }
        let nsec = u16_at(b, pe + 6)? as usize;
        let opt_size = u16_at(b, pe + 20)? as usize;
        let opt = pe + 24;
        let pe64 = match u16_at(b, opt)? {
            0x10B => false,
            0x20B => true,
            _ => return None,
        };
        let size_of_image = u32_at(b, opt + 56)?;
        let (nd_at, dirs_at) = if pe64 {
            (opt + 108, opt + 112)
        } else {
            (opt + 92, opt + 96)
        };
        let nd = (u32_at(b, nd_at)? as usize).min(16);
        let dirs = (0..nd)
            .map(|i| {
                (
                    u32_at(b, dirs_at + i * 8).unwrap_or(0),
                    u32_at(b, dirs_at + i * 8 + 4).unwrap_or(0),
                )
            })
            .collect();
        let sec_at = opt + opt_size;
        let mut sections = Vec::with_capacity(nsec.min(96));
        for i in 0..nsec.min(96) {
            let s = sec_at + i * 40;
            let raw = b.get(s..s + 8)?;
            let end = raw.iter().position(|&c| c == 0).unwrap_or(8);
            sections.push(Section {
                name: crate::printable_text(String::from_utf8_lossy(&raw[..end]).into_owned()),
                vsize: u32_at(b, s + 8)?,
                rva: u32_at(b, s + 12)?,
                characteristics: u32_at(b, s + 36)?,
            });
        }
        Some(Headers {
            pe64,
            size_of_image,
            sections,
            dirs,
        })
    }

    /// Data directory `i` as (rva, size), `None` when absent or empty.
    pub(crate) fn dir(&self, i: usize) -> Option<(u32, u32)> {
        self.dirs
            .get(i)
            .copied()
            .filter(|&(rva, size)| rva != 0 && size != 0)
    }

    /// The section holding `rva`.
    pub(crate) fn section_at(&self, rva: u32) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| rva >= s.rva && u64::from(rva) < u64::from(s.rva) + u64::from(s.vsize.max(1)))
    }
}

/// One export: function RVA, name if exported by name, ordinal (biased).
#[derive(Debug, Clone)]
pub(crate) struct Export {
    pub rva: u32,
    pub name: Option<String>,
    pub ordinal: u16,
}

/// Sanity bound on export counts (ntoskrnl has about 3000).
const MAX_EXPORTS: u32 = 65_536;

/// The export directory (data directory 0) of a loaded-layout image. Forwarders (RVAs inside
/// the directory) are skipped: they are not code addresses an IAT could hold.
pub(crate) fn exports<B: ImageBytes + ?Sized>(b: &B, h: &Headers) -> Vec<Export> {
    let Some((dir, dir_size)) = h.dir(0) else {
        return Vec::new();
    };
    let d = dir as usize;
    let (Some(base), Some(nfun), Some(nnames), Some(funs), Some(names), Some(ords)) = (
        b.u32_at(d + 16),
        b.u32_at(d + 20),
        b.u32_at(d + 24),
        b.u32_at(d + 28),
        b.u32_at(d + 32),
        b.u32_at(d + 36),
    ) else {
        return Vec::new();
    };
    let nfun = nfun.min(MAX_EXPORTS);
    let nnames = nnames.min(MAX_EXPORTS);
    let mut named: Vec<Option<String>> = vec![None; nfun as usize];
    for i in 0..nnames as usize {
        let (Some(name_rva), Some(idx)) = (
            b.u32_at(names as usize + i * 4),
            b.u16_at(ords as usize + i * 2),
        ) else {
            break;
        };
        let Some(slot) = named.get_mut(idx as usize) else {
            continue;
        };
        if let Some(n) = b.cstr_at(name_rva as usize, 512) {
            *slot = Some(n);
        }
    }
    let mut out = Vec::new();
    for (i, name) in named.into_iter().enumerate() {
        let Some(rva) = b.u32_at(funs as usize + i * 4) else {
            break;
        };
        let forwarder = rva >= dir && u64::from(rva) < u64::from(dir) + u64::from(dir_size);
        if rva == 0 || forwarder {
            continue;
        }
        out.push(Export {
            rva,
            name,
            ordinal: (base as u16).wrapping_add(i as u16),
        });
    }
    out
}
