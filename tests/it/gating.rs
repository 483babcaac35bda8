//! Package gating end to end: `drvaudit identify` and the DRV4xxx rules in real scans, against
//! truth derived without drvaudit (testdata/truth/signatures.tsv from osslsigncode,
//! blocklist.tsv from pefile, PyYAML and ElementTree), on the fixtures and, when ../shared is
//! present, on the corpus drivers, the SoftEther packages and the LOLDrivers and Microsoft
//! lists; and the hostile inputs of the gate, each one notice with everything else reported.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::authenticode_hostile::{indirect, million_member_catalog, pe_with, signed_data};
use crate::common::*;

/// Runs the built binary from the crate root: (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_drvaudit"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("drvaudit runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A truth table: one map per row, by column name.
fn truth(name: &str) -> Vec<BTreeMap<String, String>> {
    let text = read(&testdata(&format!("truth/{name}")));
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    lines
        .map(|l| {
            header
                .iter()
                .zip(l.split('\t'))
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// The label truth files give a file: `testdata/…` or `corpus/…`.
fn label(path: &str) -> String {
    let shared = root().join("../shared").display().to_string();
    match path
        .strip_prefix(&format!("{shared}/"))
        .or_else(|| path.strip_prefix("../shared/"))
    {
        Some(rel) => rel.to_string(),
        None => path.to_string(),
    }
}

/// The corpus folders, when ../shared is present.
fn corpus() -> Option<Vec<PathBuf>> {
    Some(vec![
        shared("corpus/drivers")?,
        shared("corpus/vulnerable")?,
        shared("corpus/packages/softether")?,
    ])
}

/// `drvaudit identify --format json` over `paths`: the rows by truth label.
fn identify(paths: &[PathBuf], blocklists: &[PathBuf]) -> BTreeMap<String, Value> {
    let mut args: Vec<String> = vec!["identify".into(), "--format".into(), "json".into()];
    args.extend(paths.iter().map(|p| p.display().to_string()));
    for b in blocklists {
        args.push("--blocklist".into());
        args.push(b.display().to_string());
    }
    args.push("--no-config".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Value> = serde_json::from_str(&out).expect("identify --format json is JSON");
    rows.into_iter()
        .map(|r| (label(r["path"].as_str().unwrap()), r))
        .collect()
}

#[test]
fn identify_equals_the_signature_truth() {
    let mut paths = vec![testdata("signed"), testdata("packages/signed")];
    let with_corpus = corpus();
    if let Some(c) = &with_corpus {
        paths.extend(c.iter().cloned());
    }
    let rows = identify(&paths, &[]);
    let sigs: BTreeMap<String, BTreeMap<String, String>> = truth("signatures.tsv")
        .into_iter()
        .map(|r| (r["file"].clone(), r))
        .collect();
    let mut checked = 0;
    for (file, row) in &rows {
        let t = &sigs[file];
        // A driver without an embedded signature is verified through the catalog its package
        // names, and takes that catalog's class and signer.
        let t = match row["catalog"].as_str() {
            Some(cat) => {
                assert_eq!(t["class"], "unsigned", "{file}: embedded");
                let dir = file.rsplit_once('/').unwrap().0;
                &sigs[&format!("{dir}/{cat}")]
            }
            None => t,
        };
        assert_eq!(row["signature"], t["class"].as_str(), "{file}: class");
        // osslsigncode names no signer for a signature whose digest does not match.
        let signers: Vec<&str> = t["signers"].split('|').filter(|s| *s != "-").collect();
        match row["signer"].as_str() {
            Some(s) if !signers.is_empty() || t["class"] != "digest-mismatch" => {
                assert!(
                    signers.contains(&s),
                    "{file}: signer {s} not in {signers:?}"
                )
            }
            Some(_) => {}
            None => assert!(signers.is_empty(), "{file}: no signer"),
        }
        // The digest the file's (first) signature holds is the one osslsigncode computes; with
        // SHA-256 it is the Authenticode SHA-256 identify shows.
        let algs: Vec<&str> = t["digest_algorithms"].split('|').collect();
        let digests: Vec<&str> = t["calculated_digests"].split('|').collect();
        if let Some(i) = algs.iter().position(|a| *a == "SHA256") {
            assert_eq!(
                row["authenticodeSha256"].as_str().unwrap(),
                digests[i].to_ascii_lowercase(),
                "{file}: Authenticode SHA-256"
            );
        }
        // A timestamp osslsigncode saw is the deciding signature's date.
        let stamps: Vec<&str> = t["timestamps"].split('|').filter(|s| *s != "-").collect();
        match row["timestamp"].as_str() {
            Some(day) => assert!(
                stamps.iter().any(|s| s.starts_with(day)),
                "{file}: timestamp {day} not in {stamps:?}"
            ),
            None => assert!(stamps.is_empty(), "{file}: timestamps {stamps:?}"),
        }
        checked += 1;
    }
    // Every driver the truth lists under the folders given has its row.
    let listed = sigs
        .keys()
        .filter(|f| f.ends_with(".sys"))
        .filter(|f| with_corpus.is_some() || f.starts_with("testdata/"))
        .count();
    assert_eq!(checked, listed);
    // The Authenticode SHA-256 of every corpus driver is the one Windows computes (zero
    // padding to 8 bytes: it differs for the thirteen unsigned Wine drivers of odd length).
    if with_corpus.is_some() {
        for t in truth("blocklist.tsv") {
            assert_eq!(
                rows[&t["file"]]["authenticodeSha256"].as_str().unwrap(),
                t["auth_sha256_padded"],
                "{}",
                t["file"]
            );
        }
    }
}

/// The scan's blocklist findings on the corpus: per file, per list, the entry ids.
fn blocklist_findings(lists: &[PathBuf]) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut s = settings(&corpus().unwrap());
    s.rules = {
        let mut r = drvaudit::rules::RuleSet::builtin().unwrap();
        let selection = drvaudit::rules::Selection {
            select: Some(vec!["DRV4001".into(), "DRV4002".into(), "DRV4003".into()]),
            ..Default::default()
        };
        r.select(&selection).unwrap();
        r
    };
    s.blocklists = lists.to_vec();
    let report = drvaudit::pipeline::scan(&s);
    assert!(problems(&report).is_empty(), "{:?}", problems(&report));
    let mut out: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for f in &report.findings {
        let file = label(&drvaudit::report::display_path(
            &report.artifacts,
            f.artifact,
        ));
        let list = f.properties["blocklist"].as_str().unwrap().to_string();
        let entries = f.properties["blocklistEntries"].as_array().unwrap();
        out.entry(file)
            .or_default()
            .entry(list)
            .or_default()
            .extend(entries.iter().map(|e| e.as_str().unwrap().to_string()));
    }
    out
}

/// The entry ids of a truth column (`id#sample:field=hash;…`, `ID+FILEATTRIB:form;…`).
fn truth_ids(column: &str) -> BTreeSet<String> {
    if column == "-" {
        return BTreeSet::new();
    }
    column
        .split(';')
        .map(|t| {
            let id = t.split(':').next().unwrap();
            let id = id.split('#').next().unwrap();
            id.split('+').next().unwrap().to_string()
        })
        .collect()
}

#[test]
fn blocklist_findings_on_the_corpus_equal_the_truth() {
    let (Some(_), Some(lol), Some(msft)) = (
        corpus(),
        shared("reference/data/loldrivers"),
        shared("reference/data/microsoft/SiPolicy_DriverBlockRules.xml"),
    ) else {
        return;
    };
    let deny = lol.join("detections/wdac/DenyPolicy.xml");
    let found = blocklist_findings(&[lol.clone(), deny.clone(), msft.clone()]);
    let name = |p: &Path| p.display().to_string();
    let mut vulnerable = 0;
    for t in truth("blocklist.tsv") {
        let file = &t["file"];
        let of = |list: &Path| {
            found
                .get(file)
                .and_then(|m| m.get(&name(list)))
                .cloned()
                .unwrap_or_default()
        };
        assert_eq!(of(&lol), truth_ids(&t["loldrivers"]), "{file}: LOLDrivers");
        assert_eq!(
            of(&deny),
            truth_ids(&t["denypolicy"]),
            "{file}: DenyPolicy.xml"
        );
        assert_eq!(of(&msft), truth_ids(&t["msft_block"]), "{file}: Microsoft");
        // Every corpus/vulnerable driver is matched by the YAML folder, and no other.
        assert_eq!(
            !of(&lol).is_empty(),
            file.starts_with("corpus/vulnerable/"),
            "{file}"
        );
        vulnerable += usize::from(!of(&lol).is_empty());
    }
    assert_eq!(vulnerable, 16);
}

/// A copy of one SoftEther package folder, changed by `change`.
fn softether_copy(package: &str, change: impl FnOnce(&Path)) -> Option<tempfile::TempDir> {
    let src = shared(&format!("corpus/packages/softether/{package}"))?;
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    change(dir.path());
    Some(dir)
}

/// `scan DIR --select DRV40 --format sarif`: (ruleId, file name, message) of each result.
fn gating_results(dir: &Path) -> Vec<(String, String, String)> {
    let d = dir.display().to_string();
    let (_, out, err) = run(&[
        "scan",
        &d,
        "--select",
        "DRV40",
        "--format",
        "sarif",
        "--no-config",
    ]);
    let log: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{err}"));
    let artifacts = log["runs"][0]["artifacts"].as_array().unwrap().clone();
    log["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let i = r["locations"][0]["physicalLocation"]["artifactLocation"]["index"]
                .as_u64()
                .unwrap() as usize;
            let uri = artifacts[i]["location"]["uri"].as_str().unwrap();
            (
                r["ruleId"].as_str().unwrap().to_string(),
                uri.rsplit('/').next().unwrap().to_string(),
                r["message"]["text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_package_changed_after_signing_fails_the_gate() {
    // As shipped: WHQL-signed, its catalog covering the driver and the INF.
    let Some(intact) = softether_copy("SeLow_Win10/x64", |_| {}) else {
        return;
    };
    assert_eq!(gating_results(intact.path()), Vec::new());
    // A byte of the driver's code flipped: its own signature and the catalog both disagree.
    let flipped = softether_copy("SeLow_Win10/x64", |d| {
        let sys = d.join("SeLow_x64.sys");
        let mut b = std::fs::read(&sys).unwrap();
        b[0x1000] ^= 0x01;
        std::fs::write(&sys, b).unwrap();
    })
    .unwrap();
    let rules: BTreeSet<(String, String)> = gating_results(flipped.path())
        .into_iter()
        .map(|(r, f, _)| (r, f))
        .collect();
    assert_eq!(
        rules,
        BTreeSet::from([
            ("DRV4006".to_string(), "SeLow_x64.sys".to_string()),
            ("DRV4007".to_string(), "SeLow_x64.sys".to_string()),
        ])
    );
    // The driver the INF copies is missing from the package.
    let missing = softether_copy("SeLow_Win10/x64", |d| {
        std::fs::remove_file(d.join("SeLow_x64.sys")).unwrap();
    })
    .unwrap();
    let results = gating_results(missing.path());
    assert_eq!(results.len(), 1, "{results:?}");
    let (rule, file, message) = &results[0];
    assert_eq!((rule.as_str(), file.as_str()), ("DRV4010", "SeLow_x64.inf"));
    assert!(
        message.contains("SeLow_x64.sys is copied but SeLow_x64.sys is not in the package"),
        "{message}"
    );
}

/// Scans `paths` with the default rules: (exit code, text report, standard error).
fn scan_text(paths: &[&Path], extra: &[&str]) -> (i32, String, String) {
    let mut args: Vec<String> = vec!["scan".into()];
    args.extend(paths.iter().map(|p| p.display().to_string()));
    // The one-line form: the assertions name `path@0xrva: level[ID]` lines.
    args.extend(["--no-config", "--no-progress", "--oneline"].map(String::from));
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args)
}

/// The notices on standard error that name `what`.
fn notices_naming(stderr: &str, what: &str) -> usize {
    stderr.lines().filter(|l| l.contains(what)).count()
}

#[test]
fn hostile_signatures_are_one_notice_each() {
    let dir = tempfile::tempdir().unwrap();
    let good = signed_data(crate::authenticode_hostile::SPC_INDIRECT, &indirect(), None);
    let truncated = dir.path().join("truncated-pkcs7.sys");
    std::fs::write(&truncated, pe_with(&good[..good.len() / 2], None)).unwrap();
    let outside = dir.path().join("table-outside.sys");
    let len = pe_with(&good, None).len() as u32;
    std::fs::write(&outside, pe_with(&good, Some((len - 8, 0x1000)))).unwrap();
    let clean = testdata("bin/clean_gcc_x64_O2.sys");
    let (code, out, err) = scan_text(&[&truncated, &outside, &clean], &[]);
    assert_eq!(code, 2, "{err}");
    for f in ["truncated-pkcs7.sys", "table-outside.sys"] {
        assert_eq!(
            notices_naming(
                &err,
                &format!("{f}: error: its Authenticode signature could not be read")
            ),
            1,
            "{err}"
        );
        // Reported as a signature that cannot be read, and its code still audited.
        assert!(
            out.contains(&format!("{f}: error[DRV4004] unsigned-driver: ")),
            "{out}"
        );
        assert!(out.contains(&format!("{f}: note[DRV3007]")), "{out}");
    }
    assert!(out.contains("has a signature that cannot be read"), "{out}");
    assert!(out.contains("clean_gcc_x64_O2.sys: note[DRV3007]"), "{out}");
}

/// A copy of the signed package fixture with `change` applied.
fn package_copy(change: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["fixture.sys", "signed.cat", "signed.inf"] {
        std::fs::copy(
            testdata(&format!("packages/signed/{f}")),
            dir.path().join(f),
        )
        .unwrap();
    }
    change(dir.path());
    dir
}

#[test]
fn hostile_package_files_are_one_notice_each() {
    // An INF of 40 MiB: refused before it is parsed.
    let huge = package_copy(|d| {
        let mut text = std::fs::read(d.join("signed.inf")).unwrap();
        text.resize(40 << 20, b' ');
        std::fs::write(d.join("signed.inf"), text).unwrap();
    });
    let (code, out, err) = scan_text(&[huge.path()], &[]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        notices_naming(&err, "signed.inf: error: INF not read"),
        1,
        "{err}"
    );
    assert!(out.contains("fixture.sys@0x1035: error[DRV2001]"), "{out}");

    // A catalog of a million members: refused, and the driver it should sign is reported.
    let million = package_copy(|d| {
        std::fs::write(d.join("signed.cat"), million_member_catalog()).unwrap();
    });
    let (code, out, err) = scan_text(&[million.path()], &[]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        notices_naming(
            &err,
            "signed.inf: error: its catalog signed.cat could not be read"
        ),
        1,
        "{err}"
    );
    assert!(err.contains("catalog members"), "{err}");
    assert!(out.contains("fixture.sys: error[DRV4007]"), "{out}");
    assert!(out.contains("fixture.sys: error[DRV4004]"), "{out}");

    // UTF-16LE without a byte-order mark: read, and said at the INF.
    let utf16 = package_copy(|d| {
        let text = std::fs::read_to_string(d.join("signed.inf")).unwrap();
        let units: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        std::fs::write(d.join("signed.inf"), units).unwrap();
    });
    let (code, out, err) = scan_text(&[utf16.path()], &["--select", "DRV4010"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("[DRV4010]")).collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].contains("UTF-16 text without a byte-order mark"),
        "{out}"
    );
}

#[test]
fn a_yaml_bomb_is_one_notice_and_the_scan_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let lol = dir.path().join("yaml");
    std::fs::create_dir(&lol).unwrap();
    let mut bomb = String::from("Id: bomb\nlol0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\"]\n");
    for i in 1..30 {
        let prev = format!("*a{}", i - 1);
        bomb.push_str(&format!("lol{i}: &a{i} [{prev}, {prev}, {prev}, {prev}]\n"));
    }
    std::fs::write(lol.join("bomb.yaml"), bomb).unwrap();
    let clean = testdata("bin/clean_gcc_x64_O2.sys");
    let l = lol.display().to_string();
    let (code, out, err) = scan_text(&[&clean], &["--blocklist", &l]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(notices_naming(&err, "bomb.yaml"), 1, "{err}");
    assert!(err.contains("aliases are not supported"), "{err}");
    assert!(out.contains("clean_gcc_x64_O2.sys: note[DRV3007]"), "{out}");
}
