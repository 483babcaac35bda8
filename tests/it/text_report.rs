//! The text report as a kernel engineer reads it (issue 16): whole-report snapshots of the
//! fixtures, a package, the incident dump and a real corpus driver, plain and coloured; the
//! width contract on the corpus; `--min-level` and `--color` through the command line.
//!
//! Paths are redacted as the SARIF snapshots redact them (`[ROOT]`, `[TMP]`), so a snapshot
//! shows exactly what moved in the report users read.

use std::process::Command;

use drvaudit::output::text::{render, TextOptions, WIDTH};
use drvaudit::report::Report;

use crate::common::*;

fn grouped(report: &Report, color: bool) -> String {
    let options = TextOptions {
        color,
        statistics: true,
        ..TextOptions::default()
    };
    render(report, &options).replace(&root().display().to_string(), "[ROOT]")
}

/// The committed fixture folders (as the SARIF snapshot of testdata takes them).
fn fixture_dirs() -> Vec<std::path::PathBuf> {
    ["bin", "malformed", "packages"]
        .iter()
        .map(|d| testdata(d))
        .collect()
}

#[test]
fn text_of_the_fixtures() {
    let report = scan_paths(&fixture_dirs());
    insta::assert_snapshot!("fixtures.text", grouped(&report, false));
}

#[test]
fn text_of_the_fixture_drivers_in_colour() {
    let report = scan_paths(&[testdata("bin")]);
    let coloured = grouped(&report, true);
    // The escapes are the only difference: removed, the plain report remains.
    assert_eq!(
        anstream::adapter::strip_str(&coloured).to_string(),
        grouped(&report, false)
    );
    assert!(coloured.contains("\u{1b}[1m"), "paths are bold");
    assert!(
        coloured.contains("\u{1b}[1m\u{1b}[31merror[DRV1001]"),
        "{coloured}"
    );
    insta::assert_snapshot!("fixture_drivers.color.text", coloured);
}

#[test]
fn text_of_a_package() {
    let report = scan_paths(&[testdata("packages/pkg.zip")]);
    insta::assert_snapshot!("package.text", grouped(&report, false));
}

#[test]
fn text_of_the_incident_dump() {
    let (dir, dump) = crate::incident::incident_dump();
    let report = crate::incident::scan(&dump, &[]);
    let text = grouped(&report, false).replace(&dir.path().display().to_string(), "[TMP]");
    // Ranked: the memory-only GUID driver, whose untagged pool holds the most, comes first.
    let first_heading = text
        .lines()
        .find(|l| l.contains("MEMORY.DMP>") && !l.starts_with(' '))
        .unwrap();
    assert!(first_heading.contains("{5E5B3A60-"), "{text}");
    insta::assert_snapshot!("incident.text", text);
}

#[test]
fn text_of_a_corpus_driver() {
    let Some(driver) = shared("corpus/drivers/BlackBoneDrv10.sys") else {
        return;
    };
    let report = scan_paths(&[driver]);
    let plain = grouped(&report, false);
    insta::assert_snapshot!("corpus_blackbone.text", plain);
    insta::assert_snapshot!("corpus_blackbone.color.text", grouped(&report, true));
}

/// No line of the grouped report of the corpus is wider than 120 columns, unless a single word
/// in it (a path) does not fit on a line of its own.
#[test]
fn grouped_report_of_the_corpus_fits_120_columns() {
    let Some(dir) = shared("corpus/drivers") else {
        return;
    };
    let report = scan_paths(&[dir]);
    let text = render(&report, &TextOptions::default());
    let mut checked = 0;
    for line in text.lines() {
        checked += 1;
        let width = line.chars().count();
        if width <= WIDTH {
            continue;
        }
        let longest = line
            .split(' ')
            .map(|w| w.chars().count())
            .max()
            .unwrap_or(0);
        assert!(longest + 6 > WIDTH, "{width} columns: {line}");
    }
    assert!(checked > 500, "{checked} lines");
    assert!(report.findings.len() > 400, "{}", report.findings.len());
}

fn cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_drvaudit"));
    c.args(args)
        .current_dir(root())
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn min_level_filters_the_report_not_the_exit_code() {
    let f = "testdata/bin/pooltest_clang_x64_O2.sys";
    let (all_code, all) = cli(&["scan", f, "--no-progress"], &[]);
    let (code, errors) = cli(&["scan", f, "--no-progress", "--min-level", "error"], &[]);
    assert_eq!((all_code, code), (1, 1));
    assert!(all.contains("note[DRV1002]") && all.contains("warning[DRV1003]"));
    assert!(!errors.contains("note[DRV1002]") && !errors.contains("warning[DRV1003]"));
    assert!(errors.contains("error[DRV1001]"), "{errors}");
    // The summary still counts everything, and says what was left out.
    assert!(
        errors.contains("27 finding(s) below --min-level error not shown"),
        "{errors}"
    );
}

#[test]
fn colour_only_when_asked_or_forced() {
    let f = "testdata/bin/untagged_clang_x64_O2.sys";
    let esc = |s: &str| s.contains('\u{1b}');
    // Piped (as here): plain, unless forced.
    assert!(!esc(&cli(&["scan", f, "--no-progress"], &[]).1));
    assert!(esc(&cli(
        &["scan", f, "--no-progress"],
        &[("CLICOLOR_FORCE", "1")]
    )
    .1));
    assert!(esc(&cli(
        &["scan", f, "--no-progress", "--color", "always"],
        &[]
    )
    .1));
    assert!(!esc(&cli(
        &["scan", f, "--no-progress", "--color", "never"],
        &[("CLICOLOR_FORCE", "1")]
    )
    .1));
    // A file given with -o is never coloured in `auto`, even with CLICOLOR_FORCE.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.txt");
    let o = out.display().to_string();
    cli(
        &["scan", f, "--no-progress", "-o", &o],
        &[("CLICOLOR_FORCE", "1")],
    );
    assert!(!esc(&std::fs::read_to_string(&out).unwrap()));
}
