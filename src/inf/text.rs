//! INF text: decoding and the line grammar.
//!
//! Sources: Microsoft Learn "General syntax rules for INF files" (case-insensitive names;
//! sections `[name]` ending at the next section; same-named sections merged; `;` comments
//! outside quoted strings and `%strkey%` tokens; `\` as the last character continues a line,
//! and in `\\` at a line end the first is text; commas separate values, empty values keep their
//! commas; `%%` is a literal `%`, `""` inside a quoted string a literal `"`; a field is at most
//! 4096 characters), "INF Strings section" (quoted string values, leading and trailing blanks
//! of unquoted ones dropped).
//!
//! Encodings: UTF-16LE with a BOM (what Windows and InfVerif expect), UTF-16LE without one
//! (recognised by the shape: most code units' high byte zero), UTF-16BE with a BOM, UTF-8 with
//! or without a BOM, and otherwise ANSI, read as Windows-1252 with the five bytes that code page
//! leaves undefined mapped to the C1 control of the same value, so every byte maps to one
//! character and nothing is lost.

/// How the INF bytes were decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    Utf16LeBom,
    /// UTF-16LE recognised without a byte-order mark.
    Utf16Le,
    Utf16BeBom,
    Utf8Bom,
    /// Valid UTF-8 with non-ASCII characters and no BOM: Windows would read it in the ANSI code
    /// page instead.
    Utf8,
    /// ANSI, read as Windows-1252 (also every pure-ASCII file).
    Ansi,
}

/// Windows-1252 0x80..=0x9F (the rest of the code page is Latin-1).
const CP1252_HIGH: [char; 32] = [
    '\u{20AC}', '\u{0081}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{008D}', '\u{017D}', '\u{008F}',
    '\u{0090}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}', '\u{0153}', '\u{009D}', '\u{017E}', '\u{0178}',
];

/// Decodes INF bytes; also returns how many UTF-16 units were unpaired surrogates (each became
/// U+FFFD).
pub fn decode(bytes: &[u8]) -> (String, Encoding, usize) {
    let utf16 = |b: &[u8], le: bool| -> (String, usize) {
        let units = b.chunks_exact(2).map(|c| {
            if le {
                u16::from_le_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], c[1]])
            }
        });
        let mut bad = 0;
        let s = char::decode_utf16(units)
            .map(|r| {
                r.unwrap_or_else(|_| {
                    bad += 1;
                    '\u{FFFD}'
                })
            })
            .collect();
        // An odd trailing byte is one more unit that could not be read.
        (s, bad + b.len() % 2)
    };
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        let (s, bad) = utf16(rest, true);
        return (s, Encoding::Utf16LeBom, bad);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        let (s, bad) = utf16(rest, false);
        return (s, Encoding::Utf16BeBom, bad);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        if let Ok(s) = std::str::from_utf8(rest) {
            return (s.to_string(), Encoding::Utf8Bom, 0);
        }
    }
    if looks_utf16le(bytes) {
        let (s, bad) = utf16(bytes, true);
        return (s, Encoding::Utf16Le, bad);
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        let enc = if s.is_ascii() {
            Encoding::Ansi
        } else {
            Encoding::Utf8
        };
        return (s.to_string(), enc, 0);
    }
    let s = bytes
        .iter()
        .map(|&b| match b {
            0x80..=0x9F => CP1252_HIGH[(b - 0x80) as usize],
            _ => b as char,
        })
        .collect();
    (s, Encoding::Ansi, 0)
}

/// UTF-16LE text without a BOM: in the first 4 KiB, at least 3/4 of the code units have a zero
/// high byte and a non-zero low byte (ASCII text in UTF-16), and ANSI text has no NUL bytes.
fn looks_utf16le(b: &[u8]) -> bool {
    let sample = &b[..b.len().min(4096) & !1];
    if sample.len() < 4 {
        return false;
    }
    let units = sample.len() / 2;
    let ascii = sample
        .chunks_exact(2)
        .filter(|c| c[1] == 0 && c[0] != 0)
        .count();
    ascii * 4 >= units * 3
}

/// A parse-level problem, reported with the INF's static problems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LexProblem {
    UnterminatedQuote,
    UnterminatedSectionHeader,
    SectionNameTooLong(usize),
    EntryOutsideSection,
    FieldTooLong(usize),
}

/// One logical line: a section header or an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Section(String),
    /// `key = v1, v2` (key `Some`) or `v1, v2` (key `None`), values unquoted and trimmed but
    /// not yet string-substituted.
    Entry {
        key: Option<String>,
        values: Vec<String>,
    },
}

/// Limits on hostile input.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_lines: usize,
    /// Characters of one physical line.
    pub max_line_chars: usize,
    /// Characters of one logical line (physical lines joined by `\`).
    pub max_logical_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 32 << 20,
            max_lines: 1_000_000,
            max_line_chars: 64 * 1024,
            max_logical_chars: 1 << 20,
        }
    }
}

/// Windows' limit on a field before substitution, including the terminating NUL.
pub const MAX_FIELD: usize = 4095;

/// Splits decoded text into logical lines: (first physical line number, line, problems).
/// `single_field(section)` tells whether commas are literal in that section (`[Strings]`).
pub fn lines(
    text: &str,
    limits: &Limits,
    single_field: impl Fn(&str) -> bool,
) -> Result<Vec<(usize, Line, Vec<LexProblem>)>, InfError> {
    let mut out = Vec::new();
    let physical: Vec<&str> = split_lines(text);
    if physical.len() > limits.max_lines {
        return Err(InfError::TooManyLines {
            lines: physical.len(),
            limit: limits.max_lines,
        });
    }
    let mut section_single = false;
    let mut i = 0;
    while i < physical.len() {
        let start = i + 1;
        let first = physical[i];
        if first.chars().count() > limits.max_line_chars {
            return Err(InfError::LineTooLong {
                line: start,
                limit: limits.max_line_chars,
            });
        }
        let trimmed = first.trim_start_matches([' ', '\t']);
        if let Some(rest) = trimmed.strip_prefix('[') {
            i += 1;
            let mut problems = Vec::new();
            let name = match rest.find(']') {
                Some(end) => rest[..end].to_string(),
                None => {
                    problems.push(LexProblem::UnterminatedSectionHeader);
                    rest.split(';').next().unwrap_or("").trim().to_string()
                }
            };
            let n = name.chars().count();
            if n > 255 {
                problems.push(LexProblem::SectionNameTooLong(n));
            }
            section_single = single_field(&name);
            out.push((start, Line::Section(name), problems));
            continue;
        }
        let mut lx = Lexer::new(section_single);
        let mut logical = 0usize;
        loop {
            let line = physical[i];
            i += 1;
            let chars = line.chars().count();
            if chars > limits.max_line_chars {
                return Err(InfError::LineTooLong {
                    line: i,
                    limit: limits.max_line_chars,
                });
            }
            logical += chars;
            if logical > limits.max_logical_chars {
                return Err(InfError::LineTooLong {
                    line: start,
                    limit: limits.max_logical_chars,
                });
            }
            let continued = lx.feed(line);
            if !continued || i >= physical.len() {
                break;
            }
        }
        if let Some((entry, problems)) = lx.finish() {
            out.push((start, entry, problems));
        }
    }
    Ok(out)
}

/// Lines split at CR LF, LF or a lone CR.
fn split_lines(text: &str) -> Vec<&str> {
    let mut v = Vec::new();
    let b = text.as_bytes();
    let mut s = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\n' => {
                v.push(&text[s..i]);
                s = i + 1;
            }
            b'\r' => {
                v.push(&text[s..i]);
                if b.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                s = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if s < b.len() {
        v.push(&text[s..]);
    }
    v
}

/// The entry state machine, fed one physical line at a time.
struct Lexer {
    single_field: bool,
    key: Option<String>,
    values: Vec<String>,
    cur: String,
    /// Blanks seen outside quotes since the last text: kept only if more text follows.
    pending_ws: String,
    in_quote: bool,
    /// Inside a `%strkey%` token (outside quotes), where `;` is text.
    in_token: bool,
    any: bool,
    problems: Vec<LexProblem>,
}

impl Lexer {
    fn new(single_field: bool) -> Self {
        Lexer {
            single_field,
            key: None,
            values: Vec::new(),
            cur: String::new(),
            pending_ws: String::new(),
            in_quote: false,
            in_token: false,
            any: false,
            problems: Vec::new(),
        }
    }

    fn text(&mut self, c: char) {
        if !self.cur.is_empty() {
            self.cur.push_str(&self.pending_ws);
        }
        self.pending_ws.clear();
        self.cur.push(c);
        self.any = true;
    }

    fn end_field(&mut self) {
        self.pending_ws.clear();
        let f = std::mem::take(&mut self.cur);
        let n = f.chars().count();
        if n > MAX_FIELD {
            self.problems.push(LexProblem::FieldTooLong(n));
        }
        self.values.push(f);
        self.in_token = false;
    }

    /// Consumes one physical line; returns whether the entry continues on the next line.
    fn feed(&mut self, line: &str) -> bool {
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if self.in_quote {
                if c == '"' {
                    if chars.get(i + 1) == Some(&'"') {
                        self.cur.push('"');
                        i += 2;
                        continue;
                    }
                    self.in_quote = false;
                } else {
                    self.cur.push(c);
                }
                i += 1;
                continue;
            }
            match c {
                '"' => {
                    // Blanks between text and a quoted part are inside the field.
                    if !self.cur.is_empty() {
                        self.cur.push_str(&self.pending_ws);
                    }
                    self.pending_ws.clear();
                    self.in_quote = true;
                    self.any = true;
                    // An empty quoted string is still a (present, empty) value.
                }
                ';' if !self.in_token => return false,
                '\\' => {
                    // A continuation if only blanks (and perhaps a comment) follow.
                    let rest: String = chars[i + 1..].iter().collect();
                    let after = rest.trim_start_matches([' ', '\t']);
                    if after.is_empty() || after.starts_with(';') {
                        return true;
                    }
                    self.text('\\');
                }
                '%' => {
                    self.text('%');
                    if self.in_token {
                        self.in_token = false;
                    } else {
                        // A token is `%` + visible characters without `,"=;%` ... `%`; only
                        // then is a `;` inside it text.
                        let close = chars[i + 1..]
                            .iter()
                            .position(|&d| d == '%' || d == ',' || d == '"' || d.is_whitespace());
                        self.in_token =
                            matches!(close, Some(p) if chars[i + 1 + p] == '%' && p > 0);
                    }
                }
                '=' if self.key.is_none() && self.values.is_empty() => {
                    let k = std::mem::take(&mut self.cur);
                    self.pending_ws.clear();
                    self.key = Some(k);
                    self.in_token = false;
                }
                ',' if !(self.single_field && self.key.is_some()) => {
                    self.end_field();
                    self.any = true;
                }
                ' ' | '\t' => self.pending_ws.push(c),
                _ => self.text(c),
            }
            i += 1;
        }
        if self.in_quote {
            self.problems.push(LexProblem::UnterminatedQuote);
            self.in_quote = false;
        }
        false
    }

    fn finish(mut self) -> Option<(Line, Vec<LexProblem>)> {
        if !self.any && self.key.is_none() {
            return None;
        }
        self.end_field();
        // A line that is only a key (`key =`) has one empty value, as SetupAPI reports.
        Some((
            Line::Entry {
                key: self.key,
                values: self.values,
            },
            self.problems,
        ))
    }
}

/// An INF that is refused outright (everything else is a [`Problem`]).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum InfError {
    #[error("INF is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("INF has {lines} lines, over the {limit}-line limit")]
    TooManyLines { lines: usize, limit: usize },
    #[error("INF line {line} is longer than {limit} characters")]
    LineTooLong { line: usize, limit: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &str) -> Vec<(usize, Line, Vec<LexProblem>)> {
        lines(text, &Limits::default(), |s| {
            s.eq_ignore_ascii_case("strings")
        })
        .unwrap()
    }

    fn entry(text: &str) -> (Option<String>, Vec<String>) {
        match &entries(text)[0].1 {
            Line::Entry { key, values } => (key.clone(), values.clone()),
            l => panic!("{l:?}"),
        }
    }

    #[test]
    fn fields_quotes_comments_continuations() {
        assert_eq!(
            entry("a = b , c ,, d ; x"),
            (
                Some("a".into()),
                vec!["b".into(), "c".into(), "".into(), "d".into()]
            )
        );
        assert_eq!(
            entry("HKR,,EventMessageFile,0x00020000,\"%11%\\IoLogMsg.dll;%12%\\x.sys\""),
            (
                None,
                vec![
                    "HKR".into(),
                    "".into(),
                    "EventMessageFile".into(),
                    "0x00020000".into(),
                    "%11%\\IoLogMsg.dll;%12%\\x.sys".into()
                ]
            )
        );
        assert_eq!(entry("k = \"  padded  \"  ").1, vec!["  padded  "]);
        assert_eq!(entry("k = \"say \"\"hi\"\"\"").1, vec!["say \"hi\""]);
        assert_eq!(entry("k = a  b\t c").1, vec!["a  b\t c"]);
        // `;` inside a %strkey% token is not a comment; `%%` is left for substitution.
        assert_eq!(entry("k = %a;b%, 50%% ; c").1, vec!["%a;b%", "50%%"]);
        // Continuations (the doc's three forms).
        let e = entries("CopyFiles = \"SomeDirectory\\\"\\\n,SomeFile\n");
        assert_eq!(
            e[0].1,
            Line::Entry {
                key: Some("CopyFiles".into()),
                values: vec!["SomeDirectory\\".into(), "SomeFile".into()]
            }
        );
        let e = entries("CopyFiles = SomeDirectory\\\\\n,SomeFile\n");
        assert_eq!(
            e[0].1,
            Line::Entry {
                key: Some("CopyFiles".into()),
                values: vec!["SomeDirectory\\".into(), "SomeFile".into()]
            }
        );
        let e = entries("CopyFiles = \"SomeDirectory\\\"\\ ; comment \n,SomeFile\nnext = 1");
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].0, 3);
        // A path's backslash in the middle is text.
        assert_eq!(entry("ServiceBinary = %12%\\x.sys").1, vec!["%12%\\x.sys"]);
        // In [Strings], commas are text.
        let e = entries("[Strings]\nCo = Foo, Inc.\n");
        assert_eq!(
            e[1].1,
            Line::Entry {
                key: Some("Co".into()),
                values: vec!["Foo, Inc.".into()]
            }
        );
        // `=` after a comma is text; a key with nothing after it has one empty value.
        assert_eq!(entry("a, b = c"), (None, vec!["a".into(), "b = c".into()]));
        assert_eq!(
            entry("DefaultDestDir ="),
            (Some("DefaultDestDir".into()), vec!["".into()])
        );
        assert!(entries("; only a comment\n\n   \n").is_empty());
    }

    #[test]
    fn headers_and_problems() {
        let e = entries("[Version] ; c\n[Bad\nk=\"open\n");
        assert_eq!(e[0].1, Line::Section("Version".into()));
        assert_eq!(e[1].2, vec![LexProblem::UnterminatedSectionHeader]);
        assert_eq!(e[2].2, vec![LexProblem::UnterminatedQuote]);
        let long = format!("k = {}", "x".repeat(5000));
        assert_eq!(entries(&long)[0].2, vec![LexProblem::FieldTooLong(5000)]);
    }

    #[test]
    fn limits_are_typed_errors() {
        let lim = Limits {
            max_bytes: 100,
            max_lines: 3,
            max_line_chars: 10,
            max_logical_chars: 15,
        };
        assert!(matches!(
            lines("a\nb\nc\nd", &lim, |_| false),
            Err(InfError::TooManyLines { lines: 4, limit: 3 })
        ));
        assert!(matches!(
            lines("k = 0123456789", &lim, |_| false),
            Err(InfError::LineTooLong { line: 1, .. })
        ));
        assert!(matches!(
            lines("k=12345\\\n12345678\\\n1", &lim, |_| false),
            Err(InfError::LineTooLong { line: 1, limit: 15 })
        ));
    }

    #[test]
    fn encodings() {
        let text = "[Version]\r\nSignature=\"$Windows NT$\"\r\n";
        let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let mut bom = vec![0xFF, 0xFE];
        bom.extend(&le);
        assert_eq!(decode(&bom), (text.into(), Encoding::Utf16LeBom, 0));
        assert_eq!(decode(&le), (text.into(), Encoding::Utf16Le, 0));
        let be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        assert_eq!(decode(&be).1, Encoding::Utf16BeBom);
        assert_eq!(decode(text.as_bytes()).1, Encoding::Ansi);
        assert_eq!(decode("é".as_bytes()), ("é".into(), Encoding::Utf8, 0));
        assert_eq!(decode(b"\xEF\xBB\xBFk=v").1, Encoding::Utf8Bom);
        // Windows-1252: every byte to one character, none lost.
        let all: Vec<u8> = (0u8..=255).filter(|b| *b != 0).collect();
        let (s, enc, _) = decode(&all);
        assert_eq!(enc, Encoding::Ansi);
        assert_eq!(s.chars().count(), 255);
        assert!(s.contains('\u{20AC}') && s.contains('\u{0081}') && s.contains('ÿ'));
        // An unpaired surrogate and an odd trailing byte are counted.
        assert_eq!(decode(&[0xFF, 0xFE, 0x00, 0xD8, 0x41]).2, 2);
    }
}
