//! Catalog files (`.cat`): a PKCS#7 SignedData whose content is a Certificate Trust List
//! (`szOID_CTL` 1.3.6.1.4.1.311.10.1), one member per file the catalog vouches for.
//!
//! Layout (Microsoft's CTL structure, wincrypt.h `CTL_INFO`, as catalogs use it):
//! `CertificateTrustList ::= SEQUENCE { subjectUsage SEQUENCE OF OID, listIdentifier OCTET
//! STRING OPTIONAL, sequenceNumber INTEGER OPTIONAL, thisUpdate Time, nextUpdate Time
//! OPTIONAL, subjectAlgorithm AlgorithmIdentifier, trustedSubjects SEQUENCE OF TrustedSubject
//! OPTIONAL, extensions [0] EXPLICIT Extensions OPTIONAL }` and
//! `TrustedSubject ::= SEQUENCE { subjectIdentifier OCTET STRING, attributes SET OF Attribute }`.
//!
//! A member's tag (`subjectIdentifier`) is its hash: in catalogs of the first form
//! (`subjectAlgorithm` 1.3.6.1.4.1.311.12.1.2) as a UTF-16LE hex string, in the second
//! (1.3.6.1.4.1.311.12.1.3) as raw bytes; a tag can also be a file name. Member attributes:
//! `SpcIndirectDataContent` (1.3.6.1.4.1.311.2.1.4) with the Authenticode digest (PE files,
//! data type 1.3.6.1.4.1.311.2.1.15) or flat hash (other files, 1.3.6.1.4.1.311.2.1.25);
//! name/value pairs (`CAT_NAMEVALUE`, 1.3.6.1.4.1.311.12.2.1: BMPString name, INTEGER flags,
//! OCTET STRING UTF-16LE value) such as `File` and `OSAttr`; member info (1.3.6.1.4.1.311.12.2.2
//! and .3). The catalog's own name/value pairs are the CTL extensions.
//!
//! Bounds: a catalog file above [`MAX_CATALOG_BYTES`] or with more than [`MAX_MEMBERS`]
//! members is refused with one typed error, before anything of that size is allocated.

use super::classify::{classify_signatures, Classification};
use super::der::{Reader, Tag, Tlv};
use super::pkcs7::{self, oid, parse_indirect, IndirectData, Signature};
use super::types::{DigestAlgorithm, SignatureError};
use super::x509::{algorithm_oid, der_err};

/// Largest catalog file read.
pub const MAX_CATALOG_BYTES: usize = 64 << 20;
/// Most members read from one catalog (driver catalogs hold tens to a few thousand).
pub const MAX_MEMBERS: usize = 200_000;
/// Most attributes read per member.
pub const MAX_MEMBER_ATTRIBUTES: usize = 64;

/// One catalog member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogMember {
    /// The tag as found.
    pub tag: Vec<u8>,
    /// The tag as text: the UTF-16LE string of a first-form catalog, upper-case hex of raw
    /// bytes otherwise.
    pub tag_text: String,
    /// The member's SpcIndirectDataContent, when it has one.
    pub indirect: Option<IndirectData>,
    /// Name/value attributes (`File`, `OSAttr`, …), in order.
    pub name_values: Vec<(String, String)>,
}

impl CatalogMember {
    /// The member's hash: the SpcIndirectDataContent digest, else a tag that is a hash
    /// (raw bytes of a hash's length, or hex text).
    pub fn digest(&self) -> Option<(Option<DigestAlgorithm>, Vec<u8>)> {
        if let Some(i) = &self.indirect {
            return Some((i.digest_algorithm, i.digest.clone()));
        }
        if let Some(a) = DigestAlgorithm::for_len(self.tag.len()) {
            if self.tag_text == hex::encode_upper(&self.tag) {
                return Some((Some(a), self.tag.clone()));
            }
        }
        let bytes = hex::decode(&self.tag_text).ok()?;
        DigestAlgorithm::for_len(bytes.len()).map(|a| (Some(a), bytes))
    }

    /// A name/value attribute by name (case-insensitive, as Windows compares them).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.name_values
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `File` attribute.
    pub fn file(&self) -> Option<&str> {
        self.value("File")
    }

    /// The `OSAttr` attribute.
    pub fn os_attr(&self) -> Option<&str> {
        self.value("OSAttr")
    }

    /// Whether `digest` is this member's hash or its tag.
    pub fn matches(&self, digest: &[u8]) -> bool {
        self.digest().is_some_and(|(_, d)| d == digest)
            || self.tag == digest
            || self.tag_text.eq_ignore_ascii_case(&hex::encode(digest))
    }
}

/// A parsed catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// `subjectAlgorithm` (1.3.6.1.4.1.311.12.1.2 or .3).
    pub member_format: String,
    /// `thisUpdate`, seconds since the epoch.
    pub this_update: Option<i64>,
    pub members: Vec<CatalogMember>,
    /// The catalog's own name/value attributes (CTL extensions).
    pub attributes: Vec<(String, String)>,
    /// The catalog's signature(s), flat (as for PE files).
    pub signatures: Vec<Signature>,
    /// What could not be read (a member attribute): never dropped silently.
    pub problems: Vec<String>,
}

impl Catalog {
    /// Parses a `.cat` file.
    pub fn parse(bytes: &[u8]) -> Result<Catalog, SignatureError> {
        if bytes.len() > MAX_CATALOG_BYTES {
            return Err(SignatureError::TooLarge {
                what: "catalog",
                size: bytes.len(),
                limit: MAX_CATALOG_BYTES,
            });
        }
        let parsed = pkcs7::parse_content_info(bytes, 0)?;
        let Some(first) = parsed.signatures.first() else {
            return Err(SignatureError::Missing {
                what: "catalog signature",
            });
        };
        if first.content_type != oid::CTL {
            return Err(SignatureError::Unsupported {
                what: "catalog content type",
                value: first.content_type.clone(),
            });
        }
        let ctl = parsed.content.ok_or(SignatureError::Missing {
            what: "certificate trust list",
        })?;
        let mut cat = parse_ctl(&ctl)?;
        cat.signatures = parsed.signatures;
        Ok(cat)
    }

    /// The class of the catalog's own signature (the same table as for PE files; the content
    /// check is the authenticated messageDigest over the CTL).
    pub fn classification(&self) -> Classification {
        classify_signatures(&self.signatures)
    }

    /// The member whose hash is `digest` (an Authenticode digest of a PE file, or a flat hash
    /// of another file).
    pub fn find(&self, digest: &[u8]) -> Option<&CatalogMember> {
        self.members.iter().find(|m| m.matches(digest))
    }

    /// The members whose `File` attribute names `file` (case-insensitive).
    pub fn find_file<'a>(&'a self, file: &'a str) -> impl Iterator<Item = &'a CatalogMember> + 'a {
        self.members
            .iter()
            .filter(move |m| m.file().is_some_and(|f| f.eq_ignore_ascii_case(file)))
    }
}

fn utf16le(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]))
        .collect();
    let s = String::from_utf16_lossy(&units);
    crate::printable_text(s.trim_end_matches('\0').to_string())
}

/// CAT_NAMEVALUE ::= SEQUENCE { tag BMPString, flags INTEGER, value OCTET STRING }.
fn name_value(v: &Tlv<'_>) -> Result<(String, String), SignatureError> {
    let e = der_err("catalog name/value attribute");
    let mut f = v.children();
    let name = f.read("name").map_err(&e)?;
    f.read("flags").map_err(&e)?;
    let value = f
        .read("value")
        .and_then(|o| o.octets("value"))
        .map_err(&e)?;
    Ok((
        crate::printable_text(name.text().trim_end_matches('\0').to_string()),
        utf16le(&value),
    ))
}

fn parse_ctl(ctl: &Tlv<'_>) -> Result<Catalog, SignatureError> {
    let e = der_err("certificate trust list");
    ctl.expect(Tag::SEQUENCE, "CertificateTrustList")
        .map_err(&e)?;
    let mut f = ctl.children();
    f.expect(Tag::SEQUENCE, "subjectUsage").map_err(&e)?;
    f.optional(Tag::OCTET_STRING, "listIdentifier")
        .map_err(&e)?;
    f.optional(Tag::INTEGER, "sequenceNumber").map_err(&e)?;
    let this_update = f.read("thisUpdate").map_err(&e)?.time("thisUpdate").ok();
    let mut alg = f.read("subjectAlgorithm").map_err(&e)?;
    if alg.tag != Tag::SEQUENCE {
        // nextUpdate was present.
        alg = f.read("subjectAlgorithm").map_err(&e)?;
    }
    let member_format = algorithm_oid(&alg, "subjectAlgorithm").map_err(&e)?;
    let mut cat = Catalog {
        member_format,
        this_update,
        members: Vec::new(),
        attributes: Vec::new(),
        signatures: Vec::new(),
        problems: Vec::new(),
    };
    let first_form = cat.member_format == "1.3.6.1.4.1.311.12.1.2";
    while let Some(x) = f.next_tlv("certificate trust list field").map_err(&e)? {
        if x.tag == Tag::SEQUENCE {
            let mut subjects = x.children();
            while let Some(s) = subjects.next_tlv("catalog member").map_err(&e)? {
                if cat.members.len() == MAX_MEMBERS {
                    return Err(SignatureError::TooMany {
                        what: "catalog members",
                        limit: MAX_MEMBERS,
                    });
                }
                let m = parse_member(&s, first_form, &mut cat.problems)?;
                cat.members.push(m);
            }
        } else if x.tag == Tag::context(0) {
            let exts = x.inner("catalog attributes").map_err(&e)?;
            let mut r = exts.children();
            while let Some(ext) = r.next_tlv("catalog attribute").map_err(&e)? {
                // Extension { OID, critical?, OCTET STRING wrapping a CAT_NAMEVALUE }.
                let mut ef = ext.children();
                let id = ef
                    .read("attribute id")
                    .and_then(|o| o.oid("attribute id"))
                    .map_err(&e)?;
                let mut v = ef.read("attribute value").map_err(&e)?;
                if v.tag == Tag::BOOLEAN {
                    v = ef.read("attribute value").map_err(&e)?;
                }
                if id != "1.3.6.1.4.1.311.12.2.1" {
                    continue;
                }
                let bytes = v.octets("attribute value").map_err(&e)?;
                match Reader::new(&bytes, v.value_offset)
                    .read("name/value")
                    .map_err(&e)
                    .and_then(|t| name_value(&t))
                {
                    Ok(nv) => cat.attributes.push(nv),
                    Err(err) => cat
                        .problems
                        .push(format!("catalog attribute at byte {}: {err}", ext.offset)),
                }
            }
        }
    }
    Ok(cat)
}

fn parse_member(
    s: &Tlv<'_>,
    first_form: bool,
    problems: &mut Vec<String>,
) -> Result<CatalogMember, SignatureError> {
    let e = der_err("catalog member");
    let mut f = s.children();
    let tag = f
        .read("member tag")
        .and_then(|t| t.octets("member tag"))
        .map_err(&e)?
        .into_owned();
    let looks_utf16 = tag.len() >= 2 && tag.len() % 2 == 0 && tag.chunks(2).all(|c| c[1] == 0);
    let tag_text = if first_form || looks_utf16 {
        utf16le(&tag)
    } else {
        hex::encode_upper(&tag)
    };
    let mut m = CatalogMember {
        tag,
        tag_text,
        indirect: None,
        name_values: Vec::new(),
    };
    let Some(attrs) = f.optional(Tag::SET, "member attributes").map_err(&e)? else {
        return Ok(m);
    };
    let mut r = attrs.children();
    let mut count = 0;
    while let Some(a) = r.next_tlv("member attribute").map_err(&e)? {
        count += 1;
        if count > MAX_MEMBER_ATTRIBUTES {
            return Err(SignatureError::TooMany {
                what: "attributes of one catalog member",
                limit: MAX_MEMBER_ATTRIBUTES,
            });
        }
        let mut af = a.children();
        let id = af
            .read("attribute type")
            .and_then(|o| o.oid("attribute type"))
            .map_err(&e)?;
        let Some(value) = af
            .optional(Tag::SET, "attribute values")
            .map_err(&e)?
            .and_then(|v| v.children().next_tlv("attribute value").ok().flatten())
        else {
            continue;
        };
        let res = match id.as_str() {
            oid::SPC_INDIRECT_DATA => parse_indirect(&value).map(|i| m.indirect = Some(i)),
            "1.3.6.1.4.1.311.12.2.1" => name_value(&value).map(|nv| m.name_values.push(nv)),
            _ => Ok(()),
        };
        if let Err(err) = res {
            problems.push(format!(
                "member {} attribute {id} at byte {}: {err}",
                m.tag_text, a.offset
            ));
        }
    }
    Ok(m)
}
