//! The CI gate: it fails closed (exit 2) when it could not look, is tuned by drvaudit.toml,
//! accepts findings with reasons, compares with baselines, fits GitHub's limits and splits
//! into shards that merge back into the unsharded run.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::*;

/// Runs the binary in `dir` (the crate root when `None`); exit code, stdout, stderr.
fn run_in(dir: Option<&Path>, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_drvaudit"))
        .args(args)
        .current_dir(dir.unwrap_or(&root()))
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn run(args: &[&str]) -> (i32, String, String) {
    run_in(None, args)
}

fn bin(name: &str) -> String {
    testdata(&format!("bin/{name}")).display().to_string()
}

fn sarif(text: &str) -> Value {
    serde_json::from_str(text).expect("SARIF is JSON")
}

/// An incomplete audit exits 2 and names the input and the problem on standard error, also
/// with `-o`; the report still holds every other input; `--allow-incomplete` lets the exit
/// code follow the findings again (1 for the unsigned fixture drivers: DRV4004 is an error).
fn fails_closed(args: &[&str], on_stderr: &[&str], allowed_exit: i32) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.sarif");
    let mut with_o: Vec<&str> = args.to_vec();
    let out_s = out.display().to_string();
    with_o.extend(["--format", "sarif", "-o", &out_s, "--no-progress"]);
    let (code, stdout, stderr) = run(&with_o);
    assert_eq!(code, 2, "{args:?}: {stderr}");
    assert!(stdout.is_empty(), "the report went to -o");
    assert!(
        stderr.contains("could not be examined; the audit is incomplete (exit code 2"),
        "{stderr}"
    );
    for s in on_stderr {
        assert!(stderr.contains(s), "{args:?}: {s:?} not in:\n{stderr}");
    }
    let log = sarif(&read(&out));
    let inv = &log["runs"][0]["invocations"][0];
    assert_eq!(inv["exitCode"], 2);
    assert!(inv["toolExecutionNotifications"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["level"] == "error"));
    let mut allowed = args.to_vec();
    allowed.extend(["--allow-incomplete", "--no-progress"]);
    let (code, stdout, stderr) = run(&allowed);
    assert_eq!(code, allowed_exit, "{args:?} --allow-incomplete: {stderr}");
    assert!(
        stderr.contains("accepted by --allow-incomplete"),
        "{stderr}"
    );
    assert!(
        stdout.contains("analysed"),
        "the text report is still written"
    );
}

#[test]
fn a_missing_path_fails_closed() {
    let clean = bin("clean_gcc_x64_O2.sys");
    fails_closed(
        &["scan", &clean, "/nonexistent/drivers"],
        &["/nonexistent/drivers: error: cannot read"],
        1,
    );
}

#[test]
fn an_unreadable_file_fails_closed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked.sys");
    std::fs::copy(bin("clean_gcc_x64_O2.sys"), &locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::File::open(&locked).is_ok() {
        eprintln!("SKIPPED: running as root, a mode-000 file is still readable");
        return;
    }
    let clean = bin("untagged_gcc_x64_O2.sys");
    let locked_s = locked.display().to_string();
    fails_closed(
        &["scan", &clean, &locked_s],
        &["locked.sys: error: cannot open"],
        1,
    );
}

#[test]
fn a_corrupt_driver_in_a_tree_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(bin("clean_gcc_x64_O2.sys"), dir.path().join("clean.sys")).unwrap();
    let bytes = std::fs::read(bin("clean_gcc_x64_O2.sys")).unwrap();
    std::fs::write(dir.path().join("broken.sys"), &bytes[..300]).unwrap();
    let d = dir.path().display().to_string();
    fails_closed(&["scan", &d], &["broken.sys: error: not a PE image"], 1);
}

#[test]
fn a_corrupt_package_member_fails_closed() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("pkg.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("drivers/good.sys", stored).unwrap();
    zip.write_all(&std::fs::read(bin("clean_gcc_x64_O2.sys")).unwrap())
        .unwrap();
    zip.start_file("drivers/bad.sys", stored).unwrap();
    zip.write_all(&std::fs::read(bin("untagged_gcc_x64_O2.sys")).unwrap())
        .unwrap();
    zip.finish().unwrap();
    // Flip a byte inside bad.sys's stored data: its CRC-32 no longer matches.
    let mut bytes = std::fs::read(&zip_path).unwrap();
    let name = b"drivers/bad.sys";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len() + 0x100;
    bytes[at] ^= 0xff;
    std::fs::write(&zip_path, &bytes).unwrap();
    let z = zip_path.display().to_string();
    // The notice names the member itself, as the notices of its audit do.
    fails_closed(
        &["scan", &z],
        &["pkg.zip:drivers/bad.sys: error: cannot decompress"],
        1,
    );
    // The good member is still reported.
    let (_, out, _) = run(&["scan", &z, "--allow-incomplete", "--no-progress"]);
    assert!(out.contains("pkg.zip:drivers/good.sys"), "{out}");
}

#[test]
fn an_unopenable_dump_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let not = dir.path().join("notadump.txt");
    std::fs::write(&not, "hello, not a dump\n").unwrap();
    let n = not.display().to_string();
    let clean = bin("clean_gcc_x64_O2.sys");
    fails_closed(
        &["scan", &clean, "--dump", &n],
        &["notadump.txt: error:", "not a readable crash dump"],
        1,
    );
}

#[test]
fn a_malformed_pool_export_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("pool.txt");
    std::fs::write(&bad, "hello\nworld\n").unwrap();
    let b = bad.display().to_string();
    let clean = bin("clean_gcc_x64_O2.sys");
    fails_closed(
        &["scan", &clean, "--pool", &b],
        &["pool.txt:1: `hello` starts no known pool usage format"],
        1,
    );
}

#[test]
fn an_empty_folder_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    fails_closed(&["scan", &d], &["no driver found"], 0);
}

/// Writes `drvaudit.toml` with `text` in a fresh folder holding `clean.sys`, a `.git` marker
/// (so discovery stops there) and returns the folder.
fn project(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    std::fs::copy(bin("clean_gcc_x64_O2.sys"), dir.path().join("clean.sys")).unwrap();
    std::fs::copy(
        bin("untagged_gcc_x64_O2.sys"),
        dir.path().join("untagged.sys"),
    )
    .unwrap();
    std::fs::write(dir.path().join("drvaudit.toml"), text).unwrap();
    dir
}

#[test]
fn flags_override_the_config_which_overrides_rule_files() {
    // The rule file makes DRV3007 a note; the config a warning and the gate warning-level.
    // The fixture is unsigned (DRV4004, an error), which is not what this test is about.
    let p = project(
        "fail-on = \"warning\"\nignore = [\"DRV4004\"]\n\n[rules.DRV3007]\nlevel = \"warning\"\n",
    );
    let (code, out, _) = run_in(Some(p.path()), &["scan", "clean.sys", "--no-progress"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("warning[DRV3007]"), "{out}");
    // The flag wins over the config.
    let (code, _, _) = run_in(
        Some(p.path()),
        &["scan", "clean.sys", "--fail-on", "error", "--no-progress"],
    );
    assert_eq!(code, 0);
    // --no-config: the rule file's level, the default gate.
    let (code, out, _) = run_in(
        Some(p.path()),
        &[
            "scan",
            "clean.sys",
            "--no-config",
            "--ignore",
            "DRV4004",
            "--no-progress",
        ],
    );
    assert_eq!(code, 0);
    assert!(out.contains("note[DRV3007]"), "{out}");
    // The config is found from a subfolder.
    std::fs::create_dir(p.path().join("sub")).unwrap();
    let (code, _, _) = run_in(
        Some(&p.path().join("sub")),
        &["scan", "../clean.sys", "--no-progress"],
    );
    assert_eq!(code, 1);
}

#[test]
fn an_unknown_config_key_is_an_error_with_its_line_and_column() {
    let p = project("fail-on = \"error\"\n  selekt = [\"DRV1\"]\n");
    let (code, _, err) = run_in(Some(p.path()), &["scan", "clean.sys"]);
    assert_eq!(code, 2);
    assert!(err.contains("drvaudit.toml"), "{err}");
    assert!(err.contains("line 2, column 3"), "{err}");
    assert!(err.contains("unknown field `selekt`"), "{err}");
    // A value error names the line too.
    let p = project("[[suppress]]\nrule = \"DRV1001\"\n");
    let (code, _, err) = run_in(Some(p.path()), &["scan", "clean.sys"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("drvaudit.toml:1:1: a suppression needs a `reason`"),
        "{err}"
    );
    let p = project("select = [\"DRV77\"]\n");
    let (code, _, err) = run_in(Some(p.path()), &["scan", "clean.sys"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("drvaudit.toml:1:10: unknown rule `DRV77`"),
        "{err}"
    );
}

#[test]
fn a_rule_override_file_may_hold_only_what_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("DRV1002.toml"),
        "id = \"DRV1002\"\nenabled = false\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("DRV1001-untagged-pool-allocation.toml"),
        "id = \"DRV1001\"\nlevel = \"warning\"\n",
    )
    .unwrap();
    let d = dir.path().display().to_string();
    let untagged = bin("pooltest_gcc_x64_O2.sys");
    let (_, out, err) = run(&[
        "scan",
        &untagged,
        "--rules",
        &d,
        "--no-config",
        "--no-progress",
    ]);
    assert!(!out.contains("[DRV1002]"), "{out}{err}");
    assert!(out.contains("warning[DRV1001]"), "{out}");
    assert!(!out.contains("error[DRV1001]"), "{out}");
}

#[test]
fn selection_by_id_name_and_prefix() {
    let pooltest = bin("pooltest_gcc_x64_O2.sys");
    let ids = |args: &[&str]| {
        let mut a = vec!["scan", pooltest.as_str(), "--no-config", "--no-progress"];
        a.extend(args);
        let (_, out, _) = run(&a);
        let mut ids: Vec<String> = out
            .lines()
            .filter_map(|l| l.split_once('[').map(|(_, r)| r[..7].to_string()))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let drv10 = ids(&["--select", "DRV10"]);
    assert!(
        drv10.len() >= 5 && drv10.iter().all(|i| i.starts_with("DRV10")),
        "{drv10:?}"
    );
    assert_eq!(
        ids(&["--select", "untagged-pool-allocation,DRV2001"]),
        ["DRV1001", "DRV2001"]
    );
    let all = ids(&[]);
    let fewer = ids(&["--ignore", "DRV1002"]);
    assert!(all.contains(&"DRV1002".to_string()) && !fewer.contains(&"DRV1002".to_string()));
    assert!(ids(&["--extend-select", "DRV3006"]).contains(&"DRV3006".to_string()));
}

#[test]
fn drvaudit_config_prints_each_setting_and_its_origin() {
    let p = project(
        "fail-on = \"warning\"\nignore = [\"DRV1002\"]\n\n[[suppress]]\nrule = \"DRV1001\"\n\
         reason = \"vendor driver, replacement tracked\"\n",
    );
    let (code, out, err) = run_in(Some(p.path()), &["config", "--max-results", "100"]);
    assert_eq!(code, 0, "{err}");
    let toml = p.path().join("drvaudit.toml").display().to_string();
    assert!(out.contains(&format!("# config file: {toml}")), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("fail-on = \"warning\"") && l.ends_with(&format!("# {toml}:1"))),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("max-results = 100") && l.ends_with("# --max-results")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("allow-incomplete = false") && l.ends_with("# default")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("DRV1002 ")
            && l.contains(" off ")
            && l.ends_with(&format!("# {toml}:2"))),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("DRV1001 ") && l.ends_with("# rule file")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{toml}:4: DRV1001 (vendor driver, replacement tracked)"
        )),
        "{out}"
    );
}

#[test]
fn suppressions_keep_results_with_their_reason_and_leave_the_exit_code() {
    let p = project(
        "[[suppress]]\nrule = \"DRV1001\"\npath = \"**/untagged.sys\"\nreason = \"legacy vendor driver\"\n\n\
         [[suppress]]\nrule = \"executable-pool-request\"\ndriver = \"UNTAGGED.SYS\"\nreason = \"known, tracked\"\n\n\
         [[suppress]]\nrule = \"DRV1003\"\nreason = \"nothing to match\"\n\n\
         [[suppress]]\nrule = \"unsigned-driver\"\nreason = \"built here, signed at release\"\n",
    );
    let (code, out, err) = run_in(Some(p.path()), &["scan", "untagged.sys", "--no-progress"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("error["), "{out}");
    assert!(out.contains("3 finding(s) suppressed"), "{out}");
    // The entry that matched nothing is stale.
    assert!(err.contains("stale suppressions"), "{err}");
    assert!(
        err.contains("suppression of DRV1003 matched no finding"),
        "{err}"
    );
    let (_, log, _) = run_in(
        Some(p.path()),
        &["scan", "untagged.sys", "--format", "sarif", "--no-progress"],
    );
    let log = sarif(&log);
    let suppressed: Vec<&Value> = log["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.get("suppressions").is_some())
        .collect();
    assert_eq!(suppressed.len(), 3);
    let s = &suppressed[0]["suppressions"][0];
    assert_eq!(s["kind"], "external");
    assert_eq!(s["status"], "accepted");
    assert!(suppressed
        .iter()
        .any(|r| r["suppressions"][0]["justification"] == "legacy vendor driver"));
}

/// The results of a SARIF log: `(ruleId, baselineState)` pairs, sorted.
fn states(log: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = log["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["ruleId"].as_str().unwrap().to_string(),
                r["baselineState"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn baseline_of(dir: &Path, paths: &[&str]) -> PathBuf {
    let out = dir.join("baseline.sarif");
    let o = out.display().to_string();
    let mut args = vec!["baseline", "-o", o.as_str(), "--no-config"];
    args.extend(paths);
    let (code, _, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    out
}

fn against(baseline: &Path, paths: &[&str]) -> (i32, Value) {
    let b = baseline.display().to_string();
    let mut args = vec![
        "scan",
        "--baseline",
        b.as_str(),
        "--format",
        "sarif",
        "--no-config",
        "--no-progress",
    ];
    args.extend(paths);
    let (code, out, err) = run(&args);
    assert!(code != 2, "{err}");
    (code, sarif(&out))
}

#[test]
fn a_scan_against_its_own_baseline_is_all_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let untagged = bin("untagged_gcc_x64_O2.sys");
    let b = baseline_of(dir.path(), &[&untagged]);
    let (code, log) = against(&b, &[&untagged]);
    assert_eq!(code, 0, "only new and updated results fail the gate");
    let s = states(&log);
    assert!(
        !s.is_empty() && s.iter().all(|(_, st)| st == "unchanged"),
        "{s:?}"
    );
}

#[test]
fn a_driver_added_brings_only_its_results_as_new() {
    let dir = tempfile::tempdir().unwrap();
    let clean = bin("clean_gcc_x64_O2.sys");
    let untagged = bin("untagged_gcc_x64_O2.sys");
    let b = baseline_of(dir.path(), &[&clean]);
    let (code, log) = against(&b, &[&clean, &untagged]);
    assert_eq!(code, 1, "untagged.sys's errors are new");
    for r in log["runs"][0]["results"].as_array().unwrap() {
        let uri = r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            .as_str()
            .unwrap();
        let expected = if uri.ends_with("untagged_gcc_x64_O2.sys") {
            "new"
        } else {
            "unchanged"
        };
        assert_eq!(r["baselineState"], expected, "{uri}");
    }
}

#[test]
fn a_driver_removed_leaves_its_results_absent() {
    let dir = tempfile::tempdir().unwrap();
    let clean = bin("clean_gcc_x64_O2.sys");
    let untagged = bin("untagged_gcc_x64_O2.sys");
    let b = baseline_of(dir.path(), &[&clean, &untagged]);
    let before = sarif(&read(&b));
    let untagged_results = before["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
                .ends_with("untagged_gcc_x64_O2.sys")
        })
        .count();
    let (code, log) = against(&b, &[&clean]);
    assert_eq!(code, 0);
    let s = states(&log);
    assert_eq!(
        s.iter().filter(|(_, st)| st == "absent").count(),
        untagged_results
    );
    assert!(s.iter().all(|(_, st)| st == "absent" || st == "unchanged"));
}

#[test]
fn a_rebuild_with_an_unrelated_function_keeps_the_untouched_sites() {
    // testdata/rebuild/b is a's source plus an exported function before all others: every
    // pool call moved by 0xa0 bytes.
    let dir = tempfile::tempdir().unwrap();
    let a = testdata("rebuild/a/rebuild.sys").display().to_string();
    let b_sys = testdata("rebuild/b/rebuild.sys").display().to_string();
    let b = baseline_of(dir.path(), &[&a]);
    let (code, log) = against(&b, &[&b_sys]);
    assert_eq!(code, 0);
    let results = log["runs"][0]["results"].as_array().unwrap();
    let sites: Vec<&Value> = results
        .iter()
        .filter(|r| r["properties"].get("callRva").is_some())
        .collect();
    assert!(sites.len() >= 4, "{results:#?}");
    assert!(
        results.iter().all(|r| r["baselineState"] == "unchanged"),
        "{:#?}",
        states(&log)
    );
    let before = sarif(&read(&b));
    let moved = |log: &Value| -> Vec<i64> {
        let mut v: Vec<i64> = log["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| {
                r["locations"][0]["physicalLocation"]["address"]["relativeAddress"].as_i64()
            })
            .collect();
        v.sort();
        v
    };
    assert_ne!(moved(&before), moved(&log), "the code did move");
}

#[test]
fn a_large_run_is_folded_to_fit_without_losing_a_site() {
    let all_args = |limit: &str| {
        let (_, out, err) = run(&[
            "scan",
            "testdata/bin",
            "testdata/packages",
            "--format",
            "sarif",
            "--max-results",
            limit,
            "--no-config",
            "--no-progress",
        ]);
        assert!(!out.is_empty(), "{err}");
        sarif(&out)
    };
    let unlimited = all_args("0");
    let n = unlimited["runs"][0]["results"].as_array().unwrap().len();
    assert!(n > 300, "{n}");
    let folded = all_args("150");
    let run = &folded["runs"][0];
    let results = run["results"].as_array().unwrap();
    assert!(results.len() <= 150, "{} results", results.len());
    // Every site is still there: a folded result counts its related locations.
    let sites: u64 = results
        .iter()
        .map(|r| r["properties"]["aggregatedResults"].as_u64().unwrap_or(1))
        .sum();
    assert_eq!(sites as usize, n);
    for r in results {
        assert!(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].is_string());
        let related = r["relatedLocations"].as_array().map_or(0, Vec::len);
        assert!(related <= 1000);
        if let Some(k) = r["properties"]["aggregatedResults"].as_u64() {
            assert_eq!(related as u64, k);
        }
    }
    let facts = &run["properties"]["aggregated"];
    assert_eq!(facts["maxResults"], 150);
    assert_eq!(facts["resultsBefore"], n);
    assert_eq!(facts["resultsWritten"], results.len());
    // Notes are folded first, errors last.
    assert_eq!(facts["levels"][0], "note");
    // Folding per driver is not enough for 150 (rules that fire once in each driver: DRV3007,
    // DRV4004): rules are folded over the whole run, notes first.
    let across = facts["rulesFoldedAcrossArtifacts"].as_array().unwrap();
    assert!(across.contains(&"DRV3007".into()), "{across:?}");
    for rule in across {
        assert!(results.iter().any(|r| &r["ruleId"] == rule
            && r["message"]["text"]
                .as_str()
                .unwrap()
                .contains(" files, folded into one")));
    }
    // With a limit that notes alone can meet, errors and warnings stay individual.
    let near = all_args(&(n - 50).to_string());
    let run_near = &near["runs"][0];
    assert_eq!(
        run_near["properties"]["aggregated"]["levels"],
        serde_json::json!(["note"])
    );
    let near_results = run_near["results"].as_array().unwrap();
    assert!(near_results.len() <= n - 50);
    assert!(near_results
        .iter()
        .filter(|r| r["level"] != "note")
        .all(|r| r.get("relatedLocations").is_none()));
    // Security rules carry what code scanning needs.
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    let wx = rules.iter().find(|r| r["id"] == "DRV3001").unwrap();
    assert_eq!(wx["properties"]["security-severity"], "8.0");
    assert_eq!(wx["properties"]["tags"], serde_json::json!(["security"]));
    assert_eq!(wx["properties"]["precision"], "very-high");
    assert_eq!(run["automationDetails"]["id"], "drvaudit/");
}

#[test]
fn shards_merge_into_the_unsharded_run() {
    let dir = tempfile::tempdir().unwrap();
    let log = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let o = out.display().to_string();
        let mut args = vec![
            "scan",
            "testdata/bin",
            "testdata/packages",
            "--pool",
            "testdata/pool/incident.csv",
            "--format",
            "sarif",
            "--max-results",
            "0",
            "--no-config",
            "--no-progress",
            "--fail-on",
            "never",
            "-o",
            o.as_str(),
        ];
        args.extend(extra);
        let (code, _, err) = run(&args);
        assert_eq!(code, 0, "{err}");
        out
    };
    let whole = log("whole.sarif", &[]);
    let parts: Vec<PathBuf> = (1..=3)
        .map(|i| log(&format!("part{i}.sarif"), &["--shard", &format!("{i}/3")]))
        .collect();
    // Every shard audited something: the split is not degenerate.
    for p in &parts {
        let l = sarif(&read(p));
        assert!(!l["runs"][0]["results"].as_array().unwrap().is_empty());
    }
    let merged = dir.path().join("merged.sarif");
    let m = merged.display().to_string();
    let mut args = vec!["merge", "-o", m.as_str(), "--no-config"];
    let ps: Vec<String> = parts.iter().map(|p| p.display().to_string()).collect();
    args.extend(ps.iter().map(String::as_str));
    let (code, _, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    // The same results (fingerprints, ranks, the DRV9001 attribution over every driver), in
    // the same order, the same artifacts, the same notifications (each shard lists its own, so
    // their order differs): the same log.
    let normal = |p: &Path| {
        let mut log = sarif(&read(p));
        let n = &mut log["runs"][0]["invocations"][0]["toolExecutionNotifications"];
        if let Some(list) = n.as_array_mut() {
            list.sort_by_key(|x| x.to_string());
        }
        log
    };
    assert_eq!(normal(&merged), normal(&whole));
    // Without notifications, byte for byte.
    let bytes = |p: &Path| {
        let mut log = sarif(&read(p));
        log["runs"][0]["invocations"][0]["toolExecutionNotifications"] = Value::Null;
        serde_json::to_string(&log).unwrap()
    };
    assert_eq!(bytes(&merged), bytes(&whole));
}
