//! Architecture-neutral helpers shared by the x86/x64 and ARM64 call-site backends: which IAT
//! slots belong to pool APIs, what a load from a global yields, where executable bytes are, and
//! the bookkeeping that turns a wrapper's call site into one site per caller.

use super::site::{ArgValue, CallSite, Provenance};
use crate::pe::{Image, Section};
use crate::pool::apis::{self, ApiSpec};

/// The IAT slots of pool APIs, sorted by slot RVA, with a cheap range pre-check so a byte scan
/// can test every position without hashing.
pub(crate) struct PoolSlots {
    slots: Vec<(u32, &'static ApiSpec)>,
    /// Every import's slot (pool or not), sorted: a load from any IAT slot is a function
    /// pointer, never a constant argument.
    all: Vec<u32>,
    lo: u32,
    hi: u32,
}

impl PoolSlots {
    /// Collects the slots of imports that [`apis::for_import`] recognises.
    pub(crate) fn new(image: &Image) -> PoolSlots {
        let mut slots: Vec<(u32, &'static ApiSpec)> = image
            .imports
            .iter()
            .filter_map(|i| {
                let name = i.name.as_deref()?;
                Some((i.iat_rva, apis::for_import(&i.dll, name)?))
            })
            .collect();
        slots.sort_by_key(|s| s.0);
        slots.dedup_by_key(|s| s.0);
        let mut all: Vec<u32> = image.imports.iter().map(|i| i.iat_rva).collect();
        all.sort_unstable();
        all.dedup();
        let lo = slots.first().map_or(u32::MAX, |s| s.0);
        let hi = slots.last().map_or(0, |s| s.0);
        PoolSlots { slots, all, lo, hi }
    }

    /// Whether the image imports no pool API at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The pool API whose IAT slot is exactly at `rva`.
    #[inline]
    pub(crate) fn api_at(&self, rva: u32) -> Option<&'static ApiSpec> {
        if rva < self.lo || rva > self.hi {
            return None;
        }
        self.slots
            .binary_search_by_key(&rva, |s| s.0)
            .ok()
            .map(|i| self.slots[i].1)
    }

    /// The lowest and highest pool slot RVA (`lo > hi` when there is none): a cheap filter
    /// before [`PoolSlots::api_at`].
    #[inline]
    pub(crate) fn bounds(&self) -> (u32, u32) {
        (self.lo, self.hi)
    }

    /// Whether any import's IAT slot lies in [`lo`, `hi`].
    fn any_slot_in(&self, lo: u32, hi: u32) -> bool {
        let i = self.all.partition_point(|&r| r < lo);
        self.all.get(i).is_some_and(|&r| r <= hi)
    }
}

/// Index of `spec` in [`apis::APIS`] (a small `Copy` handle for dataflow values).
pub(crate) fn api_index(spec: &'static ApiSpec) -> u8 {
    apis::APIS
        .iter()
        .position(|a| std::ptr::eq(a, spec))
        .unwrap_or(0) as u8
}

/// The API with index `i` from [`api_index`].
pub(crate) fn api_by_index(i: u8) -> &'static ApiSpec {
    &apis::APIS[usize::from(i).min(apis::APIS.len() - 1)]
}

/// The value a load of `size` bytes (1, 2, 4 or 8) from global `rva` yields, as far as the
/// image tells: from a read-only section the constant itself ([`Provenance::Global`]); from a
/// writable one the initial value, which the driver may overwrite before the load
/// ([`Provenance::Runtime`] — the `POOL_NX_OPTIN` `ExDefaultNonPagedPoolType` pattern,
/// `toolchains-and-patterns.md` §3). Bytes past a section's raw data are zero-initialised
/// (`.bss`-like). IAT slots and unmapped addresses yield `None`.
pub(crate) fn global_value(
    image: &Image,
    data: &[u8],
    slots: &PoolSlots,
    rva: u32,
    size: u32,
) -> Option<ArgValue> {
    if !matches!(size, 1 | 2 | 4 | 8) {
        return None;
    }
    let s = image.section_of(rva)?;
    if rva.checked_add(size)? > s.rva.checked_add(s.mapped_size())? {
        return None;
    }
    // A slot (or any part of one) of the IAT is a function pointer filled by the loader.
    // Slots starting up to `ptr - 1` bytes before `rva` or anywhere in the `size` bytes read:
    // one contiguous range, one search.
    let ptr = image.machine.pointer_size();
    if slots.any_slot_in(rva.saturating_sub(ptr.saturating_sub(1)), rva + (size - 1)) {
        return None;
    }
    let mut v = [0u8; 8];
    let avail = image.bytes_at(data, rva).unwrap_or(&[]);
    let raw_end = s.rva.saturating_add(s.raw_size.min(s.mapped_size()));
    for (i, b) in v.iter_mut().take(size as usize).enumerate() {
        if let Some(&x) = avail.get(i) {
            *b = x;
        } else if rva + (i as u32) < raw_end {
            // Inside the raw data but not readable (truncated file, hole in a dump).
            return None;
        }
    }
    let how = if s.is_writable() {
        Provenance::Runtime
    } else {
        Provenance::Global
    };
    Some(ArgValue {
        value: Some(u64::from_le_bytes(v)),
        how,
    })
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

/// The site seen from one caller of a wrapper: the wrapper's own call (`rva`, `api`, `reach`,
/// `function`) with `via` set to the caller's call and the arguments as recovered at that
/// caller (`args`, by role, in the API's order).
pub(crate) fn site_via(
    own: &CallSite,
    caller_call: u32,
    args: Vec<(crate::pool::apis::Role, ArgValue)>,
) -> CallSite {
    CallSite {
        rva: own.rva,
        api: own.api,
        reach: own.reach,
        function: own.function,
        via: Some(caller_call),
        args,
        tag_values: Vec::new(),
    }
}

/// Fills [`CallSite::tag_values`] of every site whose tag is read at run time from a writable
/// global. `loads` are the (global, initial value) pairs of the 4-byte loads from writable
/// globals the analysis made; the site's global is one of those loaded with its initial value (a
/// driver may keep the same tag in several), and the site gets every value any of them can hold
/// (`values_of`, the backend's search of the code for stores), or nothing when one of them is
/// written in a way that hides the value (`values_of` gives `None`).
pub(crate) fn fill_tag_values(
    sites: &mut [CallSite],
    mut loads: Vec<(u32, u32)>,
    mut values_of: impl FnMut(u32, u32) -> Option<Vec<u32>>,
) {
    loads.sort_unstable();
    loads.dedup();
    let mut known: std::collections::HashMap<u32, Option<Vec<u32>>> = Default::default();
    for site in sites.iter_mut() {
        let Some(initial) = site
            .arg(crate::pool::apis::Role::Tag)
            .filter(|v| v.how == Provenance::Runtime)
            .and_then(|v| v.value)
        else {
            continue;
        };
        let mut values = Vec::new();
        let mut settled = false;
        for &(global, _) in loads.iter().filter(|(_, v)| u64::from(*v) == initial) {
            let of = known
                .entry(global)
                .or_insert_with(|| values_of(global, initial as u32));
            match of {
                Some(v) => {
                    values.extend_from_slice(v);
                    settled = true;
                }
                None => {
                    settled = false;
                    break;
                }
            }
        }
        if settled {
            values.sort_unstable();
            values.dedup();
            site.tag_values = values;
        }
    }
}

/// Whether the image holds the absolute address of the global at `rva` as a pointer-sized
/// value where the code does not read it as an instruction operand: in any section that is not
/// executable (a pointer in initialised data, such as an `RTL_QUERY_REGISTRY_TABLE` whose
/// `EntryContext` lets the registry overwrite a tag), and on ARM64 in code too (a literal pool
/// entry loaded with `ldr x, =global`). The global may then be written through that pointer, so
/// the stores found in the code are not all it can hold. Bytes that only happen to equal the
/// address count as well: that errs toward "unknown". x86 code is searched by the decoder
/// instead, where an immediate or absolute displacement is an operand.
pub(crate) fn address_held_in_image(image: &Image, data: &[u8], rva: u32) -> bool {
    let va = image.image_base.wrapping_add(u64::from(rva));
    let ptr = image.machine.pointer_size() as usize;
    let bytes = va.to_le_bytes();
    let needle = &bytes[..ptr.min(8)];
    let arm64 = image.machine == crate::pe::Machine::Arm64;
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
