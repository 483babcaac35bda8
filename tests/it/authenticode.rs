//! Authenticode, signatures, catalogs: drvaudit's values against testdata/truth/signatures.tsv,
//! catalogs.tsv and tbs.tsv (derived by testdata/truth/signatures.py from osslsigncode and
//! python3-cryptography, never from drvaudit). Corpus rows need ../shared and are skipped with
//! a message without it; fixture rows always run.

use crate::common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use drvaudit::authenticode::{
    authenticode_digest, classify::SignatureClass, first_page_hashes, inspect_pe, Catalog,
    DigestAlgorithm, Signature,
};

fn tsv(name: &str) -> Vec<Vec<String>> {
    let text = common::read(&common::testdata(&format!("truth/{name}")));
    text.lines()
        .skip(1)
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// The file a truth label names, or `None` (after a SKIPPED message) for corpus files absent.
fn resolve(label: &str) -> Option<PathBuf> {
    if let Some(rel) = label.strip_prefix("testdata/") {
        return Some(common::testdata(rel));
    }
    let rel = label
        .strip_prefix("corpus/")
        .expect("label is testdata/ or corpus/");
    common::shared(&format!("corpus/{rel}"))
}

fn split(field: &str) -> Vec<Option<String>> {
    field
        .split('|')
        .map(|s| (s != "-").then(|| s.to_string()))
        .collect()
}

/// (algorithm, signed digest, computed digest, signer CN, issuer CN, timestamp) of each
/// signature: what osslsigncode reports per "Signature Index" block.
type Facts = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn facts_of(s: &Signature, kind: &str) -> Facts {
    let pe = kind == "pe";
    let signer = s.signer_cert();
    (
        s.indirect
            .as_ref()
            .filter(|_| pe)
            .and_then(|i| i.digest_algorithm)
            .map(|a| a.name().to_string()),
        s.indirect
            .as_ref()
            .filter(|_| pe)
            .map(|i| hex::encode_upper(&i.digest)),
        s.computed_digest.as_ref().map(hex::encode_upper),
        signer
            .and_then(|c| c.subject.common_name())
            .map(str::to_string),
        signer
            .and_then(|c| c.issuer.common_name())
            .map(str::to_string),
        s.timestamp.as_ref().map(|t| t.time_text()),
    )
}

#[test]
fn signatures_equal_the_osslsigncode_truth() {
    let mut checked = 0;
    let mut skipped = 0;
    for row in tsv("signatures.tsv") {
        let [label, kind, count, algs, current, calculated, signers, issuers, times, pages, class, reason] =
            &row[..]
        else {
            panic!("bad truth row {row:?}");
        };
        let Some(path) = resolve(label) else {
            skipped += 1;
            continue;
        };
        let bytes = std::fs::read(&path).unwrap();
        let (sigs, got_class) = if kind == "cat" {
            let cat = Catalog::parse(&bytes).unwrap_or_else(|e| panic!("{label}: {e}"));
            let c = cat.classification();
            (cat.signatures, c)
        } else {
            let v = inspect_pe(&bytes).unwrap_or_else(|e| panic!("{label}: {e}"));
            assert!(v.error.is_none(), "{label}: {:?}", v.error);
            (v.signatures.unwrap().signatures, v.classification)
        };
        assert_eq!(
            got_class.class.name(),
            class,
            "{label}: class ({}); truth: {reason}",
            got_class.reason
        );
        assert_eq!(sigs.len().to_string(), *count, "{label}: signature count");
        // osslsigncode lists nested signatures in its own order: compare as sets.
        let want: BTreeSet<Facts> = (0..sigs.len())
            .map(|i| {
                let at = |f: &str| split(f).get(i).cloned().flatten();
                (
                    at(algs),
                    at(current),
                    at(calculated),
                    at(signers),
                    at(issuers),
                    at(times),
                )
            })
            .collect();
        let mut got: BTreeSet<Facts> = sigs.iter().map(|s| facts_of(s, kind)).collect();
        if want.iter().all(|w| w.3.is_none()) {
            // osslsigncode stops before the signer on a digest mismatch (tampered.sys).
            got = got
                .into_iter()
                .map(|g| (g.0, g.1, g.2, None, None, g.5))
                .collect();
        }
        assert_eq!(got, want, "{label}: per-signature facts");
        // First-page hashes: a prefix (osslsigncode prints 32 bytes of the page-hash table).
        for page in split(pages).into_iter().flatten() {
            let alg = if page.len() > 40 {
                DigestAlgorithm::Sha256
            } else {
                DigestAlgorithm::Sha1
            };
            let ours = hex::encode_upper(&first_page_hashes(&bytes, &[alg]).unwrap()[0]);
            assert!(
                ours.starts_with(&page),
                "{label}: first-page hash {ours} vs osslsigncode {page}"
            );
        }
        checked += 1;
    }
    eprintln!("checked {checked} files against signatures.tsv, {skipped} skipped");
    assert!(checked >= 8, "every fixture row runs");
}

#[test]
fn catalog_members_and_lookups_equal_the_truth() {
    let mut checked = 0;
    for row in tsv("catalogs.tsv") {
        let [cat_label, members, file_label, in_catalog, digest, _how] = &row[..] else {
            panic!("bad truth row {row:?}");
        };
        let (Some(cat_path), Some(file_path)) = (resolve(cat_label), resolve(file_label)) else {
            continue;
        };
        let cat = Catalog::parse(&std::fs::read(&cat_path).unwrap()).unwrap();
        assert_eq!(
            cat.members.len().to_string(),
            *members,
            "{cat_label}: members"
        );
        assert!(cat.problems.is_empty(), "{cat_label}: {:?}", cat.problems);
        let file = std::fs::read(&file_path).unwrap();
        let want = hex::decode(digest).unwrap();
        let alg = DigestAlgorithm::for_len(want.len()).unwrap();
        let ours = if file_label.ends_with(".sys") {
            authenticode_digest(&file, alg).unwrap()
        } else {
            drvaudit::authenticode::pe::hash(alg, &file)
        };
        assert_eq!(hex::encode_upper(&ours), *digest, "{file_label}: digest");
        assert_eq!(
            cat.find(&ours).is_some(),
            in_catalog == "yes",
            "{file_label} in {cat_label}"
        );
        checked += 1;
    }
    assert!(checked >= 2);
}

#[test]
fn tbs_hashes_equal_signer_rule_cert_roots() {
    let rows = tsv("tbs.tsv");
    let mut checked = 0;
    for row in rows {
        let [label, subject, issuer, _alg, tbs, _rule] = &row[..] else {
            panic!("bad truth row {row:?}");
        };
        let Some(path) = resolve(label) else { continue };
        let v = inspect_pe(&std::fs::read(&path).unwrap()).unwrap();
        let sigs = v.signatures.unwrap().signatures;
        let found = sigs.iter().flat_map(|s| &s.certificates).any(|c| {
            c.subject.common_name().unwrap_or(&c.subject.one_line()) == subject.as_str()
                && c.tbs_hash().map(hex::encode_upper).as_deref() == Some(tbs.as_str())
        });
        assert!(
            found,
            "{label}: no certificate {subject} (issuer {issuer}) with TBS hash {tbs}"
        );
        checked += 1;
    }
    eprintln!("checked {checked} TBS hashes against tbs.tsv");
}

/// A byte flipped in a package driver: the embedded digest and the catalog no longer match.
#[test]
fn a_flipped_byte_breaks_the_digest_and_the_catalog_entry() {
    let Some(dir) = common::shared("corpus/packages/softether/SeLow_Win10/x64") else {
        return;
    };
    let mut sys = std::fs::read(dir.join("SeLow_x64.sys")).unwrap();
    let cat = Catalog::parse(&std::fs::read(dir.join("SeLow_Win10_x64.cat")).unwrap()).unwrap();
    let before = authenticode_digest(&sys, DigestAlgorithm::Sha256).unwrap();
    assert!(cat.find(&before).is_some());
    sys[0x1010] ^= 0x40;
    let v = inspect_pe(&sys).unwrap();
    assert_eq!(
        v.classification.class,
        SignatureClass::DigestMismatch,
        "{}",
        v.classification.reason
    );
    let after = authenticode_digest(&sys, DigestAlgorithm::Sha256).unwrap();
    assert_ne!(before, after);
    assert!(cat.find(&after).is_none());
}

#[test]
fn fixture_timestamps_expiry_and_page_hashes() {
    let now = 1_800_000_000; // 2027-01-15, after the expired signer's 2021 end
    let read = |p: &str| std::fs::read(common::testdata(p)).unwrap();
    let ts = inspect_pe(&read("signed/timestamped.sys")).unwrap();
    let c = &ts.classification;
    assert_eq!(c.class, SignatureClass::TestSigned);
    assert_eq!(
        c.timestamp
            .map(drvaudit::authenticode::der::format_time)
            .as_deref(),
        Some("2020-06-01T00:01:00Z")
    );
    assert_eq!(c.signer_valid_at_timestamp(), Some(true));
    assert!(!c.expired_without_timestamp(now));
    let sig = &ts.signatures.unwrap().signatures[0];
    let t = sig.timestamp.as_ref().unwrap();
    assert_eq!(t.imprint_matches, Some(true));
    assert_eq!(
        t.signer_subject.as_ref().and_then(|n| n.common_name()),
        Some("drvaudit Test Timestamp Authority")
    );
    assert_eq!(
        sig.signer
            .signing_time
            .map(drvaudit::authenticode::der::format_time)
            .as_deref(),
        Some("2020-06-01T00:00:00Z")
    );

    let exp = inspect_pe(&read("signed/expired.sys"))
        .unwrap()
        .classification;
    assert!(exp.expired_without_timestamp(now));
    assert_eq!(
        exp.signer.as_deref(),
        Some("drvaudit Expired Driver Signer")
    );
    let fresh = inspect_pe(&read("signed/test_sha256.sys"))
        .unwrap()
        .classification;
    assert!(!fresh.expired_without_timestamp(now.min(1_800_000_000)));

    let ph = inspect_pe(&read("signed/pagehash.sys")).unwrap();
    let i = ph.signatures.unwrap().signatures[0]
        .indirect
        .clone()
        .unwrap();
    assert_eq!(i.page_hashes, Some(DigestAlgorithm::Sha256));

    let nested = inspect_pe(&read("signed/nested_sha1_sha256.sys")).unwrap();
    let s = nested.signatures.unwrap().signatures;
    assert_eq!((s[0].depth, s[1].depth, s[1].parent), (0, 1, Some(0)));
    assert!(
        s.iter()
            .all(|x| x.digest_matches() == Some(true)
                && x.signer.content_digest_matches == Some(true))
    );

    // The package driver has no embedded signature; its catalog names it.
    let pkg = read("packages/signed/fixture.sys");
    assert_eq!(
        inspect_pe(&pkg).unwrap().classification.class,
        SignatureClass::Unsigned
    );
    let cat = Catalog::parse(&read("packages/signed/signed.cat")).unwrap();
    let m = cat
        .find(&authenticode_digest(&pkg, DigestAlgorithm::Sha256).unwrap())
        .unwrap();
    assert_eq!(
        (m.file(), m.os_attr()),
        (Some("fixture.sys"), Some("2:10.0"))
    );
    assert_eq!(cat.find_file("FIXTURE.SYS").count(), 1);
    assert!(cat
        .attributes
        .contains(&("OS".to_string(), "_v100_X64".to_string())));
    assert_eq!(cat.classification().class, SignatureClass::TestSigned);
}

/// Cost of signatures over the corpus, against a flat SHA-256 of the same files. Run with
/// `cargo test --release --test it authenticode::measure -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_signature_cost() {
    let Some(root) = common::shared("corpus") else {
        return;
    };
    let mut files = Vec::new();
    for dir in ["drivers", "vulnerable"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "sys") {
                files.push(std::fs::read(p).unwrap());
            }
        }
    }
    let bytes: usize = files.iter().map(Vec::len).sum();
    let rounds = 20;
    let t = std::time::Instant::now();
    let mut n = 0;
    for _ in 0..rounds {
        for f in &files {
            let v = inspect_pe(f).unwrap();
            n += usize::from(v.classification.class == SignatureClass::Unsigned);
        }
    }
    let sig = t.elapsed();
    let t = std::time::Instant::now();
    for _ in 0..rounds {
        for f in &files {
            n += drvaudit::sha256_hex(f).len();
        }
    }
    let flat = t.elapsed();
    let t = std::time::Instant::now();
    for _ in 0..rounds {
        for f in &files {
            n += first_page_hashes(f, &[DigestAlgorithm::Sha1, DigestAlgorithm::Sha256])
                .unwrap()
                .len();
            n += drvaudit::authenticode::authenticode_digests(
                f,
                &[DigestAlgorithm::Sha1, DigestAlgorithm::Sha256],
            )
            .unwrap()
            .len();
        }
    }
    let both = t.elapsed();
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / (rounds * files.len()) as f64;
    eprintln!(
        "{} drivers, {} KiB: inspect_pe (digest with the signatures' algorithms + parse + classify) {:.1} µs/driver; \
         flat SHA-256 {:.1} µs/driver; SHA-1+SHA-256 Authenticode + first-page hashes {:.1} µs/driver ({n})",
        files.len(),
        bytes / 1024,
        per(sig),
        per(flat),
        per(both)
    );
}

/// The one-pass hashes equal the separate ones, for every fixture build and signed fixture;
/// on the corpus, the Authenticode SHA-256 without padding is the truth's (pefile's layout,
/// unpadded) and with padding the truth's Windows form.
#[test]
fn one_pass_hashes_equal_the_separate_ones_and_the_truth() {
    use drvaudit::authenticode::pe::{file_hashes, layout};
    let algs = [
        DigestAlgorithm::Md5,
        DigestAlgorithm::Sha1,
        DigestAlgorithm::Sha256,
    ];
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["bin", "signed"] {
        for e in std::fs::read_dir(common::testdata(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "sys") {
                files.push(p);
            }
        }
    }
    for p in &files {
        let pe = std::fs::read(p).unwrap();
        let Ok(l) = layout(&pe) else { continue };
        let h = file_hashes(&pe, &l, &algs, &algs);
        for (i, &alg) in algs.iter().enumerate() {
            assert_eq!(
                h.authenticode[i],
                authenticode_digest(&pe, alg).unwrap(),
                "{}",
                p.display()
            );
            assert_eq!(
                h.flat[i],
                drvaudit::authenticode::pe::hash(alg, &pe),
                "{}",
                p.display()
            );
        }
    }
    let rows = tsv("blocklist.tsv");
    let Some(_) = common::shared("corpus/drivers") else {
        return;
    };
    let mut unpadded = 0;
    for r in &rows {
        let (file, auth_sha256, padded) = (&r[0], &r[6], &r[7]);
        let pe = std::fs::read(resolve(file).unwrap()).unwrap();
        let l = layout(&pe).unwrap();
        let h = file_hashes(&pe, &l, &[DigestAlgorithm::Sha256], &[]);
        assert_eq!(hex::encode(&h.authenticode[0]), *padded, "{file}");
        match &h.unpadded {
            Some(u) => {
                assert_eq!(hex::encode(&u[0]), *auth_sha256, "{file}");
                unpadded += 1;
            }
            None => assert_eq!(padded, auth_sha256, "{file}"),
        }
    }
    assert_eq!(unpadded, 13);
}
