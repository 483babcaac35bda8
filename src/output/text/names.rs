//! Values by their WDK names, as a driver's source spells them: `POOL_TYPE` values and their
//! modifier bits, `POOL_FLAGS` bits, and pool tags as PoolMon shows them.
//!
//! Source: wdm.h 10.0.22621 as tabulated in `/work/shared/reference/pool-apis-and-rules.md`
//! §3 (POOL_TYPE values, the modifier bits OR-ed into a pool type, POOL_FLAGS bits). Every name
//! is followed by the value, so nothing is lost when a value has no name (shown in hex alone)
//! or carries bits the tables do not know (left over in the hex).

/// Named `POOL_TYPE` values (wdm.h). The session types 32–38 are the base types plus the
/// session bit 0x20; 0x200 is `POOL_NX_ALLOCATION` folded into the named NX types.
const POOL_TYPES: &[(u64, &str)] = &[
    (0, "NonPagedPool"),
    (1, "PagedPool"),
    (2, "NonPagedPoolMustSucceed"),
    (3, "DontUseThisType"),
    (4, "NonPagedPoolCacheAligned"),
    (5, "PagedPoolCacheAligned"),
    (6, "NonPagedPoolCacheAlignedMustS"),
    (7, "MaxPoolType"),
    (32, "NonPagedPoolSession"),
    (33, "PagedPoolSession"),
    (34, "NonPagedPoolMustSucceedSession"),
    (35, "DontUseThisTypeSession"),
    (36, "NonPagedPoolCacheAlignedSession"),
    (37, "PagedPoolCacheAlignedSession"),
    (38, "NonPagedPoolCacheAlignedMustSSession"),
    (0x200, "NonPagedPoolNx"),
    (0x204, "NonPagedPoolNxCacheAligned"),
    (0x220, "NonPagedPoolSessionNx"),
];

/// Modifier bits OR-ed into a `POOL_TYPE` (wdm.h), also the `Flags` of a lookaside list.
const POOL_TYPE_BITS: &[(u64, &str)] = &[
    (0x8, "POOL_QUOTA_FAIL_INSTEAD_OF_RAISE"),
    (0x10, "POOL_RAISE_IF_ALLOCATION_FAILURE"),
    (0x100, "POOL_COLD_ALLOCATION"),
    (0x200, "POOL_NX_ALLOCATION"),
    (0x400, "POOL_ZERO_ALLOCATION"),
];

/// `POOL_FLAGS` bits of `ExAllocatePool2`/`ExAllocatePool3` (wdm.h; the low 32 bits are
/// required, the high 32 optional).
const POOL_FLAGS: &[(u64, &str)] = &[
    (0x1, "POOL_FLAG_USE_QUOTA"),
    (0x2, "POOL_FLAG_UNINITIALIZED"),
    (0x4, "POOL_FLAG_SESSION"),
    (0x8, "POOL_FLAG_CACHE_ALIGNED"),
    (0x10, "POOL_FLAG_RESERVED1"),
    (0x20, "POOL_FLAG_RAISE_ON_FAILURE"),
    (0x40, "POOL_FLAG_NON_PAGED"),
    (0x80, "POOL_FLAG_NON_PAGED_EXECUTE"),
    (0x100, "POOL_FLAG_PAGED"),
    (0x200, "POOL_FLAG_RESERVED2"),
    (0x400, "POOL_FLAG_RESERVED3"),
    (0x1_0000_0000, "POOL_FLAG_SPECIAL_POOL"),
];

/// Names of `bits` from `table`, and the bits no entry names.
fn split_bits(bits: u64, table: &[(u64, &'static str)]) -> (Vec<&'static str>, u64) {
    let mut names = Vec::new();
    let mut rest = bits;
    for &(bit, name) in table {
        if rest & bit != 0 {
            names.push(name);
            rest &= !bit;
        }
    }
    (names, rest)
}

/// `names | 0xrest (0xvalue)`, or the hex alone when nothing is named.
fn with_value(mut names: Vec<String>, rest: u64, value: u64) -> String {
    if names.is_empty() {
        return format!("0x{value:x}");
    }
    if rest != 0 {
        names.push(format!("0x{rest:x}"));
    }
    format!("{} (0x{value:x})", names.join(" | "))
}

/// A `POOL_TYPE` by name: `NonPagedPoolNx (0x200)`, `PagedPool | POOL_QUOTA_FAIL_INSTEAD_OF_RAISE
/// (0x9)`; a value whose base is no named type in hex (`0x1f`).
pub fn pool_type(value: u64) -> String {
    if let Some((_, name)) = POOL_TYPES.iter().find(|(v, _)| *v == value) {
        return format!("{name} (0x{value:x})");
    }
    // The named type with the most bits in the value, then the modifiers over it.
    let modifiers: u64 = POOL_TYPE_BITS.iter().map(|(b, _)| b).sum();
    let base = POOL_TYPES
        .iter()
        .filter(|(v, _)| value & v == *v && (value & !v) & !modifiers == 0)
        .max_by_key(|(v, _)| v.count_ones());
    match base {
        Some(&(v, name)) => {
            let (bits, rest) = split_bits(value & !v, POOL_TYPE_BITS);
            let mut names = vec![name.to_string()];
            names.extend(bits.iter().map(|s| s.to_string()));
            with_value(names, rest, value)
        }
        None => format!("0x{value:x}"),
    }
}

/// `POOL_FLAGS` by name: `POOL_FLAG_NON_PAGED (0x40)`; `0x0` for no flags (an invalid call).
pub fn pool_flags(value: u64) -> String {
    let (names, rest) = split_bits(value, POOL_FLAGS);
    with_value(names.iter().map(|s| s.to_string()).collect(), rest, value)
}

/// The `Flags` of a lookaside list (`POOL_NX_ALLOCATION (0x200)`), by the pool type modifier
/// names.
pub fn lookaside_flags(value: u64) -> String {
    let (names, rest) = split_bits(value, POOL_TYPE_BITS);
    with_value(names.iter().map(|s| s.to_string()).collect(), rest, value)
}

/// A tag as PoolMon shows it: its four little-endian bytes as characters in quotes; when a
/// byte is outside printable ASCII (0x20–0x7E) it is shown as `.` and the tag's value follows
/// in hex, so that `'.1..' 0x00003184` reads one way only.
pub fn tag(tag: u32) -> String {
    let bytes = tag.to_le_bytes();
    let printable = |b: &u8| (0x20..=0x7e).contains(b);
    let shown: String = bytes
        .iter()
        .map(|b| if printable(b) { *b as char } else { '.' })
        .collect();
    if bytes.iter().all(printable) {
        format!("'{shown}'")
    } else {
        format!("'{shown}' 0x{tag:08x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_types_by_name() {
        assert_eq!(pool_type(0), "NonPagedPool (0x0)");
        assert_eq!(pool_type(0x200), "NonPagedPoolNx (0x200)");
        assert_eq!(
            pool_type(9),
            "PagedPool | POOL_QUOTA_FAIL_INSTEAD_OF_RAISE (0x9)"
        );
        assert_eq!(
            pool_type(0x600),
            "NonPagedPoolNx | POOL_ZERO_ALLOCATION (0x600)"
        );
        assert_eq!(pool_type(0x401), "PagedPool | POOL_ZERO_ALLOCATION (0x401)");
        assert_eq!(pool_type(0x8000), "0x8000");
    }

    #[test]
    fn flags_by_name() {
        assert_eq!(pool_flags(0x40), "POOL_FLAG_NON_PAGED (0x40)");
        assert_eq!(
            pool_flags(0x102),
            "POOL_FLAG_UNINITIALIZED | POOL_FLAG_PAGED (0x102)"
        );
        assert_eq!(pool_flags(0), "0x0");
        assert_eq!(
            pool_flags(0x8000_0040),
            "POOL_FLAG_NON_PAGED | 0x80000000 (0x80000040)"
        );
        assert_eq!(lookaside_flags(0x200), "POOL_NX_ALLOCATION (0x200)");
        assert_eq!(lookaside_flags(0), "0x0");
    }

    #[test]
    fn tags_as_poolmon_shows_them() {
        assert_eq!(tag(u32::from_le_bytes(*b"Pool")), "'Pool'");
        assert_eq!(tag(0x0000_3184), "'.1..' 0x00003184");
        assert_eq!(tag(0), "'....' 0x00000000");
        assert_eq!(tag(u32::from_le_bytes(*b"Ddk ")), "'Ddk '");
    }
}
