//! Each rule alone on its fixtures: the rule set holds that one rule, the fixtures are the
//! families `testdata/truth/expected_rules.tsv` lists for it (one build of each, to keep the
//! snapshot readable; `fixture_rules` checks every build), and the SARIF results are
//! snapshotted, so a change to one rule shows exactly what moved in that rule alone.

use drvaudit::rules::RuleSet;

use crate::common::*;

/// One build per fixture family: the clang x64 -O2 build where there is one.
fn representative(pattern: &str) -> Option<String> {
    let prefix = pattern.trim_end_matches("*.sys");
    let mut builds: Vec<String> = std::fs::read_dir(testdata("bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix) && n.ends_with(".sys"))
        .collect();
    builds.sort();
    builds
        .iter()
        .find(|n| n.contains("_clang_x64_O2"))
        .or(builds.first())
        .cloned()
}

/// `(fixture, expected to fire)` for `rule`, from the expectations table.
fn fixtures_of(rule: &str) -> Vec<(String, bool)> {
    read(&testdata("truth/expected_rules.tsv"))
        .lines()
        .filter(|l| !l.starts_with('#'))
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (cols[1] == rule)
                .then(|| representative(cols[0]).map(|f| (f, cols[2] == "fire")))
                .flatten()
        })
        .collect()
}

/// A pooltag.txt that gives pooltest.c's 'Loop' to another driver (DRV1005's collision) and
/// 'Pool' to pooltest itself.
fn colliding_pooltag(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("pooltag.txt");
    std::fs::write(
        &p,
        "rem test pooltag\n\
         Loop - otherdrv.sys - somebody else's loop buffers\n\
         Pool - pooltest_clang_x64_O2.sys - our own tag\n",
    )
    .unwrap();
    p
}

/// Scans `paths` with `rule` alone and returns the log's results. `pool`: with the incident's
/// pool figures and a pooltag.txt with a collision.
fn results_alone(rule: &str, paths: &[std::path::PathBuf], pool: bool) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(paths);
    s.rules = RuleSet::builtin().unwrap().only(rule).unwrap();
    if pool {
        s.pool_files = vec![testdata("pool/incident.csv")];
        s.pooltag = Some(colliding_pooltag(dir.path()));
    }
    let report = drvaudit::pipeline::scan(&s);
    assert!(
        report.findings.iter().all(|f| f.rule_id == rule),
        "{rule} alone produced other rules' findings"
    );
    redacted_sarif(&sarif_text(&report), &[])["runs"][0]["results"].take()
}

/// A fixture under `testdata/bin`, or one made here (see [`integrity_fixture`]).
fn fixture_path(name: &str) -> std::path::PathBuf {
    if name == INTEGRITY {
        integrity_fixture()
    } else {
        testdata(&format!("bin/{name}"))
    }
}

/// No fixture build sets FORCE_INTEGRITY, which DRV3006 wants: this one is clean.c's clang x64
/// build with `DllCharacteristics |= 0x0080`, written once per test run.
const INTEGRITY: &str = "clean_clang_x64_O2+force-integrity.sys";

fn integrity_fixture() -> std::path::PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap());
    let path = dir.path().join(INTEGRITY);
    if !path.exists() {
        let mut bytes = std::fs::read(testdata("bin/clean_clang_x64_O2.sys")).unwrap();
        let pe = u32::from_le_bytes(bytes[0x3c..0x40].try_into().unwrap()) as usize;
        // DllCharacteristics: 70 bytes into the optional header, which follows the 24-byte
        // signature and file header.
        let at = pe + 24 + 70;
        let chars = u16::from_le_bytes([bytes[at], bytes[at + 1]]) | 0x0080;
        bytes[at..at + 2].copy_from_slice(&chars.to_le_bytes());
        std::fs::write(&path, bytes).unwrap();
    }
    path
}

fn check(rule: &str) {
    let fixtures = match rule {
        "DRV3006" => vec![
            ("clean_clang_x64_O2.sys".to_string(), true),
            (INTEGRITY.to_string(), false),
        ],
        _ => fixtures_of(rule),
    };
    let uses_pool = matches!(rule, "DRV1005" | "DRV9001");
    // DRV1005 needs pooltag.txt and DRV9001 pool figures: they run on the pool fixture
    // families, with the incident's figures and tag owners.
    let fixtures = if fixtures.is_empty() && uses_pool {
        vec![
            ("pooltest_clang_x64_O2.sys".to_string(), true),
            // Allocates only without a tag: nothing to collide.
            ("untagged_gcc_x64_O2.sys".to_string(), rule == "DRV9001"),
        ]
    } else {
        fixtures
    };
    assert!(!fixtures.is_empty(), "{rule} has no fixture");
    for (fixture, fires) in &fixtures {
        let alone = results_alone(rule, &[fixture_path(fixture)], uses_pool);
        let n = alone.as_array().map_or(0, Vec::len);
        // DRV9001 is about the pool figures, not the fixture: it fires whatever is scanned.
        if rule != "DRV9001" {
            assert_eq!(n > 0, *fires, "{rule} on {fixture}: {n} result(s)");
        }
    }
    let positives: Vec<_> = fixtures
        .iter()
        .filter(|(_, fires)| *fires)
        .map(|(f, _)| fixture_path(f))
        .collect();
    let results = results_alone(rule, &positives, uses_pool);
    insta::assert_json_snapshot!(rule, results);
}

/// Every rule, alone: adding a rule file adds its snapshot (reviewed with `cargo insta
/// review`), with no list of rules to keep here.
#[test]
fn every_rule_alone_on_its_fixtures() {
    for rule in RuleSet::builtin().unwrap().all() {
        check(&rule.id);
    }
}
