//! Facts of the image the analysis needs, the same for every architecture: the import slots
//! (pool APIs, functions that do not return, the rest), the executable sections, the base
//! relocations, and what a load from a global of the image yields.

use crate::pe::{Image, Machine, Section};
use crate::pool::apis::{self, ApiSpec};

use super::value::{How, Val, NO_GLOBAL};

/// Imports the kernel never returns from (`wdm.h` declares them `DECLSPEC_NORETURN`): a path
/// through a call to one of them ends there.
pub(crate) const NO_RETURN: &[&str] = &[
    "KeBugCheckEx",
    "KeBugCheck",
    "ExRaiseStatus",
    "ExRaiseAccessViolation",
    "ExRaiseDatatypeMisalignment",
    "RtlRaiseStatus",
    "PsTerminateSystemThread",
];

/// One import slot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    pub rva: u32,
    /// The pool API it names, if any.
    pub api: Option<&'static ApiSpec>,
    /// A function that does not return.
    pub no_return: bool,
}

/// Every import slot of the image, sorted by RVA, with a cheap range test for the pool ones.
pub(crate) struct Imports {
    slots: Vec<Slot>,
    /// Some import does not return (a direct call may need checking for a thunk of it).
    pub any_no_return: bool,
    pool_lo: u32,
    pool_hi: u32,
    pool_count: usize,
}

impl Imports {
    pub(crate) fn new(image: &Image) -> Imports {
        let mut slots: Vec<Slot> = image
            .imports
            .iter()
            .map(|i| {
                let name = i.name.as_deref();
                Slot {
                    rva: i.iat_rva,
                    api: name.and_then(|n| apis::for_import(&i.dll, n)),
                    no_return: name.is_some_and(|n| NO_RETURN.contains(&n)),
                }
            })
            .collect();
        slots.sort_by_key(|s| (s.rva, s.api.is_none()));
        slots.dedup_by_key(|s| s.rva);
        slots.truncate(usize::from(u16::MAX));
        let pool: Vec<u32> = slots
            .iter()
            .filter(|s| s.api.is_some())
            .map(|s| s.rva)
            .collect();
        Imports {
            any_no_return: slots.iter().any(|s| s.no_return),
            pool_lo: pool.first().copied().unwrap_or(u32::MAX),
            pool_hi: pool.last().copied().unwrap_or(0),
            pool_count: pool.len(),
            slots,
        }
    }

    /// Whether the image imports no pool API.
    pub(crate) fn no_pool_api(&self) -> bool {
        self.pool_count == 0
    }

    /// The lowest and highest pool slot RVA (`lo > hi` when there is none).
    pub(crate) fn pool_bounds(&self) -> (u32, u32) {
        (self.pool_lo, self.pool_hi)
    }

    /// The index of the slot at exactly `rva`.
    #[inline]
    pub(crate) fn at(&self, rva: u32) -> Option<u16> {
        self.slots
            .binary_search_by_key(&rva, |s| s.rva)
            .ok()
            .map(|i| i as u16)
    }

    /// The pool API whose slot is exactly at `rva`.
    #[inline]
    pub(crate) fn pool_api_at(&self, rva: u32) -> Option<&'static ApiSpec> {
        if rva < self.pool_lo || rva > self.pool_hi {
            return None;
        }
        self.at(rva).and_then(|i| self.slots[usize::from(i)].api)
    }

    pub(crate) fn get(&self, i: u16) -> Option<&Slot> {
        self.slots.get(usize::from(i))
    }

    /// Whether any slot lies in [`lo`, `hi`].
    fn any_in(&self, lo: u32, hi: u32) -> bool {
        let i = self.slots.partition_point(|s| s.rva < lo);
        self.slots.get(i).is_some_and(|s| s.rva <= hi)
    }
}

/// The base relocations of the image (`IMAGE_DIRECTORY_ENTRY_BASERELOC`, PE/COFF
/// specification, "The .reloc Section"): the RVAs of the 32-bit (`IMAGE_REL_BASED_HIGHLOW`)
/// and 64-bit (`IMAGE_REL_BASED_DIR64`) fields the loader adjusts, sorted. A field covered by
/// one holds an address, whatever number it looks like.
#[derive(Default)]
pub(crate) struct Relocs {
    at: Vec<u32>,
}

/// Most relocation entries read (a hostile directory cannot make the analysis slow).
const MAX_RELOCS: usize = 1 << 20;

impl Relocs {
    pub(crate) fn new(image: &Image, data: &[u8]) -> Relocs {
        let Some((rva, size)) = reloc_directory(data) else {
            return Relocs::default();
        };
        let mut at = Vec::new();
        let mut off = 0u32;
        while off.saturating_add(8) <= size && at.len() < MAX_RELOCS {
            let Some(page) = image.read_u32(data, rva.wrapping_add(off)) else {
                break;
            };
            let Some(block) = image.read_u32(data, rva.wrapping_add(off + 4)) else {
                break;
            };
            if block < 8 || block > size - off {
                break;
            }
            let Some(bytes) = image.bytes_at(data, rva.wrapping_add(off + 8)) else {
                break;
            };
            let n = ((block - 8) / 2) as usize;
            for e in bytes.chunks_exact(2).take(n) {
                let e = u16::from_le_bytes([e[0], e[1]]);
                if matches!(e >> 12, 3 | 10) {
                    at.push(page.wrapping_add(u32::from(e & 0xfff)));
                }
            }
            off += block;
        }
        at.sort_unstable();
        at.dedup();
        Relocs { at }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// Whether a relocated field starts exactly at `rva`.
    #[inline]
    pub(crate) fn covers(&self, rva: u32) -> bool {
        !self.at.is_empty() && self.at.binary_search(&rva).is_ok()
    }

    /// Whether any relocated field starts in [`lo`, `hi`).
    pub(crate) fn any_in(&self, lo: u32, hi: u32) -> bool {
        let i = self.at.partition_point(|&r| r < lo);
        self.at.get(i).is_some_and(|&r| r < hi)
    }
}

/// (RVA, size) of the base relocation directory, read from the PE headers at the start of the
/// buffer (both layouts keep the headers at offset 0).
fn reloc_directory(data: &[u8]) -> Option<(u32, u32)> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(data.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(data.get(o..o + 4)?.try_into().ok()?));
    let pe = u32_at(0x3c)? as usize;
    if data.get(pe..pe + 4)? != b"PE\0\0" {
        return None;
    }
    let opt = pe + 24;
    let (count_at, dirs_at) = match u16_at(opt)? {
        0x10b => (opt + 92, opt + 96),
        0x20b => (opt + 108, opt + 112),
        _ => return None,
    };
    if u32_at(count_at)? <= 5 {
        return None;
    }
    let rva = u32_at(dirs_at + 5 * 8)?;
    let size = u32_at(dirs_at + 5 * 8 + 4)?;
    (rva != 0 && size != 0).then_some((rva, size.min(1 << 24)))
}

/// The executable sections with the bytes the buffer holds for each (possibly shorter than the
/// section when the file is truncated).
pub(crate) fn code_sections<'a>(image: &'a Image, data: &'a [u8]) -> Vec<(&'a Section, &'a [u8])> {
    image
        .sections
        .iter()
        .filter(|s| s.is_executable())
        .filter_map(|s| {
            let b = image.bytes_at(data, s.rva)?;
            let n = (s.mapped_size() as usize).min(b.len());
            Some((s, &b[..n]))
        })
        .collect()
}

/// The value a load of `size` bytes (1, 2, 4 or 8) from global `rva` yields, as far as the
/// image tells: an address when the loader relocates the field (a pointer in data); from a
/// read-only section the constant itself; from a writable one its content at run time, whose
/// initial value the image gives ([`Val::Runtime`], the `POOL_NX_OPTIN` pattern of
/// `toolchains-and-patterns.md` §3). Bytes past a section's raw data are zero-initialised
/// (`.bss`-like). An import slot (the loader fills it), a read crossing one, and unmapped
/// or unreadable addresses yield `Unknown`.
pub(crate) fn global_value(
    image: &Image,
    data: &[u8],
    imports: &Imports,
    relocs: &Relocs,
    rva: u32,
    size: u8,
) -> Val {
    if !matches!(size, 1 | 2 | 4 | 8) {
        return Val::Unknown;
    }
    let size32 = u32::from(size);
    let Some(s) = image.section_of(rva) else {
        return Val::Unknown;
    };
    let Some(end) = rva.checked_add(size32) else {
        return Val::Unknown;
    };
    if end > s.rva.saturating_add(s.mapped_size()) {
        return Val::Unknown;
    }
    let ptr = image.machine.pointer_size();
    if imports.any_in(
        rva.saturating_sub(ptr.saturating_sub(1)),
        rva + (size32 - 1),
    ) {
        return Val::Unknown;
    }
    let mut v = [0u8; 8];
    let avail = image.bytes_at(data, rva).unwrap_or(&[]);
    let raw_end = s.rva.saturating_add(s.raw_size.min(s.mapped_size()));
    for (i, b) in v.iter_mut().take(usize::from(size)).enumerate() {
        if let Some(&x) = avail.get(i) {
            *b = x;
        } else if rva + (i as u32) < raw_end {
            return Val::Unknown;
        }
    }
    let value = u64::from_le_bytes(v);
    if relocs.any_in(rva.saturating_sub(ptr - 1), end) {
        // A relocated field: exactly a pointer, or a part of one (unknown).
        return if relocs.covers(rva) && size32 == ptr {
            Val::Addr(value.wrapping_sub(image.image_base) as i64)
        } else {
            Val::Unknown
        };
    }
    if s.is_writable() {
        Val::Runtime(value, if size == 4 { rva } else { NO_GLOBAL })
    } else {
        Val::Const(value, How::Global)
    }
}

/// Whether the image holds the absolute address of the global at `rva` as a pointer-sized
/// value where the code does not read it as an instruction operand: in any section that is not
/// executable (a pointer in initialised data, such as an `RTL_QUERY_REGISTRY_TABLE` whose
/// `EntryContext` lets the registry overwrite a tag), and on ARM64 in code too (a literal pool
/// entry loaded with `ldr x, =global`). The global may then be written through that pointer.
/// Bytes that only happen to equal the address count as well: that errs toward "unknown".
pub(crate) fn address_held_in_image(image: &Image, data: &[u8], rva: u32) -> bool {
    let va = image.image_base.wrapping_add(u64::from(rva));
    let ptr = image.machine.pointer_size() as usize;
    let bytes = va.to_le_bytes();
    let needle = &bytes[..ptr.min(8)];
    let arm64 = image.machine == Machine::Arm64;
    image
        .sections
        .iter()
        .filter(|s| arm64 || !s.is_executable())
        .filter_map(|s| {
            let b = image.bytes_at(data, s.rva)?;
            let len = (s.raw_size.min(s.mapped_size()) as usize).min(b.len());
            Some(&b[..len])
        })
        .any(|b| memchr::memmem::find(b, needle).is_some())
}
