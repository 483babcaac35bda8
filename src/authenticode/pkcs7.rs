//! PKCS#7 / CMS SignedData as Authenticode and catalogs use it (RFC 2315 §9, RFC 5652 §5),
//! with the Authenticode content `SpcIndirectDataContent` (Microsoft, "Windows Authenticode
//! Portable Executable Signature Format"), nested signatures (unauthenticated attribute
//! 1.3.6.1.4.1.311.2.4.1), RFC 3161 timestamp tokens (1.3.6.1.4.1.311.3.3.1, RFC 3161 §2.4.2)
//! and PKCS#9 countersignatures (1.2.840.113549.1.9.6, RFC 2985 §5.3.6).
//!
//! Parsing keeps the bytes it must hash (the content, the authenticated attributes, the
//! signature value a timestamp covers) and checks what can be checked without trust anchors:
//! the `messageDigest` attribute against the content, a timestamp's imprint against the
//! signature it covers. Bounds: [`MAX_NESTING`] levels and [`MAX_SIGNATURES`] signatures per
//! file, [`MAX_CERTIFICATES`] certificates per SignedData.

use super::der::{format_time, Reader, Tag, Tlv};
use super::pe::hash;
use super::types::{DigestAlgorithm, SignatureError};
use super::x509::{
    algorithm_oid, der_err, digest_for_oid, parse_certificate_set, parse_name, Certificate, Name,
};

/// Deepest nested signature followed (primary = 0).
pub const MAX_NESTING: usize = 4;
/// Most signatures (primary and nested, all levels) read from one SignedData tree.
pub const MAX_SIGNATURES: usize = 16;
/// Most certificates in one SignedData.
pub const MAX_CERTIFICATES: usize = 64;

pub mod oid {
    pub const SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
    pub const DATA: &str = "1.2.840.113549.1.7.1";
    pub const SPC_INDIRECT_DATA: &str = "1.3.6.1.4.1.311.2.1.4";
    pub const SPC_PE_IMAGE_DATA: &str = "1.3.6.1.4.1.311.2.1.15";
    pub const SPC_SP_OPUS_INFO: &str = "1.3.6.1.4.1.311.2.1.12";
    pub const CTL: &str = "1.3.6.1.4.1.311.10.1";
    pub const CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
    pub const MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
    pub const SIGNING_TIME: &str = "1.2.840.113549.1.9.5";
    pub const COUNTERSIGNATURE: &str = "1.2.840.113549.1.9.6";
    pub const NESTED_SIGNATURE: &str = "1.3.6.1.4.1.311.2.4.1";
    pub const RFC3161_TIMESTAMP: &str = "1.3.6.1.4.1.311.3.3.1";
    pub const TST_INFO: &str = "1.2.840.113549.1.9.16.1.4";
    /// Page hashes in SpcPeImageData's serialized object: v1 (SHA-1), v2 (SHA-256).
    pub const PAGE_HASHES_V1: &str = "1.3.6.1.4.1.311.2.3.1";
    pub const PAGE_HASHES_V2: &str = "1.3.6.1.4.1.311.2.3.2";
}

/// SpcIndirectDataContent: what an Authenticode signature signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndirectData {
    /// `SpcAttributeTypeAndOptionalValue.type`: 1.3.6.1.4.1.311.2.1.15 for PE images,
    /// 1.3.6.1.4.1.311.2.1.25 for flat files in catalogs.
    pub data_type: String,
    pub digest_algorithm_oid: String,
    pub digest_algorithm: Option<DigestAlgorithm>,
    /// The signed Authenticode digest (or flat hash).
    pub digest: Vec<u8>,
    /// Page hashes present in the signed data (SHA-1 = v1, SHA-256 = v2).
    pub page_hashes: Option<DigestAlgorithm>,
}

/// Parses SpcIndirectDataContent (`t` is its SEQUENCE).
pub(crate) fn parse_indirect(t: &Tlv<'_>) -> Result<IndirectData, SignatureError> {
    let e = der_err("SpcIndirectDataContent");
    t.expect(Tag::SEQUENCE, "SpcIndirectDataContent")
        .map_err(&e)?;
    let mut f = t.children();
    let data = f
        .expect(Tag::SEQUENCE, "SpcAttributeTypeAndOptionalValue")
        .map_err(&e)?;
    let data_type = data
        .children()
        .read("indirect data type")
        .and_then(|o| o.oid("indirect data type"))
        .map_err(&e)?;
    let digest_info = f.expect(Tag::SEQUENCE, "DigestInfo").map_err(&e)?;
    let mut d = digest_info.children();
    let alg =
        algorithm_oid(&d.read("digest algorithm").map_err(&e)?, "digest algorithm").map_err(&e)?;
    let digest = d
        .read("digest")
        .and_then(|o| o.octets("digest"))
        .map_err(&e)?
        .to_vec();
    let page_hashes = if contains_oid(data.value, oid::PAGE_HASHES_V2) {
        Some(DigestAlgorithm::Sha256)
    } else if contains_oid(data.value, oid::PAGE_HASHES_V1) {
        Some(DigestAlgorithm::Sha1)
    } else {
        None
    };
    Ok(IndirectData {
        data_type,
        digest_algorithm: digest_for_oid(&alg),
        digest_algorithm_oid: alg,
        digest,
        page_hashes,
    })
}

/// Whether the DER encoding of `dotted` occurs in `bytes` (the page-hash attribute sits in a
/// serialized object inside an octet string; its presence is all that is reported).
fn contains_oid(bytes: &[u8], dotted: &str) -> bool {
    let arcs: Vec<u64> = dotted.split('.').filter_map(|a| a.parse().ok()).collect();
    let mut enc = vec![0x06, 0];
    let mut push = |mut v: u64| {
        let mut tmp = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            tmp.push((v & 0x7f) as u8 | 0x80);
            v >>= 7;
        }
        tmp.reverse();
        enc.extend(tmp);
    };
    push(arcs[0] * 40 + arcs[1]);
    for &a in &arcs[2..] {
        push(a);
    }
    enc[1] = (enc.len() - 2) as u8;
    bytes.windows(enc.len()).any(|w| w == enc.as_slice())
}

/// Which kind of timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampKind {
    /// RFC 3161 token in unauthenticated attribute 1.3.6.1.4.1.311.3.3.1.
    Rfc3161,
    /// PKCS#9 countersignature (1.2.840.113549.1.9.6), its signingTime.
    Countersignature,
}

/// A timestamp on a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp {
    pub kind: TimestampKind,
    /// The time stamped, seconds since the epoch (TSTInfo genTime or the countersignature's
    /// signingTime).
    pub time: i64,
    pub digest_algorithm: Option<DigestAlgorithm>,
    /// The timestamp signer's certificate subject and issuer, when it is embedded.
    pub signer_subject: Option<Name>,
    pub signer_issuer: Option<Name>,
    /// Whether the timestamp covers this signature's value (imprint or messageDigest equals
    /// the hash of the signature bytes); `None` when the algorithm is unknown.
    pub imprint_matches: Option<bool>,
}

impl Timestamp {
    pub fn time_text(&self) -> String {
        format_time(self.time)
    }
}

/// The signer of a SignedData (the first SignerInfo; Authenticode has exactly one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// IssuerAndSerialNumber of the signer's certificate, or its subject key identifier.
    pub issuer: Option<Name>,
    pub serial: Option<Vec<u8>>,
    pub subject_key_id: Option<Vec<u8>>,
    pub digest_algorithm_oid: String,
    pub digest_algorithm: Option<DigestAlgorithm>,
    pub signature_algorithm: String,
    pub signature: Vec<u8>,
    /// The authenticated attributes re-tagged as the SET OF that is signed (RFC 5652 §5.4).
    pub signed_attributes: Option<Vec<u8>>,
    /// The `messageDigest` attribute.
    pub message_digest: Option<Vec<u8>>,
    /// Whether `messageDigest` equals the hash of the content (for Authenticode: of the
    /// SpcIndirectDataContent's contents octets, RFC 2315 §9.3).
    pub content_digest_matches: Option<bool>,
    /// The `signingTime` authenticated attribute (rare in Authenticode).
    pub signing_time: Option<i64>,
    /// SpcSpOpusInfo programName.
    pub program_name: Option<String>,
}

/// One signature: a SignedData with its signer, certificates, chain and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// 0 for the primary signature, n for one nested n levels deep.
    pub depth: usize,
    /// Index of the enclosing signature in the flat list, for nested ones.
    pub parent: Option<usize>,
    /// The SignedData's content type (SpcIndirectData for files, CTL for catalogs).
    pub content_type: String,
    /// The Authenticode content, when the content type is SpcIndirectData.
    pub indirect: Option<IndirectData>,
    pub certificates: Vec<Certificate>,
    pub signer: Signer,
    /// Index of the signer's certificate in `certificates`.
    pub signer_certificate: Option<usize>,
    /// Indices of the chain built from the embedded certificates, signer first (issuer ↔
    /// subject, AKI ↔ SKI).
    pub chain: Vec<usize>,
    pub timestamp: Option<Timestamp>,
    /// Authenticode digest of the file with `indirect`'s algorithm, filled in by the caller
    /// that has the file.
    pub computed_digest: Option<Vec<u8>>,
    /// What could not be read inside this signature (a timestamp, a nested signature): never
    /// dropped silently.
    pub problems: Vec<String>,
}

impl Signature {
    pub fn signer_cert(&self) -> Option<&Certificate> {
        self.signer_certificate.map(|i| &self.certificates[i])
    }

    /// The chain's certificates, signer first.
    pub fn chain_certs(&self) -> impl Iterator<Item = &Certificate> {
        self.chain.iter().map(|&i| &self.certificates[i])
    }

    /// Whether the signed digest equals the computed one (`None` before it is computed).
    pub fn digest_matches(&self) -> Option<bool> {
        let (signed, computed) = (self.indirect.as_ref()?, self.computed_digest.as_ref()?);
        Some(&signed.digest == computed)
    }
}

/// What a parsed SignedData holds besides its signatures: the content, for catalogs.
pub(crate) struct Parsed<'a> {
    pub signatures: Vec<Signature>,
    pub content: Option<Tlv<'a>>,
}

/// Parses a ContentInfo holding SignedData, nested signatures included (flattened, primary
/// first). `base` is the offset of `der` in the outermost input (for error offsets).
pub fn parse_signatures(der: &[u8], base: usize) -> Result<Vec<Signature>, SignatureError> {
    Ok(parse_content_info(der, base)?.signatures)
}

pub(crate) fn parse_content_info(der: &[u8], base: usize) -> Result<Parsed<'_>, SignatureError> {
    let ci = Reader::new(der, base)
        .read("ContentInfo")
        .map_err(der_err("PKCS#7"))?;
    let mut out = Vec::new();
    let content = parse_into(&ci, 0, None, &mut out, true)?;
    Ok(Parsed {
        signatures: out,
        content,
    })
}

/// ContentInfo → SignedData; pushes the signature and its nested ones onto `out`, returns the
/// SignedData's content.
fn parse_into<'a>(
    ci: &Tlv<'a>,
    depth: usize,
    parent: Option<usize>,
    out: &mut Vec<Signature>,
    follow_unsigned: bool,
) -> Result<Option<Tlv<'a>>, SignatureError> {
    let e = der_err("PKCS#7 SignedData");
    ci.expect(Tag::SEQUENCE, "ContentInfo").map_err(&e)?;
    let mut f = ci.children();
    let ct = f
        .read("content type")
        .and_then(|o| o.oid("content type"))
        .map_err(&e)?;
    if ct != oid::SIGNED_DATA {
        return Err(SignatureError::Unsupported {
            what: "ContentInfo content type",
            value: ct,
        });
    }
    let sd = f
        .expect(Tag::context(0), "SignedData wrapper")
        .and_then(|w| w.inner("SignedData"))
        .map_err(&e)?;
    sd.expect(Tag::SEQUENCE, "SignedData").map_err(&e)?;
    let mut s = sd.children();
    s.read("SignedData version").map_err(&e)?;
    s.expect(Tag::SET, "digestAlgorithms").map_err(&e)?;
    let eci = s
        .expect(Tag::SEQUENCE, "encapsulated content")
        .map_err(&e)?;
    let mut ec = eci.children();
    let content_type = ec
        .read("encapsulated content type")
        .and_then(|o| o.oid("encapsulated content type"))
        .map_err(&e)?;
    let content = match ec.optional(Tag::context(0), "content").map_err(&e)? {
        Some(w) => Some(w.inner("content").map_err(&e)?),
        None => None,
    };
    let mut certificates = Vec::new();
    let mut signer_infos = None;
    while let Some(x) = s.next_tlv("SignedData field").map_err(&e)? {
        if x.tag == Tag::context(0) {
            certificates = parse_certificate_set(&x, MAX_CERTIFICATES)?.0;
        } else if x.tag == Tag::SET {
            signer_infos = Some(x);
        }
    }
    let signer_infos = signer_infos.ok_or(SignatureError::Missing {
        what: "SignerInfos",
    })?;
    let si = signer_infos.children().read("SignerInfo").map_err(&e)?;
    let indirect = match (&content, content_type.as_str()) {
        (Some(c), oid::SPC_INDIRECT_DATA) => Some(parse_indirect(c)?),
        _ => None,
    };
    // The content the messageDigest covers: for PKCS#7 v1.5 content of type ANY, the contents
    // octets of its outer element; for an OCTET STRING, the string.
    let content_bytes = content.as_ref().map(|c| match c.octets("content") {
        Ok(o) => o.into_owned(),
        Err(_) => c.value.to_vec(),
    });
    let mut problems = Vec::new();
    let (signer, unsigned) = parse_signer_info(&si, content_bytes.as_deref())?;
    let signer_certificate = find_signer(&certificates, &signer);
    if signer_certificate.is_none() {
        problems.push("the signer's certificate is not among the embedded certificates".into());
    }
    let chain = signer_certificate.map_or_else(Vec::new, |i| build_chain(&certificates, i));
    let index = out.len();
    out.push(Signature {
        depth,
        parent,
        content_type,
        indirect,
        certificates,
        signer,
        signer_certificate,
        chain,
        timestamp: None,
        computed_digest: None,
        problems,
    });
    // Unauthenticated attributes: timestamps and nested signatures (not followed inside a
    // timestamp token, whose own attributes say nothing about the file).
    if let Some(attrs) = unsigned.filter(|_| follow_unsigned) {
        let mut r = attrs.children();
        while let Some(a) = r.next_tlv("unauthenticated attribute").map_err(&e)? {
            let mut af = a.children();
            let Ok(aoid) = af
                .read("attribute type")
                .and_then(|o| o.oid("attribute type"))
            else {
                out[index].problems.push(format!(
                    "unreadable unauthenticated attribute at byte {}",
                    a.offset
                ));
                continue;
            };
            let Ok(values) = af.expect(Tag::SET, "attribute values") else {
                out[index].problems.push(format!(
                    "attribute {aoid} at byte {} has no value set",
                    a.offset
                ));
                continue;
            };
            match aoid.as_str() {
                oid::NESTED_SIGNATURE => {
                    let mut v = values.children();
                    while let Some(nested) = v.next_tlv("nested signature").map_err(&e)? {
                        if depth + 1 > MAX_NESTING {
                            return Err(SignatureError::TooDeep {
                                what: "nested signatures",
                                limit: MAX_NESTING,
                            });
                        }
                        if out.len() >= MAX_SIGNATURES {
                            return Err(SignatureError::TooMany {
                                what: "signatures (primary and nested)",
                                limit: MAX_SIGNATURES,
                            });
                        }
                        match parse_into(&nested, depth + 1, Some(index), out, true) {
                            Ok(_) => {}
                            Err(
                                err @ (SignatureError::TooDeep { .. }
                                | SignatureError::TooMany { .. }),
                            ) => return Err(err),
                            Err(err) => out[index]
                                .problems
                                .push(format!("nested signature at byte {}: {err}", nested.offset)),
                        }
                    }
                }
                oid::RFC3161_TIMESTAMP | oid::COUNTERSIGNATURE => {
                    let Ok(Some(value)) = values.children().next_tlv("timestamp") else {
                        out[index].problems.push(format!(
                            "timestamp attribute at byte {} has no value",
                            a.offset
                        ));
                        continue;
                    };
                    let sig_value = out[index].signer.signature.clone();
                    let parsed = if aoid == oid::RFC3161_TIMESTAMP {
                        parse_rfc3161(&value, &sig_value)
                    } else {
                        parse_countersignature(&value, &sig_value, &out[index].certificates)
                    };
                    match parsed {
                        Ok(ts) if out[index].timestamp.is_none() => out[index].timestamp = Some(ts),
                        Ok(_) => {}
                        Err(err) => out[index]
                            .problems
                            .push(format!("timestamp at byte {}: {err}", value.offset)),
                    }
                }
                _ => {}
            }
        }
    }
    Ok(content)
}

/// SignerInfo → (Signer, unauthenticated attributes).
fn parse_signer_info<'a>(
    si: &Tlv<'a>,
    content: Option<&[u8]>,
) -> Result<(Signer, Option<Tlv<'a>>), SignatureError> {
    let e = der_err("SignerInfo");
    si.expect(Tag::SEQUENCE, "SignerInfo").map_err(&e)?;
    let mut f = si.children();
    f.read("SignerInfo version").map_err(&e)?;
    let sid = f.read("signer identifier").map_err(&e)?;
    let (mut issuer, mut serial, mut subject_key_id) = (None, None, None);
    if sid.tag == Tag::SEQUENCE {
        let mut ias = sid.children();
        issuer = Some(parse_name(&ias.read("signer issuer").map_err(&e)?).map_err(&e)?);
        serial = Some(
            ias.read("signer serial")
                .and_then(|s| s.integer_bytes("signer serial").map(<[u8]>::to_vec))
                .map_err(&e)?,
        );
    } else {
        subject_key_id = Some(sid.value.to_vec());
    }
    let digest_oid = algorithm_oid(
        &f.read("signer digest algorithm").map_err(&e)?,
        "signer digest algorithm",
    )
    .map_err(&e)?;
    let digest_algorithm = digest_for_oid(&digest_oid);
    let mut signed_attributes = None;
    let mut message_digest = None;
    let mut signing_time = None;
    let mut program_name = None;
    let mut next = f.read("signature algorithm").map_err(&e)?;
    if next.tag == Tag::context(0) {
        // Signed over as an explicit SET OF (tag 0x31), not as the [0] IMPLICIT found here.
        let mut set = next.raw.to_vec();
        set[0] = 0x31;
        signed_attributes = Some(set);
        let mut r = next.children();
        while let Some(a) = r.next_tlv("authenticated attribute").map_err(&e)? {
            let mut af = a.children();
            let aoid = af
                .read("attribute type")
                .and_then(|o| o.oid("attribute type"))
                .map_err(&e)?;
            let values = af.expect(Tag::SET, "attribute values").map_err(&e)?;
            let Some(v) = values.children().next_tlv("attribute value").map_err(&e)? else {
                continue;
            };
            match aoid.as_str() {
                oid::MESSAGE_DIGEST => {
                    message_digest = Some(v.octets("messageDigest").map_err(&e)?.into_owned())
                }
                oid::SIGNING_TIME => signing_time = v.time("signingTime").ok(),
                oid::SPC_SP_OPUS_INFO => program_name = opus_program_name(&v),
                _ => {}
            }
        }
        next = f.read("signature algorithm").map_err(&e)?;
    }
    let signature_algorithm = algorithm_oid(&next, "signature algorithm").map_err(&e)?;
    let signature = f
        .read("signature")
        .and_then(|s| s.octets("signature"))
        .map_err(&e)?
        .into_owned();
    let unsigned = f
        .optional(Tag::context(1), "unauthenticated attributes")
        .map_err(&e)?;
    let content_digest_matches = match (digest_algorithm, &message_digest, content) {
        (Some(alg), Some(md), Some(c)) => Some(&hash(alg, c) == md),
        _ => None,
    };
    Ok((
        Signer {
            issuer,
            serial,
            subject_key_id,
            digest_algorithm_oid: digest_oid,
            digest_algorithm,
            signature_algorithm,
            signature,
            signed_attributes,
            message_digest,
            content_digest_matches,
            signing_time,
            program_name,
        },
        unsigned,
    ))
}

/// SpcSpOpusInfo ::= SEQUENCE { programName [0] EXPLICIT SpcString OPTIONAL, ... };
/// SpcString ::= CHOICE { unicode [0] IMPLICIT BMPString, ascii [1] IMPLICIT IA5String }.
fn opus_program_name(v: &Tlv<'_>) -> Option<String> {
    let mut r = v.children();
    let name = r.optional(Tag::context(0), "programName").ok()??;
    let s = name.inner("SpcString").ok()?;
    let text = match s.tag.number {
        0 => {
            let units: Vec<u16> = s
                .value
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => String::from_utf8_lossy(s.value).into_owned(),
    };
    Some(crate::printable_text(text))
}

fn find_signer(certs: &[Certificate], signer: &Signer) -> Option<usize> {
    certs.iter().position(
        |c| match (&signer.issuer, &signer.serial, &signer.subject_key_id) {
            (Some(i), Some(s), _) => c.issuer.der == i.der && &c.serial == s,
            (_, _, Some(k)) => c.subject_key_id.as_ref() == Some(k),
            _ => false,
        },
    )
}

/// Leaf first, each next certificate the issuer of the previous (bounded, no repeats).
pub(crate) fn build_chain(certs: &[Certificate], leaf: usize) -> Vec<usize> {
    let mut chain = vec![leaf];
    loop {
        let cur = &certs[*chain.last().unwrap_or(&leaf)];
        if cur.is_self_issued() || chain.len() >= certs.len() {
            break;
        }
        // Prefer an issuer whose key identifier matches; fall back to the name alone.
        let next = certs
            .iter()
            .enumerate()
            .filter(|(i, c)| !chain.contains(i) && cur.issued_by(c))
            .max_by_key(|(_, c)| {
                c.subject_key_id.is_some() && c.subject_key_id == cur.authority_key_id
            })
            .map(|(i, _)| i);
        match next {
            Some(i) => chain.push(i),
            None => break,
        }
    }
    chain
}

/// RFC 3161 token: ContentInfo(SignedData) whose eContent (OCTET STRING) is TSTInfo.
fn parse_rfc3161(token: &Tlv<'_>, covered: &[u8]) -> Result<Timestamp, SignatureError> {
    let e = der_err("RFC 3161 timestamp token");
    let mut inner = Vec::new();
    // The token is a SignedData of its own, parsed with the same code.
    let content = parse_into(token, 0, None, &mut inner, false)?;
    let tst_bytes = content
        .ok_or(SignatureError::Missing { what: "TSTInfo" })?
        .octets("TSTInfo")
        .map_err(&e)?;
    let tst = Reader::new(&tst_bytes, token.offset)
        .read("TSTInfo")
        .map_err(&e)?;
    let mut f = tst.children();
    f.read("TSTInfo version").map_err(&e)?;
    f.read("TSTInfo policy").map_err(&e)?;
    let imprint = f.expect(Tag::SEQUENCE, "messageImprint").map_err(&e)?;
    let mut m = imprint.children();
    let alg = digest_for_oid(
        &algorithm_oid(
            &m.read("imprint algorithm").map_err(&e)?,
            "imprint algorithm",
        )
        .map_err(&e)?,
    );
    let imprinted = m
        .read("imprint")
        .and_then(|o| o.octets("imprint"))
        .map_err(&e)?;
    f.read("TSTInfo serial").map_err(&e)?;
    let time = f
        .read("genTime")
        .and_then(|t| t.time("genTime"))
        .map_err(&e)?;
    let ts_sig = inner.first();
    let signer_cert = ts_sig.and_then(Signature::signer_cert);
    Ok(Timestamp {
        kind: TimestampKind::Rfc3161,
        time,
        digest_algorithm: alg,
        signer_subject: signer_cert.map(|c| c.subject.clone()),
        signer_issuer: ts_sig.and_then(|s| s.signer.issuer.clone()),
        imprint_matches: alg.map(|a| hash(a, covered) == *imprinted),
    })
}

/// PKCS#9 countersignature: a SignerInfo whose messageDigest is the hash of the signature it
/// counter-signs; its certificate is among the outer SignedData's.
fn parse_countersignature(
    si: &Tlv<'_>,
    covered: &[u8],
    certs: &[Certificate],
) -> Result<Timestamp, SignatureError> {
    let (signer, _) = parse_signer_info(si, Some(covered))?;
    let time = signer.signing_time.ok_or(SignatureError::Missing {
        what: "countersignature signingTime",
    })?;
    let cert = find_signer(certs, &signer).map(|i| &certs[i]);
    Ok(Timestamp {
        kind: TimestampKind::Countersignature,
        time,
        digest_algorithm: signer.digest_algorithm,
        signer_subject: cert.map(|c| c.subject.clone()),
        signer_issuer: signer.issuer.clone(),
        imprint_matches: signer.content_digest_matches,
    })
}
