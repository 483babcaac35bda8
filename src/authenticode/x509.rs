//! X.509 certificates as Authenticode embeds them (RFC 5280 §4.1): the facts a gate and the
//! blocklist Signer rules need, each computed over the bytes as found.
//!
//! The TBS hash ([`Certificate::tbs_hash`]) is what SiPolicy `CertRoot Type="TBS"` values
//! hold: the hash of the DER TBSCertificate, with the digest of the certificate's own
//! signature algorithm (SHA-1 for sha1WithRSAEncryption, SHA-256 for sha256WithRSAEncryption,
//! and so on). The thumbprints are hashes of the whole certificate.

use super::der::{DerError, DerResult, Reader, Tag, Tlv};
use super::pe::hash;
use super::types::DigestAlgorithm;

/// A distinguished name: its attributes in order, and its encoding (compared byte for byte
/// when chains are built).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Name {
    /// (short name such as `CN`, `O`, or the dotted OID, value).
    pub attributes: Vec<(String, String)>,
    pub der: Vec<u8>,
}

impl Name {
    /// The last common name (the most specific one), as tools show it.
    pub fn common_name(&self) -> Option<&str> {
        self.attributes
            .iter()
            .rev()
            .find(|(k, _)| k == "CN")
            .map(|(_, v)| v.as_str())
    }

    /// The value of attribute `key` (short name), the last one if repeated.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// OpenSSL's one-line form `/C=US/O=…/CN=…` (what `osslsigncode verify` prints).
    pub fn one_line(&self) -> String {
        self.attributes
            .iter()
            .map(|(k, v)| format!("/{k}={v}"))
            .collect()
    }
}

fn attribute_name(oid: &str) -> String {
    match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.15" => "businessCategory",
        "2.5.4.17" => "postalCode",
        "2.5.4.42" => "GN",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "1.3.6.1.4.1.311.60.2.1.1" => "jurisdictionL",
        "1.3.6.1.4.1.311.60.2.1.2" => "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.3" => "jurisdictionC",
        "0.9.2342.19200300.100.1.25" => "DC",
        other => return other.to_string(),
    }
    .to_string()
}

/// Name ::= SEQUENCE OF RelativeDistinguishedName (SET OF AttributeTypeAndValue).
pub(crate) fn parse_name(t: &Tlv<'_>) -> DerResult<Name> {
    t.expect(Tag::SEQUENCE, "name")?;
    let mut attributes = Vec::new();
    let mut rdns = t.children();
    while let Some(rdn) = rdns.next_tlv("relative distinguished name")? {
        rdn.expect(Tag::SET, "relative distinguished name")?;
        let mut atvs = rdn.children();
        while let Some(atv) = atvs.next_tlv("name attribute")? {
            let mut f = atv.children();
            let oid = f.read("name attribute type")?.oid("name attribute type")?;
            let value = f.read("name attribute value")?;
            attributes.push((attribute_name(&oid), crate::printable_text(value.text())));
        }
    }
    Ok(Name {
        attributes,
        der: t.raw.to_vec(),
    })
}

/// The digest algorithm named by an AlgorithmIdentifier's OID, whether it names a digest or
/// a signature with one (signers sometimes put the latter where the former belongs).
pub fn digest_for_oid(oid: &str) -> Option<DigestAlgorithm> {
    Some(match oid {
        "1.2.840.113549.2.5" | "1.2.840.113549.1.1.4" => DigestAlgorithm::Md5,
        "1.3.14.3.2.26"
        | "1.2.840.113549.1.1.5"
        | "1.3.14.3.2.29"
        | "1.2.840.10045.4.1"
        | "1.2.840.10040.4.3" => DigestAlgorithm::Sha1,
        "2.16.840.1.101.3.4.2.1" | "1.2.840.113549.1.1.11" | "1.2.840.10045.4.3.2" => {
            DigestAlgorithm::Sha256
        }
        "2.16.840.1.101.3.4.2.2" | "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => {
            DigestAlgorithm::Sha384
        }
        "2.16.840.1.101.3.4.2.3" | "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => {
            DigestAlgorithm::Sha512
        }
        _ => return None,
    })
}

/// AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL } → the OID.
pub(crate) fn algorithm_oid(t: &Tlv<'_>, what: &'static str) -> DerResult<String> {
    t.expect(Tag::SEQUENCE, what)?;
    t.children().read(what)?.oid(what)
}

/// Extended key usage OIDs that matter for driver signing.
pub mod eku {
    pub const CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";
    pub const TIME_STAMPING: &str = "1.3.6.1.5.5.7.3.8";
    /// Windows Hardware Driver Verification (WHQL).
    pub const WHQL: &str = "1.3.6.1.4.1.311.10.3.5";
    /// Windows Hardware Driver Attested Verification.
    pub const ATTESTATION: &str = "1.3.6.1.4.1.311.10.3.5.1";
    /// Windows System Component Verification (inbox components).
    pub const WINDOWS: &str = "1.3.6.1.4.1.311.10.3.6";
    /// Kernel Mode Code Signing.
    pub const KERNEL_MODE: &str = "1.3.6.1.4.1.311.61.1.1";
}

/// One certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The whole certificate as found.
    pub der: Vec<u8>,
    /// Byte range of the TBSCertificate inside `der`.
    pub tbs: std::ops::Range<usize>,
    pub version: u64,
    /// Serial number magnitude, big-endian.
    pub serial: Vec<u8>,
    pub issuer: Name,
    pub subject: Name,
    /// Validity, seconds since the epoch.
    pub not_before: i64,
    pub not_after: i64,
    /// OID of the certificate's signature algorithm.
    pub signature_algorithm: String,
    /// SubjectPublicKeyInfo as found.
    pub public_key_info: Vec<u8>,
    /// Extended key usages (dotted OIDs), in order; empty when the extension is absent.
    pub ekus: Vec<String>,
    pub subject_key_id: Option<Vec<u8>>,
    pub authority_key_id: Option<Vec<u8>>,
    /// basicConstraints cA, when the extension is present.
    pub is_ca: Option<bool>,
}

impl Certificate {
    /// Parses one DER certificate (`t` is its SEQUENCE).
    pub fn parse(t: &Tlv<'_>) -> DerResult<Certificate> {
        t.expect(Tag::SEQUENCE, "certificate")?;
        let mut c = t.children();
        let tbs = c.expect(Tag::SEQUENCE, "TBSCertificate")?;
        let sig_alg = algorithm_oid(
            &c.read("certificate signature algorithm")?,
            "certificate signature algorithm",
        )?;
        let tbs_start = tbs.offset - t.offset;
        let mut f = tbs.children();
        let version = match f.optional(Tag::context(0), "certificate version")? {
            Some(v) => v
                .inner("certificate version")?
                .small_uint("certificate version")?,
            None => 0,
        };
        let serial = f
            .read("serial number")?
            .integer_bytes("serial number")?
            .to_vec();
        f.read("TBS signature algorithm")?;
        let issuer = parse_name(&f.read("issuer")?)?;
        let validity = f.expect(Tag::SEQUENCE, "validity")?;
        let mut v = validity.children();
        let not_before = v.read("notBefore")?.time("notBefore")?;
        let not_after = v.read("notAfter")?.time("notAfter")?;
        let subject = parse_name(&f.read("subject")?)?;
        let spki = f.expect(Tag::SEQUENCE, "subjectPublicKeyInfo")?;
        let mut cert = Certificate {
            der: t.raw.to_vec(),
            tbs: tbs_start..tbs_start + tbs.raw.len(),
            version,
            serial,
            issuer,
            subject,
            not_before,
            not_after,
            signature_algorithm: sig_alg,
            public_key_info: spki.raw.to_vec(),
            ekus: Vec::new(),
            subject_key_id: None,
            authority_key_id: None,
            is_ca: None,
        };
        while let Some(x) = f.next_tlv("certificate field")? {
            if x.tag == Tag::context(3) {
                cert.parse_extensions(&x.inner("extensions")?)?;
            }
        }
        Ok(cert)
    }

    /// Parses a certificate from its DER bytes.
    pub fn from_der(der: &[u8]) -> DerResult<Certificate> {
        Certificate::parse(&Reader::new(der, 0).read("certificate")?)
    }

    fn parse_extensions(&mut self, exts: &Tlv<'_>) -> DerResult<()> {
        exts.expect(Tag::SEQUENCE, "extensions")?;
        let mut r = exts.children();
        while let Some(ext) = r.next_tlv("extension")? {
            let mut f = ext.children();
            let oid = f.read("extension id")?.oid("extension id")?;
            let mut value = f.read("extension value")?;
            if value.tag == Tag::BOOLEAN {
                value = f.read("extension value")?;
            }
            let bytes = value.octets("extension value")?;
            let inner = Reader::new(&bytes, value.value_offset).read("extension contents");
            match oid.as_str() {
                "2.5.29.37" => {
                    let inner = inner?;
                    let mut e = inner.children();
                    while let Some(o) = e.next_tlv("extended key usage")? {
                        self.ekus.push(o.oid("extended key usage")?);
                    }
                }
                "2.5.29.14" => {
                    self.subject_key_id = Some(inner?.octets("subject key id")?.to_vec())
                }
                // 2.5.29.1 is the pre-RFC form Microsoft's older certificates still carry.
                "2.5.29.35" | "2.5.29.1" => {
                    let inner = inner?;
                    let mut e = inner.children();
                    while let Some(k) = e.next_tlv("authority key id")? {
                        if k.tag == Tag::context_primitive(0) {
                            self.authority_key_id = Some(k.value.to_vec());
                        }
                    }
                }
                "2.5.29.19" => {
                    let inner = inner?;
                    let mut e = inner.children();
                    let ca = match e.next_tlv("basic constraints")? {
                        Some(b) if b.tag == Tag::BOOLEAN => {
                            b.value.first().is_some_and(|&x| x != 0)
                        }
                        _ => false,
                    };
                    self.is_ca = Some(ca);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The TBSCertificate bytes.
    pub fn tbs_der(&self) -> &[u8] {
        &self.der[self.tbs.clone()]
    }

    /// The digest of the certificate's signature algorithm, when known.
    pub fn signature_digest(&self) -> Option<DigestAlgorithm> {
        digest_for_oid(&self.signature_algorithm)
    }

    /// The SiPolicy `CertRoot Type="TBS"` value: the TBSCertificate hashed with the
    /// certificate's signature digest (`None` for an unknown signature algorithm).
    pub fn tbs_hash(&self) -> Option<Vec<u8>> {
        self.signature_digest().map(|a| hash(a, self.tbs_der()))
    }

    /// The TBSCertificate hashed with `alg` (lists that store one algorithm for every
    /// certificate).
    pub fn tbs_hash_with(&self, alg: DigestAlgorithm) -> Vec<u8> {
        hash(alg, self.tbs_der())
    }

    /// SHA-1 of the whole certificate (the "thumbprint" Windows shows).
    pub fn sha1_thumbprint(&self) -> Vec<u8> {
        hash(DigestAlgorithm::Sha1, &self.der)
    }

    pub fn sha256_thumbprint(&self) -> Vec<u8> {
        hash(DigestAlgorithm::Sha256, &self.der)
    }

    /// Serial as upper-case hex, as `osslsigncode` prints it.
    pub fn serial_hex(&self) -> String {
        hex::encode_upper(&self.serial)
    }

    /// Subject and issuer encodings are equal (a root or a self-issued certificate).
    pub fn is_self_issued(&self) -> bool {
        self.subject.der == self.issuer.der
    }

    pub fn has_eku(&self, oid: &str) -> bool {
        self.ekus.iter().any(|e| e == oid)
    }

    /// Whether `t` (seconds since the epoch) falls within the validity period.
    pub fn valid_at(&self, t: i64) -> bool {
        self.not_before <= t && t <= self.not_after
    }

    /// Whether `issuer` could have issued this certificate: names equal and, when both key
    /// identifiers are known, AKI = SKI.
    pub fn issued_by(&self, issuer: &Certificate) -> bool {
        if self.issuer.der != issuer.subject.der {
            return false;
        }
        match (&self.authority_key_id, &issuer.subject_key_id) {
            (Some(a), Some(s)) => a == s,
            _ => true,
        }
    }
}

/// Parses every certificate in a `[0] IMPLICIT CertificateSet`; other choices (attribute
/// certificates, v1 extended certificates) are skipped and counted.
pub(crate) fn parse_certificate_set(
    set: &Tlv<'_>,
    limit: usize,
) -> Result<(Vec<Certificate>, usize), super::types::SignatureError> {
    let mut out = Vec::new();
    let mut skipped = 0;
    let mut r = set.children();
    while let Some(c) = r.next_tlv("certificate").map_err(der_err("certificates"))? {
        if c.tag != Tag::SEQUENCE {
            skipped += 1;
            continue;
        }
        if out.len() == limit {
            return Err(super::types::SignatureError::TooMany {
                what: "certificates in one signature",
                limit,
            });
        }
        out.push(Certificate::parse(&c).map_err(der_err("certificate"))?);
    }
    Ok((out, skipped))
}

pub(crate) fn der_err(what: &'static str) -> impl Fn(DerError) -> super::types::SignatureError {
    move |source| super::types::SignatureError::Der { what, source }
}
