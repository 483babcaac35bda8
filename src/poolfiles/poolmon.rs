//! PoolMon output: the `/n` snapshot log and the interactive screen (see [`super`]).

use super::fields::{
    lifetime_counters, parse_count, parse_signed, parse_tag_text, shorten, split_tag, Collector,
    Pool, PoolSourceError,
};
use crate::pool::{PoolCounters, TagUsage};

/// True for PoolMon's column header (`Tag Type Allocs Frees Diff Bytes Per Alloc`, with an
/// optional `Mapped_Driver`), in the log and on screen alike.
pub(super) fn is_column_header(words: &[&str]) -> bool {
    words.len() >= 8
        && words[..8]
            == [
                "Tag", "Type", "Allocs", "Frees", "Diff", "Bytes", "Per", "Alloc",
            ]
}

const EXPECTED_ROW: &str = "a PoolMon row: tag, `Nonp` or `Paged`, then Allocs, Frees, Diff, \
     Bytes and Per Alloc (each optionally followed by a `( change )` column)";

pub(super) fn parse(text: &str, name: &str) -> Result<Vec<TagUsage>, PoolSourceError> {
    let mut collector = Collector::default();
    let mut seen_header = false;
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() {
            // poolsnap separates appended snapshots with a blank line.
            if collector.has_rows() {
                collector.end_listing();
            }
            continue;
        }
        if is_column_header(&words) {
            collector.end_listing();
            seen_header = true;
            continue;
        }
        // `Memory:%8ldK` and `Commit:%7ldK` glue the label to wide values.
        if words[0].starts_with("Memory:") {
            // A new screen: its rows replace the previous screen's.
            collector.end_listing();
            continue;
        }
        if is_shell_prompt(line) {
            // The console prompt after PoolMon quits, copied along with the screen.
            collector.end_listing();
            continue;
        }
        if words[0].starts_with("Commit:")
            || words[0].starts_with('!') // poolsnap -t `!Key=Value` lines
            || (words[0] == "Total" && matches!(words.get(1), Some(&"Nonp") | Some(&"Paged")))
        {
            continue;
        }
        if line.contains("pool information") {
            if line.contains("ession") {
                return Err(PoolSourceError::BadLine {
                    path: name.to_string(),
                    line: line_no,
                    found: format!("`{}` is session pool", shorten(line.trim())),
                    expected: "PoolMon output for the system pools (without /s)".to_string(),
                });
            }
            continue;
        }
        // Anything before the column header (the command line, PoolMon's own messages) is
        // not a row.
        if !seen_header {
            continue;
        }
        let (tag, pool, counters) = parse_row(line).map_err(|found| PoolSourceError::BadLine {
            path: name.to_string(),
            line: line_no,
            found,
            expected: EXPECTED_ROW.to_string(),
        })?;
        collector.add(tag, pool, counters);
    }
    Ok(collector.finish())
}

/// `C:\tools>` or `PS C:\tools>`, possibly followed by a command.
fn is_shell_prompt(line: &str) -> bool {
    let t = line.trim_start();
    let t = t.strip_prefix("PS ").unwrap_or(t);
    let b = t.as_bytes();
    b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\' && t.contains('>')
}

fn parse_row(line: &str) -> Result<(u32, Pool, PoolCounters), String> {
    let mut last_err = None;
    for fixed in [true, false] {
        let Some((tag_text, rest)) = split_tag(line, fixed) else {
            continue;
        };
        let Some(tag) = parse_tag_text(tag_text.trim_end()) else {
            last_err = Some(format!("`{}` is not a pool tag", shorten(&tag_text)));
            continue;
        };
        match pool_and_counts(rest) {
            Ok((pool, counters)) => return Ok((tag, pool, counters)),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| format!("`{}` is not a table row", shorten(line.trim()))))
}

/// Reads `Type` and the five counts, skipping the screen's `( change )` columns; whatever
/// follows `Per Alloc` is the Mapped_Driver column and is not needed.
fn pool_and_counts(rest: &str) -> Result<(Pool, PoolCounters), String> {
    let mut words = rest.split_whitespace();
    let pool = match words.next() {
        Some("Nonp") => Pool::NonPaged,
        Some("Paged") => Pool::Paged,
        Some(other) => {
            return Err(format!(
                "type `{}` is neither Nonp nor Paged",
                shorten(other)
            ))
        }
        None => return Err("row ends after the tag".to_string()),
    };
    let mut values: Vec<&str> = Vec::with_capacity(5);
    let mut in_change = false;
    for word in words {
        if values.len() == 5 {
            break;
        }
        // `(   0)`, `( 177)`, `(-12)`: the change since the last refresh, screen only.
        if in_change || word.starts_with('(') {
            in_change = !word.ends_with(')');
            continue;
        }
        values.push(word);
    }
    const NAMES: [&str; 5] = ["Allocs", "Frees", "Diff", "Bytes", "Per Alloc"];
    if values.len() < 5 {
        return Err(format!("row has no {} column", NAMES[values.len()]));
    }
    let count = |i: usize| -> Result<u64, String> {
        parse_count(values[i])
            .ok_or_else(|| format!("{} is `{}`, not a count", NAMES[i], shorten(values[i])))
    };
    let diff = parse_signed(values[2])
        .ok_or_else(|| format!("Diff is `{}`, not a number", shorten(values[2])))?;
    // Per Alloc is derived, but checking it is a number catches a shifted column.
    count(4)?;
    let counters = lifetime_counters(count(0)?, count(1)?, diff, count(3)?)?;
    Ok((pool, counters))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poolfiles::{parse_pool_text, PoolFileFormat};

    fn tag(s: &str) -> u32 {
        parse_tag_text(s).unwrap()
    }

    #[test]
    fn screen_rows_with_change_columns_and_mapped_driver() {
        let text = " Memory:  260620K Avail:   65152K  PageFlts:    85   InRam Krnl: 2116K P:19560K\n Commit: 237688K Limit: 640916K Peak: 260632K            Pool N: 8500K P:33024K\n System pool information\n Tag  Type     Allocs            Frees            Diff   Bytes      Per Alloc  Mapped_Driver\n\n NtFB Paged      3996 (   0)      3986 (   0)    10  252088 (     0)  25208 [ntfs.sys  -  BitmpSup.c]\n Io   Nonp    1021112 (   1)   1020985 (   1)   127   91912 (  -40)    723 Unknown Driver\nDrsd Paged       560 ( 177)       539 ( 171)       21   17472 (  4992)    832\nTotal Paged     4556 (177)      4525 (171)       31  269560 (4992)   8695\n";
        let (format, snap) = parse_pool_text(text, "s").unwrap();
        assert_eq!(format, PoolFileFormat::PoolmonScreen);
        let io = snap.tags.iter().find(|t| t.tag == tag("Io")).unwrap();
        assert_eq!(io.nonpaged.allocs, 1_021_112);
        assert_eq!(io.nonpaged.live(), 127);
        let drsd = snap.tags.iter().find(|t| t.tag == tag("Drsd")).unwrap();
        assert_eq!((drsd.paged.live(), drsd.paged.bytes), (21, 17472));
        assert_eq!(snap.tags.len(), 3);
    }

    #[test]
    fn later_screens_replace_earlier_ones() {
        let screen = |allocs: u64, bytes: u64| {
            format!(" Memory:  130480K Avail:   91856K  PageFlts:  1220   InRam Krnl: 2484K P: 7988K\n Commit:  30104K Limit: 248432K Peak:  34028K            Pool N: 2224K P: 8004K\n Tag  Type        Allocs           Frees           Diff  Bytes           Per Alloc\n\n Drsd Paged       {allocs} (   0)       539 (   0)       {}   {bytes} (     0)    832\n", allocs - 539)
        };
        let text = format!("{}{}", screen(560, 17472), screen(566, 22464));
        let (_, snap) = parse_pool_text(&text, "s").unwrap();
        assert_eq!(snap.tags[0].paged.bytes, 22464);
        assert_eq!(snap.tags[0].paged.live(), 27);
    }

    #[test]
    fn bad_rows_name_the_line() {
        let text = " Tag  Type     Allocs     Frees      Diff   Bytes  Per Alloc\n\n None Nonp    3118902   2872423    246479 50827424        206\n None Both          1         0         1      16         16\n";
        let e = parse_pool_text(text, "p.log").unwrap_err().to_string();
        assert_eq!(
            e,
            format!("p.log:4: type `Both` is neither Nonp nor Paged; expected {EXPECTED_ROW}")
        );
        let short =
            " Tag  Type     Allocs     Frees      Diff   Bytes  Per Alloc\n None Nonp 5 4 1\n";
        let e = parse_pool_text(short, "p.log").unwrap_err().to_string();
        assert!(e.starts_with("p.log:2: row has no Bytes column;"), "{e}");
    }

    #[test]
    fn console_prompts_around_a_copied_screen_are_skipped() {
        let text = "C:\\tools> poolmon /iMm* /e\n Tag  Type     Allocs            Frees            Diff   Bytes       Per Alloc\n\n MmCm Nonp       2207 (   0)      1009 (   0)     1198 18462512 (     0)  15411\n\nPS C:\\tools>\n";
        let (_, snap) = parse_pool_text(text, "s").unwrap();
        assert_eq!(snap.tags[0].nonpaged.live(), 1198);
        assert!(is_shell_prompt("D:\\x>"));
        assert!(!is_shell_prompt(" MmCm Nonp 1 0 1 8 8"));
    }

    #[test]
    fn session_screens_are_rejected() {
        let text = "All sessions pool information\n Tag  Type     Allocs            Frees            Diff   Bytes       Per Alloc\n";
        let e = parse_pool_text(text, "x").unwrap_err().to_string();
        assert!(
            e.starts_with("x:1: `All sessions pool information` is session pool"),
            "{e}"
        );
    }
}
