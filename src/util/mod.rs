//! The bottom layer: helpers every other layer may use and that use nothing of drvaudit.
//!
//! Text read from inputs made safe to print, hashes, paths as reports show them, number
//! formatting, and reading input files ([`fileio`]).

pub mod deadline;
pub mod fileio;
pub mod guard;
pub(crate) mod le;
pub mod md5;

use std::path::Path;

/// Text read from an image or a dump, made safe to print. A damaged or hostile file can put
/// control characters in a section, import or module name, and reports would carry them to
/// terminals and logs as escape sequences: they are written as `\xNN` (Unicode's control
/// characters are all below 0x100). Everything else, non-ASCII included, is kept.
pub fn printable_text(s: String) -> String {
    if !s.chars().any(char::is_control) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Lower-case hex SHA-256 of `bytes` (artifact hashes and image identities).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The path as the user wrote it, with forward slashes (reports and URIs use `/` everywhere).
pub fn display_path(p: &Path) -> String {
    p.to_string_lossy().replace('\\', "/")
}

/// The last component of a `/`-separated display path.
pub fn file_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// 50827424 → "50,827,424".
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Seconds since 1970-01-01 UTC as `YYYY-MM-DD` (the proleptic Gregorian calendar; Howard
/// Hinnant's days-from-civil inverse).
pub fn utc_date(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_from_unix_seconds() {
        assert_eq!(super::utc_date(0), "1970-01-01");
        assert_eq!(super::utc_date(1_535_068_800), "2018-08-24");
        assert_eq!(super::utc_date(951_782_400), "2000-02-29");
        assert_eq!(super::utc_date(-86_400), "1969-12-31");
    }

    #[test]
    fn control_characters_are_escaped() {
        let name = String::from_utf8_lossy(b"INIT\x19\x1b[2J").into_owned();
        assert_eq!(super::printable_text(name), "INIT\\x19\\x1b[2J");
        assert_eq!(super::printable_text("ntoskrnl.exe".into()), "ntoskrnl.exe");
        assert_eq!(super::printable_text("c:\\Ä\u{85}".into()), "c:\\Ä\\x85");
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(super::group(0), "0");
        assert_eq!(super::group(999), "999");
        assert_eq!(super::group(1000), "1,000");
        assert_eq!(super::group(50827424), "50,827,424");
    }
}
