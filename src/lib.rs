//! drvaudit: an offline static audit linter for Windows kernel drivers.
//!
//! The pipeline: [`scan`] collects `.sys` files, packages and crash dumps; each image is parsed
//! once into a [`model::Image`], its pool call sites recovered by [`callsite`], and every
//! rule of [`rules`] run over it; findings, notices and pool evidence form a
//! [`finding::Report`], which [`output`] renders as SARIF 2.1.0 or text.

pub mod blocklist;
pub mod callsite;
pub mod dump;
mod dumpscan;
pub mod finding;
pub mod identity;
pub mod inf;
pub mod model;
pub mod output;
pub mod package;
pub mod poolsrc;
pub mod poolusage;
pub mod rank;
pub mod rules;
pub mod scan;

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

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_escaped() {
        let name = String::from_utf8_lossy(b"INIT\x19\x1b[2J").into_owned();
        assert_eq!(super::printable_text(name), "INIT\\x19\\x1b[2J");
        assert_eq!(super::printable_text("ntoskrnl.exe".into()), "ntoskrnl.exe");
        assert_eq!(super::printable_text("c:\\Ä\u{85}".into()), "c:\\Ä\\x85");
    }
}
