//! Findings at source lines, through the whole scan: every call-site finding of the debug
//! fixtures and of the real System Informer and Wine drivers is placed where the debug
//! information says, in the text report and in SARIF (locations[0] the source file, the binary
//! location and the inlining chain related locations).

use std::collections::BTreeMap;
use std::path::PathBuf;

use drvaudit::report::Report;

use crate::common::*;

/// `(binary, rva) → (file, line, function)` from a truth table whose first columns are
/// `binary rva` and which has `file`, `line` and `function` columns.
fn truth(path: &std::path::Path) -> BTreeMap<(String, u32), (String, u32, String)> {
    let text = read(path);
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (file, line, function) = (col("file"), col("line"), col("function"));
    lines
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            let rva = u32::from_str_radix(c[1].trim_start_matches("0x"), 16).unwrap();
            (
                (c[0].to_string(), rva),
                (
                    c[file].to_string(),
                    c[line].parse().unwrap(),
                    c[function].to_string(),
                ),
            )
        })
        .collect()
}

fn scan_debug(paths: &[PathBuf], symbols: &[PathBuf], map: &[(&str, &str)]) -> Report {
    let mut s = settings(paths);
    s.symbols = symbols.to_vec();
    s.source_map = map
        .iter()
        .map(|(p, d)| (p.to_string(), root().join(d)))
        .collect();
    drvaudit::pipeline::scan(&s)
}

/// Every call-site finding with a truth row has exactly that file, line and function.
fn check_sites(
    r: &Report,
    truth: &BTreeMap<(String, u32), (String, u32, String)>,
    file_of: impl Fn(&str) -> String,
) -> usize {
    let mut checked = 0;
    for f in r.findings.iter().filter(|f| f.site.is_some()) {
        let name = &r.artifacts[f.artifact].name;
        let Some(rva) = f.rva else { continue };
        let Some((file, line, function)) = truth.get(&(name.clone(), rva)) else {
            continue;
        };
        let src = f
            .source
            .as_ref()
            .unwrap_or_else(|| panic!("{name}@0x{rva:x} {}: no source", f.rule_id));
        assert_eq!(src.at.path, file_of(file), "{name}@0x{rva:x}");
        assert_eq!(src.at.line, *line, "{name}@0x{rva:x}");
        assert_eq!(
            src.function.as_deref(),
            Some(function.as_str()),
            "{name}@0x{rva:x}"
        );
        // The real name replaces sub_<rva> in the logical location (a wrapper's caller
        // outside `.pdata` has none).
        if let Some(l) = &f.logical {
            assert_eq!(l.name, *function, "{name}@0x{rva:x}");
        }
        checked += 1;
    }
    checked
}

#[test]
fn fixture_findings_are_at_their_source_lines() {
    // Built under /fixtures; the source map puts them onto this checkout's testdata/.
    let r = scan_debug(&[testdata("debug")], &[], &[("/fixtures", "testdata")]);
    let t = truth(&testdata("truth/debug_sites.tsv"));
    let checked = check_sites(&r, &t, |f| f.replace("/fixtures/", "testdata/"));
    // Every pool call of the fixtures that a rule reports: allocations, frees, lookasides.
    assert!(checked >= 100, "{checked}");
    // Relative to the root: SARIF puts them under SRCROOT.
    assert!(r
        .findings
        .iter()
        .filter_map(|f| f.source.as_ref())
        .all(|s| s.at.relative && s.at.path.starts_with("testdata/src/")));
    // The inlining chain of inlined.c:23 (AllocNode inlined into AllocPair into BuildList).
    let f = r
        .findings
        .iter()
        .find(|f| {
            r.artifacts[f.artifact].name == "inlined_clang_x64_O2.sys"
                && f.source.as_ref().is_some_and(|s| s.inlined.len() == 2)
        })
        .expect("a doubly inlined site");
    let s = f.source.as_ref().unwrap();
    assert_eq!(s.inlined[0].function.as_deref(), Some("AllocNode"));
    assert_eq!(s.inlined[0].at.as_ref().unwrap().line, 28);
    assert_eq!(s.inlined[1].function.as_deref(), Some("AllocPair"));
    assert_eq!(s.inlined[1].at.as_ref().unwrap().line, 33);

    // SARIF: the source file first, resolved through SRCROOT; the binary location and the
    // chain related; the function's name in the logical location.
    let log: serde_json::Value = serde_json::from_str(&sarif_text(&r)).unwrap();
    let run = &log["runs"][0];
    assert!(run["originalUriBaseIds"]["SRCROOT"]["uri"].is_string());
    let results = run["results"].as_array().unwrap();
    let at_source: Vec<_> = results
        .iter()
        .filter(|r| r.get("relatedLocations").is_some())
        .collect();
    assert!(at_source.len() >= 100);
    for res in &at_source {
        let p = &res["locations"][0]["physicalLocation"];
        assert_eq!(p["artifactLocation"]["uriBaseId"], "SRCROOT");
        assert!(p["artifactLocation"]["uri"]
            .as_str()
            .unwrap()
            .starts_with("testdata/src/"));
        assert!(p["region"]["startLine"].as_u64().unwrap() > 0);
        let binary = &res["relatedLocations"][0]["physicalLocation"];
        assert!(binary["address"]["relativeAddress"].is_number());
        assert!(binary["artifactLocation"]["index"].is_number());
    }
    // Results without a source line still carry the start line GitHub requires.
    assert!(results.iter().all(
        |r| r["locations"][0]["physicalLocation"]["region"]["startLine"].is_number()
            || r["locations"][0]["physicalLocation"]
                .get("region")
                .is_none()
    ));
    assert_schema_valid(&log);
    // The text report leads with the source position and keeps the binary one.
    let text = drvaudit::output::text::render_oneline(&r);
    assert!(
        text.lines().any(
            |l| l.starts_with("testdata/src/inlined.c:39: error[DRV1001]")
                && l.contains("in LegacyAlloc")
                && l.contains("(")
                && l.contains("inlined_clang_x64_O2.sys@0x")
        ),
        "{text}"
    );
}

#[test]
fn a_pdb_of_another_build_is_refused_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        testdata("debug/pooltest_clang_x64_O2.sys"),
        dir.path().join("pooltest_clang_x64_O2.sys"),
    )
    .unwrap();
    std::fs::copy(
        testdata("debug/other/pooltest_clang_x64_O2.pdb"),
        dir.path().join("pooltest_clang_x64_O2.pdb"),
    )
    .unwrap();
    let r = scan_debug(&[dir.path().to_path_buf()], &[], &[]);
    let notes: Vec<_> = r
        .notices
        .iter()
        .filter(|n| n.kind == drvaudit::report::NoticeKind::NoDebugInfo)
        .collect();
    assert_eq!(notes.len(), 1, "{notes:#?}");
    assert_eq!(notes[0].level, drvaudit::report::Level::Note);
    assert!(
        notes[0].message.contains("pooltest_clang_x64_O2.pdb")
            && notes[0].message.contains("GUID differs"),
        "{}",
        notes[0].message
    );
    assert!(r.findings.iter().all(|f| f.source.is_none()));
    // A note, not an incomplete audit.
    assert_ne!(r.exit_code, 2);
}

#[test]
fn systeminformer_findings_are_at_the_lines_its_pdb_gives() {
    let (Some(drivers), Some(pdbs)) = (shared("corpus/drivers"), shared("corpus/pdb")) else {
        return;
    };
    let t = truth(&testdata("truth/systeminformer_lines.tsv"));
    let r = scan_debug(
        &[
            drivers.join("systeminformer-amd64.sys"),
            drivers.join("systeminformer-arm64.sys"),
        ],
        &[pdbs],
        &[],
    );
    // Outside the root and not mapped: the recorded Windows path, with forward slashes.
    let checked = check_sites(&r, &t, |f| f.replace('\\', "/"));
    assert_eq!(checked, 122, "61 sites in each build");
}

#[test]
fn wine_untagged_allocations_map_to_the_first_listed_line() {
    let Some(drivers) = shared("corpus/drivers") else {
        return;
    };
    let Some(sites) = shared("corpus/truth/wine8.0-x64-sites.txt") else {
        return;
    };
    let r = scan_debug(&[drivers], &[], &[]);
    let mut checked = 0;
    for line in read(&sites).lines().filter(|l| !l.starts_with('#')) {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() < 6 || w[0] != "amd64" || w[3] != "ExAllocatePool" {
            continue;
        }
        let va = u64::from_str_radix(w[2].trim_start_matches("0x"), 16).unwrap();
        let first = w[w.iter().position(|x| *x == "->").unwrap() + 1];
        let (file, line_no) = first.rsplit_once(':').unwrap();
        let name = format!("wine8.0-x64-{}", w[1]);
        let art = r.artifacts.iter().position(|a| a.name == name).unwrap();
        let base =
            image_base(&std::fs::read(shared("corpus/drivers").unwrap().join(&name)).unwrap());
        let rva = (va - base) as u32;
        let f = r
            .findings
            .iter()
            .find(|f| f.rule_id == "DRV1001" && f.artifact == art && f.rva == Some(rva))
            .unwrap_or_else(|| panic!("{name}@0x{rva:x}: no DRV1001"));
        let src = f.source.as_ref().expect("DWARF gives a line");
        assert!(src.at.path.ends_with(file), "{} vs {file}", src.at.path);
        assert_eq!(src.at.line.to_string(), line_no);
        checked += 1;
    }
    assert_eq!(checked, 20);
}

fn image_base(bytes: &[u8]) -> u64 {
    let pe = u32::from_le_bytes(bytes[0x3c..0x40].try_into().unwrap()) as usize;
    u64::from_le_bytes(bytes[pe + 24 + 24..pe + 24 + 32].try_into().unwrap())
}
