//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use drvaudit::pipeline::{scan, Settings};
use drvaudit::report::{Level, Report};
use drvaudit::rules::RuleSet;

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
        allow_incomplete: false,
        suppressions: Default::default(),
        baseline: None,
        shard: Default::default(),
        symbols: Vec::new(),
        source_map: Vec::new(),
        blocklists: Vec::new(),
        identify: false,
        input_timeout: None,
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

/// A finding's full message, as outputs write it (the built-in rules' reasons).
pub fn msg(f: &drvaudit::report::Finding) -> String {
    static RULES: std::sync::OnceLock<RuleSet> = std::sync::OnceLock::new();
    let rules = RULES.get_or_init(|| RuleSet::builtin().expect("built-in rules load"));
    f.message(rules.get(&f.rule_id).map_or("", |r| r.why.as_str()))
}

/// A SARIF log made machine-independent for snapshots: the scan root, `extra` paths (temporary
/// folders) and the tool's version replaced by placeholders.
pub fn redacted_sarif(text: &str, extra: &[&std::path::Path]) -> serde_json::Value {
    let mut text = text.to_string();
    for p in extra {
        text = text.replace(&p.display().to_string(), "[TMP]");
    }
    text = text.replace(&root().display().to_string(), "[ROOT]");
    let mut log: serde_json::Value = serde_json::from_str(&text).expect("SARIF is JSON");
    let driver = &mut log["runs"][0]["tool"]["driver"];
    for key in ["version", "semanticVersion"] {
        if driver.get(key).is_some() {
            driver[key] = "[version]".into();
        }
    }
    log
}

/// The SARIF log of a finished report, written from the report root.
pub fn sarif_text(report: &Report) -> String {
    drvaudit::output::sarif::render(report, &root())
}

/// The notices about problems with the inputs: all but the notes that a driver's debug
/// information was not found (the fixtures' PDBs are not committed beside them).
pub fn problems(r: &Report) -> Vec<&drvaudit::report::Notice> {
    r.notices
        .iter()
        .filter(|n| n.kind != drvaudit::report::NoticeKind::NoDebugInfo)
        .collect()
}

/// Runs the drvaudit binary with `args` in `dir`: exit code, standard output, standard error.
pub fn run_binary(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_drvaudit"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts that `log` validates against the SARIF 2.1.0 schema in ../shared (every error listed);
/// skipped when ../shared is absent.
pub fn assert_schema_valid(log: &serde_json::Value) {
    let Some(schema) = shared("reference/sarif-schema-2.1.0.json") else {
        return;
    };
    let schema: serde_json::Value = serde_json::from_str(&read(&schema)).unwrap();
    let v = jsonschema::JSONSchema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .compile(&schema)
        .unwrap();
    let errors: Vec<String> = match v.validate(log) {
        Ok(()) => Vec::new(),
        Err(e) => e.map(|e| format!("{}: {e}", e.instance_path)).collect(),
    };
    assert!(errors.is_empty(), "{errors:#?}");
}
