//! The bottom layer: helpers every other layer may use and that use nothing of drvaudit.
//!
//! Text read from inputs made safe to print, hashes, paths as reports show them, number
//! formatting, and reading input files ([`fileio`]).

pub mod fileio;
pub mod guard;

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

#[cfg(test)]
mod tests {
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
