//! Flat (whole-file) hashes. Blocklists name drivers by these as well as by their Authenticode
//! digests: LOLDrivers' `MD5`/`SHA1`/`SHA256` fields and Microsoft's rules whose friendly name
//! carries the file hash.

use crate::util::md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Lower-case hex MD5, SHA-1 and SHA-256 of a file's bytes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FlatHashes {
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
}

/// The three flat hashes of `bytes`, computed in one pass over the data (64 KiB at a time, so
/// each chunk is hashed three times while it is still in cache).
pub fn flat_hashes(bytes: &[u8]) -> FlatHashes {
    let (mut m, mut s1, mut s2) = (Md5::new(), Sha1::new(), Sha256::new());
    for chunk in bytes.chunks(64 * 1024) {
        m.update(chunk);
        s1.update(chunk);
        s2.update(chunk);
    }
    FlatHashes {
        md5: hex::encode(m.finalize()),
        sha1: hex::encode(s1.finalize()),
        sha256: hex::encode(s2.finalize()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_vectors() {
        // RFC 1321 / FIPS 180 test vectors for "abc".
        let h = super::flat_hashes(b"abc");
        assert_eq!(h.md5, "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(h.sha1, "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            h.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // More than one chunk gives the same digest as one update.
        let big = vec![0x5au8; 200_000];
        assert_eq!(super::flat_hashes(&big).sha256, crate::sha256_hex(&big));
    }
}
