//! Observed pool usage: how many allocations and bytes each pool tag holds.
//!
//! Every source of evidence — the pool tracker table read from a crash dump, a pasted
//! `!poolused` listing, a PoolMon log, or the documented CSV/JSON form — is turned into one
//! [`PoolSnapshot`], so ranking never needs to know where the figures came from.

pub mod apis;
pub mod tally;

use serde::{Deserialize, Serialize};

/// Counters for one pool (NonPaged or Paged) of one tag, as the kernel's pool tracker keeps them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolCounters {
    /// Number of allocations ever made with this tag.
    pub allocs: u64,
    /// Number of frees ever made with this tag.
    pub frees: u64,
    /// Bytes currently held (the tracker's running total, not a sum of alloc sizes).
    pub bytes: u64,
}

impl PoolCounters {
    /// Allocations still outstanding (`allocs - frees`, saturating: torn counters in a live
    /// dump can make frees exceed allocs for a moment).
    pub fn live(&self) -> u64 {
        self.allocs.saturating_sub(self.frees)
    }

    /// Adds another set of counters (used to merge per-processor tables and duplicate rows).
    pub fn add(&mut self, other: &PoolCounters) {
        self.allocs = self.allocs.saturating_add(other.allocs);
        self.frees = self.frees.saturating_add(other.frees);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

/// Usage of one pool tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagUsage {
    /// The tag as the u32 the kernel stores (its little-endian bytes are what PoolMon shows).
    pub tag: u32,
    /// NonPagedPool counters.
    pub nonpaged: PoolCounters,
    /// PagedPool counters.
    pub paged: PoolCounters,
}

/// All tags observed in one source (a dump, a `!poolused` paste, a PoolMon log, …).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSnapshot {
    /// Where the figures came from, for messages (a path, or a dump plus "pool tracker table").
    pub source: String,
    /// One entry per tag; a tag appears at most once (duplicates are merged with [`PoolCounters::add`]).
    pub tags: Vec<TagUsage>,
}

/// Renders a tag the way PoolMon and `!poolused` show it: the little-endian bytes of the u32,
/// printable ASCII kept, anything else escaped as `\xNN` so the text stays one token.
pub fn tag_display(tag: u32) -> String {
    let mut s = String::with_capacity(4);
    for b in tag.to_le_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'\\' {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

/// Parses a tag as shown by PoolMon (`"Bone"`, `"Ddk "`, with `\xNN` escapes) back to its u32.
/// A tag shorter than four characters is padded with spaces, as `!poolused` prints `Ddk`.
pub fn tag_from_display(text: &str) -> Option<u32> {
    let mut bytes = Vec::with_capacity(4);
    let raw = text.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' && raw.get(i + 1) == Some(&b'x') && i + 4 <= raw.len() {
            let hex = std::str::from_utf8(&raw[i + 2..i + 4]).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            i += 4;
        } else {
            bytes.push(raw[i]);
            i += 1;
        }
    }
    if bytes.is_empty() || bytes.len() > 4 {
        return None;
    }
    bytes.resize(4, b' ');
    Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// The tag the kernel charges untagged `ExAllocatePool`/`ExAllocatePoolWithQuota` calls to
/// (`'enoN'`, shown as `None`; ReactOS `TAG_NONE`, MicrosoftDocs "enable pool tagging").
pub const TAG_NONE: u32 = 0x656E_6F4E;
/// The tag the kernel uses for `MmAllocateContiguousMemory*` (pooltag.txt: "nt!mm - Calls made to
/// MmAllocateContiguousMemory").
pub const TAG_MMCM: u32 = 0x6D43_6D4D;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_through_their_display_form() {
        assert_eq!(tag_display(0x656E6F42), "Bone");
        assert_eq!(tag_display(TAG_NONE), "None");
        assert_eq!(tag_display(0x206B6444), "Ddk ");
        assert_eq!(tag_display(0x3184), "\\x841\\x00\\x00");
        for t in [0x656E6F42u32, 0x3184, TAG_MMCM, 0x206B6444, 0x5C5C5C5C] {
            assert_eq!(tag_from_display(&tag_display(t)), Some(t));
        }
        assert_eq!(tag_from_display("Ddk"), Some(0x206B6444));
        assert_eq!(tag_from_display("toolong"), None);
    }
}
