//! The per-input time limit (`--input-timeout`, `input-timeout` in drvaudit.toml): an input
//! still being analysed at its limit is abandoned with a budget notice naming it, the run is
//! incomplete, and the other inputs are reported.
//!
//! The limits here are a nanosecond, so that every input reaches them at its first check
//! whatever the machine's speed, or an hour, so that none does: no timing is asserted.

use serde_json::Value;

use crate::common::*;

fn run(args: &[&str], dir: &std::path::Path) -> (i32, String, String) {
    run_binary(dir, args)
}

#[test]
fn an_input_past_its_time_limit_is_abandoned_with_a_notice() {
    let dir = tempfile::tempdir().unwrap();
    let driver = testdata("bin/pooltest_gcc_x64_O2.sys")
        .display()
        .to_string();
    let zip = testdata("packages/pkg.zip").display().to_string();
    let out = dir.path().join("r.sarif").display().to_string();
    let (code, stdout, stderr) = run(
        &[
            "scan",
            &driver,
            &zip,
            "--input-timeout",
            "0.000000001",
            "--format",
            "sarif",
            "--no-progress",
            "-o",
            &out,
        ],
        dir.path(),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty());
    for input in ["pooltest_gcc_x64_O2.sys", "pkg.zip"] {
        let line = stderr
            .lines()
            .find(|l| l.contains(input) && l.contains("time limit reached"))
            .unwrap_or_else(|| panic!("{input} not named:\n{stderr}"));
        assert!(line.contains("after 0.000000001 s"), "{line}");
        assert!(line.contains("--input-timeout"), "{line}");
    }
    let log: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let run0 = &log["runs"][0];
    assert_eq!(run0["invocations"][0]["exitCode"], 2);
    let abandoned = run0["invocations"][0]["toolExecutionNotifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| {
            n["message"]["text"]
                .as_str()
                .unwrap()
                .contains("time limit reached")
        })
        .count();
    assert_eq!(abandoned, 2);
    // The inputs are still listed, without results.
    assert_eq!(run0["results"].as_array().unwrap().len(), 0);
    assert!(run0["artifacts"].as_array().unwrap().len() >= 2);
}

#[test]
fn the_limit_comes_from_the_config_file_and_an_hour_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let driver = testdata("bin/pooltest_gcc_x64_O2.sys")
        .display()
        .to_string();
    std::fs::write(dir.path().join("drvaudit.toml"), "input-timeout = 1e-9\n").unwrap();
    let (code, _, stderr) = run(&["scan", &driver, "--no-progress"], dir.path());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("time limit reached"), "{stderr}");
    let (_, config, _) = run(&["config"], dir.path());
    assert!(config.contains("input-timeout"), "{config}");

    // An hour (and 0, no limit) give the scan without a limit.
    let (c0, plain, _) = run(
        &["scan", &driver, "--no-progress", "--no-config"],
        dir.path(),
    );
    for t in ["3600", "0"] {
        let (c, out, e) = run(
            &["scan", &driver, "--no-progress", "--input-timeout", t],
            dir.path(),
        );
        assert_eq!((c, out.as_str()), (c0, plain.as_str()), "{t}: {e}");
    }

    // A bad value is an error with its line and column.
    std::fs::write(dir.path().join("drvaudit.toml"), "\ninput-timeout = -1\n").unwrap();
    let (code, _, stderr) = run(&["scan", &driver, "--no-progress"], dir.path());
    assert_ne!(code, 0);
    assert!(stderr.contains("drvaudit.toml:2:17"), "{stderr}");
}
