//! Pool-usage inputs: turns a pasted `!poolused` listing, a PoolMon snapshot or screen, or the
//! documented CSV/JSON form into one [`PoolSnapshot`], and reads `pooltag.txt` into a
//! [`PoolTagDb`] so a tag can be attributed to its owner.
//!
//! [`load_pool_file`] detects the format from the text itself (never from the file name), so a
//! debugger log saved as `.log` or a PoolMon screen pasted into `.txt` both work.
//!
//! # Supported pool-usage formats
//!
//! ## WinDbg `!poolused` (kdexts)
//!
//! Any sort flag (`!poolused`, `!poolused 2`, `!poolused 4`, `!poolused /t2 2`, …), pasted
//! with or without the debugger prompt, the `....` progress line, kd cache messages, the
//! `Sorting by …` and `Pool Used:` lines and the closing `TOTAL` line. Rows look like
//!
//! ```text
//!  Tag     Allocs         Used     Allocs         Used
//!  None    246479     50827424          0            0<TAB>call to ExAllocatePool
//! ```
//!
//! (`<TAB>` is a tab character). The description may follow a tab or spaces, be glued to the
//! last number (older kdexts: `0UNKNOWN pooltag 'AGP ', please update pooltag.txt`; the
//! header's column ends tell where the number stops), be truncated, be `(null)`, or be absent.
//! Numbers are plain `%ld` output, without thousands separators. Column widths differ between
//! debugger versions and between x86 and x64 targets and wide values overflow them, so rows
//! are split on whitespace, not on fixed columns; the tag itself is read from columns 1–4 when
//! the row keeps its leading space, so tags with blanks (`Io  `, `a b `) survive. The verbose
//! form (flag bit 0, columns `Allocs Frees Diff Used` per pool) is accepted too. Everything
//! outside a table (other commands, `!vm`, cache messages) is ignored; a kd prompt or `TOTAL`
//! ends a table, and a line inside a table that is not a row is an error.
//!
//! **What "Allocs" means.** Without the verbose flag, kdexts prints `Allocs − Frees` of the
//! pool tracker (the documentation: "the number of currently outstanding allocations"). Those
//! rows are stored as `allocs = outstanding, frees = 0`, so [`PoolCounters::live`] is exact
//! but `allocs` is *not* the lifetime count. Verbose rows carry the real `allocs` and `frees`.
//! A negative outstanding count (torn counters in a live session) is stored as 0.
//!
//! Non-printable tag bytes are shown by kdexts as `.` and cannot be recovered; they are kept as
//! `.`. Session-pool listings (flag bit 3, `!poolused 8`) are rejected: they describe a
//! different pool than the system-wide figures drvaudit ranks.
//!
//! ## PoolMon
//!
//! * the `poolmon /n` (poolsnap) log: header ` Tag  Type     Allocs     Frees      Diff   Bytes
//!   Per Alloc`, optional `!Key=Value` lines (poolsnap `-t`), then one row per tag and pool:
//!   ` None Nonp    3118902   2872423    246479 50827424        206`;
//! * the interactive screen as copied from the console, with its ` Memory: … Avail: …
//!   PageFlts: …` and ` Commit: … Pool N: … P: …` lines, `System pool information`, the
//!   change columns `(   0)`, optional `Total Nonp`/`Total Paged` lines (`/e`) and the
//!   optional `Mapped_Driver` column (`/g`, `/c`).
//!
//! `Type` is `Nonp` (NonPagedPool) or `Paged`; `Allocs` and `Frees` are lifetime counts,
//! `Diff = Allocs − Frees` and `Bytes` is the bytes in use. A row whose `Diff` is not
//! `Allocs − Frees` (also allowing 32-bit wrap-around) is rejected as misaligned.
//!
//! ## CSV (drvaudit's own export form)
//!
//! ```text
//! tag,nonpaged_allocs,nonpaged_frees,nonpaged_bytes,paged_allocs,paged_frees,paged_bytes
//! None,3118902,2872423,50827424,0,0,0
//! 0x6D436D4D,2207,1009,18462512,0,0,0
//! "Io  ",4211,4000,61344,310,298,1536
//! ```
//!
//! * The header must be exactly this (case and blanks around fields ignored).
//! * `tag` is either the tag as PoolMon shows it (1–4 characters, shorter tags are padded with
//!   spaces, `\xNN` escapes for other bytes) or the u32 the kernel stores written as `0x`
//!   followed by 3–8 hex digits (`0x656E6F4E` is `None`; write `0x00000041`, not `0x41`, which
//!   is the 4-character tag `0x41`). Quote a tag that has leading blanks, a comma, a quote or
//!   starts with `#`; `""` inside quotes is a quote.
//! * Counts are unsigned decimal integers without separators; `*_allocs` and `*_frees` are
//!   lifetime counts (if only outstanding allocations are known, put them in `*_allocs` and 0
//!   in `*_frees`).
//! * Blank lines and lines starting with `#` are ignored.
//! * [`snapshot_to_csv`] writes this form (tags that need quoting are written as `0x…`).
//!
//! ## JSON
//!
//! Either an array of tag objects or an object `{"source": "...", "tags": [...]}` (a serialised
//! [`PoolSnapshot`]; `source` is informational). A tag object is
//!
//! ```json
//! {"tag": "None", "nonpaged": {"allocs": 3118902, "frees": 2872423, "bytes": 50827424},
//!  "paged": {"allocs": 0, "frees": 0, "bytes": 0}}
//! ```
//!
//! `tag` is a string in the CSV tag syntax or the u32 as a JSON number; `nonpaged`, `paged`
//! and each of their fields may be omitted (0). Unknown fields are errors, so a typo is not
//! silently read as 0.
//!
//! # Merging rules
//!
//! * Within one listing (one `!poolused` table, one PoolMon snapshot or screen, one CSV or
//!   JSON file), rows of the same tag and pool are summed with [`PoolCounters::add`], as the
//!   pool model does for per-processor tables.
//! * A file may hold several listings (a debugger log with `!poolused 2` then `!poolused 4`,
//!   a poolsnap log that PoolMon appends to, several copied PoolMon screens). They describe the
//!   same machine at different times or in different orders, so they are **not** summed: for
//!   each tag and pool the last listing that shows it wins. This makes `!poolused 2` +
//!   `!poolused 4` give the figures once, and a nonpaged-only screen plus a paged-only screen
//!   (PoolMon `p` key) give their union.
//!
//! Text that is none of the above, or a line that breaks the detected format, is an error
//! naming the file, the 1-based line and what was expected there; empty input and input
//! without a single tag row are errors naming the file.
//!
//! # pooltag.txt
//!
//! See [`load_pooltag_file`]: lines `Tag - binary - description`, comments starting with `rem`
//! or `//`.

pub mod pooltag;

mod fields;
mod poolmon;
mod poolused;
mod tabular;

use std::fmt;
use std::path::Path;

use crate::pool::PoolSnapshot;

pub use tabular::{snapshot_to_csv, CSV_COLUMNS};

use fields::shorten;
pub use fields::{decode_text, parse_tag_field, parse_tag_text, PoolSourceError};
pub use pooltag::{
    load_pooltag_file, owner_is_kernel, parse_pooltag_text, PoolTagDb, PoolTagEntry,
};

/// The input formats [`load_pool_file`] recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolFileFormat {
    /// WinDbg `!poolused` output.
    Poolused,
    /// PoolMon `/n` snapshot log (poolsnap format).
    PoolmonLog,
    /// PoolMon interactive screen text.
    PoolmonScreen,
    /// drvaudit's documented CSV form.
    Csv,
    /// drvaudit's documented JSON form.
    Json,
}

impl fmt::Display for PoolFileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PoolFileFormat::Poolused => "!poolused listing",
            PoolFileFormat::PoolmonLog => "PoolMon /n log",
            PoolFileFormat::PoolmonScreen => "PoolMon screen",
            PoolFileFormat::Csv => "pool usage CSV",
            PoolFileFormat::Json => "pool usage JSON",
        })
    }
}

/// What an unrecognised file should have looked like (used in the error message).
const EXPECTED_ANY: &str =
    "a `!poolused` listing (header `Tag Allocs Used Allocs Used`), a PoolMon \
     /n log or screen (header `Tag Type Allocs Frees Diff Bytes Per Alloc`), the CSV header \
     `tag,nonpaged_allocs,nonpaged_frees,nonpaged_bytes,paged_allocs,paged_frees,paged_bytes`, \
     or JSON";

/// Reads a pool-usage file in any supported format (see the module docs) into one snapshot.
/// The snapshot's `source` is the path followed by the detected format.
pub fn load_pool_file(path: &Path) -> Result<PoolSnapshot, PoolSourceError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| PoolSourceError::Io {
        path: name.clone(),
        source,
    })?;
    parse_pool_bytes(&bytes, &name)
}

/// Parses the raw bytes of a pool usage file already in memory (any text encoding
/// [`decode_text`] accepts); `name` is used in error messages.
pub fn parse_pool_bytes(bytes: &[u8], name: &str) -> Result<PoolSnapshot, PoolSourceError> {
    let text = decode_text(bytes);
    parse_pool_text(&text, name).map(|(_, snapshot)| snapshot)
}

/// Parses pool-usage text already in memory; `name` is used in messages and in `source`.
/// Returns the detected format with the snapshot.
pub fn parse_pool_text(
    text: &str,
    name: &str,
) -> Result<(PoolFileFormat, PoolSnapshot), PoolSourceError> {
    let format = detect_format(text, name)?;
    Ok((format, parse_pool_text_as(format, text, name)?))
}

/// Parses pool-usage text in a format already known (no detection): what [`parse_pool_text`]
/// does once it has decided.
pub fn parse_pool_text_as(
    format: PoolFileFormat,
    text: &str,
    name: &str,
) -> Result<PoolSnapshot, PoolSourceError> {
    let tags = match format {
        PoolFileFormat::Poolused => poolused::parse(text, name)?,
        PoolFileFormat::PoolmonLog | PoolFileFormat::PoolmonScreen => poolmon::parse(text, name)?,
        PoolFileFormat::Csv => tabular::parse_csv(text, name)?,
        PoolFileFormat::Json => tabular::parse_json(text, name)?,
    };
    if tags.is_empty() {
        return Err(PoolSourceError::Empty {
            path: name.to_string(),
            why: format!("the {format} has no pool tag rows"),
        });
    }
    Ok(PoolSnapshot {
        source: format!("{name} ({format})"),
        tags,
    })
}

/// Decides the format from the first line that says which it is. Debugger logs start with
/// arbitrary noise (other commands, cache messages), so lines that decide nothing are skipped.
pub fn detect_format(text: &str, name: &str) -> Result<PoolFileFormat, PoolSourceError> {
    let first = text
        .lines()
        .enumerate()
        // `#` lines are CSV comments; no other format starts with one.
        .find(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .ok_or_else(|| PoolSourceError::Empty {
            path: name.to_string(),
            why: "the file is empty".to_string(),
        })?;
    let trimmed = first.1.trim();
    if looks_like_json(text) {
        return Ok(PoolFileFormat::Json);
    }
    if trimmed.to_ascii_lowercase().starts_with("tag,") {
        return Ok(PoolFileFormat::Csv);
    }
    let mut saw_screen_header = false;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first().is_some_and(|w| w.starts_with("Memory:")) && line.contains("Avail:") {
            saw_screen_header = true;
        }
        if poolmon::is_column_header(&words) {
            return Ok(if saw_screen_header || line.contains("Mapped_Driver") {
                PoolFileFormat::PoolmonScreen
            } else {
                PoolFileFormat::PoolmonLog
            });
        }
        if poolused::is_column_header(&words).is_some()
            || line.trim_start().starts_with("Sorting by")
        {
            return Ok(PoolFileFormat::Poolused);
        }
    }
    Err(PoolSourceError::BadLine {
        path: name.to_string(),
        line: first.0 + 1,
        found: format!("`{}` starts no known pool usage format", shorten(trimmed)),
        expected: EXPECTED_ANY.to_string(),
    })
}

/// JSON starts with `[` or `{` followed by what a pool-usage document can hold next; a
/// debugger log that happens to start with `{GUID}.sys` is not JSON.
fn looks_like_json(text: &str) -> bool {
    let mut chars = text.trim_start().chars();
    let open = chars.next();
    let next = chars.find(|c| !c.is_whitespace());
    match open {
        Some('[') => matches!(next, Some('{' | ']')),
        Some('{') => matches!(next, Some('"' | '}')),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::fields::{split_tag, Collector, Pool};
    use super::*;
    use crate::pool::PoolCounters;
    use crate::pool::{TAG_MMCM, TAG_NONE};

    #[test]
    fn tag_fields_accept_display_escapes_and_hex() {
        assert_eq!(parse_tag_field("None"), Some(TAG_NONE));
        assert_eq!(parse_tag_field("0x656E6F4E"), Some(TAG_NONE));
        assert_eq!(parse_tag_field("0x6d436d4d"), Some(TAG_MMCM));
        assert_eq!(parse_tag_field("Io"), Some(0x2020_6F49));
        // Two hex digits stay a 4-character tag, as documented.
        assert_eq!(parse_tag_field("0x41"), parse_tag_text("0x41"));
        assert_eq!(parse_tag_field("0x00000041"), Some(0x41));
        assert_eq!(parse_tag_field("\\x841\\x00\\x00"), Some(0x3184));
        assert_eq!(parse_tag_field("\u{84}1"), Some(0x2020_3184));
        assert_eq!(parse_tag_field("toolong"), None);
        assert_eq!(parse_tag_field(""), None);
        // Case-sensitive: `none` is a different tag.
        assert_ne!(parse_tag_field("none"), Some(TAG_NONE));
    }

    #[test]
    fn text_decoding_handles_boms_and_raw_bytes() {
        assert_eq!(decode_text(b"\xEF\xBB\xBFabc"), "abc");
        assert_eq!(decode_text(&[0xFF, 0xFE, b'a', 0, b'b', 0]), "ab");
        assert_eq!(decode_text(b"x\x84y"), "x\u{84}y");
    }

    #[test]
    fn later_listings_replace_earlier_ones_per_tag_and_pool() {
        let mut c = Collector::default();
        let n = |b| PoolCounters {
            allocs: 1,
            frees: 0,
            bytes: b,
        };
        c.add(TAG_NONE, Pool::NonPaged, n(10));
        c.add(TAG_NONE, Pool::NonPaged, n(5));
        c.add(TAG_MMCM, Pool::Paged, n(7));
        c.end_listing();
        c.add(TAG_NONE, Pool::NonPaged, n(100));
        let tags = c.finish();
        assert_eq!(tags.len(), 2);
        let none = tags.iter().find(|t| t.tag == TAG_NONE).unwrap();
        assert_eq!(none.nonpaged.bytes, 100);
        let mmcm = tags.iter().find(|t| t.tag == TAG_MMCM).unwrap();
        assert_eq!(mmcm.paged.bytes, 7);
    }

    #[test]
    fn rows_split_into_tag_and_rest() {
        assert_eq!(
            split_tag(" Io         5", true).map(|(t, r)| (t, r.trim().to_string())),
            Some(("Io  ".to_string(), "5".to_string()))
        );
        assert_eq!(split_tag("None 5", true), None);
        assert_eq!(
            split_tag("None 5", false).map(|(t, _)| t),
            Some("None".to_string())
        );
    }

    #[test]
    fn json_is_recognised_by_its_start() {
        assert!(looks_like_json("[ {\"tag\": 1} ]"));
        assert!(looks_like_json("\n{\n  \"tags\": []}"));
        assert!(looks_like_json("[]"));
        assert!(!looks_like_json("{4D36E96A-E325}.sys loaded at f50b3000"));
        assert!(!looks_like_json("[1] kd> x"));
    }

    #[test]
    fn empty_and_unknown_text_are_errors() {
        let e = parse_pool_text("  \n\n", "e.txt").unwrap_err();
        assert_eq!(e.to_string(), "e.txt: the file is empty");
        let e = parse_pool_text("\nhello world\n", "u.txt").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "u.txt:2: `hello world` starts no known pool usage format; expected {EXPECTED_ANY}"
            )
        );
    }
}
