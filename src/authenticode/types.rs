//! The types every part of [`crate::authenticode`] shares: digest algorithms and the error.

use super::der::DerError;

/// A digest algorithm Authenticode uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestAlgorithm {
    Md5,
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl DigestAlgorithm {
    /// Upper-case name as `osslsigncode` prints it (`SHA256`).
    pub fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Sha1 => "SHA1",
            DigestAlgorithm::Sha256 => "SHA256",
            DigestAlgorithm::Sha384 => "SHA384",
            DigestAlgorithm::Sha512 => "SHA512",
        }
    }

    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            DigestAlgorithm::Md5 => 16,
            DigestAlgorithm::Sha1 => 20,
            DigestAlgorithm::Sha256 => 32,
            DigestAlgorithm::Sha384 => 48,
            DigestAlgorithm::Sha512 => 64,
        }
    }

    /// The algorithm whose digests have `len` bytes (MD5, SHA-1, SHA-256, …).
    pub fn for_len(len: usize) -> Option<DigestAlgorithm> {
        [
            DigestAlgorithm::Md5,
            DigestAlgorithm::Sha1,
            DigestAlgorithm::Sha256,
            DigestAlgorithm::Sha384,
            DigestAlgorithm::Sha512,
        ]
        .into_iter()
        .find(|a| a.digest_len() == len)
    }
}

/// Why a signature, a certificate table or a catalog could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("not a PE image: {why}")]
    NotPe { why: &'static str },
    #[error("certificate table at file offset {offset:#x} ({size} bytes) runs past the end of the {file_len}-byte file")]
    CertificateTableOutOfBounds {
        offset: usize,
        size: usize,
        file_len: usize,
    },
    #[error("certificate table at file offset {offset:#x} ({size} bytes) overlaps {what} (which end at {limit:#x})")]
    CertificateTableOverlaps {
        offset: usize,
        size: usize,
        what: &'static str,
        limit: usize,
    },
    #[error("WIN_CERTIFICATE at file offset {offset:#x}: {why}")]
    BadWinCertificate { offset: usize, why: String },
    #[error("{what} is {size} bytes, more than the {limit} accepted")]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("more than {limit} {what}")]
    TooMany { what: &'static str, limit: usize },
    #[error("{what} nested deeper than {limit} levels")]
    TooDeep { what: &'static str, limit: usize },
    #[error("malformed {what}")]
    Der {
        what: &'static str,
        #[source]
        source: DerError,
    },
    #[error("unsupported {what} {value}")]
    Unsupported { what: &'static str, value: String },
    #[error("no {what}")]
    Missing { what: &'static str },
}
