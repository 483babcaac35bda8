//! `pooltag.txt`, the tag-to-owner list shipped with Debugging Tools for Windows (`triage\`)
//! and the WDK, which PoolMon `/g` and `!poolused` use for their description column.
//!
//! Format: one tag per line, `Tag - binary - description`, fields separated by a `-` with
//! blanks on both sides (any number of blanks or tabs, since the file aligns its columns):
//!
//! ```text
//! rem <PoolTag> - <binary-name> - <Description>
//! MmCm - nt!mm        - Calls made to MmAllocateContiguousMemory
//! Io   - nt!io        - general IO allocations
//! ```
//!
//! * Lines starting with `rem` (any case, followed by a blank or the end of the line) or `//`
//!   are comments; blank lines are skipped. `rem - x.sys - …` is the tag `rem `, not a comment.
//! * Tags shorter than four characters are padded with spaces (`Io` is `Io  `), as the kernel
//!   stores them; tags are case-sensitive (`Mm` and `MM` are different tags).
//! * The binary is `nt!<component>` for kernel components, a file name (`ntfs.sys`) for
//!   drivers, or `<unknown>`. A line with only one separator gives the binary if the text
//!   looks like one (`*.sys`, `*.dll`, `*.exe`, contains `!`), else the description.
//! * The same tag may be listed more than once (tags collide between vendors); every entry is
//!   kept, [`PoolTagDb::lookup`] returns the first and [`PoolTagDb::lookup_all`] all of them.
//! * Any other line is an error naming the file and line: a list that is misread would
//!   attribute pool to the wrong owner.

use std::collections::HashMap;
use std::path::Path;

use super::fields::{decode_text, parse_tag_text, shorten, PoolSourceError};

/// One `pooltag.txt` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolTagEntry {
    /// The tag as the kernel stores it.
    pub tag: u32,
    /// The owning binary: `nt!mm`, `ntfs.sys`, `<unknown>`, or empty if the line had none.
    pub binary: String,
    /// What the allocations are for.
    pub description: String,
}

/// All entries of a `pooltag.txt`, indexed by tag.
#[derive(Debug, Clone, Default)]
pub struct PoolTagDb {
    entries: Vec<PoolTagEntry>,
    by_tag: HashMap<u32, Vec<usize>>,
}

impl PoolTagDb {
    /// The first entry for `tag` in file order (exact, case-sensitive match).
    pub fn lookup(&self, tag: u32) -> Option<&PoolTagEntry> {
        self.by_tag
            .get(&tag)
            .and_then(|ix| ix.first())
            .map(|&i| &self.entries[i])
    }

    /// Every entry for `tag`, in file order; more than one means the tag is claimed by
    /// several owners.
    pub fn lookup_all(&self, tag: u32) -> Vec<&PoolTagEntry> {
        self.by_tag
            .get(&tag)
            .map(|ix| ix.iter().map(|&i| &self.entries[i]).collect())
            .unwrap_or_default()
    }

    /// All entries in file order.
    pub fn entries(&self) -> &[PoolTagEntry] {
        &self.entries
    }

    /// Number of entries (not of distinct tags).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if the file had no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn push(&mut self, entry: PoolTagEntry) {
        self.by_tag
            .entry(entry.tag)
            .or_default()
            .push(self.entries.len());
        self.entries.push(entry);
    }
}

/// True if the entry's owner is the kernel image itself: `nt!…` components (`nt!mm`,
/// `nt!io`, …) or an ntoskrnl file name. The HAL, win32k and `<unknown>` are not: the point
/// is to tell "the kernel allocated this on a driver's behalf or for itself" from "a driver
/// did", and an unknown owner must not be assumed to be the kernel.
pub fn owner_is_kernel(entry: &PoolTagEntry) -> bool {
    let binary = entry.binary.trim().to_ascii_lowercase();
    binary == "nt"
        || binary.starts_with("nt!")
        || matches!(
            binary.as_str(),
            "ntoskrnl.exe" | "ntkrnlpa.exe" | "ntkrnlmp.exe" | "ntkrpamp.exe"
        )
}

impl PoolTagEntry {
    /// See [`owner_is_kernel`].
    pub fn owner_is_kernel(&self) -> bool {
        owner_is_kernel(self)
    }
}

/// Reads a `pooltag.txt` (format in the module docs).
pub fn load_pooltag_file(path: &Path) -> Result<PoolTagDb, PoolSourceError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| PoolSourceError::Io {
        path: name.clone(),
        source,
    })?;
    parse_pooltag_text(&decode_text(&bytes), &name)
}

/// Byte range of the first ` - ` separator (a `-` with whitespace on both sides) in `s`.
fn separator(s: &str) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    (1..b.len()).find_map(|i| {
        let after_ok = i + 1 == b.len() || b[i + 1].is_ascii_whitespace();
        (b[i] == b'-' && b[i - 1].is_ascii_whitespace() && after_ok).then_some((i, i + 1))
    })
}

fn looks_like_binary(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    !l.contains(char::is_whitespace)
        && (l.ends_with(".sys") || l.ends_with(".dll") || l.ends_with(".exe") || l.contains('!'))
}

fn is_comment(trimmed: &str) -> bool {
    if trimmed.starts_with("//") {
        return true;
    }
    let Some(head) = trimmed.get(..3) else {
        return false;
    };
    if !head.eq_ignore_ascii_case("rem") {
        return false;
    }
    let rest = &trimmed[3..];
    if rest.is_empty() {
        return true;
    }
    // `rem ` followed by ` - ` is an entry for the tag `rem `.
    rest.starts_with(char::is_whitespace) && !rest.trim_start().starts_with("- ")
}

/// Parses `pooltag.txt` text already in memory; `name` is used in messages.
pub fn parse_pooltag_text(text: &str, name: &str) -> Result<PoolTagDb, PoolSourceError> {
    let mut db = PoolTagDb::default();
    let mut any_line = false;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        any_line = true;
        if is_comment(trimmed) {
            continue;
        }
        let fail = |found: String| PoolSourceError::BadLine {
            path: name.to_string(),
            line: index + 1,
            found,
            expected: "`Tag - binary - description` or a comment (`rem`, `//`)".to_string(),
        };
        let (start, end) = separator(trimmed)
            .ok_or_else(|| fail(format!("`{}` has no ` - ` separator", shorten(trimmed))))?;
        let tag_text = trimmed[..start].trim();
        let tag = parse_tag_text(tag_text)
            .ok_or_else(|| fail(format!("tag `{}` is not 1-4 characters", shorten(tag_text))))?;
        let rest = trimmed[end..].trim();
        let (binary, description) = match separator(rest) {
            Some((s, e)) => (rest[..s].trim(), rest[e..].trim()),
            None if looks_like_binary(rest) => (rest, ""),
            None => ("", rest),
        };
        db.push(PoolTagEntry {
            tag,
            binary: binary.to_string(),
            description: description.to_string(),
        });
    }
    if !any_line {
        return Err(PoolSourceError::Empty {
            path: name.to_string(),
            why: "the file is empty".to_string(),
        });
    }
    Ok(db)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::TAG_MMCM;

    #[test]
    fn entries_comments_and_padding() {
        let text = "rem\nrem Pooltag.txt\nREM <PoolTag> - <binary-name> - <Description>\n// note\n\nMmCm - nt!mm        - Calls made to MmAllocateContiguousMemory\nIo   - nt!io\t- general IO allocations - see io.h\nrem  - remote.sys - a tag called rem\nXy   - only a description here\nMM   - upper.sys - case matters\n";
        let db = parse_pooltag_text(text, "p.txt").unwrap();
        assert_eq!(db.len(), 5);
        let mmcm = db.lookup(TAG_MMCM).unwrap();
        assert_eq!(mmcm.binary, "nt!mm");
        assert_eq!(mmcm.description, "Calls made to MmAllocateContiguousMemory");
        assert!(owner_is_kernel(mmcm));
        let io = db.lookup(parse_tag_text("Io").unwrap()).unwrap();
        assert_eq!(io.description, "general IO allocations - see io.h");
        assert_eq!(
            db.lookup(parse_tag_text("rem").unwrap()).unwrap().binary,
            "remote.sys"
        );
        let xy = db.lookup(parse_tag_text("Xy").unwrap()).unwrap();
        assert_eq!(
            (xy.binary.as_str(), xy.description.as_str()),
            ("", "only a description here")
        );
        assert!(db.lookup(parse_tag_text("Mm").unwrap()).is_none());
        assert!(!owner_is_kernel(
            db.lookup(parse_tag_text("MM").unwrap()).unwrap()
        ));
    }

    #[test]
    fn kernel_owners() {
        let e = |b: &str| PoolTagEntry {
            tag: 0,
            binary: b.to_string(),
            description: String::new(),
        };
        assert!(owner_is_kernel(&e("nt!io")));
        assert!(owner_is_kernel(&e("ntoskrnl.exe")));
        assert!(!owner_is_kernel(&e("<unknown>")));
        assert!(!owner_is_kernel(&e("hal.dll")));
        assert!(!owner_is_kernel(&e("ntfs.sys")));
        assert!(!owner_is_kernel(&e("")));
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let e = parse_pooltag_text("rem x\nToolong - a.sys - b\n", "p.txt").unwrap_err();
        assert_eq!(
            e.to_string(),
            "p.txt:2: tag `Toolong` is not 1-4 characters; expected `Tag - binary - description` or a comment (`rem`, `//`)"
        );
        let e = parse_pooltag_text("Abcd a.sys\n", "p.txt").unwrap_err();
        assert!(e
            .to_string()
            .starts_with("p.txt:1: `Abcd a.sys` has no ` - ` separator;"));
        assert!(parse_pooltag_text("\n", "p.txt").is_err());
    }
}
