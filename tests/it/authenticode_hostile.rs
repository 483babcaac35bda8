//! Hostile signatures and catalogs, generated here: each is bounded with one typed error and
//! never panics (malformed PKCS#7, certificate tables outside the file or over the headers,
//! a catalog with a million members, absurd nesting, deep BER).

use crate::common;

use std::time::Instant;

use drvaudit::authenticode::classify::SignatureClass;
use drvaudit::authenticode::der::DerWhy;
use drvaudit::authenticode::{inspect_pe, pkcs7, Catalog, SignatureError};

pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let n = content.len();
    if n < 0x80 {
        v.push(n as u8);
    } else {
        let b = n.to_be_bytes();
        let skip = b.iter().take_while(|&&x| x == 0).count();
        v.push(0x80 | (8 - skip) as u8);
        v.extend_from_slice(&b[skip..]);
    }
    v.extend_from_slice(content);
    v
}

pub(crate) fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

pub(crate) fn oid(enc: &[u8]) -> Vec<u8> {
    tlv(0x06, enc)
}

const SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
pub(crate) const SPC_INDIRECT: &[u8] =
    &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x01, 0x04];
pub(crate) const CTL: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x0a, 0x01];
const NESTED: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x04, 0x01];
const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];

/// A ContentInfo(SignedData) with `content_type`/`content`, no certificates, and one
/// SignerInfo whose unauthenticated attributes are `unsigned` (when given).
pub(crate) fn signed_data(
    content_type: &[u8],
    content: &[u8],
    unsigned: Option<Vec<u8>>,
) -> Vec<u8> {
    let alg = tlv(0x30, &oid(SHA256));
    let mut si = cat(&[
        tlv(0x02, &[1]),
        tlv(0x30, &cat(&[tlv(0x30, &[]), tlv(0x02, &[1])])),
        alg.clone(),
        alg.clone(),
        tlv(0x04, &[0; 4]),
    ]);
    if let Some(u) = unsigned {
        si.extend(tlv(0xa1, &u));
    }
    let sd = tlv(
        0x30,
        &cat(&[
            tlv(0x02, &[1]),
            tlv(0x31, &alg),
            tlv(0x30, &cat(&[oid(content_type), tlv(0xa0, content)])),
            tlv(0x31, &tlv(0x30, &si)),
        ]),
    );
    tlv(0x30, &cat(&[oid(SIGNED_DATA), tlv(0xa0, &sd)]))
}

pub(crate) fn indirect() -> Vec<u8> {
    tlv(
        0x30,
        &cat(&[
            tlv(
                0x30,
                &oid(&[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x01, 0x0f]),
            ),
            tlv(0x30, &cat(&[tlv(0x30, &oid(SHA256)), tlv(0x04, &[0; 32])])),
        ]),
    )
}

/// An unsigned fixture driver with `blob` appended as its certificate table (one
/// WIN_CERTIFICATE, 8-byte aligned), or with the table entry set to `entry` as given.
pub(crate) fn pe_with(blob: &[u8], entry: Option<(u32, u32)>) -> Vec<u8> {
    let mut pe = std::fs::read(common::testdata("bin/clean_gcc_x64_O2.sys")).unwrap();
    while pe.len() % 8 != 0 {
        pe.push(0);
    }
    let off = pe.len() as u32;
    let len = 8 + blob.len() as u32;
    pe.extend_from_slice(&len.to_le_bytes());
    pe.extend_from_slice(&0x0200u16.to_le_bytes());
    pe.extend_from_slice(&2u16.to_le_bytes());
    pe.extend_from_slice(blob);
    while pe.len() % 8 != 0 {
        pe.push(0);
    }
    let size = pe.len() as u32 - off;
    let lfanew = u32::from_le_bytes(pe[0x3c..0x40].try_into().unwrap()) as usize;
    let entry_at = lfanew + 24 + 112 + 32; // PE32+ data directory 4
    let (o, s) = entry.unwrap_or((off, size));
    pe[entry_at..entry_at + 4].copy_from_slice(&o.to_le_bytes());
    pe[entry_at + 4..entry_at + 8].copy_from_slice(&s.to_le_bytes());
    pe
}

#[test]
fn malformed_pkcs7_is_one_typed_error_never_a_panic() {
    // Truncated inside the SignedData.
    let good = signed_data(SPC_INDIRECT, &indirect(), None);
    let v = inspect_pe(&pe_with(&good[..good.len() / 2], None)).unwrap();
    assert_eq!(v.classification.class, SignatureClass::Malformed);
    assert!(
        matches!(v.error, Some(SignatureError::Der { .. })),
        "{:?}",
        v.error
    );
    // Not SignedData at all.
    let v = inspect_pe(&pe_with(&tlv(0x30, &oid(CTL)), None)).unwrap();
    assert!(matches!(
        v.error,
        Some(SignatureError::Der { .. } | SignatureError::Unsupported { .. })
    ));
    // Every single-byte corruption of a real signature: a result or a typed error, quickly.
    let real = std::fs::read(common::testdata("signed/nested_sha1_sha256.sys")).unwrap();
    let l = drvaudit::authenticode::pe::layout(&real).unwrap();
    let table = l.certificate_table.unwrap();
    let start = Instant::now();
    let mut errors = 0;
    for i in (table.start + 8..table.end).step_by(3) {
        let mut b = real.clone();
        b[i] ^= 0xff;
        let v = inspect_pe(&b).unwrap();
        errors += usize::from(v.error.is_some());
    }
    assert!(errors > 0);
    assert!(
        start.elapsed().as_secs() < 60,
        "corrupted signatures took {:?}",
        start.elapsed()
    );
}

#[test]
fn certificate_table_outside_the_file_or_over_the_headers() {
    let good = signed_data(SPC_INDIRECT, &indirect(), None);
    let pe = pe_with(&good, None);
    let len = pe.len() as u32;
    let v = inspect_pe(&pe_with(&good, Some((len - 8, 0x1000)))).unwrap();
    assert!(
        matches!(
            v.error,
            Some(SignatureError::CertificateTableOutOfBounds { size: 0x1000, .. })
        ),
        "{:?}",
        v.error
    );
    let v = inspect_pe(&pe_with(&good, Some((0xffff_fff8, 0x10)))).unwrap();
    assert!(matches!(
        v.error,
        Some(SignatureError::CertificateTableOutOfBounds { .. })
    ));
    let v = inspect_pe(&pe_with(&good, Some((0x80, 0x100)))).unwrap();
    assert!(
        matches!(
            v.error,
            Some(SignatureError::CertificateTableOverlaps {
                what: "the headers",
                ..
            })
        ),
        "{:?}",
        v.error
    );
    let v = inspect_pe(&pe_with(&good, Some((0x600, 0x100)))).unwrap();
    assert!(
        matches!(
            v.error,
            Some(SignatureError::CertificateTableOverlaps { .. })
        ),
        "{:?}",
        v.error
    );
    assert_eq!(v.classification.class, SignatureClass::Malformed);
    // A WIN_CERTIFICATE whose dwLength runs past its table.
    let mut pe = pe_with(&good, None);
    let off = pe.len() - (8 + good.len()).next_multiple_of(8);
    pe[off..off + 4].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
    let v = inspect_pe(&pe).unwrap();
    assert!(
        matches!(v.error, Some(SignatureError::BadWinCertificate { .. })),
        "{:?}",
        v.error
    );
}

/// A catalog (a SignedData over a CTL) of a million members.
pub(crate) fn million_member_catalog() -> Vec<u8> {
    let member = tlv(0x30, &tlv(0x04, &[0xab; 20]));
    let members = tlv(0x30, &member.repeat(1_000_000));
    let ctl = tlv(
        0x30,
        &cat(&[
            tlv(
                0x30,
                &oid(&[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x0c, 0x01, 0x01]),
            ),
            tlv(0x17, b"200101000000Z"),
            tlv(
                0x30,
                &oid(&[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x0c, 0x01, 0x03]),
            ),
            members,
        ]),
    );
    signed_data(CTL, &ctl, None)
}

#[test]
fn a_catalog_with_a_million_members_is_refused_quickly() {
    let catalog = million_member_catalog();
    assert!(catalog.len() > 20_000_000);
    let start = Instant::now();
    let err = Catalog::parse(&catalog).unwrap_err();
    assert_eq!(
        err,
        SignatureError::TooMany {
            what: "catalog members",
            limit: drvaudit::authenticode::catalog::MAX_MEMBERS
        }
    );
    assert!(start.elapsed().as_secs() < 30, "took {:?}", start.elapsed());
    // Larger than the size cap: refused before parsing.
    let huge = vec![0u8; drvaudit::authenticode::catalog::MAX_CATALOG_BYTES + 1];
    assert!(matches!(
        Catalog::parse(&huge),
        Err(SignatureError::TooLarge {
            what: "catalog",
            ..
        })
    ));
}

#[test]
fn absurd_nesting_is_bounded() {
    // Nested signatures, each inside the previous one's unauthenticated attribute.
    let mut sig = signed_data(SPC_INDIRECT, &indirect(), None);
    for _ in 0..12 {
        let attr = tlv(0x30, &cat(&[oid(NESTED), tlv(0x31, &sig)]));
        sig = signed_data(SPC_INDIRECT, &indirect(), Some(attr));
    }
    let v = inspect_pe(&pe_with(&sig, None)).unwrap();
    assert_eq!(
        v.error,
        Some(SignatureError::TooDeep {
            what: "nested signatures",
            limit: pkcs7::MAX_NESTING
        })
    );
    // Wide: a hundred nested signatures in one attribute.
    let one = signed_data(SPC_INDIRECT, &indirect(), None);
    let attr = tlv(0x30, &cat(&[oid(NESTED), tlv(0x31, &one.repeat(100))]));
    let wide = signed_data(SPC_INDIRECT, &indirect(), Some(attr));
    let v = inspect_pe(&pe_with(&wide, None)).unwrap();
    assert!(
        matches!(v.error, Some(SignatureError::TooMany { .. })),
        "{:?}",
        v.error
    );
    // Within the limits: two levels parse, flattened with their parents.
    let attr = tlv(0x30, &cat(&[oid(NESTED), tlv(0x31, &one)]));
    let two = signed_data(SPC_INDIRECT, &indirect(), Some(attr));
    let sigs = pkcs7::parse_signatures(&two, 0).unwrap();
    assert_eq!(
        sigs.iter().map(|s| (s.depth, s.parent)).collect::<Vec<_>>(),
        [(0, None), (1, Some(0))]
    );
    // Deep BER: 100,000 indefinite-length SEQUENCEs as the content.
    let mut deep = [0x30u8, 0x80].repeat(100_000);
    deep.extend(vec![0u8; 200_000]);
    let ber = signed_data(SPC_INDIRECT, &deep, None);
    let v = inspect_pe(&pe_with(&ber, None)).unwrap();
    match v.error {
        Some(SignatureError::Der { source, .. }) => assert_eq!(source.why, DerWhy::TooDeep),
        other => panic!("{other:?}"),
    }
}
