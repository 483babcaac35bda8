//! drvaudit: an offline static audit linter for Windows kernel drivers.
//!
//! The pipeline: [`scan`] collects `.sys` files, packages and crash dumps; each image is parsed
//! once into a [`model::Image`], its pool call sites recovered by [`callsite`], and every
//! rule of [`rules`] run over it; findings, notices and pool evidence form a
//! [`finding::Report`], which [`output`] renders as SARIF 2.1.0 or text.

pub mod callsite;
pub mod dump;
mod dumpscan;
pub mod finding;
pub mod model;
pub mod output;
pub mod package;
pub mod poolsrc;
pub mod poolusage;
pub mod rank;
pub mod rules;
pub mod scan;

/// Lower-case hex SHA-256 of `bytes` (artifact hashes and image identities).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
