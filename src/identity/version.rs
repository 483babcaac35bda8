//! The version resource of a PE image: `RT_VERSION` (resource type 16) holding a
//! `VS_VERSIONINFO` block.
//!
//! Sources: Microsoft PE/COFF specification §6.9 "The .rsrc Section" (resource directory
//! tables, entries and data entries, offsets relative to the section start, data entries'
//! `OffsetToData` an RVA); Microsoft Learn "VS_VERSIONINFO structure", "VS_FIXEDFILEINFO
//! structure", "StringFileInfo", "StringTable", "String", "VarFileInfo", "Var": each block is
//! `wLength, wValueLength, wType, szKey (UTF-16, NUL-terminated)`, padding to a 32-bit boundary,
//! the value, padding, then child blocks up to `wLength`.
//!
//! Invariants:
//! - Every read is bounds-checked against the image and against the enclosing block's
//!   `wLength`; nothing here can panic or loop on hostile bytes (each block advances by at least
//!   4 bytes, and nesting is fixed at four levels).
//! - Alignment is to 32-bit boundaries of the **RVA**, as Windows (which reads the mapped
//!   resource) and pefile do, so the same offsets are used in file and loaded layout.
//! - The first `RT_VERSION` resource (first name, first language, in directory order) is used,
//!   as pefile's first `VS_VERSIONINFO` is.
//! - A damaged block after a good one stops the walk and is recorded in
//!   [`VersionInfo::problems`], keeping what was read before it (nothing is dropped silently).

use crate::util::le::{u16_at, u32_at};
use thiserror::Error;

/// How the image bytes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// As on disk: RVAs are translated through the section table.
    File,
    /// As mapped by the loader (an image carved from memory): offset == RVA.
    Loaded,
}

/// Why the version resource could not be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum VersionError {
    /// The PE headers themselves are unreadable.
    #[error("not a readable PE image: {0}")]
    NotPe(&'static str),
    /// A structure lies (partly) outside the image or its section.
    #[error("{what} at RVA {rva:#x} is outside the image")]
    OutOfBounds { what: &'static str, rva: u32 },
    /// The resource tree does not have the documented type/name/language shape.
    #[error("resource directory: {0}")]
    BadDirectory(String),
    /// The `VS_VERSIONINFO` block is not one.
    #[error("VS_VERSIONINFO at RVA {rva:#x}: {why}")]
    BadVersionInfo { rva: u32, why: String },
}

/// `VS_FIXEDFILEINFO`, with the version numbers split into their four 16-bit parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FixedFileInfo {
    /// `dwFileVersionMS`/`LS` as `[major, minor, build, revision]`.
    pub file_version: [u16; 4],
    /// `dwProductVersionMS`/`LS`.
    pub product_version: [u16; 4],
    pub file_flags_mask: u32,
    pub file_flags: u32,
    pub file_os: u32,
    pub file_type: u32,
    pub file_subtype: u32,
}

/// One `StringTable`: its key (`"040904b0"`: language and code page in hex) and its strings in
/// file order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StringTable {
    pub key: String,
    pub strings: Vec<(String, String)>,
}

/// A parsed version resource.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct VersionInfo {
    /// The fixed part; `None` if the block has no (valid) `VS_FIXEDFILEINFO`.
    pub fixed: Option<FixedFileInfo>,
    /// Every StringTable of every StringFileInfo, in file order.
    pub tables: Vec<StringTable>,
    /// `VarFileInfo\Translation` pairs (language, code page).
    pub translations: Vec<(u16, u16)>,
    /// Damage met after the readable part (what and where), for a notice.
    pub problems: Vec<String>,
}

impl VersionInfo {
    /// The value of `key` in the first StringTable that has it (keys compared exactly first,
    /// then ASCII case-insensitively, as `VerQueryValue` does).
    pub fn string(&self, key: &str) -> Option<&str> {
        let exact = self
            .tables
            .iter()
            .flat_map(|t| &t.strings)
            .find(|(k, _)| k == key);
        exact
            .or_else(|| {
                self.tables
                    .iter()
                    .flat_map(|t| &t.strings)
                    .find(|(k, _)| k.eq_ignore_ascii_case(key))
            })
            .map(|(_, v)| v.as_str())
    }
    pub fn original_filename(&self) -> Option<&str> {
        self.string("OriginalFilename")
    }
    /// The `FileVersion` *string* (free text such as `"1.0.0.1 built by: WinDDK"`); WDAC and
    /// version comparisons use [`FixedFileInfo::file_version`] instead.
    pub fn file_version_string(&self) -> Option<&str> {
        self.string("FileVersion")
    }
    pub fn company_name(&self) -> Option<&str> {
        self.string("CompanyName")
    }
    pub fn product_name(&self) -> Option<&str> {
        self.string("ProductName")
    }
    pub fn file_description(&self) -> Option<&str> {
        self.string("FileDescription")
    }
    pub fn internal_name(&self) -> Option<&str> {
        self.string("InternalName")
    }
    pub fn legal_copyright(&self) -> Option<&str> {
        self.string("LegalCopyright")
    }
    /// The fixed file version, if present.
    pub fn file_version(&self) -> Option<[u16; 4]> {
        self.fixed.map(|f| f.file_version)
    }
}

const RT_VERSION: u32 = 16;
const FIXED_SIGNATURE: u32 = 0xFEEF_04BD;
/// A version resource is a few KiB; anything beyond this is not one and is not walked.
const MAX_VERSION_SIZE: u32 = 1 << 20;

/// The image's version resource. `Ok(None)` when it has no resource directory or no
/// `RT_VERSION` resource; an error when the headers or the resource structures are damaged.
pub fn version_info(bytes: &[u8], layout: Layout) -> Result<Option<VersionInfo>, VersionError> {
    let pe = Pe::parse(bytes, layout)?;
    let Some((rsrc_rva, rsrc_size)) = pe.resource_dir else {
        return Ok(None);
    };
    let Some(data) = pe.find_version(rsrc_rva, rsrc_size)? else {
        return Ok(None);
    };
    Ok(Some(parse_versioninfo(&pe, data.0, data.1)?))
}

/// The few PE header facts this module needs.
struct Pe<'a> {
    bytes: &'a [u8],
    layout: Layout,
    size_of_headers: u32,
    /// (VirtualAddress, VirtualSize, PointerToRawData, SizeOfRawData)
    sections: Vec<(u32, u32, u32, u32)>,
    resource_dir: Option<(u32, u32)>,
}

impl<'a> Pe<'a> {
    fn parse(bytes: &'a [u8], layout: Layout) -> Result<Self, VersionError> {
        if u16_at(bytes, 0) != Some(0x5A4D) {
            return Err(VersionError::NotPe("no MZ signature"));
        }
        let lfanew =
            u32_at(bytes, 0x3C).ok_or(VersionError::NotPe("truncated DOS header"))? as usize;
        if u32_at(bytes, lfanew) != Some(0x0000_4550) {
            return Err(VersionError::NotPe("no PE signature"));
        }
        let coff = lfanew + 4;
        let nsections = u16_at(bytes, coff + 2).ok_or(VersionError::NotPe("truncated COFF"))?;
        let opt_size = u16_at(bytes, coff + 16).ok_or(VersionError::NotPe("truncated COFF"))?;
        let opt = coff + 20;
        let magic = u16_at(bytes, opt).ok_or(VersionError::NotPe("no optional header"))?;
        let (dirs_at, count_at) = match magic {
            0x10b => (opt + 96, opt + 92),
            0x20b => (opt + 112, opt + 108),
            _ => return Err(VersionError::NotPe("unknown optional header magic")),
        };
        let size_of_headers =
            u32_at(bytes, opt + 60).ok_or(VersionError::NotPe("truncated optional header"))?;
        let ndirs = u32_at(bytes, count_at).ok_or(VersionError::NotPe("truncated header"))?;
        // Directory 2 is the resource table; it exists only if the header says so and it fits
        // in the optional header as sized by the COFF header.
        let dir_end = dirs_at + 3 * 8;
        let resource_dir = if ndirs > 2 && dir_end <= opt + opt_size as usize {
            match (u32_at(bytes, dirs_at + 16), u32_at(bytes, dirs_at + 20)) {
                (Some(rva), Some(size)) if rva != 0 && size != 0 => Some((rva, size)),
                (Some(_), Some(_)) => None,
                _ => return Err(VersionError::NotPe("truncated data directories")),
            }
        } else {
            None
        };
        let table = opt + opt_size as usize;
        let mut sections = Vec::with_capacity(nsections as usize);
        for i in 0..nsections as usize {
            let h = table + i * 40;
            let field =
                |o| u32_at(bytes, h + o).ok_or(VersionError::NotPe("truncated section table"));
            sections.push((field(12)?, field(8)?, field(20)?, field(16)?));
        }
        Ok(Pe {
            bytes,
            layout,
            size_of_headers,
            sections,
            resource_dir,
        })
    }

    /// `len` bytes at `rva`, or `None` when they are not all present (in file layout, a range
    /// must lie inside one section's raw data or the headers).
    fn slice(&self, rva: u32, len: u32) -> Option<&'a [u8]> {
        let end = rva.checked_add(len)?;
        let off = match self.layout {
            Layout::Loaded => rva as usize,
            Layout::File => {
                if end <= self.size_of_headers {
                    rva as usize
                } else {
                    let &(va, _vs, raw, raw_size) =
                        self.sections.iter().find(|&&(va, vs, _, rs)| {
                            rva >= va && rva < va.saturating_add(vs.max(rs))
                        })?;
                    let delta = rva - va;
                    if delta.checked_add(len)? > raw_size {
                        return None;
                    }
                    raw as usize + delta as usize
                }
            }
        };
        self.bytes.get(off..off.checked_add(len as usize)?)
    }

    fn u16(&self, rva: u32) -> Option<u16> {
        self.slice(rva, 2).map(|s| u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&self, rva: u32) -> Option<u32> {
        self.slice(rva, 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }

    /// The (RVA, size) of the first `RT_VERSION` resource's data.
    fn find_version(&self, base: u32, size: u32) -> Result<Option<(u32, u32)>, VersionError> {
        let oob = |what| VersionError::OutOfBounds { what, rva: base };
        // Level 1: types. Level 2: names. Level 3: languages → data entry.
        let mut dir = 0u32;
        for level in 0..3 {
            let at = base.checked_add(dir).ok_or(oob("resource directory"))?;
            let named = self
                .u16(at.saturating_add(12))
                .ok_or(oob("resource directory"))? as u32;
            let ids = self
                .u16(at.saturating_add(14))
                .ok_or(oob("resource directory"))? as u32;
            let total = named + ids;
            let mut next = None;
            for i in 0..total {
                let e = at.saturating_add(16).saturating_add(i * 8);
                let name = self.u32(e).ok_or(oob("resource directory entry"))?;
                let target = self
                    .u32(e.saturating_add(4))
                    .ok_or(oob("resource directory entry"))?;
                if level == 0 && (name & 0x8000_0000 != 0 || name != RT_VERSION) {
                    continue;
                }
                next = Some(target);
                break;
            }
            let Some(target) = next else {
                return if level == 0 {
                    Ok(None)
                } else {
                    Err(VersionError::BadDirectory(format!(
                        "RT_VERSION directory at level {} has no entries",
                        level + 1
                    )))
                };
            };
            let is_dir = target & 0x8000_0000 != 0;
            let off = target & 0x7FFF_FFFF;
            if off >= size {
                return Err(VersionError::BadDirectory(format!(
                    "entry offset {off:#x} beyond the resource directory ({size:#x} bytes)"
                )));
            }
            if level < 2 {
                if !is_dir {
                    return Err(VersionError::BadDirectory(format!(
                        "RT_VERSION level {} entry is data, not a directory",
                        level + 1
                    )));
                }
                dir = off;
            } else {
                if is_dir {
                    return Err(VersionError::BadDirectory(
                        "RT_VERSION language entry is a directory, not data".into(),
                    ));
                }
                let de = base.saturating_add(off);
                let rva = self.u32(de).ok_or(oob("resource data entry"))?;
                let len = self
                    .u32(de.saturating_add(4))
                    .ok_or(oob("resource data entry"))?;
                return Ok(Some((rva, len)));
            }
        }
        unreachable!("the loop returns at level 3")
    }
}

/// A block header: (wLength, wValueLength, wType, key, RVA of the value).
struct Block {
    length: u32,
    value_length: u32,
    value_type: u16,
    key: String,
    value_rva: u32,
}

fn align4(rva: u32) -> Option<u32> {
    rva.checked_add(3).map(|v| v & !3)
}

/// Reads the block header at `rva`, whose bytes must end by `limit`.
fn block(pe: &Pe, rva: u32, limit: u32) -> Result<Block, String> {
    let length = pe.u16(rva).ok_or("header outside the image")? as u32;
    let value_length = pe
        .u16(rva.saturating_add(2))
        .ok_or("header outside the image")? as u32;
    let value_type = pe
        .u16(rva.saturating_add(4))
        .ok_or("header outside the image")?;
    if length < 6 {
        return Err(format!("wLength {length} is shorter than a header"));
    }
    let end = rva.checked_add(length).ok_or("wLength overflows")?;
    if end > limit {
        return Err(format!("wLength {length} runs past its parent"));
    }
    let (key, after) = utf16z(pe, rva.saturating_add(6), end).ok_or("key outside the block")?;
    Ok(Block {
        length,
        value_length,
        value_type,
        key,
        value_rva: align4(after).ok_or("overflow")?,
    })
}

/// A NUL-terminated UTF-16 string at `rva`, which must end before `end`; returns it and the
/// RVA after its terminator. Unpaired surrogates become U+FFFD (the text is for display and
/// name comparison; the hashes carry identity).
fn utf16z(pe: &Pe, rva: u32, end: u32) -> Option<(String, u32)> {
    let mut units = Vec::new();
    let mut at = rva;
    while at.checked_add(2)? <= end {
        let u = pe.u16(at)?;
        at += 2;
        if u == 0 {
            return Some((String::from_utf16_lossy(&units), at));
        }
        units.push(u);
    }
    None
}

/// Up to `max` UTF-16 units at `rva` before `end`, stopping at a NUL.
fn utf16n(pe: &Pe, rva: u32, max: u32, end: u32) -> String {
    let mut units = Vec::new();
    let mut at = rva;
    for _ in 0..max {
        if at.saturating_add(2) > end {
            break;
        }
        match pe.u16(at) {
            Some(0) | None => break,
            Some(u) => units.push(u),
        }
        at += 2;
    }
    String::from_utf16_lossy(&units)
}

fn parse_versioninfo(pe: &Pe, rva: u32, size: u32) -> Result<VersionInfo, VersionError> {
    let bad = |why: String| VersionError::BadVersionInfo { rva, why };
    if size > MAX_VERSION_SIZE {
        return Err(bad(format!("resource size {size} is implausible")));
    }
    if pe.slice(rva, size).is_none() {
        return Err(VersionError::OutOfBounds {
            what: "version resource data",
            rva,
        });
    }
    let limit = rva + size;
    let root = block(pe, rva, limit).map_err(bad)?;
    if root.key != "VS_VERSION_INFO" {
        return Err(bad(format!("key is {:?}, not VS_VERSION_INFO", root.key)));
    }
    let end = rva + root.length;
    let mut info = VersionInfo::default();
    let mut child = root.value_rva;
    if root.value_length != 0 {
        if root.value_length >= 52 && root.value_rva.saturating_add(52) <= end {
            let d = |i: u32| pe.u32(root.value_rva.saturating_add(4 * i)).unwrap_or(0);
            if d(0) == FIXED_SIGNATURE {
                let split =
                    |ms: u32, ls: u32| [(ms >> 16) as u16, ms as u16, (ls >> 16) as u16, ls as u16];
                info.fixed = Some(FixedFileInfo {
                    file_version: split(d(2), d(3)),
                    product_version: split(d(4), d(5)),
                    file_flags_mask: d(6),
                    file_flags: d(7),
                    file_os: d(8),
                    file_type: d(9),
                    file_subtype: d(10),
                });
            } else {
                info.problems.push(format!(
                    "VS_FIXEDFILEINFO at RVA {:#x} has signature {:#x}, not 0xfeef04bd",
                    root.value_rva,
                    d(0)
                ));
            }
        } else {
            info.problems.push(format!(
                "VS_FIXEDFILEINFO at RVA {:#x}: wValueLength {} or block too short",
                root.value_rva, root.value_length
            ));
        }
        child = align4(root.value_rva.saturating_add(root.value_length)).unwrap_or(end);
    }
    // StringFileInfo / VarFileInfo children.
    while child.saturating_add(6) <= end {
        let b = match block(pe, child, end) {
            Ok(b) => b,
            Err(why) => {
                info.problems
                    .push(format!("child block at RVA {child:#x}: {why}"));
                break;
            }
        };
        let b_end = child + b.length;
        if b.key == "StringFileInfo" {
            string_file_info(pe, &b, b_end, &mut info);
        } else if b.key == "VarFileInfo" {
            var_file_info(pe, &b, b_end, &mut info);
        } else {
            info.problems
                .push(format!("unknown child block {:?} at RVA {child:#x}", b.key));
        }
        child = align4(b_end).unwrap_or(end);
    }
    Ok(info)
}

fn string_file_info(pe: &Pe, sfi: &Block, end: u32, info: &mut VersionInfo) {
    let mut at = sfi.value_rva;
    while at.saturating_add(6) <= end {
        let table = match block(pe, at, end) {
            Ok(b) => b,
            Err(why) => {
                info.problems
                    .push(format!("StringTable at RVA {at:#x}: {why}"));
                return;
            }
        };
        let t_end = at + table.length;
        let mut strings = Vec::new();
        let mut s = table.value_rva;
        while s.saturating_add(6) <= t_end {
            let b = match block(pe, s, t_end) {
                Ok(b) => b,
                Err(why) => {
                    info.problems.push(format!("String at RVA {s:#x}: {why}"));
                    break;
                }
            };
            // wValueLength counts UTF-16 units for text values (wType 1); a binary value
            // (wType 0) is read the same way, as Windows' VerQueryValue returns it as text.
            let _ = b.value_type;
            let value = utf16n(pe, b.value_rva, b.value_length, s + b.length);
            strings.push((b.key, value));
            s = align4(s + b.length).unwrap_or(t_end);
        }
        info.tables.push(StringTable {
            key: table.key,
            strings,
        });
        at = align4(t_end).unwrap_or(end);
    }
}

fn var_file_info(pe: &Pe, vfi: &Block, end: u32, info: &mut VersionInfo) {
    let mut at = vfi.value_rva;
    while at.saturating_add(6) <= end {
        let Ok(var) = block(pe, at, end) else {
            info.problems
                .push(format!("Var block at RVA {at:#x} is damaged"));
            return;
        };
        let v_end = at + var.length;
        if var.key == "Translation" {
            let mut p = var.value_rva;
            let stop = var.value_rva.saturating_add(var.value_length).min(v_end);
            while p.saturating_add(4) <= stop {
                if let (Some(lang), Some(cp)) = (pe.u16(p), pe.u16(p + 2)) {
                    info.translations.push((lang, cp));
                }
                p += 4;
            }
        }
        at = align4(v_end).unwrap_or(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// UTF-16LE of `s` with a NUL.
    fn w(s: &str) -> Vec<u8> {
        s.encode_utf16()
            .chain([0])
            .flat_map(|u| u.to_le_bytes())
            .collect()
    }

    /// A block at `start` (absolute position, for alignment) with `value` and children.
    fn blk(
        start: usize,
        key: &str,
        value: &[u8],
        vlen: u16,
        vtype: u16,
        kids: &[Vec<u8>],
    ) -> Vec<u8> {
        let mut b = vec![0u8; 6];
        b.extend(w(key));
        while (start + b.len()) % 4 != 0 {
            b.push(0);
        }
        b.extend(value);
        for k in kids {
            while (start + b.len()) % 4 != 0 {
                b.push(0);
            }
            b.extend(k);
        }
        let len = b.len() as u16;
        b[0..2].copy_from_slice(&len.to_le_bytes());
        b[2..4].copy_from_slice(&vlen.to_le_bytes());
        b[4..6].copy_from_slice(&vtype.to_le_bytes());
        b
    }

    /// A loaded-layout image: headers, then a resource directory at 0x200 with one RT_VERSION
    /// resource whose data is `vi` at 0x300.
    fn image(vi: &[u8]) -> Vec<u8> {
        let mut img = vec![0u8; 0x300];
        img[0..2].copy_from_slice(b"MZ");
        img[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
        img[0x40..0x44].copy_from_slice(b"PE\0\0");
        let opt = 0x40 + 24;
        img[0x40 + 4 + 16..0x40 + 4 + 18].copy_from_slice(&240u16.to_le_bytes());
        img[opt..opt + 2].copy_from_slice(&0x20bu16.to_le_bytes());
        img[opt + 60..opt + 64].copy_from_slice(&0x200u32.to_le_bytes());
        img[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
        img[opt + 112 + 16..opt + 112 + 20].copy_from_slice(&0x200u32.to_le_bytes());
        img[opt + 112 + 20..opt + 112 + 24].copy_from_slice(&0x100u32.to_le_bytes());
        // type dir at 0x200: one id entry 16 -> dir 0x18
        let r = 0x200;
        let put = |img: &mut Vec<u8>, at: usize, v: u32| {
            img[at..at + 4].copy_from_slice(&v.to_le_bytes())
        };
        img[r + 14] = 1;
        put(&mut img, r + 16, 16);
        put(&mut img, r + 20, 0x8000_0018);
        img[r + 0x18 + 14] = 1;
        put(&mut img, r + 0x18 + 16, 1);
        put(&mut img, r + 0x18 + 20, 0x8000_0030);
        img[r + 0x30 + 14] = 1;
        put(&mut img, r + 0x30 + 16, 0x409);
        put(&mut img, r + 0x30 + 20, 0x48);
        put(&mut img, r + 0x48, 0x300);
        put(&mut img, r + 0x48 + 4, vi.len() as u32);
        img.extend(vi);
        img
    }

    fn sample() -> Vec<u8> {
        let base = 0x300;
        let mut fixed = Vec::new();
        for d in [
            FIXED_SIGNATURE,
            0x10000,
            0x0002_0003,
            0x0004_0005,
            0x0006_0007,
            0x0008_0009,
            0x3f,
            0,
            0x40004,
            3,
            7,
            0,
            0,
        ] {
            fixed.extend(d.to_le_bytes());
        }
        // Offsets inside are computed from a first pass, so build bottom-up with a guess of
        // positions: the helper aligns relative to `start`, which only needs to be correct
        // modulo 4; every block starts 4-aligned here.
        let s1 = blk(0, "OriginalFilename", &w("drv.sys"), 8, 1, &[]);
        let s2 = blk(0, "CompanyName", &w("Contoso"), 8, 1, &[]);
        let st = blk(0, "040904b0", &[], 0, 1, &[s1, s2]);
        let sfi = blk(0, "StringFileInfo", &[], 0, 1, &[st]);
        let tr = blk(0, "Translation", &[0x09, 0x04, 0xb0, 0x04], 4, 0, &[]);
        let vfi = blk(0, "VarFileInfo", &[], 0, 1, &[tr]);
        blk(base, "VS_VERSION_INFO", &fixed, 52, 0, &[sfi, vfi])
    }

    #[test]
    fn parses_a_built_version_resource() {
        let img = image(&sample());
        let vi = version_info(&img, Layout::Loaded).unwrap().unwrap();
        let f = vi.fixed.unwrap();
        assert_eq!(f.file_version, [2, 3, 4, 5]);
        assert_eq!(f.product_version, [6, 7, 8, 9]);
        assert_eq!(vi.original_filename(), Some("drv.sys"));
        assert_eq!(vi.company_name(), Some("Contoso"));
        assert_eq!(vi.string("originalfilename"), Some("drv.sys"));
        assert_eq!(vi.tables[0].key, "040904b0");
        assert_eq!(vi.translations, vec![(0x409, 0x4b0)]);
        assert!(vi.problems.is_empty(), "{:?}", vi.problems);
    }

    #[test]
    fn damaged_inputs_are_errors_not_panics() {
        let img = image(&sample());
        // Every truncation is handled.
        for cut in 0..img.len() {
            let _ = version_info(&img[..cut], Layout::Loaded);
            let _ = version_info(&img[..cut], Layout::File);
        }
        // A wLength longer than the resource.
        let mut bad = img.clone();
        bad[0x300] = 0xff;
        bad[0x301] = 0x7f;
        assert!(matches!(
            version_info(&bad, Layout::Loaded),
            Err(VersionError::BadVersionInfo { .. })
        ));
        // A wrong key.
        let mut bad = img.clone();
        bad[0x306] = b'X';
        assert!(version_info(&bad, Layout::Loaded).is_err());
        // Every single-byte corruption of the block: never a panic.
        for i in 0x300..img.len() {
            let mut b = img.clone();
            b[i] ^= 0xff;
            let _ = version_info(&b, Layout::Loaded);
        }
        // No resource directory: no version.
        let mut none = img.clone();
        let opt = 0x40 + 24;
        none[opt + 112 + 16..opt + 112 + 24].fill(0);
        assert_eq!(version_info(&none, Layout::Loaded), Ok(None));
        assert!(matches!(
            version_info(b"MZ", Layout::File),
            Err(VersionError::NotPe(_))
        ));
    }
}
