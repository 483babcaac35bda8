//! A bounded reader of ASN.1 BER/DER (ITU-T X.690) over a byte slice.
//!
//! Authenticode signatures and catalogs are DER in principle, but real files carry BER: SETs
//! that are not sorted, indefinite lengths (old catalogs and timestamps), constructed OCTET
//! STRINGs. This reader accepts that BER and keeps, for every element, the exact bytes it came
//! from ([`Tlv::raw`]), because digests are computed over encodings as found (a certificate's
//! TBSCertificate, a signer's authenticated attributes), never over a re-encoding.
//!
//! Invariants: nothing here panics on any input; every length is checked against the bytes
//! that are left; nesting deeper than [`MAX_DEPTH`] and reassembled strings larger than
//! [`MAX_OCTETS`] are errors; every error names what was being read and its byte offset in the
//! outermost input.

use std::borrow::Cow;

/// Deepest element nesting accepted. Authenticode structures nest about 15 deep; a nested
/// signature inside an unauthenticated attribute adds about 12 per level.
pub const MAX_DEPTH: usize = 96;

/// Largest OCTET STRING reassembled from BER segments.
pub const MAX_OCTETS: usize = 64 << 20;

/// An identifier octet(s) decoded: class (0 universal, 1 application, 2 context, 3 private),
/// primitive/constructed, number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    pub class: u8,
    pub constructed: bool,
    pub number: u32,
}

impl Tag {
    pub const fn universal(number: u32, constructed: bool) -> Tag {
        Tag {
            class: 0,
            constructed,
            number,
        }
    }
    /// `[n]` context-specific, constructed (EXPLICIT or IMPLICIT of a constructed type).
    pub const fn context(number: u32) -> Tag {
        Tag {
            class: 2,
            constructed: true,
            number,
        }
    }
    /// `[n]` context-specific, primitive (IMPLICIT of a primitive type).
    pub const fn context_primitive(number: u32) -> Tag {
        Tag {
            class: 2,
            constructed: false,
            number,
        }
    }
    pub const BOOLEAN: Tag = Tag::universal(1, false);
    pub const INTEGER: Tag = Tag::universal(2, false);
    pub const BIT_STRING: Tag = Tag::universal(3, false);
    pub const OCTET_STRING: Tag = Tag::universal(4, false);
    pub const NULL: Tag = Tag::universal(5, false);
    pub const OID: Tag = Tag::universal(6, false);
    pub const SEQUENCE: Tag = Tag::universal(16, true);
    pub const SET: Tag = Tag::universal(17, true);
    pub const UTC_TIME: Tag = Tag::universal(23, false);
    pub const GENERALIZED_TIME: Tag = Tag::universal(24, false);
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let class = ["universal", "application", "context", "private"][usize::from(self.class & 3)];
        let form = if self.constructed {
            "constructed"
        } else {
            "primitive"
        };
        write!(f, "{class} {} ({form})", self.number)
    }
}

/// Why an element could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DerWhy {
    #[error("truncated: {needed} bytes needed, {available} left")]
    Truncated { needed: usize, available: usize },
    #[error("malformed length")]
    BadLength,
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("expected {expected}, found {found}")]
    UnexpectedTag { expected: Tag, found: Tag },
    #[error("missing")]
    Missing,
    #[error("malformed object identifier")]
    BadOid,
    #[error("malformed time {0:?}")]
    BadTime(String),
    #[error("malformed value: {0}")]
    BadValue(&'static str),
    #[error("reassembled string larger than {MAX_OCTETS} bytes")]
    TooLarge,
}

/// An element that could not be read: what, where (byte offset in the outermost input), why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {offset}: {why}")]
pub struct DerError {
    pub what: &'static str,
    pub offset: usize,
    pub why: DerWhy,
}

pub type DerResult<T> = Result<T, DerError>;

fn err<T>(what: &'static str, offset: usize, why: DerWhy) -> DerResult<T> {
    Err(DerError { what, offset, why })
}

/// One element: its tag, where it starts, its contents and its whole encoding.
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    pub tag: Tag,
    /// Offset of the identifier octet in the outermost input.
    pub offset: usize,
    /// The contents octets (without the end-of-contents octets of an indefinite length).
    pub value: &'a [u8],
    /// Identifier, length and contents as found (end-of-contents included).
    pub raw: &'a [u8],
    /// Offset of `value` in the outermost input.
    pub value_offset: usize,
    depth: usize,
}

/// Reads consecutive elements from a slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    base: usize,
    depth: usize,
}

/// Decodes the header at `data[pos..]`: (tag, header length, Some(content length) or None for
/// indefinite).
fn header(
    data: &[u8],
    pos: usize,
    base: usize,
    what: &'static str,
) -> DerResult<(Tag, usize, Option<usize>)> {
    let at = base + pos;
    let avail = data.len().saturating_sub(pos);
    let b0 = *data.get(pos).ok_or(DerError {
        what,
        offset: at,
        why: DerWhy::Truncated {
            needed: 1,
            available: 0,
        },
    })?;
    let mut i = pos + 1;
    let class = b0 >> 6;
    let constructed = b0 & 0x20 != 0;
    let mut number = u32::from(b0 & 0x1f);
    if number == 0x1f {
        number = 0;
        loop {
            let b = *data.get(i).ok_or(DerError {
                what,
                offset: at,
                why: DerWhy::Truncated {
                    needed: i - pos + 1,
                    available: avail,
                },
            })?;
            i += 1;
            if number > (u32::MAX >> 7) {
                return err(what, at, DerWhy::BadValue("tag number too large"));
            }
            number = (number << 7) | u32::from(b & 0x7f);
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let l0 = *data.get(i).ok_or(DerError {
        what,
        offset: at,
        why: DerWhy::Truncated {
            needed: i - pos + 1,
            available: avail,
        },
    })?;
    i += 1;
    let len = if l0 < 0x80 {
        Some(usize::from(l0))
    } else if l0 == 0x80 {
        if !constructed {
            return err(what, at, DerWhy::BadLength);
        }
        None
    } else {
        let n = usize::from(l0 & 0x7f);
        if n > 4 {
            // No structure here reaches 4 GiB; longer length fields are hostile or corrupt.
            return err(what, at, DerWhy::BadLength);
        }
        let bytes = data.get(i..i + n).ok_or(DerError {
            what,
            offset: at,
            why: DerWhy::Truncated {
                needed: i - pos + n,
                available: avail,
            },
        })?;
        i += n;
        Some(bytes.iter().fold(0usize, |a, &b| (a << 8) | usize::from(b)))
    };
    Ok((
        Tag {
            class,
            constructed,
            number,
        },
        i - pos,
        len,
    ))
}

/// For an indefinite-length element whose contents start at `start`: the offset of its
/// end-of-contents octets. Children with indefinite lengths are walked recursively, bounded by
/// [`MAX_DEPTH`].
fn indefinite_end(
    data: &[u8],
    start: usize,
    base: usize,
    depth: usize,
    what: &'static str,
) -> DerResult<usize> {
    if depth > MAX_DEPTH {
        return err(what, base + start, DerWhy::TooDeep);
    }
    let mut pos = start;
    loop {
        if data.get(pos..pos + 2) == Some(&[0, 0]) {
            return Ok(pos);
        }
        let (_, hlen, len) = header(data, pos, base, what)?;
        let cstart = pos + hlen;
        pos = match len {
            Some(l) => {
                let end = cstart.checked_add(l).filter(|&e| e <= data.len());
                end.ok_or(DerError {
                    what,
                    offset: base + pos,
                    why: DerWhy::Truncated {
                        needed: hlen.saturating_add(l),
                        available: data.len() - pos,
                    },
                })?
            }
            None => indefinite_end(data, cstart, base, depth + 1, what)? + 2,
        };
    }
}

impl<'a> Reader<'a> {
    /// A reader over `data`, which starts at byte `base` of the outermost input.
    pub fn new(data: &'a [u8], base: usize) -> Reader<'a> {
        Reader {
            data,
            pos: 0,
            base,
            depth: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Offset of the next element in the outermost input.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// The next element, or `None` at the end.
    pub fn next_tlv(&mut self, what: &'static str) -> DerResult<Option<Tlv<'a>>> {
        if self.is_empty() {
            return Ok(None);
        }
        if self.depth > MAX_DEPTH {
            return err(what, self.offset(), DerWhy::TooDeep);
        }
        let pos = self.pos;
        let (tag, hlen, len) = header(self.data, pos, self.base, what)?;
        let cstart = pos + hlen;
        let (value_end, end) = match len {
            Some(l) => {
                let end = cstart
                    .checked_add(l)
                    .filter(|&e| e <= self.data.len())
                    .ok_or(DerError {
                        what,
                        offset: self.base + pos,
                        why: DerWhy::Truncated {
                            needed: hlen.saturating_add(l),
                            available: self.data.len() - pos,
                        },
                    })?;
                (end, end)
            }
            None => {
                let e = indefinite_end(self.data, cstart, self.base, self.depth + 1, what)?;
                (e, e + 2)
            }
        };
        self.pos = end;
        Ok(Some(Tlv {
            tag,
            offset: self.base + pos,
            value: &self.data[cstart..value_end],
            raw: &self.data[pos..end],
            value_offset: self.base + cstart,
            depth: self.depth,
        }))
    }

    /// The next element; an error if there is none.
    pub fn read(&mut self, what: &'static str) -> DerResult<Tlv<'a>> {
        let at = self.offset();
        self.next_tlv(what)?.ok_or(DerError {
            what,
            offset: at,
            why: DerWhy::Missing,
        })
    }

    /// The next element, which must have tag `tag`.
    pub fn expect(&mut self, tag: Tag, what: &'static str) -> DerResult<Tlv<'a>> {
        let t = self.read(what)?;
        t.expect(tag, what)?;
        Ok(t)
    }

    /// The next element if it has tag `tag`; otherwise nothing is consumed.
    pub fn optional(&mut self, tag: Tag, what: &'static str) -> DerResult<Option<Tlv<'a>>> {
        if self.is_empty() {
            return Ok(None);
        }
        let (found, _, _) = header(self.data, self.pos, self.base, what)?;
        if found == tag {
            Ok(Some(self.read(what)?))
        } else {
            Ok(None)
        }
    }
}

impl<'a> Tlv<'a> {
    /// Checks the tag.
    pub fn expect(&self, tag: Tag, what: &'static str) -> DerResult<()> {
        if self.tag == tag {
            Ok(())
        } else {
            err(
                what,
                self.offset,
                DerWhy::UnexpectedTag {
                    expected: tag,
                    found: self.tag,
                },
            )
        }
    }

    /// A reader over the contents of a constructed element.
    pub fn children(&self) -> Reader<'a> {
        Reader {
            data: self.value,
            pos: 0,
            base: self.value_offset,
            depth: self.depth + 1,
        }
    }

    /// The single element inside an EXPLICIT tag (or any constructed wrapper).
    pub fn inner(&self, what: &'static str) -> DerResult<Tlv<'a>> {
        self.children().read(what)
    }

    /// The object identifier in dotted form.
    pub fn oid(&self, what: &'static str) -> DerResult<String> {
        self.expect(Tag::OID, what)?;
        oid_to_string(self.value).ok_or(DerError {
            what,
            offset: self.offset,
            why: DerWhy::BadOid,
        })
    }

    /// An INTEGER's magnitude bytes, big-endian, without DER's leading sign zeros (at least one
    /// byte). Certificate serial numbers are shown this way.
    pub fn integer_bytes(&self, what: &'static str) -> DerResult<&'a [u8]> {
        self.expect(Tag::INTEGER, what)?;
        if self.value.is_empty() {
            return err(what, self.offset, DerWhy::BadValue("empty INTEGER"));
        }
        let mut v = self.value;
        while v.len() > 1 && v[0] == 0 {
            v = &v[1..];
        }
        Ok(v)
    }

    /// A small non-negative INTEGER (versions).
    pub fn small_uint(&self, what: &'static str) -> DerResult<u64> {
        let v = self.integer_bytes(what)?;
        if v.len() > 8 || self.value[0] & 0x80 != 0 {
            return err(what, self.offset, DerWhy::BadValue("INTEGER out of range"));
        }
        Ok(v.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b)))
    }

    /// An OCTET STRING's contents; BER's constructed form is reassembled (bounded).
    pub fn octets(&self, what: &'static str) -> DerResult<Cow<'a, [u8]>> {
        if self.tag == Tag::OCTET_STRING {
            return Ok(Cow::Borrowed(self.value));
        }
        if self.tag == Tag::universal(4, true) {
            let mut out = Vec::new();
            self.collect_segments(&mut out, what)?;
            return Ok(Cow::Owned(out));
        }
        err(
            what,
            self.offset,
            DerWhy::UnexpectedTag {
                expected: Tag::OCTET_STRING,
                found: self.tag,
            },
        )
    }

    fn collect_segments(&self, out: &mut Vec<u8>, what: &'static str) -> DerResult<()> {
        let mut r = self.children();
        while let Some(seg) = r.next_tlv(what)? {
            if seg.tag == Tag::OCTET_STRING {
                if out.len() + seg.value.len() > MAX_OCTETS {
                    return err(what, seg.offset, DerWhy::TooLarge);
                }
                out.extend_from_slice(seg.value);
            } else if seg.tag == Tag::universal(4, true) {
                seg.collect_segments(out, what)?;
            } else {
                return err(
                    what,
                    seg.offset,
                    DerWhy::UnexpectedTag {
                        expected: Tag::OCTET_STRING,
                        found: seg.tag,
                    },
                );
            }
        }
        Ok(())
    }

    /// A BIT STRING's bytes (the unused-bits count dropped; keys and signatures use whole
    /// bytes).
    pub fn bit_string(&self, what: &'static str) -> DerResult<&'a [u8]> {
        self.expect(Tag::BIT_STRING, what)?;
        match self.value.split_first() {
            Some((_, rest)) => Ok(rest),
            None => err(what, self.offset, DerWhy::BadValue("empty BIT STRING")),
        }
    }

    /// UTCTime or GeneralizedTime as seconds since 1970-01-01T00:00:00Z.
    pub fn time(&self, what: &'static str) -> DerResult<i64> {
        let s = std::str::from_utf8(self.value).unwrap_or("");
        let bad = || DerError {
            what,
            offset: self.offset,
            why: DerWhy::BadTime(String::from_utf8_lossy(self.value).into_owned()),
        };
        let parsed = if self.tag == Tag::UTC_TIME {
            parse_time(s, false)
        } else if self.tag == Tag::GENERALIZED_TIME {
            parse_time(s, true)
        } else {
            return err(
                what,
                self.offset,
                DerWhy::UnexpectedTag {
                    expected: Tag::UTC_TIME,
                    found: self.tag,
                },
            );
        };
        parsed.ok_or_else(bad)
    }

    /// A directory string (PrintableString, UTF8String, IA5String, T61String, BMPString,
    /// UniversalString, VisibleString) as text; anything undecodable is kept lossily.
    pub fn text(&self) -> String {
        match (self.tag.class, self.tag.number) {
            (0, 30) => {
                // BMPString: UTF-16BE.
                let units: Vec<u16> = self
                    .value
                    .chunks(2)
                    .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                    .collect();
                String::from_utf16_lossy(&units)
            }
            (0, 28) => self
                .value
                .chunks(4)
                .map(|c| {
                    let mut b = [0u8; 4];
                    b[..c.len()].copy_from_slice(c);
                    char::from_u32(u32::from_be_bytes(b)).unwrap_or('\u{fffd}')
                })
                .collect(),
            // T61String: treated as Latin-1, as most decoders do.
            (0, 20) => self.value.iter().map(|&b| char::from(b)).collect(),
            _ => String::from_utf8_lossy(self.value).into_owned(),
        }
    }
}

/// Dotted form of an OBJECT IDENTIFIER's contents; `None` if malformed.
pub fn oid_to_string(v: &[u8]) -> Option<String> {
    if v.is_empty() || v.last()? & 0x80 != 0 {
        return None;
    }
    let mut arcs: Vec<u64> = Vec::new();
    let mut cur: u64 = 0;
    for &b in v {
        if cur > (u64::MAX >> 7) {
            return None;
        }
        cur = (cur << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            arcs.push(cur);
            cur = 0;
        }
    }
    let first = arcs[0];
    let (a, b) = if first < 40 {
        (0, first)
    } else if first < 80 {
        (1, first - 40)
    } else {
        (2, first - 80)
    };
    let mut s = format!("{a}.{b}");
    for arc in &arcs[1..] {
        s.push('.');
        s.push_str(&arc.to_string());
    }
    Some(s)
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYMMDDHHMM[SS]Z` (UTCTime, RFC 5280 4.1.2.5.1: YY >= 50 is 19YY) or
/// `YYYYMMDDHHMM[SS[.fff]]Z` (GeneralizedTime). Offsets other than Z are accepted as `+hhmm`.
fn parse_time(s: &str, generalized: bool) -> Option<i64> {
    if !s.is_ascii() {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|b| b.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let (year, rest) = if generalized {
        (num(0..4)?, 4)
    } else {
        let yy = num(0..2)?;
        (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
    };
    let month = num(rest..rest + 2)?;
    let day = num(rest + 2..rest + 4)?;
    let hour = num(rest + 4..rest + 6)?;
    let minute = num(rest + 6..rest + 8)?;
    let mut i = rest + 8;
    let mut second = 0;
    if let Some(sec) = num(i..i + 2) {
        second = sec;
        i += 2;
    }
    if generalized && s.as_bytes().get(i) == Some(&b'.') {
        i += 1;
        while s.as_bytes().get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    let offset = match s.get(i..)? {
        "Z" => 0,
        tz if tz.len() == 5 && (tz.starts_with('+') || tz.starts_with('-')) => {
            let h = num(i + 1..i + 3)?;
            let m = num(i + 3..i + 5)?;
            let o = h * 3600 + m * 60;
            if tz.starts_with('+') {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch.
pub fn format_time(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil from days (inverse of days_from_civil).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let t = Tlv {
            tag: Tag::UTC_TIME,
            offset: 0,
            value: b"180205073416Z",
            raw: b"",
            value_offset: 0,
            depth: 0,
        };
        let s = t.time("t").unwrap();
        assert_eq!(s, 1_517_816_056);
        assert_eq!(format_time(s), "2018-02-05T07:34:16Z");
        assert_eq!(parse_time("20500101000000.5Z", true), Some(2_524_608_000));
        assert_eq!(
            parse_time("491231235959Z", false)
                .map(format_time)
                .as_deref(),
            Some("2049-12-31T23:59:59Z")
        );
        assert_eq!(parse_time("1802050734Z", false), Some(1_517_816_040));
        assert_eq!(parse_time("18020507341Z", false), None);
        assert_eq!(parse_time("181305073416Z", false), None);
    }

    #[test]
    fn oids() {
        assert_eq!(
            oid_to_string(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02]).as_deref(),
            Some("1.2.840.113549.1.7.2")
        );
        assert_eq!(
            oid_to_string(&[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x0a, 0x01]).as_deref(),
            Some("1.3.6.1.4.1.311.10.1")
        );
        assert_eq!(oid_to_string(&[0x2b, 0x86]), None);
        assert_eq!(oid_to_string(&[]), None);
    }

    #[test]
    fn indefinite_lengths_and_segments() {
        // [0] indefinite { OCTET STRING constructed indefinite { "ab", "c" } }, then NULL.
        let data = [
            0xa0, 0x80, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0, 0, 0, 0, 0x05, 0,
        ];
        let mut r = Reader::new(&data, 0);
        let outer = r.read("outer").unwrap();
        assert_eq!(outer.raw.len(), 15);
        let os = outer.inner("os").unwrap();
        assert_eq!(&*os.octets("os").unwrap(), b"abc");
        assert_eq!(r.read("null").unwrap().tag, Tag::NULL);
        assert!(r.is_empty());
    }

    #[test]
    fn hostile_headers_are_errors() {
        // Length runs past the end.
        let e = Reader::new(&[0x30, 0x05, 0x01], 10).read("x").unwrap_err();
        assert_eq!(e.offset, 10);
        assert!(matches!(e.why, DerWhy::Truncated { .. }));
        // Five length octets.
        let e = Reader::new(&[0x30, 0x85, 1, 1, 1, 1, 1], 0)
            .read("x")
            .unwrap_err();
        assert_eq!(e.why, DerWhy::BadLength);
        // Indefinite length on a primitive.
        let e = Reader::new(&[0x04, 0x80, 0, 0], 0).read("x").unwrap_err();
        assert_eq!(e.why, DerWhy::BadLength);
        // Indefinite nesting deeper than the limit.
        let mut deep = [0x30, 0x80].repeat(MAX_DEPTH + 10);
        deep.extend(vec![0u8; 2 * (MAX_DEPTH + 10)]);
        let e = Reader::new(&deep, 0).read("x").unwrap_err();
        assert_eq!(e.why, DerWhy::TooDeep);
        // Missing end-of-contents.
        let e = Reader::new(&[0x30, 0x80, 0x05, 0x00], 0)
            .read("x")
            .unwrap_err();
        assert!(matches!(e.why, DerWhy::Truncated { .. }));
    }
}
