//! Bounds-checked reads of dump data. Every read of file or memory data goes through these
//! (the integer readers are [`crate::util::le`]'s), so that a short or hostile buffer yields
//! `None` rather than a panic.

pub(crate) use crate::util::le::{u16_at, u32_at, u64_at};

/// A pointer-sized value (4 or 8 bytes).
pub(crate) fn ptr_at(b: &[u8], off: usize, size: usize) -> Option<u64> {
    if size == 4 {
        u32_at(b, off).map(u64::from)
    } else {
        u64_at(b, off)
    }
}

/// A NUL-terminated ASCII string of at most `max` bytes.
pub(crate) fn cstr_at(b: &[u8], off: usize, max: usize) -> Option<String> {
    let tail = b.get(off..)?;
    let tail = &tail[..tail.len().min(max)];
    let end = tail.iter().position(|&c| c == 0)?;
    std::str::from_utf8(&tail[..end]).ok().map(str::to_string)
}

/// The `PAGE` fill pattern of unused header fields (crash-dumps.md §0).
pub(crate) const PAGE_FILL: u32 = 0x4547_4150;

/// True when a header field still holds the `PAGE` fill pattern.
pub(crate) fn unset(v: u64) -> bool {
    v as u32 == PAGE_FILL && (v >> 32 == 0 || v >> 32 == u64::from(PAGE_FILL))
}
