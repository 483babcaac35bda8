//! WinDbg `!poolused` listings (see the module docs of [`super`] for the accepted shapes).

use super::fields::{
    lifetime_counters, parse_count, parse_signed, parse_tag_text, shorten, split_tag, Collector,
    Pool, PoolSourceError,
};
use crate::pool::{PoolCounters, TagUsage};

/// Column header of the summary form (kdexts, all versions).
const SUMMARY: [&str; 5] = ["Tag", "Allocs", "Used", "Allocs", "Used"];
/// Column header of the verbose form (flag bit 0).
const VERBOSE: [&str; 9] = [
    "Tag", "Allocs", "Frees", "Diff", "Used", "Allocs", "Frees", "Diff", "Used",
];

/// If `words` is a `!poolused` column header, the number of count columns after the tag.
pub(super) fn is_column_header(words: &[&str]) -> Option<usize> {
    if words == SUMMARY {
        Some(4)
    } else if words == VERBOSE {
        Some(8)
    } else {
        None
    }
}

/// The table being read: how many count columns, and where each header word ends (in
/// characters). kdexts right-aligns every count under its header word, which lets a
/// description glued to the last count be cut at the right place.
struct Table {
    columns: usize,
    ends: Vec<usize>,
}

/// Whitespace-separated words with their start and end (exclusive) character columns.
fn spans(line: &str, first_col: usize) -> Vec<(usize, usize, &str)> {
    let mut out = Vec::new();
    let mut start: Option<(usize, usize)> = None; // (byte, col)
    let mut col = first_col;
    for (byte, c) in line.char_indices() {
        if c.is_whitespace() {
            if let Some((b, sc)) = start.take() {
                out.push((sc, col, &line[b..byte]));
            }
        } else if start.is_none() {
            start = Some((byte, col));
        }
        col += 1;
    }
    if let Some((b, sc)) = start {
        out.push((sc, col, &line[b..]));
    }
    out
}

/// The command typed at a kd prompt (`kd> `, `0: kd> `, `lkd> `), if the line is one.
fn prompt_command(line: &str) -> Option<&str> {
    let t = line.trim_start();
    let pos = t.find("kd>")?;
    let prefix = &t[..pos];
    if prefix
        .chars()
        .all(|c| c.is_ascii_digit() || c == ':' || c == ' ' || c == 'l')
    {
        Some(&t[pos + 3..])
    } else {
        None
    }
}

/// The flags argument of a `!poolused` command (hex, as the extension reads it). The `/t`
/// switch (top N tags; written `/t 5` or `/t5`) is skipped with its count, since the count is
/// not the flags and the switch does not change the columns.
fn poolused_flags(command: &str) -> Option<u64> {
    let mut words = command.split_whitespace();
    words.find(|w| w.eq_ignore_ascii_case("!poolused"))?;
    let mut flags = None;
    while let Some(word) = words.next() {
        if word.eq_ignore_ascii_case("/t") || word.eq_ignore_ascii_case("-t") {
            words.next();
        } else if !word.starts_with('/') && !word.starts_with('-') {
            flags = Some(word);
            break;
        }
    }
    let flags = flags?;
    let hex = flags
        .strip_prefix("0x")
        .or_else(|| flags.strip_prefix("0X"))
        .unwrap_or(flags);
    u64::from_str_radix(hex, 16).ok()
}

/// Lines kdexts prints around the table that carry no figures. Debugger warnings
/// (`*** ERROR: Symbol file could not be found…`) start at column 0 with `*`, where a row
/// never starts: kdexts indents rows by one blank.
fn is_decoration(line: &str, words: &[&str]) -> bool {
    let t = line.trim();
    words.is_empty()
        || line.starts_with('*')
        || t.chars().all(|c| c == '.')
        || t.starts_with("Sorting by")
        || t == "Pool Used:"
        || words == ["NonPaged", "Paged"]
}

pub(super) fn parse(text: &str, name: &str) -> Result<Vec<TagUsage>, PoolSourceError> {
    let mut collector = Collector::default();
    let mut table: Option<Table> = None;
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(command) = prompt_command(line) {
            // A new command ends the listing; whatever it prints is not ours unless it is
            // another `!poolused`, which brings its own header.
            collector.end_listing();
            table = None;
            if poolused_flags(command).is_some_and(|f| f & 8 != 0) {
                return Err(PoolSourceError::BadLine {
                    path: name.to_string(),
                    line: line_no,
                    found: format!(
                        "`{}` lists session pool (flag 0x8)",
                        shorten(command.trim())
                    ),
                    expected: "a listing of the system pools (`!poolused` without flag 8)"
                        .to_string(),
                });
            }
            continue;
        }
        if let Some(columns) = is_column_header(&words) {
            collector.end_listing();
            let ends = spans(line, 0).iter().skip(1).map(|s| s.1).collect();
            table = Some(Table { columns, ends });
            continue;
        }
        // Before a header: debugger noise (cache messages, other commands) is not ours.
        let Some(t) = &table else { continue };
        if is_decoration(line, &words) {
            continue;
        }
        if words[0] == "TOTAL" {
            collector.end_listing();
            table = None;
            continue;
        }
        let (tag, nonpaged, paged) =
            parse_row(line, t).map_err(|found| PoolSourceError::BadLine {
                path: name.to_string(),
                line: line_no,
                found,
                expected: format!(
                    "a `!poolused` row: a tag of 1-4 characters and {} counts ({})",
                    t.columns,
                    if t.columns == 4 {
                        "Allocs and Used for NonPaged, then for Paged"
                    } else {
                        "Allocs, Frees, Diff and Used for NonPaged, then for Paged"
                    }
                ),
            })?;
        collector.add(tag, Pool::NonPaged, nonpaged);
        collector.add(tag, Pool::Paged, paged);
    }
    Ok(collector.finish())
}

/// Parses one table row into the tag and its NonPaged and Paged counters, or says why not.
fn parse_row(line: &str, table: &Table) -> Result<(u32, PoolCounters, PoolCounters), String> {
    let mut last_err = None;
    // The fixed-column reading keeps blanks inside tags; the word reading copes with pastes
    // that lost the leading blank. The first that yields a full row wins.
    for fixed in [true, false] {
        let Some((tag_text, rest)) = split_tag(line, fixed) else {
            continue;
        };
        let Some(tag) = parse_tag_text(tag_text.trim_end()) else {
            last_err = Some(format!("`{}` is not a pool tag", shorten(&tag_text)));
            continue;
        };
        let rest_col = line[..line.len() - rest.len()].chars().count();
        match counts(rest, rest_col, table) {
            Ok(values) => return to_counters(&values, table.columns).map(|(n, p)| (tag, n, p)),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| format!("`{}` is not a table row", shorten(line.trim()))))
}

/// Reads the count columns; the last one may have the description glued to it.
fn counts(rest: &str, rest_col: usize, table: &Table) -> Result<Vec<i64>, String> {
    let words = spans(rest, rest_col);
    let n = table.columns;
    if words.len() < n {
        return Err(format!(
            "row has {} of the {n} count columns",
            words
                .iter()
                .take_while(|w| parse_signed(w.2).is_some())
                .count()
        ));
    }
    let mut values = Vec::with_capacity(n);
    for (k, &(start, end, word)) in words.iter().take(n).enumerate() {
        if let Some(v) = parse_signed(word) {
            values.push(v);
            continue;
        }
        if k + 1 < n {
            return Err(format!(
                "column {} is `{}`, not a count",
                k + 2,
                shorten(word)
            ));
        }
        // Older kdexts print the description straight after the last count
        // (`0UNKNOWN pooltag ...`). When every earlier count sits exactly under its header
        // word the widths did not overflow, so the header tells where the count ends even
        // if the description starts with a digit; otherwise take the leading digits.
        let aligned = table.ends.len() == n
            && words[..n - 1]
                .iter()
                .zip(&table.ends)
                .all(|(w, &e)| w.1 == e);
        let last_end = table.ends.get(n - 1).copied().unwrap_or(0);
        let digits: String = if aligned && start < last_end && end > last_end {
            word.chars().take(last_end - start).collect()
        } else {
            word.chars().take_while(char::is_ascii_digit).collect()
        };
        match parse_count(&digits) {
            Some(v) => values.push(i64::try_from(v).map_err(|_| "count too large".to_string())?),
            None => return Err(format!("last column is `{}`, not a count", shorten(word))),
        }
    }
    Ok(values)
}

fn unsigned(v: i64, what: &str) -> Result<u64, String> {
    u64::try_from(v).map_err(|_| format!("{what} is negative ({v})"))
}

/// Maps the count columns to counters (see the module docs for what summary `Allocs` means).
fn to_counters(values: &[i64], columns: usize) -> Result<(PoolCounters, PoolCounters), String> {
    if columns == 4 {
        // Summary form: `Allocs` is Allocs − Frees of the tracker, i.e. outstanding
        // allocations; store it as allocs with frees 0 so `live()` is exact. kdexts prints
        // the difference signed, and torn counters can make it negative: that is 0 live.
        let pool = |outstanding: i64, used: i64| -> Result<PoolCounters, String> {
            Ok(PoolCounters {
                allocs: u64::try_from(outstanding).unwrap_or(0),
                frees: 0,
                bytes: unsigned(used, "Used")?,
            })
        };
        Ok((pool(values[0], values[1])?, pool(values[2], values[3])?))
    } else {
        let pool = |v: &[i64]| -> Result<PoolCounters, String> {
            lifetime_counters(
                unsigned(v[0], "Allocs")?,
                unsigned(v[1], "Frees")?,
                v[2],
                unsigned(v[3], "Used")?,
            )
        };
        Ok((pool(&values[0..4])?, pool(&values[4..8])?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{TAG_MMCM, TAG_NONE};
    use crate::poolfiles::parse_pool_text;

    fn tag(s: &str) -> u32 {
        parse_tag_text(s).unwrap()
    }

    #[test]
    fn modern_listing_with_tab_descriptions() {
        let text = "0: kd> !poolused 2\n....\n Sorting by NonPaged Pool Consumed\n\n               NonPaged                  Paged\n Tag     Allocs         Used     Allocs         Used\n\n None    246479     50827424          0            0\tcall to ExAllocatePool\n MmCm      1198     18462512          0            0\tCalls made to MmAllocateContiguousMemory , Binary: nt!mm\n\nTOTAL    247677     69289936          0            0\n";
        let (_, snap) = parse_pool_text(text, "t").unwrap();
        assert_eq!(snap.tags.len(), 2);
        let none = snap.tags.iter().find(|t| t.tag == TAG_NONE).unwrap();
        assert_eq!(none.nonpaged.live(), 246_479);
        assert_eq!(none.nonpaged.bytes, 50_827_424);
        assert_eq!(none.nonpaged.frees, 0);
        let mmcm = snap.tags.iter().find(|t| t.tag == TAG_MMCM).unwrap();
        assert_eq!(mmcm.nonpaged.allocs, 1198);
    }

    #[test]
    fn old_listing_with_glued_descriptions_and_short_tags() {
        // Layout of the older kdexts: counts %8ld, description glued to the last count.
        let text = "   Sorting by  Tag\n\n  Pool Used:\n            NonPaged            Paged\n Tag    Allocs     Used    Allocs     Used\n 1394        1      520         0        0UNKNOWN pooltag '1394', please update pooltag.txt\n AGP         1      344         2      384UNKNOWN pooltag 'AGP ', please update pooltag.txt\n Vndr        3      248         1      5203Com adapter state\n";
        let (_, snap) = parse_pool_text(text, "t").unwrap();
        let agp = snap.tags.iter().find(|t| t.tag == tag("AGP")).unwrap();
        assert_eq!((agp.paged.allocs, agp.paged.bytes), (2, 384));
        let t1394 = snap.tags.iter().find(|t| t.tag == tag("1394")).unwrap();
        assert_eq!(t1394.paged.bytes, 0);
        // Description starting with a digit: the header column decides where 520 ends.
        let v = snap.tags.iter().find(|t| t.tag == tag("Vndr")).unwrap();
        assert_eq!(v.paged.bytes, 520);
    }

    #[test]
    fn debugger_warnings_inside_a_table_are_skipped() {
        let text = " Tag     Allocs         Used     Allocs         Used\n*** ERROR: Module load completed but symbols could not be loaded for x.sys\n None    246479     50827424          0            0\n";
        let (_, snap) = parse_pool_text(text, "t").unwrap();
        assert_eq!(snap.tags[0].nonpaged.bytes, 50_827_424);
        let e = parse_pool_text(
            " Tag     Allocs         Used     Allocs         Used\nsomething else\n",
            "w.txt",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("w.txt:2: `something` is not a pool tag;"),
            "{e}"
        );
    }

    #[test]
    fn verbose_listing_keeps_lifetime_counts() {
        let text = " Tag    Allocs    Frees     Diff     Used   Allocs    Frees     Diff     Used\n Irp      5000     4000     1000   600000        0        0        0        0\n";
        let (_, snap) = parse_pool_text(text, "t").unwrap();
        let irp = &snap.tags[0];
        assert_eq!((irp.nonpaged.allocs, irp.nonpaged.frees), (5000, 4000));
        let bad = " Tag    Allocs    Frees     Diff     Used   Allocs    Frees     Diff     Used\n Irp      5000     4000     999   600000        0        0        0        0\n";
        let e = parse_pool_text(bad, "v.txt").unwrap_err().to_string();
        assert!(
            e.starts_with("v.txt:2: Diff 999 is not Allocs 5000 minus Frees 4000"),
            "{e}"
        );
    }

    #[test]
    fn collapsed_whitespace_and_negative_outstanding() {
        let text = "Tag Allocs Used Allocs Used\n8042 4 3944 0 0 PS/2 kb and mouse , Binary: i8042prt.sys\nIo -2 0 3 96\n";
        let (_, snap) = parse_pool_text(text, "t").unwrap();
        let io = snap.tags.iter().find(|t| t.tag == tag("Io")).unwrap();
        assert_eq!(io.nonpaged.allocs, 0);
        assert_eq!(io.paged.live(), 3);
    }

    #[test]
    fn session_pool_is_rejected() {
        let text = "kd> !poolused 8\n Tag    Allocs     Used    Allocs     Used\n";
        let e = parse_pool_text(text, "s.txt").unwrap_err().to_string();
        assert_eq!(
            e,
            "s.txt:1: `!poolused 8` lists session pool (flag 0x8); expected a listing of the system pools (`!poolused` without flag 8)"
        );
        assert_eq!(poolused_flags("!poolused /t2 2"), Some(2));
        assert_eq!(poolused_flags("!poolused /t 8  0x2"), Some(2));
        assert_eq!(poolused_flags("!poolused /t 20"), None);
        assert_eq!(poolused_flags("!poolused"), None);
        assert_eq!(prompt_command("1: kd> !vm"), Some(" !vm"));
        assert_eq!(prompt_command("lkd> x"), Some(" x"));
        assert_eq!(prompt_command("see kd> x"), None);
    }
}
