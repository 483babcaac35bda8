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
/// pool figures and a pooltag.txt with a collision; `blocklists`: with the blocklist fixtures.
fn results_alone(
    rule: &str,
    paths: &[std::path::PathBuf],
    pool: bool,
    blocklists: bool,
) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(paths);
    s.rules = RuleSet::builtin().unwrap().only(rule).unwrap();
    if blocklists {
        s.blocklists = vec![
            testdata("blocklist/loldrivers"),
            testdata("blocklist/policy.xml"),
        ];
    }
    if pool {
        s.pool_files = vec![testdata("pool/incident.csv")];
        s.pooltag = Some(colliding_pooltag(dir.path()));
    }
    let report = drvaudit::pipeline::scan(&s);
    assert!(
        report.findings.iter().all(|f| f.rule_id == rule),
        "{rule} alone produced other rules' findings"
    );
    redacted_sarif(&sarif_text(&report), &[made_here()])["runs"][0]["results"].take()
}

/// A fixture: a build under `testdata/bin`, a path under `testdata/` (a name with a `/`), or
/// one made here (see [`integrity_fixture`] and [`changed_package`]).
fn fixture_path(name: &str) -> std::path::PathBuf {
    match name {
        INTEGRITY => integrity_fixture(),
        DRIVER_CHANGED | INF_CHANGED => changed_package(name),
        _ if name.contains('/') => testdata(name),
        _ => testdata(&format!("bin/{name}")),
    }
}

/// The signed package fixture with its driver changed after signing (one byte of `.text`).
const DRIVER_CHANGED: &str = "packages/signed+driver-changed";
/// The signed package fixture with a line added to its INF after the catalog was signed.
const INF_CHANGED: &str = "packages/signed+inf-changed";

/// Where the fixtures made here are written, once per test run (redacted in snapshots).
fn made_here() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

fn changed_package(name: &str) -> std::path::PathBuf {
    let to = made_here().join(name.trim_start_matches("packages/"));
    if !to.exists() {
        std::fs::create_dir_all(&to).unwrap();
        for f in ["fixture.sys", "signed.cat", "signed.inf"] {
            std::fs::copy(testdata(&format!("packages/signed/{f}")), to.join(f)).unwrap();
        }
        if name == DRIVER_CHANGED {
            let sys = to.join("fixture.sys");
            let mut bytes = std::fs::read(&sys).unwrap();
            // 0x410: inside .text, which starts at file offset 0x400.
            bytes[0x410] ^= 0xff;
            std::fs::write(&sys, bytes).unwrap();
        } else {
            let inf = to.join("signed.inf");
            let mut text = std::fs::read(&inf).unwrap();
            text.extend_from_slice(b"; changed after signing\r\n");
            std::fs::write(&inf, text).unwrap();
        }
    }
    to
}

/// `(fixture, fires)` for the package-gating rules, which are about signatures, packages and
/// blocklists rather than code: the signed fixtures (`testdata/signed`, a test CA's), the
/// package fixtures and the blocklist fixtures (`testdata/blocklist`, which list three builds).
fn gating_fixtures(rule: &str) -> Option<Vec<(String, bool)>> {
    let v = |list: &[(&str, bool)]| {
        Some(
            list.iter()
                .map(|(f, fires)| (f.to_string(), *fires))
                .collect(),
        )
    };
    match rule {
        // Listed by the fixture LOLDrivers entry (vulnerable) by flat SHA-256.
        "DRV4001" => v(&[
            ("clean_gcc_x64_O2.sys", true),
            ("clean_clang_x64_O2.sys", false),
        ]),
        // Listed by the fixture malicious entry by Authenticode SHA-256.
        "DRV4002" => v(&[
            ("untagged_gcc_x64_O2.sys", true),
            ("clean_gcc_x64_O2.sys", false),
        ]),
        // Denied by the fixture SiPolicy's kernel scenario; clean_clang only by a user-mode
        // rule, which does not block a driver.
        "DRV4003" => v(&[
            ("pooltest_clang_x64_O2.sys", true),
            ("clean_clang_x64_O2.sys", false),
        ]),
        "DRV4004" => v(&[
            ("clean_gcc_x64_O2.sys", true),
            ("signed/test_sha256.sys", false),
            // No embedded signature, but its package's catalog lists it.
            ("packages/signed", false),
        ]),
        "DRV4005" => v(&[
            ("signed/test_sha256.sys", true),
            ("packages/signed", true),
            ("clean_gcc_x64_O2.sys", false),
        ]),
        "DRV4006" => v(&[
            ("signed/tampered.sys", true),
            ("signed/test_sha256.sys", false),
        ]),
        "DRV4007" => v(&[(DRIVER_CHANGED, true), ("packages/signed", false)]),
        "DRV4008" => v(&[
            ("signed/expired.sys", true),
            // The same expired certificate, with a timestamp from inside its validity.
            ("signed/timestamped.sys", false),
        ]),
        // Attestation signing needs Microsoft's Hardware Dev Center: no fixture can have it.
        // The class itself is tested on the recorded chains of the signature module's tests.
        "DRV4009" => v(&[
            ("signed/test_sha256.sys", false),
            ("packages/signed", false),
        ]),
        // pkg.zip's INF names no CatalogFile.
        "DRV4010" => v(&[("packages/pkg.zip", true), ("packages/signed", false)]),
        "DRV4011" => v(&[(INF_CHANGED, true), ("packages/signed", false)]),
        _ => None,
    }
}

/// No fixture build sets FORCE_INTEGRITY, which DRV3006 wants: this one is clean.c's clang x64
/// build with `DllCharacteristics |= 0x0080`, written once per test run.
const INTEGRITY: &str = "clean_clang_x64_O2+force-integrity.sys";

fn integrity_fixture() -> std::path::PathBuf {
    let path = made_here().join(INTEGRITY);
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
        _ => gating_fixtures(rule).unwrap_or_else(|| fixtures_of(rule)),
    };
    let uses_pool = matches!(rule, "DRV1005" | "DRV9001");
    let uses_blocklists = matches!(rule, "DRV4001" | "DRV4002" | "DRV4003");
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
        let alone = results_alone(rule, &[fixture_path(fixture)], uses_pool, uses_blocklists);
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
    let results = results_alone(rule, &positives, uses_pool, uses_blocklists);
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
