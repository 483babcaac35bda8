//! Tags of `FltAllocateContext`: the call passes a context type, and the tag is the `PoolTag`
//! of that type's entry in the `FLT_CONTEXT_REGISTRATION` array the minifilter registered with
//! `FltRegisterFilter` (fltkernel.h). The registration is constant data, found here by its
//! shape, and each site's tag is filled in from the entry for its constant context type.

use super::site::{ArgValue, CallSite, Provenance};
use crate::pe::Image;
use crate::pool::apis::Role;

/// `FLT_CONTEXT_END`: terminates the context registration array.
const CONTEXT_END: u16 = 0xFFFF;
/// The defined `FLT_CONTEXT_TYPE` bits (volume, instance, file, stream, stream handle,
/// transaction, section).
const CONTEXT_TYPES: u16 = 0x007F;
/// `FLT_REGISTRATION.Version` values of the Windows 7 to 11 headers (FLT_REGISTRATION_VERSION_0200 … 0203).
const VERSIONS: std::ops::RangeInclusive<u16> = 0x0200..=0x0203;

/// One `FLT_CONTEXT_REGISTRATION` entry: (ContextType, PoolTag).
type Entry = (u16, u32);

/// Fills the tag of every `FltAllocateContext` site whose context type is a constant with an
/// entry in the image's registration; with a single registered tag, every site gets it.
pub(super) fn resolve_context_tags(image: &Image, data: &[u8], sites: &mut [CallSite]) {
    if !sites.iter().any(|s| s.api == "FltAllocateContext") {
        return;
    }
    let entries = registration(image, data);
    if entries.is_empty() {
        return;
    }
    let mut tags: Vec<u32> = entries.iter().map(|e| e.1).collect();
    tags.sort();
    tags.dedup();
    for site in sites.iter_mut().filter(|s| s.api == "FltAllocateContext") {
        let by_type = site
            .arg(Role::ContextType)
            .and_then(|v| v.constant())
            .and_then(|t| entries.iter().find(|e| u64::from(e.0) == t))
            .map(|e| e.1);
        let tag = by_type.or_else(|| (tags.len() == 1).then(|| tags[0]));
        if let Some(tag) = tag {
            site.args.push((
                Role::Tag,
                ArgValue {
                    value: Some(u64::from(tag)),
                    how: Provenance::Global,
                },
            ));
        }
    }
}

/// The context registration array of the image's `FLT_REGISTRATION`, found by shape in its
/// non-executable sections: `Size` equal to the structure's size for the pointer width and a
/// known `Version`, then a `ContextRegistration` pointer into the image whose entries carry
/// only defined context types up to `FLT_CONTEXT_END`.
fn registration(image: &Image, data: &[u8]) -> Vec<Entry> {
    let ptr = image.machine.pointer_size();
    for s in image.sections.iter().filter(|s| !s.is_executable()) {
        let Some(bytes) = image.bytes_at(data, s.rva) else {
            continue;
        };
        let mut off = 0usize;
        while off + 8 + ptr as usize <= bytes.len() {
            let size = u16::from_le_bytes([bytes[off], bytes[off + 1]]);
            let version = u16::from_le_bytes([bytes[off + 2], bytes[off + 3]]);
            // Ten (version 0x0200) to thirteen (0x0203) pointers follow the 8-byte head.
            let shaped = (8 + 10 * ptr..=8 + 13 * ptr).contains(&u32::from(size))
                && (u32::from(size) - 8) % ptr == 0;
            if VERSIONS.contains(&version) && shaped {
                let at = s.rva + off as u32 + 8;
                if let Some(list) = read_ptr(image, data, at).and_then(|va| rva_of(image, va)) {
                    let entries = contexts(image, data, list);
                    if !entries.is_empty() {
                        return entries;
                    }
                }
            }
            off += ptr as usize;
        }
    }
    Vec::new()
}

/// The entries of a context registration array (56 bytes each on 64-bit, 28 on x86: type,
/// flags, cleanup callback, size, pool tag, allocate and free callbacks, reserved).
fn contexts(image: &Image, data: &[u8], mut rva: u32) -> Vec<Entry> {
    let ptr = image.machine.pointer_size();
    let (stride, tag_at) = if ptr == 8 { (56, 24) } else { (28, 12) };
    let mut out = Vec::new();
    for _ in 0..16 {
        let Some(head) = image.read_u32(data, rva) else {
            return Vec::new();
        };
        let ty = head as u16;
        if ty == CONTEXT_END {
            return out;
        }
        if ty == 0 || ty & !CONTEXT_TYPES != 0 {
            return Vec::new();
        }
        let Some(tag) = image.read_u32(data, rva + tag_at) else {
            return Vec::new();
        };
        out.push((ty, tag));
        rva += stride;
    }
    Vec::new()
}

fn read_ptr(image: &Image, data: &[u8], rva: u32) -> Option<u64> {
    if image.machine.pointer_size() == 8 {
        image.read_u64(data, rva)
    } else {
        image.read_u32(data, rva).map(u64::from)
    }
}

/// The RVA of an absolute pointer stored in the image (relocated to the header's base).
fn rva_of(image: &Image, va: u64) -> Option<u32> {
    let rva = va.checked_sub(image.image_base)?;
    (rva < u64::from(image.size_of_image)).then_some(rva as u32)
}
