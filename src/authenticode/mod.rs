//! Authenticode: digests, embedded signatures, catalogs and who signed a driver.
//!
//! A self-contained leaf: every input is a byte slice (a file-layout PE image or a `.cat`
//! file), every result an owned value the caller can keep after dropping the bytes.
//!
//! * [`pe`]: the Authenticode digest and the first-page hash (the values Microsoft's block
//!   rules, WDAC and LOLDrivers use), the `WIN_CERTIFICATE` entries.
//! * [`pkcs7`]: PKCS#7 SignedData, SpcIndirectDataContent, nested signatures, timestamps.
//! * [`x509`]: certificates: names, serials, validity, EKUs, key identifiers, thumbprints and
//!   the TBS hashes of SiPolicy Signer rules.
//! * [`classify`]: the decision table WHQL / attestation / cross-signed / test-signed / …,
//!   resting on Microsoft roots identified by values built in ([`classify::ANCHORS`]).
//! * [`catalog`]: catalog files (a SignedData over a Certificate Trust List) and their
//!   members.
//! * [`der`]: the bounded BER/DER reader underneath.
//!
//! Sources: Microsoft, "Windows Authenticode Portable Executable Signature Format"; PE
//! Format (learn.microsoft.com, "The Attribute Certificate Table"); RFC 2315, RFC 5652
//! (SignedData), RFC 3161 (timestamps), RFC 5280 (certificates); `../shared/reference/
//! package-gating.md` §1–3. Nothing here does revocation, network or trust-store lookups.
//!
//! Invariants: no input makes this module panic; sizes, counts and nesting are bounded by the
//! constants of each submodule; whatever could not be read is an error or a `problems` entry
//! saying what, where and why.

pub mod catalog;
pub mod classify;
pub mod der;
pub mod pe;
pub mod pkcs7;
pub mod types;
pub mod x509;

pub use catalog::{Catalog, CatalogMember};
pub use classify::{classify_signatures, Classification, SignatureClass};
pub use pe::{
    authenticode_digest, authenticode_digests, first_page_hashes, PeLayout, WinCertificate,
};
pub use pkcs7::{IndirectData, Signature, Signer, Timestamp, TimestampKind};
pub use x509::{Certificate, Name};

pub use types::{DigestAlgorithm, SignatureError};

/// The embedded signatures of a PE image, with the digests they claim checked.
#[derive(Debug, Clone)]
pub struct PeSignatures {
    pub layout: PeLayout,
    pub entries: Vec<WinCertificate>,
    /// Every signature of every PKCS#7 entry, flattened: each primary followed by its nested
    /// ones (depth first). `computed_digest` is filled in for each.
    pub signatures: Vec<Signature>,
    /// Entries of a type other than PKCS#7 SignedData, skipped (offset, type).
    pub skipped_entries: Vec<(usize, u16)>,
}

/// Reads the embedded signatures and computes the Authenticode digest with each algorithm
/// they use (one pass over the file). An image without a certificate table gives an empty
/// list.
pub fn read_pe_signatures(pe: &[u8]) -> Result<PeSignatures, SignatureError> {
    read_pe_signatures_with(pe, |layout, algs| pe::digests_with_layout(pe, layout, algs))
}

/// [`read_pe_signatures`], with the digests computed by `digests(layout, algorithms)` (one per
/// algorithm, in order): a caller that hashes the file anyway for other reasons (catalogs,
/// blocklists) hashes it once for everything.
pub fn read_pe_signatures_with(
    pe: &[u8],
    digests: impl FnOnce(&PeLayout, &[DigestAlgorithm]) -> Vec<Vec<u8>>,
) -> Result<PeSignatures, SignatureError> {
    let layout = pe::layout(pe)?;
    let entries = pe::win_certificates(pe, &layout)?;
    let mut signatures = Vec::new();
    let mut skipped_entries = Vec::new();
    for e in &entries {
        if e.certificate_type != 2 {
            skipped_entries.push((e.offset, e.certificate_type));
            continue;
        }
        let first = signatures.len();
        let mut sigs = pkcs7::parse_signatures(&pe[e.data.clone()], e.data.start)?;
        for s in &mut sigs {
            s.parent = s.parent.map(|p| p + first);
        }
        signatures.extend(sigs);
    }
    let mut algs: Vec<DigestAlgorithm> = signatures
        .iter()
        .filter_map(|s| s.indirect.as_ref()?.digest_algorithm)
        .collect();
    algs.sort_unstable();
    algs.dedup();
    if !algs.is_empty() {
        let digests = digests(&layout, &algs);
        for s in &mut signatures {
            let alg = s.indirect.as_ref().and_then(|i| i.digest_algorithm);
            if let Some(i) = alg.and_then(|a| algs.iter().position(|&x| x == a)) {
                s.computed_digest = digests.get(i).cloned();
            }
        }
    }
    Ok(PeSignatures {
        layout,
        entries,
        signatures,
        skipped_entries,
    })
}

/// A PE image's signature facts and class.
#[derive(Debug, Clone)]
pub struct PeVerdict {
    pub classification: Classification,
    /// The signatures, when the certificate table could be read.
    pub signatures: Option<PeSignatures>,
    /// Why the certificate table or a signature could not be read (class
    /// [`SignatureClass::Malformed`]).
    pub error: Option<SignatureError>,
}

/// Reads and classifies a PE image's embedded signature. `Err` only when the bytes are not a
/// PE image at all; an unreadable certificate table is the class `Malformed`, with the error.
pub fn inspect_pe(pe: &[u8]) -> Result<PeVerdict, SignatureError> {
    inspect_pe_with(pe, |layout, algs| pe::digests_with_layout(pe, layout, algs))
}

/// [`inspect_pe`], with the digests computed by the caller (see [`read_pe_signatures_with`]).
pub fn inspect_pe_with(
    pe: &[u8],
    digests: impl FnOnce(&PeLayout, &[DigestAlgorithm]) -> Vec<Vec<u8>>,
) -> Result<PeVerdict, SignatureError> {
    match read_pe_signatures_with(pe, digests) {
        Ok(s) => Ok(PeVerdict {
            classification: classify_signatures(&s.signatures),
            signatures: Some(s),
            error: None,
        }),
        Err(e @ SignatureError::NotPe { .. }) => Err(e),
        Err(e) => Ok(PeVerdict {
            classification: Classification::malformed(&e),
            signatures: None,
            error: Some(e),
        }),
    }
}
