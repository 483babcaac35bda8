//! Who signed a driver: the classes a driver-package gate decides on
//! (`../shared/reference/package-gating.md` §2; Microsoft Learn "Driver signing", "Kernel-mode
//! code signing requirements", "Cross-certificates for kernel mode code signing").
//!
//! The classes rest on Microsoft roots identified by values built in ([`ANCHORS`]): SHA-1
//! thumbprints, which Microsoft publishes and `signtool verify /v /kp` prints, and the
//! subject key identifiers of those roots, which the certificates they issued carry as their
//! authority key identifier. The chain embedded in a signature usually stops one below the
//! root (the root is in the machine's store, not in the file), so a chain is anchored when
//! one of its certificates is a root by thumbprint, or when its top certificate names the
//! root as issuer *and* carries the root's key identifier.
//!
//! This is a structural judgement, not cryptographic chain validation: no signature in the
//! chain is verified and nothing is checked for revocation. A forged chain that copies
//! Microsoft's names and key identifiers is caught only by Windows itself.
//!
//! Decision table, per signature (first matching row wins):
//!
//! | # | condition | class |
//! |---|---|---|
//! | 1 | the signed Authenticode digest differs from the file's, or the authenticated `messageDigest` differs from the signed content | `DigestMismatch` |
//! | 2 | the signer's certificate is not embedded | `Malformed` |
//! | 3 | anchored at a Microsoft product root; leaf CN "Microsoft Windows Hardware Compatibility Publisher"; EKU 1.3.6.1.4.1.311.10.3.5.1 | `Attestation` |
//! | 4 | as 3, with EKU 1.3.6.1.4.1.311.10.3.5 (and not .1) | `Whql` |
//! | 5 | anchored at a Microsoft product root, any other leaf (inbox "Microsoft Windows", …) | `Microsoft` |
//! | 6 | a chain certificate issued by Microsoft Code Verification Root (a cross-certificate) | `CrossSigned` |
//! | 7 | anything else: the chain ends at a self-signed root or stops at an issuer that is none of the above | `TestSigned` |
//!
//! A file: no certificate table → `Unsigned`; a table that cannot be read → `Malformed`; any
//! signature in row 1 → `DigestMismatch`; otherwise the strongest class among its signatures
//! (primary and nested), in the order Whql, Attestation, Microsoft, CrossSigned, TestSigned.
//! The signer certificate's validity is judged at the timestamp, not at scan time; a signer
//! certificate that has expired and has no timestamp is reported as a fact
//! ([`Classification::expired_without_timestamp`]).

use super::pkcs7::Signature;
use super::types::SignatureError;
use super::x509::{eku, Certificate};

/// A Microsoft root the classes rest on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// Subject common name.
    pub name: &'static str,
    /// SHA-1 of the certificate, upper-case hex.
    pub sha1_thumbprint: &'static str,
    /// Subject key identifier, upper-case hex.
    pub key_id: &'static str,
    pub kind: AnchorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnchorKind {
    /// Roots of Microsoft's own signing (WHQL, attestation, Windows).
    Product,
    /// The root of kernel-mode cross-certificates for commercial CAs.
    CodeVerification,
}

/// The built-in Microsoft roots. Thumbprints: Microsoft's published SHA-1 thumbprints of its
/// roots (as `signtool verify /v` prints them, e.g. for Microsoft Code Verification Root in the
/// WDK's kernel-mode signing walkthrough). Key identifiers: for Root CA 2010 and Code
/// Verification Root, the authority key identifier of every certificate they issued in the
/// test corpus (testdata/truth/README.md); for Root CA 2011, its published subject key
/// identifier; empty where none was confirmed (matched by issuer CN and O only).
pub const ANCHORS: &[Anchor] = &[
    Anchor {
        name: "Microsoft Root Certificate Authority 2010",
        sha1_thumbprint: "3B1EFD3A66EA28B16697394703A72CA340A05BD5",
        key_id: "D5F656CB8FE8A25C6268D13D94905BD7CE9A18C4",
        kind: AnchorKind::Product,
    },
    Anchor {
        name: "Microsoft Root Certificate Authority 2011",
        sha1_thumbprint: "8F43288AD272F3103B6FB1428485EA3014C0BCFE",
        key_id: "722D3A02319043B914054EE1EAA7C731D1238934",
        kind: AnchorKind::Product,
    },
    Anchor {
        name: "Microsoft Root Certificate Authority",
        sha1_thumbprint: "CDD4EEAE6000AC7F40C3802C171E30148030C072",
        // Key identifier not confirmed from a source at hand: matched by name and organisation.
        key_id: "",
        kind: AnchorKind::Product,
    },
    Anchor {
        name: "Microsoft Root Authority",
        sha1_thumbprint: "A43489159A520F0D93D032CCAF37E7FE20A8B419",
        // Its certificates name it by issuer and serial, not by key identifier.
        key_id: "",
        kind: AnchorKind::Product,
    },
    Anchor {
        name: "Microsoft Code Verification Root",
        sha1_thumbprint: "8FBE4D070EF8AB1BCCAF2A9D5CCAE7282A2C66B3",
        key_id: "62FB0A215B7F436E11DA0954506BF5D29671F19E",
        kind: AnchorKind::CodeVerification,
    },
];

/// The leaf of Microsoft's hardware signing (WHQL and attestation).
pub const HARDWARE_PUBLISHER: &str = "Microsoft Windows Hardware Compatibility Publisher";

/// The anchor that `cert` is (by thumbprint), if any.
pub fn anchor_of(cert: &Certificate) -> Option<&'static Anchor> {
    let t = hex::encode_upper(cert.sha1_thumbprint());
    ANCHORS.iter().find(|a| a.sha1_thumbprint == t)
}

/// The anchor that issued `cert` (by issuer name and, where both are known, key identifier).
pub fn issuing_anchor(cert: &Certificate) -> Option<&'static Anchor> {
    let cn = cert.issuer.common_name()?;
    let aki = cert.authority_key_id.as_ref().map(hex::encode_upper);
    ANCHORS.iter().find(|a| {
        a.name == cn
            && cert.issuer.get("O") == Some("Microsoft Corporation")
            && match &aki {
                Some(k) => a.key_id.is_empty() || *k == a.key_id,
                None => true,
            }
    })
}

/// The class of a signature or a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SignatureClass {
    /// Hardware Dev Center, HLK-tested.
    Whql,
    /// Hardware Dev Center, attested (not valid on Windows Server).
    Attestation,
    /// Another Microsoft signature (inbox components).
    Microsoft,
    /// Vendor certificate with a cross-certificate from Microsoft Code Verification Root.
    CrossSigned,
    /// Chains to none of the above (loads only with TESTSIGNING).
    TestSigned,
    /// A signed digest differs from the computed one.
    DigestMismatch,
    /// A certificate table or signature that cannot be read.
    Malformed,
    /// No certificate table (and, for the caller, no catalog entry).
    Unsigned,
}

impl SignatureClass {
    /// Stable lower-case name for reports and truth files.
    pub fn name(self) -> &'static str {
        match self {
            SignatureClass::Whql => "whql",
            SignatureClass::Attestation => "attestation",
            SignatureClass::Microsoft => "microsoft",
            SignatureClass::CrossSigned => "cross-signed",
            SignatureClass::TestSigned => "test-signed",
            SignatureClass::DigestMismatch => "digest-mismatch",
            SignatureClass::Malformed => "malformed",
            SignatureClass::Unsigned => "unsigned",
        }
    }
}

/// A class with the facts it was decided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    pub class: SignatureClass,
    /// Why, in one sentence.
    pub reason: String,
    /// The deciding signature's index in the flat signature list.
    pub signature: Option<usize>,
    /// Signer certificate subject and issuer common names.
    pub signer: Option<String>,
    pub issuer: Option<String>,
    /// The deciding signature's timestamp (seconds since the epoch).
    pub timestamp: Option<i64>,
    /// The signer certificate's validity.
    pub signer_not_before: Option<i64>,
    pub signer_not_after: Option<i64>,
}

impl Classification {
    fn bare(class: SignatureClass, reason: String) -> Classification {
        Classification {
            class,
            reason,
            signature: None,
            signer: None,
            issuer: None,
            timestamp: None,
            signer_not_before: None,
            signer_not_after: None,
        }
    }

    pub fn malformed(e: &SignatureError) -> Classification {
        Classification::bare(
            SignatureClass::Malformed,
            format!("the signature cannot be read: {e}"),
        )
    }

    /// Whether the signer certificate was valid at the timestamp (`None` without one).
    pub fn signer_valid_at_timestamp(&self) -> Option<bool> {
        let t = self.timestamp?;
        Some(self.signer_not_before? <= t && t <= self.signer_not_after?)
    }

    /// The signer certificate has expired by `now` and no timestamp proves it signed while
    /// valid (the lead's warning).
    pub fn expired_without_timestamp(&self, now: i64) -> bool {
        self.timestamp.is_none() && self.signer_not_after.is_some_and(|t| t < now)
    }
}

fn cn(c: &Certificate) -> String {
    c.subject
        .common_name()
        .map_or_else(|| c.subject.one_line(), str::to_string)
}

/// The class of one signature (rows 1–7 of the table) and why.
pub fn classify_one(sig: &Signature) -> (SignatureClass, String) {
    if sig.digest_matches() == Some(false) {
        let (i, c) = (sig.indirect.as_ref(), sig.computed_digest.as_ref());
        return (
            SignatureClass::DigestMismatch,
            format!(
                "the signed {} digest {} differs from the file's {}",
                i.and_then(|i| i.digest_algorithm).map_or("?", |a| a.name()),
                i.map(|i| hex::encode_upper(&i.digest)).unwrap_or_default(),
                c.map(hex::encode_upper).unwrap_or_default()
            ),
        );
    }
    if sig.signer.content_digest_matches == Some(false) {
        return (
            SignatureClass::DigestMismatch,
            "the authenticated messageDigest differs from the hash of the signed content".into(),
        );
    }
    let Some(leaf) = sig.signer_cert() else {
        return (
            SignatureClass::Malformed,
            "the signer's certificate is not embedded".into(),
        );
    };
    let chain: Vec<&Certificate> = sig.chain_certs().collect();
    let top = chain.last().copied().unwrap_or(leaf);
    let anchor = chain
        .iter()
        .find_map(|c| anchor_of(c))
        .or_else(|| issuing_anchor(top));
    if let Some(a) = anchor.filter(|a| a.kind == AnchorKind::Product) {
        if leaf.subject.common_name() == Some(HARDWARE_PUBLISHER) {
            if leaf.has_eku(eku::ATTESTATION) {
                return (
                    SignatureClass::Attestation,
                    format!(
                        "{HARDWARE_PUBLISHER} with the attested-verification EKU, chained to {}",
                        a.name
                    ),
                );
            }
            if leaf.has_eku(eku::WHQL) {
                return (SignatureClass::Whql, format!("{HARDWARE_PUBLISHER} with the driver-verification (WHQL) EKU, chained to {}", a.name));
            }
        }
        return (
            SignatureClass::Microsoft,
            format!("{} chained to {}", cn(leaf), a.name),
        );
    }
    if let Some(cross) = chain
        .iter()
        .find(|c| issuing_anchor(c).is_some_and(|a| a.kind == AnchorKind::CodeVerification))
    {
        return (
            SignatureClass::CrossSigned,
            format!(
                "{} chains to {}, cross-signed by Microsoft Code Verification Root",
                cn(leaf),
                cn(cross)
            ),
        );
    }
    let reason = if top.is_self_issued() {
        format!(
            "{} chains to the self-signed {}, not a Microsoft root and not cross-signed",
            cn(leaf),
            cn(top)
        )
    } else {
        format!(
            "{} chains to {} (issuer {}), which is neither a Microsoft root nor cross-signed by Microsoft Code Verification Root",
            cn(leaf),
            cn(top),
            top.issuer.common_name().unwrap_or("?")
        )
    };
    (SignatureClass::TestSigned, reason)
}

/// The class of a file from its flat signature list (empty = unsigned).
pub fn classify_signatures(sigs: &[Signature]) -> Classification {
    if sigs.is_empty() {
        return Classification::bare(SignatureClass::Unsigned, "no certificate table".into());
    }
    let judged: Vec<(usize, SignatureClass, String)> = sigs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (c, r) = classify_one(s);
            (i, c, r)
        })
        .collect();
    let pick = judged
        .iter()
        .find(|(_, c, _)| *c == SignatureClass::DigestMismatch)
        .or_else(|| judged.iter().min_by_key(|(i, c, _)| (*c, *i)))
        .cloned();
    let Some((index, class, mut reason)) = pick else {
        return Classification::bare(SignatureClass::Unsigned, "no signature".into());
    };
    if sigs.len() > 1 {
        reason = format!("signature {} of {}: {reason}", index + 1, sigs.len());
    }
    let sig = &sigs[index];
    let leaf = sig.signer_cert();
    Classification {
        class,
        reason,
        signature: Some(index),
        signer: leaf
            .and_then(|c| c.subject.common_name())
            .map(str::to_string),
        issuer: leaf
            .and_then(|c| c.issuer.common_name())
            .map(str::to_string),
        timestamp: sig.timestamp.as_ref().map(|t| t.time),
        signer_not_before: leaf.map(|c| c.not_before),
        signer_not_after: leaf.map(|c| c.not_after),
    }
}
