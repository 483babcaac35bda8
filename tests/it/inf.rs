//! The INF parser on every real INF of ../shared/corpus/packages/softether and on
//! testdata/src/fixture.inf, against testdata/truth/inf.tsv (written by
//! testdata/truth/make_inf_truth.py, which reads the files with Python's codecs and applies the
//! Microsoft Learn INF rules itself). The softether INFs are ANSI; each is also re-encoded as
//! UTF-16LE with and without a BOM, UTF-16BE and UTF-8 with a BOM, and must give the same facts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use drvaudit::inf::{Arch, Encoding, Inf, ProblemKind};

fn rows() -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(crate::common::testdata("truth/inf.tsv")).unwrap();
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap().split('\t').collect();
    lines
        .map(|l| {
            head.iter()
                .zip(l.split('\t'))
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn package_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(dir) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            out.push(
                e.path()
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/"),
            );
        }
    }
    out.sort();
    out
}

fn join(v: Vec<String>) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(";")
    }
}

/// The facts the truth lists, computed by drvaudit.
fn facts(inf: &Inf, arch: Arch, package: &[String]) -> BTreeMap<&'static str, String> {
    let v = inf.version();
    let mut f = BTreeMap::new();
    f.insert(
        "driverver",
        v.driver_ver_text.map(|(t, _)| t).unwrap_or("-".into()),
    );
    f.insert(
        "catalog",
        inf.catalog_file(arch)
            .map(|c| format!("{}@{}", c.file, c.line))
            .unwrap_or("-".into()),
    );
    f.insert(
        "decorations",
        join(
            inf.manufacturers()
                .iter()
                .flat_map(|m| m.decorations.iter().map(|d| d.text.clone()))
                .collect(),
        ),
    );
    f.insert(
        "models",
        join(
            inf.models_sections(arch)
                .into_iter()
                .map(|m| m.section)
                .collect(),
        ),
    );
    let mut copied: Vec<String> = inf
        .copied_files(arch)
        .into_iter()
        .map(|c| c.package_path.unwrap_or(c.source))
        .collect();
    copied.sort();
    f.insert("copied", join(copied));
    f.insert(
        "services",
        join(
            inf.services(arch)
                .into_iter()
                .map(|s| format!("{}={}", s.name, s.binary.map(|b| b.0).unwrap_or("-".into())))
                .collect(),
        ),
    );
    let problems = inf
        .problems(arch, Some(package))
        .into_iter()
        .map(|p| {
            let (kind, detail) = match &p.kind {
                ProblemKind::MissingDriverVer => ("MissingDriverVer", String::new()),
                ProblemKind::MissingCatalogFile { arch } => {
                    ("MissingCatalogFile", arch.name().into())
                }
                ProblemKind::CatalogMissingFromPackage { file } => {
                    ("CatalogMissingFromPackage", file.clone())
                }
                ProblemKind::NoModelsForArchitecture { models, .. } => {
                    ("NoModelsForArchitecture", models.clone())
                }
                ProblemKind::FileMissingFromPackage { path, .. } => {
                    ("FileMissingFromPackage", path.clone())
                }
                ProblemKind::NotInSourceDisksFiles { file } => {
                    ("NotInSourceDisksFiles", file.clone())
                }
                ProblemKind::ServiceBinaryNotCopied { binary, .. } => {
                    ("ServiceBinaryNotCopied", binary.clone())
                }
                other => return format!("{}:{other:?}", p.line),
            };
            format!("{}:{kind}:{detail}", p.line)
        })
        .collect();
    f.insert("problems", join(problems));
    f
}

fn arch(s: &str) -> Arch {
    match s {
        "amd64" => Arch::Amd64,
        "x86" => Arch::X86,
        other => panic!("{other}"),
    }
}

fn reencode(text: &str) -> Vec<(Encoding, Vec<u8>)> {
    let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let be: Vec<u8> = [0xFE, 0xFF]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_be_bytes))
        .collect();
    vec![
        (
            Encoding::Utf16LeBom,
            [0xFF, 0xFE].into_iter().chain(le.iter().copied()).collect(),
        ),
        (Encoding::Utf16Le, le),
        (Encoding::Utf16BeBom, be),
        (
            Encoding::Utf8Bom,
            [0xEF, 0xBB, 0xBF].into_iter().chain(text.bytes()).collect(),
        ),
    ]
}

#[test]
fn softether_and_fixture_infs_match_the_truth() {
    let Some(shared) = crate::common::shared("corpus/packages/softether") else {
        return;
    };
    let rows = rows();
    assert_eq!(rows.len(), 8);
    let mut checked = 0;
    for r in rows {
        let (path, package): (PathBuf, Vec<String>) = if r["file"].starts_with("testdata/") {
            (
                crate::common::root().join(&r["file"]),
                vec![
                    "drivers/amd64/clean.sys".into(),
                    "drivers/amd64/untagged.sys".into(),
                    "fixture.inf".into(),
                ],
            )
        } else {
            let p = shared.join("../../..").join(&r["file"]);
            let dir = p.parent().unwrap().to_owned();
            (p, package_files(&dir))
        };
        let bytes = std::fs::read(&path).unwrap();
        let inf = Inf::parse(&bytes).unwrap();
        assert_eq!(inf.encoding, Encoding::Ansi, "{}", r["file"]);
        let a = arch(&r["arch"]);
        let got = facts(&inf, a, &package);
        for (k, v) in &got {
            assert_eq!(v, &r[*k], "{} {}: {k}", r["file"], r["arch"]);
        }
        // The same text in every other encoding gives the same facts; without a byte-order
        // mark, UTF-16 is also a problem of its own (Windows expects the BOM).
        let text = String::from_utf8(bytes).expect("the corpus INFs are ASCII");
        for (enc, b) in reencode(&text) {
            let i = Inf::parse(&b).unwrap();
            assert_eq!(i.encoding, enc);
            let mut want = got.clone();
            if enc == Encoding::Utf16Le {
                let p = want.get_mut("problems").unwrap();
                *p = match p.as_str() {
                    "-" => "0:Utf16WithoutBom".to_string(),
                    rest => format!("0:Utf16WithoutBom;{rest}"),
                };
            }
            assert_eq!(facts(&i, a, &package), want, "{} as {enc:?}", r["file"]);
        }
        checked += 1;
    }
    assert_eq!(checked, 8);
}

#[test]
fn a_package_missing_its_driver_is_reported_at_the_copy_line() {
    let Some(dir) = crate::common::shared("corpus/packages/softether/SeLow_Win10/x64") else {
        return;
    };
    let inf = Inf::parse(&std::fs::read(dir.join("SeLow_x64.inf")).unwrap()).unwrap();
    let package = vec![
        "SeLow_x64.inf".to_string(),
        "SeLow_Win10_x64.cat".to_string(),
    ];
    let p = inf.problems(Arch::Amd64, Some(&package));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(
        (p[0].line, p[0].section.as_deref()),
        (58, Some("SeLow_CopyFiles"))
    );
    assert_eq!(
        p[0].message(),
        "SeLow_x64.sys is copied but SeLow_x64.sys is not in the package"
    );
    // On ARM64 the same INF has no models section and no arm64 files.
    let p = inf.problems(Arch::Arm64, Some(&package));
    assert!(
        p.iter()
            .any(|p| p.line == 17 && matches!(p.kind, ProblemKind::NoModelsForArchitecture { .. })),
        "{p:?}"
    );
}
