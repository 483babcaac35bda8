//! The GitHub Action's shell steps, run as the runner runs them: the inputs as `INPUT_*`
//! variables, the step output in `$GITHUB_OUTPUT`.

use std::process::Command;

use crate::common::*;

/// Runs `action/scan.sh` with `inputs` (`NAME`, value) and returns the script's exit code, the
/// step outputs and the SARIF log it wrote.
fn scan_step(inputs: &[(&str, &str)]) -> (i32, String, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let sarif = dir.path().join("drvaudit.sarif");
    let outputs = dir.path().join("github_output");
    let mut cmd = Command::new("bash");
    cmd.arg("action/scan.sh")
        .current_dir(root())
        .env("DRVAUDIT", env!("CARGO_BIN_EXE_drvaudit"))
        .env("GITHUB_OUTPUT", &outputs)
        .env("INPUT_SARIF", &sarif)
        .env_remove("INPUT_FAIL_ON");
    for (k, v) in inputs {
        cmd.env(format!("INPUT_{k}"), v);
    }
    let status = cmd.status().unwrap();
    let log = serde_json::from_str(&read(&sarif)).unwrap();
    (status.code().unwrap_or(-1), read(&outputs), log)
}

#[test]
fn the_action_audits_and_hands_the_exit_code_to_its_gate_step() {
    let paths = "testdata/bin/untagged_gcc_x64_O2.sys testdata/bin/clean_gcc_x64_O2.sys";
    let (code, outputs, log) = scan_step(&[("PATHS", paths), ("CATEGORY", "drivers")]);
    // The step itself succeeds so that the upload runs; the Gate step fails the job.
    assert_eq!(code, 0);
    assert_eq!(outputs, "exit-code=1\n");
    assert_eq!(log["runs"][0]["automationDetails"]["id"], "drivers/");
    assert_eq!(log["runs"][0]["artifacts"].as_array().unwrap().len(), 2);

    let (_, outputs, _) = scan_step(&[("PATHS", paths), ("FAIL_ON", "never")]);
    assert_eq!(outputs, "exit-code=0\n");

    // An input that cannot be read: 2, unless allow-incomplete.
    let missing = "testdata/bin/clean_gcc_x64_O2.sys /nonexistent/x.sys";
    let (code, outputs, _) = scan_step(&[("PATHS", missing)]);
    assert_eq!((code, outputs.as_str()), (0, "exit-code=2\n"));
    // Accepted, the exit code is the findings': the fixture is unsigned (DRV4004, an error).
    let (_, outputs, _) = scan_step(&[("PATHS", missing), ("ALLOW_INCOMPLETE", "true")]);
    assert_eq!(outputs, "exit-code=1\n");

    // Shards and the result limit pass through.
    let (_, _, log) = scan_step(&[
        ("PATHS", "testdata/bin"),
        ("SHARD", "1/2"),
        ("MAX_RESULTS", "20"),
        ("FAIL_ON", "never"),
    ]);
    let run = &log["runs"][0];
    assert!(!run["results"].as_array().unwrap().is_empty());
    assert_eq!(run["properties"]["aggregated"]["maxResults"], 20);
}

#[test]
fn the_action_passes_every_input_its_script_reads() {
    let action = read(&root().join("action.yml"));
    let script = read(&root().join("action/scan.sh"));
    let mut read_vars: Vec<&str> = script
        .match_indices("INPUT_")
        .map(|(i, _)| {
            let rest = &script[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    read_vars.retain(|v| v.len() > "INPUT_".len());
    read_vars.sort();
    read_vars.dedup();
    for v in read_vars {
        assert!(
            action.contains(&format!("{v}: ${{{{ inputs.")),
            "{v} is not passed"
        );
    }
    let install = Command::new("bash")
        .args(["-n", "action/install.sh"])
        .current_dir(root())
        .status()
        .unwrap();
    assert!(install.success());
    assert!(read(&root().join(".pre-commit-hooks.yaml")).contains("entry: drvaudit scan"));
}
