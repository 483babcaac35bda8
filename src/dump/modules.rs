//! The loaded module list: PsLoadedModuleList walked through KLDR_DATA_TABLE_ENTRY
//! (crash-dumps.md §4), or the triage driver list (§1.4.5).
//!
//! The walk follows Flinks from the list head until it returns there. Memory in a dump can be
//! torn or hostile, so the walk stops (with a notice) at a repeated entry, an implausible
//! pointer, an unreadable entry or after [`MAX_MODULES`] entries (a budget event); what was read
//! so far is kept.
//!
//! Each module carries the identity Windows' symbol servers use for the file (TimeDateStamp and
//! SizeOfImage, §1.4.5), so that the pipeline can match a listed module to a scanned file even
//! when the dump holds none of its image (triage dumps).

use std::collections::HashSet;

use serde::Serialize;

use super::budget::{Limit, MAX_MODULES, MAX_NAME_BYTES};
use super::bytes::{ptr_at, u16_at, u32_at, u64_at};
use super::error::{DumpError, NoticeKind};
use super::header::Arch;
use super::memory::Memory;
use super::triage::Triage;

/// One kernel module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadedModule {
    /// Base name (BaseDllName, or the last component of the path).
    pub name: String,
    /// FullDllName as stored (`\SystemRoot\system32\ntoskrnl.exe`).
    pub full_path: String,
    /// DllBase.
    #[serde(serialize_with = "super::hex::u64")]
    pub base: u64,
    /// SizeOfImage from the loader entry (authoritative when the PE header is gone, §6).
    pub size: u32,
    /// TimeDateStamp, when the layout places it where we know (with SizeOfImage, the
    /// symbol-server key of the file).
    pub time_date_stamp: Option<u32>,
    /// CheckSum from the loader entry (the PE header's CheckSum), when the layout has it.
    pub checksum: Option<u32>,
}

impl LoadedModule {
    /// The key Windows symbol servers file the image under, and drvaudit's image summaries use
    /// (`pe_key`): TimeDateStamp as eight upper-case hex digits, then SizeOfImage in lower-case
    /// hex. `None` without a TimeDateStamp.
    pub fn symbol_key(&self) -> Option<String> {
        self.time_date_stamp
            .map(|t| format!("{t:08X}{:x}", self.size))
    }

    /// True when `va` lies inside the image.
    pub fn contains(&self, va: u64) -> bool {
        va >= self.base && va - self.base < u64::from(self.size)
    }
}

/// Offsets of the KLDR_DATA_TABLE_ENTRY fields per pointer size (§4). ARM64 uses the 64-bit
/// layout: the structure is the same, only pointer width matters.
struct Layout {
    len: usize,
    dll_base: usize,
    size_of_image: usize,
    full_name: usize,
    base_name: usize,
    checksum: usize,
    time_date_stamp: Option<usize>,
}

fn layout(arch: Arch, build: u32) -> Layout {
    match arch {
        Arch::X64 | Arch::Arm64 => Layout {
            len: 0xA0,
            dll_base: 0x30,
            size_of_image: 0x40,
            full_name: 0x48,
            base_name: 0x58,
            checksum: 0x78,
            time_date_stamp: (build >= 10240).then_some(0x9C),
        },
        Arch::X86 | Arch::X86Pae => Layout {
            len: 0x5C,
            dll_base: 0x18,
            size_of_image: 0x20,
            full_name: 0x24,
            base_name: 0x2C,
            checksum: 0x40,
            time_date_stamp: Some(if build >= 10240 { 0x58 } else { 0x44 }),
        },
    }
}

pub(crate) fn list(dump: &Memory, kdbg_head: Option<u64>) -> Result<Vec<LoadedModule>, DumpError> {
    if let Some(t) = &dump.triage {
        let mut notes = Vec::new();
        let list = triage_drivers(t, dump.data(), &mut notes);
        for n in notes {
            dump.notice(NoticeKind::Malformed, n);
        }
        return Ok(list);
    }
    if dump.physical_pages() == 0 {
        return Err(dump.unavailable(
            "the loaded module list",
            "the file holds no physical memory",
        ));
    }
    let s = dump.summary();
    let head = if s.ps_loaded_module_list != 0 {
        s.ps_loaded_module_list
    } else {
        kdbg_head.unwrap_or(0)
    };
    let ps = dump.pointer_size();
    if !dump.plausible_kernel_ptr(head, ps as u64) {
        return Err(dump.unreadable("PsLoadedModuleList head", head, "not a kernel address"));
    }
    let first = dump
        .read_ptr(head)
        .map_err(|m| dump.unreadable("PsLoadedModuleList head", head, m))?;
    let lay = layout(s.arch, s.build);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut cur = first;
    while cur != head {
        if out.len() >= MAX_MODULES {
            dump.over_budget(
                Limit::ModuleEntries,
                format!("module list: walk stopped at entry {cur:#x}"),
                MAX_MODULES as u64,
                MAX_MODULES as u64 + 1,
            );
            break;
        }
        if !dump.plausible_kernel_ptr(cur, ps as u64) {
            dump.notice(
                NoticeKind::Malformed,
                format!(
                    "module list: link {cur:#x} after {} entries is not a kernel address; walk stopped",
                    out.len()
                ),
            );
            break;
        }
        if !seen.insert(cur) {
            dump.notice(
                NoticeKind::Malformed,
                format!(
                    "module list: entry {cur:#x} seen twice (cycle) after {} entries; walk stopped",
                    out.len()
                ),
            );
            break;
        }
        let mut e = vec![0u8; lay.len];
        if let Err(m) = dump.read_virt(cur, &mut e) {
            dump.notice(
                NoticeKind::Missing,
                format!(
                    "module list: entry {cur:#x} unreadable ({m}); walk stopped after {} entries",
                    out.len()
                ),
            );
            break;
        }
        let next = ptr_at(&e, 0, ps).unwrap_or(0);
        let base = ptr_at(&e, lay.dll_base, ps).unwrap_or(0);
        let size = u32_at(&e, lay.size_of_image).unwrap_or(0);
        let full_path = unicode(dump, &e, lay.full_name, ps).unwrap_or_default();
        let mut name = unicode(dump, &e, lay.base_name, ps).unwrap_or_default();
        if name.is_empty() {
            name = full_path
                .rsplit('\\')
                .next()
                .unwrap_or_default()
                .to_string();
        }
        if name.to_ascii_lowercase().starts_with("ntkrla57") {
            dump.notice(NoticeKind::Unsupported, "kernel image ntkrla57: five-level paging (LA57) is not supported; translations may fail".into());
        }
        let time_date_stamp = lay.time_date_stamp.and_then(|o| u32_at(&e, o));
        out.push(LoadedModule {
            name,
            full_path,
            base,
            size,
            time_date_stamp,
            checksum: u32_at(&e, lay.checksum),
        });
        cur = next;
    }
    Ok(out)
}

/// Reads a UNICODE_STRING {u16 Length, u16 MaximumLength, ptr Buffer} at `at` in `entry`.
fn unicode(dump: &Memory, entry: &[u8], at: usize, ps: usize) -> Option<String> {
    let len = u16_at(entry, at)?;
    let buf = ptr_at(entry, at + if ps == 8 { 8 } else { 4 }, ps)?;
    if len == 0 || len > MAX_NAME_BYTES || len % 2 != 0 || !dump.plausible_kernel_ptr(buf, 2) {
        return None;
    }
    let mut raw = vec![0u8; len as usize];
    if let Err(m) = dump.read_virt(buf, &mut raw) {
        dump.notice(
            NoticeKind::Missing,
            format!("module name at {buf:#x} unreadable: {m}"),
        );
        return None;
    }
    let units: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    Some(crate::printable_text(String::from_utf16_lossy(&units)))
}

/// The driver list: 0x90-byte entries `{u32 name offset; pad; KLDR_DATA_TABLE_ENTRY64}`,
/// names as `{u32 chars; WCHAR[]}` in the string pool (§1.4.5). The embedded entry has the
/// older LDR_DATA_TABLE_ENTRY layout: DllBase +0x30, SizeOfImage +0x40, CheckSum +0x78 and
/// TimeDateStamp +0x80 of the entry, i.e. +0x38, +0x48, +0x80 and +0x88 of the list entry.
fn triage_drivers(t: &Triage, data: &[u8], notes: &mut Vec<String>) -> Vec<LoadedModule> {
    let mut out = Vec::with_capacity(t.driver_count as usize);
    for i in 0..u64::from(t.driver_count) {
        let e = (t.driver_list + i * 0x90) as usize;
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
