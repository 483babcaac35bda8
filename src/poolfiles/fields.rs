//! What every pool-usage format shares: the error type, decoding file bytes into text, tag and
//! count fields, and the collector that merges rows into a snapshot.

use std::collections::BTreeMap;

use crate::pool::{tag_display, PoolCounters, TagUsage};

/// Why a pool-usage or pooltag file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PoolSourceError {
    /// The file could not be read at all.
    #[error("{path}: cannot read the file: {source}")]
    Io {
        /// The file, as given.
        path: String,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The file has no content, or no tag rows where some were expected.
    #[error("{path}: {why}")]
    Empty {
        /// The file, as given.
        path: String,
        /// What was missing.
        why: String,
    },
    /// A line does not fit the detected format (or no format could be detected at it).
    #[error("{path}:{line}: {found}; expected {expected}")]
    BadLine {
        /// The file, as given.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What was wrong with the line.
        found: String,
        /// What the parser was looking for there.
        expected: String,
    },
}

/// Turns file bytes into text. PowerShell redirection writes UTF-16 with a BOM and poolsnap
/// writes raw tag bytes, so UTF-8 is not guaranteed: UTF-16 is decoded by its BOM, and bytes
/// that are not UTF-8 are read as Latin-1 so every byte keeps exactly one character (a tag byte
/// 0x84 stays one column and can be turned back into 0x84).
pub fn decode_text(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        return String::from_utf16_lossy(&units);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        return String::from_utf16_lossy(&units);
    }
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// Parses a tag as the tools print it: 1–4 characters, padded with spaces, `\xNN` escapes
/// (as [`tag_display`] writes them), and characters U+0080–U+00FF standing for the byte of
/// the same value (see [`decode_text`]). Case is kept: pool tags are case-sensitive.
pub fn parse_tag_text(text: &str) -> Option<u32> {
    let mut bytes = Vec::with_capacity(4);
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && chars.get(i + 1) == Some(&'x') && i + 3 < chars.len() {
            let hex: String = chars[i + 2..i + 4].iter().collect();
            bytes.push(u8::from_str_radix(&hex, 16).ok()?);
            i += 4;
        } else {
            bytes.push(u8::try_from(u32::from(c)).ok()?);
            i += 1;
        }
    }
    if bytes.is_empty() || bytes.len() > 4 {
        return None;
    }
    bytes.resize(4, b' ');
    Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// Parses a tag field of the CSV/JSON forms: `0x` plus 3–8 hex digits is the u32 itself,
/// anything else is the displayed tag (see the module docs for why 3 digits).
pub fn parse_tag_field(text: &str) -> Option<u32> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        if (3..=8).contains(&hex.len()) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return u32::from_str_radix(hex, 16).ok();
        }
    }
    parse_tag_text(text)
}

/// Which pool a row describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pool {
    NonPaged,
    Paged,
}

/// Gathers rows listing by listing and applies the merging rules of the module docs.
#[derive(Default)]
pub(crate) struct Collector {
    /// Rows of the listing being read, summed per tag and pool.
    current: BTreeMap<u32, [Option<PoolCounters>; 2]>,
    /// Result of the listings already closed: last listing wins per tag and pool.
    done: BTreeMap<u32, [Option<PoolCounters>; 2]>,
}

impl Collector {
    pub(crate) fn add(&mut self, tag: u32, pool: Pool, counters: PoolCounters) {
        let slot = &mut self.current.entry(tag).or_default()[pool as usize];
        match slot {
            Some(existing) => existing.add(&counters),
            None => *slot = Some(counters),
        }
    }

    pub(crate) fn has_rows(&self) -> bool {
        !self.current.is_empty()
    }

    /// Closes the current listing: its values replace earlier listings' for the same tag
    /// and pool.
    pub(crate) fn end_listing(&mut self) {
        for (tag, pools) in std::mem::take(&mut self.current) {
            let target = self.done.entry(tag).or_default();
            for (slot, value) in target.iter_mut().zip(pools) {
                if value.is_some() {
                    *slot = value;
                }
            }
        }
    }

    /// Ends the last listing and returns one usage per tag, ordered by displayed tag so the
    /// output is stable whatever order the source listed them in.
    pub(crate) fn finish(mut self) -> Vec<TagUsage> {
        self.end_listing();
        let mut tags: Vec<TagUsage> = self
            .done
            .into_iter()
            .map(|(tag, [np, p])| TagUsage {
                tag,
                nonpaged: np.unwrap_or_default(),
                paged: p.unwrap_or_default(),
            })
            .collect();
        tags.sort_by_key(|t| tag_display(t.tag));
        tags
    }
}

/// Splits a row into its tag text and the rest. Both tools print the tag in columns 1–4
/// after one blank, so when the row still has that shape the tag is taken from those
/// columns (keeping blanks inside it); `fixed` = false takes the first word instead, for
/// rows whose leading blank was lost in copying.
pub(crate) fn split_tag(line: &str, fixed: bool) -> Option<(String, &str)> {
    if fixed {
        let mut idx = line.char_indices();
        let (_, c0) = idx.next()?;
        if c0 != ' ' {
            return None;
        }
        let positions: Vec<(usize, char)> = line.char_indices().take(6).collect();
        if positions.len() < 6 || !positions[5].1.is_whitespace() {
            return None;
        }
        let tag = &line[positions[1].0..positions[5].0];
        if tag.trim().is_empty() || tag.starts_with(' ') {
            return None;
        }
        return Some((tag.to_string(), &line[positions[5].0..]));
    }
    let trimmed = line.trim_start();
    let end = trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
    if end == 0 {
        return None;
    }
    Some((trimmed[..end].to_string(), &trimmed[end..]))
}

/// Parses an unsigned decimal count as the tools print it (`%ld`: no separators).
pub(crate) fn parse_count(word: &str) -> Option<u64> {
    if word.is_empty() || !word.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    word.parse().ok()
}

/// Parses a signed decimal as printed by `%ld` for differences that can go negative.
pub(crate) fn parse_signed(word: &str) -> Option<i64> {
    let digits = word.strip_prefix('-').unwrap_or(word);
    parse_count(digits)?;
    word.parse().ok()
}

/// Builds counters from lifetime `Allocs`, `Frees` and the tool's own `Diff`, checking they
/// agree: a disagreement means the columns were misread (a lost or glued column), which must
/// not pass silently. On 32-bit systems the tracker's ULONG counters wrap, so a `Diff` equal to
/// `Allocs − Frees` modulo 2^32 is accepted; `allocs` is then stored as `frees + Diff` so that
/// [`PoolCounters::live`] stays what the tool reported.
pub(crate) fn lifetime_counters(
    allocs: u64,
    frees: u64,
    diff: i64,
    bytes: u64,
) -> Result<PoolCounters, String> {
    if i128::from(allocs) - i128::from(frees) == i128::from(diff) {
        return Ok(PoolCounters {
            allocs,
            frees,
            bytes,
        });
    }
    let wrapped = allocs.wrapping_sub(frees) as u32;
    if i64::from(wrapped) == diff || i64::from(wrapped as i32) == diff {
        return Ok(PoolCounters {
            allocs: frees.saturating_add(u64::try_from(diff).unwrap_or(0)),
            frees,
            bytes,
        });
    }
    Err(format!(
        "Diff {diff} is not Allocs {allocs} minus Frees {frees} (columns misread?)"
    ))
}

/// Keeps quoted line text short in messages.
pub(crate) fn shorten(text: &str) -> String {
    const MAX: usize = 60;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    }
}
