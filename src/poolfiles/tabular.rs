//! drvaudit's documented CSV and JSON pool-usage forms (see [`super`] for the specification).

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::fields::{parse_count, parse_tag_field, shorten, Collector, Pool, PoolSourceError};
use crate::pool::{tag_display, PoolCounters, PoolSnapshot, TagUsage};

/// The CSV header, in order.
pub const CSV_COLUMNS: [&str; 7] = [
    "tag",
    "nonpaged_allocs",
    "nonpaged_frees",
    "nonpaged_bytes",
    "paged_allocs",
    "paged_frees",
    "paged_bytes",
];

fn bad(name: &str, line: usize, found: String, expected: &str) -> PoolSourceError {
    PoolSourceError::BadLine {
        path: name.to_string(),
        line,
        found,
        expected: expected.to_string(),
    }
}

/// Splits one CSV record (RFC 4180 quoting, records on one line). Returns each field with
/// whether it was quoted: unquoted fields are trimmed, quoted ones kept as written so a tag
/// like `" Io "` keeps its blanks.
fn split_csv(line: &str) -> Result<Vec<(String, bool)>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        // Skip blanks before a field so `a, "b"` works.
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        value.push('"');
                    }
                    Some('"') => break,
                    Some(c) => value.push(c),
                    None => return Err("a quoted field is not closed".to_string()),
                }
            }
            while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                chars.next();
            }
            fields.push((value, true));
            match chars.next() {
                Some(',') => continue,
                None => return Ok(fields),
                Some(c) => return Err(format!("`{c}` after a closing quote")),
            }
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some(',') => {
                    fields.push((value.trim().to_string(), false));
                    break;
                }
                None => {
                    fields.push((value.trim().to_string(), false));
                    return Ok(fields);
                }
                Some(c) => value.push(c),
            }
        }
    }
}

pub(super) fn parse_csv(text: &str, name: &str) -> Result<Vec<TagUsage>, PoolSourceError> {
    let header = CSV_COLUMNS.join(",");
    let expected_row = format!("a row of 7 fields matching `{header}`");
    let mut collector = Collector::default();
    let mut seen_header = false;
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields = split_csv(line).map_err(|e| bad(name, line_no, e, &expected_row))?;
        if !seen_header {
            let names: Vec<String> = fields.iter().map(|f| f.0.to_ascii_lowercase()).collect();
            if names != CSV_COLUMNS {
                return Err(bad(
                    name,
                    line_no,
                    format!("header `{}`", shorten(trimmed)),
                    &format!("the header `{header}`"),
                ));
            }
            seen_header = true;
            continue;
        }
        if fields.len() != CSV_COLUMNS.len() {
            return Err(bad(
                name,
                line_no,
                format!("{} fields", fields.len()),
                &expected_row,
            ));
        }
        let tag = parse_tag_field(&fields[0].0).ok_or_else(|| {
            bad(
                name,
                line_no,
                format!(
                    "tag `{}` is neither 1-4 characters nor 0x plus 3-8 hex digits",
                    shorten(&fields[0].0)
                ),
                &expected_row,
            )
        })?;
        let mut counts = [0u64; 6];
        for (k, slot) in counts.iter_mut().enumerate() {
            let (value, _) = &fields[k + 1];
            *slot = parse_count(value).ok_or_else(|| {
                bad(
                    name,
                    line_no,
                    format!(
                        "{} is `{}`, not an unsigned integer",
                        CSV_COLUMNS[k + 1],
                        shorten(value)
                    ),
                    &expected_row,
                )
            })?;
        }
        let pool = |c: &[u64]| PoolCounters {
            allocs: c[0],
            frees: c[1],
            bytes: c[2],
        };
        collector.add(tag, Pool::NonPaged, pool(&counts[0..3]));
        collector.add(tag, Pool::Paged, pool(&counts[3..6]));
    }
    Ok(collector.finish())
}

/// Writes a snapshot in the CSV form, one row per tag in snapshot order. A tag is written as
/// PoolMon shows it (trailing blanks dropped: reading pads them back) when that text reads
/// back as the same tag without quoting; otherwise as `0x` and 8 hex digits.
pub fn snapshot_to_csv(snapshot: &PoolSnapshot) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    for t in &snapshot.tags {
        let shown = tag_display(t.tag);
        let shown = shown.trim_end();
        let plain = !shown.is_empty()
            && !shown.starts_with([' ', '#'])
            && !shown.contains([',', '"', '\\'])
            && !shown.starts_with("0x")
            && !shown.starts_with("0X")
            && parse_tag_field(shown) == Some(t.tag);
        let tag = if plain {
            shown.to_string()
        } else {
            format!("0x{:08X}", t.tag)
        };
        let (n, p) = (&t.nonpaged, &t.paged);
        out.push_str(&format!(
            "{tag},{},{},{},{},{},{}\n",
            n.allocs, n.frees, n.bytes, p.allocs, p.frees, p.bytes
        ));
    }
    out
}

/// A tag in JSON: a string in the CSV tag syntax or the u32 itself.
struct JsonTag(u32);

impl<'de> Deserialize<'de> for JsonTag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = JsonTag;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a tag: a string of 1-4 characters, \"0x\" plus 3-8 hex digits, or a u32",
                )
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<JsonTag, E> {
                u32::try_from(v)
                    .map(JsonTag)
                    .map_err(|_| E::custom(format!("tag {v} does not fit in 32 bits")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<JsonTag, E> {
                parse_tag_field(v).map(JsonTag).ok_or_else(|| {
                    E::custom(format!(
                        "tag `{}` is neither 1-4 characters nor 0x plus 3-8 hex digits",
                        shorten(v)
                    ))
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct JsonCounters {
    #[serde(default)]
    allocs: u64,
    #[serde(default)]
    frees: u64,
    #[serde(default)]
    bytes: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonTagUsage {
    tag: JsonTag,
    #[serde(default)]
    nonpaged: JsonCounters,
    #[serde(default)]
    paged: JsonCounters,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonSnapshot {
    #[serde(default)]
    #[allow(dead_code)] // informational only; accepted so a serialised PoolSnapshot loads
    source: Option<String>,
    tags: Vec<JsonTagUsage>,
}

pub(super) fn parse_json(text: &str, name: &str) -> Result<Vec<TagUsage>, PoolSourceError> {
    let parsed = if text.trim_start().starts_with('[') {
        serde_json::from_str::<Vec<JsonTagUsage>>(text)
    } else {
        serde_json::from_str::<JsonSnapshot>(text).map(|s| s.tags)
    };
    let rows = parsed.map_err(|e| {
        // serde_json appends " at line L column C"; the line goes into the error's own
        // field, the column stays in the message.
        let message = e.to_string();
        let message = match message.rfind(" at line ") {
            Some(pos) => message[..pos].to_string(),
            None => message,
        };
        bad(
            name,
            e.line().max(1),
            format!("column {}: {message}", e.column()),
            "a JSON array of {\"tag\", \"nonpaged\", \"paged\"} objects or {\"source\", \"tags\"}",
        )
    })?;
    let mut collector = Collector::default();
    for row in rows {
        let c = |j: &JsonCounters| PoolCounters {
            allocs: j.allocs,
            frees: j.frees,
            bytes: j.bytes,
        };
        collector.add(row.tag.0, Pool::NonPaged, c(&row.nonpaged));
        collector.add(row.tag.0, Pool::Paged, c(&row.paged));
    }
    Ok(collector.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::TAG_NONE;
    use crate::poolfiles::parse_pool_text;

    #[test]
    fn csv_quoting() {
        assert_eq!(
            split_csv(r#" "a""b" , c ,"#).unwrap(),
            vec![
                ("a\"b".to_string(), true),
                ("c".to_string(), false),
                (String::new(), false)
            ]
        );
        assert!(split_csv(r#""abc"#).is_err());
    }

    #[test]
    fn csv_rows_and_duplicates() {
        let text = "# export\nTAG, nonpaged_allocs,nonpaged_frees,nonpaged_bytes,paged_allocs,paged_frees,paged_bytes\nNone,10,4,600,0,0,0\n0x656E6F4E,1,0,100,2,1,64\n\" Io\",1,0,8,0,0,0\n";
        let (_, snap) = parse_pool_text(text, "c.csv").unwrap();
        let none = snap.tags.iter().find(|t| t.tag == TAG_NONE).unwrap();
        assert_eq!(
            (
                none.nonpaged.allocs,
                none.nonpaged.frees,
                none.nonpaged.bytes
            ),
            (11, 4, 700)
        );
        assert_eq!(none.paged.live(), 1);
        assert!(snap.tags.iter().any(|t| t.tag == 0x206F_4920));
    }

    #[test]
    fn csv_errors_name_line_and_column() {
        let h = "tag,nonpaged_allocs,nonpaged_frees,nonpaged_bytes,paged_allocs,paged_frees,paged_bytes";
        let e = parse_pool_text(&format!("{h}\nNone,1,0,1,0,0\n"), "c.csv")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!("c.csv:2: 6 fields; expected a row of 7 fields matching `{h}`")
        );
        let e = parse_pool_text(&format!("{h}\n\nNone,1,0,1,0,0,-3\n"), "c.csv")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("c.csv:3: paged_bytes is `-3`, not an unsigned integer;"),
            "{e}"
        );
        let e = parse_pool_text("tag,bytes\n", "c.csv")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!("c.csv:1: header `tag,bytes`; expected the header `{h}`")
        );
    }

    #[test]
    fn csv_export_reads_back() {
        let mut tags = Vec::new();
        for (i, tag) in [
            TAG_NONE,
            0x2020_6F49,
            0x6F49_2020,
            0x3184,
            0x2C41_4141,
            0x3078_4141,
        ]
        .into_iter()
        .enumerate()
        {
            let n = i as u64;
            tags.push(TagUsage {
                tag,
                nonpaged: PoolCounters {
                    allocs: n + 10,
                    frees: n,
                    bytes: n * 64,
                },
                paged: PoolCounters {
                    allocs: n,
                    frees: 0,
                    bytes: n * 8,
                },
            });
        }
        let snapshot = PoolSnapshot {
            source: "x".to_string(),
            tags,
        };
        let csv = snapshot_to_csv(&snapshot);
        assert!(csv.contains("\nNone,10,0,0,0,0,0\n"), "{csv}");
        assert!(csv.contains("\nIo,11,1,64,1,0,8\n"), "{csv}");
        assert!(csv.contains("\n0x6F492020,"), "{csv}");
        let (_, back) = parse_pool_text(&csv, "e.csv").unwrap();
        let mut expected = snapshot.tags.clone();
        expected.sort_by_key(|t| tag_display(t.tag));
        assert_eq!(back.tags, expected);
    }

    #[test]
    fn json_forms_and_errors() {
        let list = r#"[{"tag": "None", "nonpaged": {"allocs": 5, "frees": 1, "bytes": 80}},
                      {"tag": 1852796493, "paged": {"bytes": 4}}]"#;
        let (_, snap) = parse_pool_text(list, "j.json").unwrap();
        assert_eq!(snap.tags.len(), 2);
        let object = r#"{"source": "x", "tags": [{"tag": "0x656E6F4E"}]}"#;
        let (_, snap) = parse_pool_text(object, "j.json").unwrap();
        assert_eq!(snap.tags[0].tag, TAG_NONE);
        let e = parse_pool_text("[\n {\"tag\": \"None\",\n  \"nonpagd\": {}}]", "j.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("j.json:3: column 11: unknown field `nonpagd`"),
            "{e}"
        );
        let e = parse_pool_text("[{\"tag\": \"Toolong\"}]", "j.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tag `Toolong` is neither"), "{e}");
    }
}
