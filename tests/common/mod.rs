//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use drvaudit::finding::{Level, Report};
use drvaudit::rules::RuleSet;
use drvaudit::scan::{scan, Settings};

/// The crate root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `testdata/<rel>`.
pub fn testdata(rel: &str) -> PathBuf {
    root().join("testdata").join(rel)
}

/// `../shared/<rel>` when present; `None` (with a message saying why the test is skipped) when
/// the shared material is absent, as on a machine without it.
pub fn shared(rel: &str) -> Option<PathBuf> {
    let p = root().join("../shared").join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "SKIPPED: {} is absent; this test needs the read-only ../shared material",
            p.display()
        );
        None
    }
}

/// Scans `paths` with the built-in rules, relative to the crate root.
pub fn scan_paths(paths: &[PathBuf]) -> Report {
    scan(&settings(paths))
}

/// Settings for scanning `paths` with the built-in rules.
pub fn settings(paths: &[PathBuf]) -> Settings {
    Settings {
        paths: paths.to_vec(),
        dumps: Vec::new(),
        pool_files: Vec::new(),
        pooltag: None,
        rules: RuleSet::builtin().expect("built-in rules load"),
        progress: false,
        root: root(),
        fail_on: Some(Level::Error),
        call_sites: true,
    }
}

/// `(rule, artifact name, rva)` of every finding, sorted.
pub fn triples(report: &Report) -> Vec<(String, String, Option<u32>)> {
    let mut v: Vec<_> = report
        .findings
        .iter()
        .map(|f| {
            (
                f.rule_id.clone(),
                report.artifacts[f.artifact].name.clone(),
                f.rva,
            )
        })
        .collect();
    v.sort();
    v
}

/// Reads a whole file as text.
pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}
