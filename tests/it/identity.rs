//! Identity facts of every corpus driver (../shared/corpus/drivers, vulnerable, softether) and
//! every testdata/bin fixture against testdata/truth/identity.tsv (written by
//! testdata/truth/make_blocklist_truth.py with pefile: `get_imphash()`, its version-resource
//! parser, hashlib). The version resource is also read from a loaded-layout copy of each image
//! (sections placed at their RVAs, as a carved image is) and must be the same.

use std::collections::BTreeMap;

use drvaudit::authenticode::{pe::flat_digests, DigestAlgorithm};
use drvaudit::identity::{imphash, version_info, ImportName, Layout};
use drvaudit::pe::{Image, Layout as ModelLayout};

fn rows() -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(crate::common::testdata("truth/identity.tsv")).unwrap();
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap().split('\t').collect();
    lines
        .map(|l| {
            head.iter()
                .zip(l.split('\t'))
                .map(|(h, v)| {
                    (
                        h.to_string(),
                        v.replace("\\t", "\t")
                            .replace("\\n", "\n")
                            .replace("\\r", "\r")
                            .replace("\\\\", "\\"),
                    )
                })
                .collect()
        })
        .collect()
}

/// The image as the loader maps it: headers, then each section's raw data at its RVA.
fn loaded(bytes: &[u8], img: &Image) -> Vec<u8> {
    let mut out = vec![0u8; img.size_of_image as usize];
    let hdr = img
        .sections
        .iter()
        .map(|s| s.raw_offset as usize)
        .filter(|&o| o > 0)
        .min()
        .unwrap_or(bytes.len())
        .min(bytes.len())
        .min(out.len());
    out[..hdr].copy_from_slice(&bytes[..hdr]);
    for s in &img.sections {
        let n = (s.raw_size.min(s.virtual_size.max(s.raw_size)) as usize)
            .min(bytes.len().saturating_sub(s.raw_offset as usize));
        let dst = s.rva as usize;
        if dst + n <= out.len() {
            out[dst..dst + n]
                .copy_from_slice(&bytes[s.raw_offset as usize..s.raw_offset as usize + n]);
        }
    }
    out
}

fn ver(v: Option<[u16; 4]>) -> String {
    v.map(|v| format!("{}.{}.{}.{}", v[0], v[1], v[2], v[3]))
        .unwrap_or("-".into())
}

#[test]
fn identity_matches_pefile() {
    let Some(shared) = crate::common::shared("corpus") else {
        return;
    };
    let rows = rows();
    assert_eq!(rows.len(), 100);
    let (mut with_version, mut with_imphash) = (0, 0);
    for r in &rows {
        let file = &r["file"];
        let path = if file.starts_with("testdata/") {
            crate::common::root().join(file)
        } else {
            shared.join("..").join(file)
        };
        let bytes = std::fs::read(&path).unwrap();
        let algs = [
            DigestAlgorithm::Md5,
            DigestAlgorithm::Sha1,
            DigestAlgorithm::Sha256,
        ];
        let h: Vec<String> = flat_digests(&bytes, &algs)
            .iter()
            .map(hex::encode)
            .collect();
        assert_eq!(
            (h[0].as_str(), h[1].as_str(), h[2].as_str()),
            (r["md5"].as_str(), r["sha1"].as_str(), r["sha256"].as_str()),
            "{file}"
        );

        let img = Image::parse(&bytes, ModelLayout::File).unwrap();
        let imports: Vec<(&str, ImportName)> = img
            .imports
            .iter()
            .filter(|i| !i.delay)
            .map(|i| {
                (
                    i.dll.as_str(),
                    match (&i.name, i.ordinal) {
                        (Some(n), _) => ImportName::Name(n),
                        (None, Some(o)) => ImportName::Ordinal(o),
                        (None, None) => panic!("{file}: import without name or ordinal"),
                    },
                )
            })
            .collect();
        let ih = imphash(imports).unwrap_or("-".into());
        assert_eq!(ih, r["imphash"], "{file}: imphash");
        with_imphash += (ih != "-") as usize;

        let vi = version_info(&bytes, Layout::File).unwrap_or_else(|e| panic!("{file}: {e}"));
        let fixed = vi.as_ref().and_then(|v| v.fixed);
        assert_eq!(
            ver(fixed.map(|f| f.file_version)),
            r["fixed_file_version"],
            "{file}"
        );
        assert_eq!(
            ver(fixed.map(|f| f.product_version)),
            r["fixed_product_version"],
            "{file}"
        );
        for key in [
            "OriginalFilename",
            "FileVersion",
            "CompanyName",
            "ProductName",
            "FileDescription",
            "InternalName",
            "LegalCopyright",
        ] {
            let got = vi.as_ref().and_then(|v| v.string(key)).unwrap_or("-");
            assert_eq!(got, r[key], "{file}: {key}");
        }
        with_version += vi.is_some() as usize;
        if let Some(vi) = &vi {
            assert!(vi.problems.is_empty(), "{file}: {:?}", vi.problems);
            let mapped = loaded(&bytes, &img);
            assert_eq!(
                version_info(&mapped, Layout::Loaded).unwrap().as_ref(),
                Some(vi),
                "{file}: loaded layout"
            );
        }
    }
    eprintln!(
        "{} files: {with_version} with a version resource, {with_imphash} with an imphash",
        rows.len()
    );
    // Every version resource and import table pefile saw was read (and no others).
    assert_eq!(
        with_version,
        rows.iter()
            .filter(|r| r["fixed_file_version"] != "-")
            .count()
    );
    assert_eq!(
        with_imphash,
        rows.iter().filter(|r| r["imphash"] != "-").count()
    );
    assert_eq!((with_version, with_imphash), (24, 80));
}
