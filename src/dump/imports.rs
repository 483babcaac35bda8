//! Import recovery for carved images, crash-dumps.md §6 (the `!for_each_module s-d` search of
//! an incident, automated).
//!
//! After load, each IAT slot holds the absolute VA of the function it imports. The export
//! directories of every loaded module (read from their carved, in-memory images) map such VAs
//! back to `module!name`. Where the import directory (descriptors, INT, hint/name strings)
//! survived in memory it is used directly and cross-checked against the slot values;
//! disagreements are kept as notes. Where it is gone (often it sits in the discarded INIT
//! section), the IAT comes from data directory 12; where that is gone too, the non-executable
//! sections are scanned for runs of pointer-sized values that hit known exports.

use std::cell::RefCell;
use std::collections::HashMap;

use serde::Serialize;

use super::bytes::{cstr_at, ptr_at, u16_at, u32_at};
use super::carve::CarvedImage;
use super::memory::Memory;
use super::modules::LoadedModule;
use super::pe::{exports, Export, Headers, ImageBytes, SCN_EXECUTE};

/// How an import was named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ImportSource {
    /// From the surviving import directory (INT / hint-name entries).
    FromImportDirectory,
    /// By matching the IAT slot's value against the exports of the loaded modules.
    FromExportMatch,
}

/// One IAT slot, named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecoveredImport {
    /// RVA of the slot in the importing image.
    pub iat_rva: u32,
    /// The exporting module (`ntoskrnl.exe`), or `?` when the slot matched nothing.
    pub dll: String,
    /// The function name, when exported by name.
    pub name: Option<String>,
    /// The ordinal, when known.
    pub ordinal: Option<u16>,
    /// How it was named.
    pub how: ImportSource,
    /// A disagreement between the import directory and the slot value, or why the slot could
    /// not be named.
    pub note: Option<String>,
}

/// Bounds on what a damaged image can make us walk.
const MAX_DESCRIPTORS: usize = 1024;
const MAX_THUNKS: usize = 8192;

struct Target {
    module: usize,
    name: Option<String>,
    ordinal: u16,
}

/// The exports of every loaded module by absolute address: what `!for_each_module s-d`
/// searches, built once per dump. It keeps only names and addresses, so the images it was
/// built from can be dropped. [`ExportMap::add_from_dump`] builds it from each module's PE
/// header and export directory alone, without carving the image.
#[derive(Default)]
pub struct ExportMap {
    map: HashMap<u64, Target>,
    modules: Vec<String>,
}

impl ExportMap {
    /// Adds the exports of one carved module (modules are numbered in the order added).
    pub fn add(&mut self, m: &LoadedModule, c: &CarvedImage) {
        let list = Headers::parse(&c.bytes)
            .map(|h| exports(c.bytes.as_slice(), &h))
            .unwrap_or_default();
        self.insert(m, list);
    }

    /// Adds the exports of one module read straight from the dump: its header pages and the
    /// pages its export directory touches, each read once, as a carve would read them (pages
    /// the dump lacks read as zero). Gives the same map as [`ExportMap::add`] on the carved
    /// image.
    pub(crate) fn add_from_dump(&mut self, dump: &Memory, m: &LoadedModule) {
        let image = Paged::new(dump, m);
        let head = image.prefix(0x2000);
        let list = Headers::parse(&head)
            .map(|h| exports(&image, &h))
            .unwrap_or_default();
        self.insert(m, list);
    }

    /// Number of exports known.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no export is known.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn insert(&mut self, m: &LoadedModule, list: Vec<Export>) {
        let index = self.modules.len();
        self.modules.push(m.name.clone());
        for e in list {
            let va = m.base.wrapping_add(u64::from(e.rva));
            let t = Target {
                module: index,
                name: e.name,
                ordinal: e.ordinal,
            };
            match self.map.get(&va) {
                Some(old) if old.name.is_some() || t.name.is_none() => {}
                _ => {
                    self.map.insert(va, t);
                }
            }
        }
    }

    /// Names the IAT slots of one carved module.
    pub fn recover(&self, m: &LoadedModule, c: &CarvedImage) -> Vec<RecoveredImport> {
        one(m, c, &self.modules, &self.map)
    }
}

/// An image read page by page on demand, each page once: the few pages an export directory
/// touches instead of the whole image. Missing pages read as zero, as in a carved image, so the
/// export walk gives the same result; offsets past SizeOfImage read as absent.
struct Paged<'d> {
    dump: &'d Memory,
    base: u64,
    size: u64,
    pages: RefCell<HashMap<u64, Box<[u8]>>>,
}

impl<'d> Paged<'d> {
    fn new(dump: &'d Memory, m: &LoadedModule) -> Paged<'d> {
        Paged {
            dump,
            base: m.base,
            size: u64::from(m.size.min(super::budget::MAX_IMAGE)),
            pages: RefCell::new(HashMap::new()),
        }
    }

    /// Copies `len` bytes at `off`, or `None` if they run past the image.
    fn get(&self, off: usize, len: usize) -> Option<Vec<u8>> {
        let end = (off as u64).checked_add(len as u64)?;
        if end > self.size || self.base % 0x1000 != 0 {
            return None;
        }
        let mut out = Vec::with_capacity(len);
        let mut at = off as u64;
        let mut pages = self.pages.borrow_mut();
        while at < end {
            let page = at & !0xFFF;
            let bytes = pages.entry(page).or_insert_with(|| {
                let n = (self.size - page).min(0x1000) as usize;
                let mut b = vec![0u8; n];
                if self
                    .dump
                    .read_in_page(self.base.wrapping_add(page), &mut b)
                    .is_err()
                {
                    b.fill(0);
                }
                b.into_boxed_slice()
            });
            let from = (at - page) as usize;
            let to = ((end - page) as usize).min(bytes.len());
            out.extend_from_slice(&bytes[from..to]);
            at = page + to as u64;
        }
        Some(out)
    }

    /// The first `len` bytes, or the whole image when smaller.
    fn prefix(&self, len: usize) -> Vec<u8> {
        let n = (len as u64).min(self.size) as usize;
        self.get(0, n).unwrap_or_default()
    }
}

impl ImageBytes for Paged<'_> {
    fn u16_at(&self, off: usize) -> Option<u16> {
        u16_at(&self.get(off, 2)?, 0)
    }
    fn u32_at(&self, off: usize) -> Option<u32> {
        u32_at(&self.get(off, 4)?, 0)
    }
    fn cstr_at(&self, off: usize, max: usize) -> Option<String> {
        let room = (self.size.saturating_sub(off as u64) as usize).min(max);
        cstr_at(&self.get(off, room)?, 0, max)
    }
}

/// Names the IAT slots of every module, using the exports of all of them.
pub fn recover_imports(modules: &[(LoadedModule, CarvedImage)]) -> Vec<Vec<RecoveredImport>> {
    let mut map = ExportMap::default();
    for (m, c) in modules {
        map.add(m, c);
    }
    modules.iter().map(|(m, c)| map.recover(m, c)).collect()
}

fn one(
    m: &LoadedModule,
    c: &CarvedImage,
    modules: &[String],
    map: &HashMap<u64, Target>,
) -> Vec<RecoveredImport> {
    let h = Headers::parse(&c.bytes);
    let ps = match &h {
        Some(h) if !h.pe64 => 4,
        Some(_) => 8,
        None if m.base > 0xFFFF_FFFF => 8,
        None => 4,
    };
    let matched = |iat_rva: u32, value: u64| -> RecoveredImport {
        match map.get(&value) {
            Some(t) => RecoveredImport {
                iat_rva,
                dll: modules[t.module].clone(),
                name: t.name.clone(),
                ordinal: Some(t.ordinal),
                how: ImportSource::FromExportMatch,
                note: None,
            },
            None => RecoveredImport {
                iat_rva,
                dll: "?".into(),
                name: None,
                ordinal: None,
                how: ImportSource::FromExportMatch,
                note: Some(format!(
                    "slot value {value:#x} matches no export of a loaded module"
                )),
            },
        }
    };
    if let Some(h) = &h {
        if let Some(list) = from_directory(c, h, ps, map, modules, &matched) {
            return list;
        }
        if let Some((rva, size)) = h.dir(12) {
            let mut out = Vec::new();
            // A damaged size must not make us walk far past the image.
            let end = (u64::from(rva) + u64::from(size)).min(c.bytes.len() as u64);
            let mut at = u64::from(rva);
            while at + ps as u64 <= end && out.len() < MAX_THUNKS {
                let slot = at as u32;
                at += ps as u64;
                if !c.present(slot) {
                    continue;
                }
                match ptr_at(&c.bytes, slot as usize, ps) {
                    Some(0) | None => {}
                    Some(v) => out.push(matched(slot, v)),
                }
            }
            return out;
        }
    }
    scan(c, h.as_ref(), ps, map, &matched)
}

/// Walks the import directory when its descriptors are present. Returns `None` when there is
/// no directory or its first descriptor is in a hole (the usual discarded-INIT case).
fn from_directory(
    c: &CarvedImage,
    h: &Headers,
    ps: usize,
    map: &HashMap<u64, Target>,
    modules: &[String],
    matched: &dyn Fn(u32, u64) -> RecoveredImport,
) -> Option<Vec<RecoveredImport>> {
    let (dir, _) = h.dir(1)?;
    if !c.present(dir) || !c.present(dir + 19) {
        return None;
    }
    let b = &c.bytes;
    let ord_flag = if ps == 8 { 1u64 << 63 } else { 1u64 << 31 };
    let mut out = Vec::new();
    for d in 0..MAX_DESCRIPTORS {
        let at = dir as usize + d * 20;
        let (Some(oft), Some(name_rva), Some(ft)) =
            (u32_at(b, at), u32_at(b, at + 12), u32_at(b, at + 16))
        else {
            break;
        };
        if oft == 0 && name_rva == 0 && ft == 0 || !c.present(at as u32) {
            break;
        }
        let dll = if c.present(name_rva) {
            cstr_at(b, name_rva as usize, 256)
        } else {
            None
        };
        for i in 0..MAX_THUNKS {
            // The whole directory, not each descriptor, shares the thunk budget: a damaged
            // directory of many descriptors over garbage must not multiply the work.
            if out.len() >= MAX_THUNKS {
                break;
            }
            let slot = ft.wrapping_add((i * ps) as u32);
            if !c.present(slot) {
                break;
            }
            let Some(value) = ptr_at(b, slot as usize, ps) else {
                break;
            };
            let int = if oft != 0 && c.present(oft.wrapping_add((i * ps) as u32)) {
                ptr_at(b, oft as usize + i * ps, ps)
            } else {
                None
            };
            if value == 0 || int == Some(0) {
                break;
            }
            let from_match = matched(slot, value);
            let (name, ordinal) = match int {
                Some(v) if v & ord_flag != 0 => (None, Some(v as u16)),
                Some(v) => {
                    let hn = v as u32;
                    let n = if c.present(hn.wrapping_add(2)) {
                        cstr_at(b, hn as usize + 2, 512)
                    } else {
                        None
                    };
                    (n, None)
                }
                None => (None, None),
            };
            let (Some(dll), true) = (dll.clone(), name.is_some() || ordinal.is_some()) else {
                // The INT entry or the DLL name is gone: fall back to the slot value.
                out.push(from_match);
                continue;
            };
            let note = match map.get(&value) {
                None => Some(format!(
                    "slot value {value:#x} matches no export of a loaded module"
                )),
                Some(t) => {
                    let got_dll = &modules[t.module];
                    let same_dll = got_dll.eq_ignore_ascii_case(&dll);
                    let same_fn = match (&name, ordinal) {
                        (Some(n), _) => t.name.as_deref() == Some(n.as_str()),
                        (None, Some(o)) => t.ordinal == o,
                        _ => true,
                    };
                    (!same_dll || !same_fn).then(|| {
                        format!(
                            "import directory says {dll}!{} but the slot holds {value:#x} = {got_dll}!{}",
                            name.clone().unwrap_or_else(|| format!("#{}", ordinal.unwrap_or(0))),
                            t.name.clone().unwrap_or_else(|| format!("#{}", t.ordinal))
                        )
                    })
                }
            };
            out.push(RecoveredImport {
                iat_rva: slot,
                dll,
                name,
                ordinal,
                how: ImportSource::FromImportDirectory,
                note,
            });
        }
    }
    // A directory whose first descriptor is already the null one did not survive (wiped, or
    // zero-filled); let the caller fall back to the IAT.
    (!out.is_empty()).then_some(out)
}

/// Scans non-executable sections (the whole image without headers) for IAT-like runs:
/// consecutive aligned slots that hit known exports, each group closed by a zero slot (every
/// DLL's IAT block ends with a null entry). Single stray pointers followed by other data are
/// not taken.
fn scan(
    c: &CarvedImage,
    h: Option<&Headers>,
    ps: usize,
    map: &HashMap<u64, Target>,
    matched: &dyn Fn(u32, u64) -> RecoveredImport,
) -> Vec<RecoveredImport> {
    let ranges: Vec<(u32, u32)> = match h {
        Some(h) => h
            .sections
            .iter()
            .filter(|s| s.characteristics & SCN_EXECUTE == 0)
            .map(|s| (s.rva, s.rva.saturating_add(s.vsize)))
            .collect(),
        None => vec![(0, c.bytes.len() as u32)],
    };
    let mut out = Vec::new();
    for (start, end) in ranges {
        let mut pending: Vec<RecoveredImport> = Vec::new();
        let mut at = start - start % ps as u32;
        while at as usize + ps <= c.bytes.len() && at + ps as u32 <= end {
            let v = if c.present(at) {
                ptr_at(&c.bytes, at as usize, ps)
            } else {
                None
            };
            match v {
                Some(0) => out.append(&mut pending),
                Some(v) if map.contains_key(&v) => pending.push(matched(at, v)),
                _ => pending.clear(),
            }
            at += ps as u32;
        }
    }
    out
}
