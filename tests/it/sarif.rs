//! SARIF output: schema validity, required content, and the CLI's exit-code contract.

use crate::common::*;
use serde_json::Value;

fn sarif_of(paths: &[std::path::PathBuf]) -> Value {
    let report = scan_paths(paths);
    let text = drvaudit::output::sarif::render(&report, &root());
    serde_json::from_str(&text).expect("SARIF is JSON")
}

#[test]
fn sarif_validates_against_the_oasis_schema() {
    let Some(schema_path) = shared("reference/sarif-schema-2.1.0.json") else {
        return;
    };
    let schema: Value = serde_json::from_str(&read(&schema_path)).unwrap();
    let compiled = jsonschema::JSONSchema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .compile(&schema)
        .expect("the OASIS schema compiles");
    let log = sarif_of(&[testdata("bin"), testdata("packages"), testdata("malformed")]);
    let errors: Vec<String> = match compiled.validate(&log) {
        Ok(()) => Vec::new(),
        Err(errs) => errs.map(|e| format!("{}: {e}", e.instance_path)).collect(),
    };
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn results_carry_rule_location_address_and_fingerprint() {
    let log = sarif_of(&[testdata("bin/iatexec_clang_x64_O2.sys")]);
    let run = &log["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert!(rules
        .iter()
        .all(|r| r["help"]["markdown"].is_string() && r["name"] != r["id"]));
    let result = run["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ruleId"] == "DRV3003")
        .expect("DRV3003 result");
    assert_eq!(
        rules[result["ruleIndex"].as_u64().unwrap() as usize]["id"],
        "DRV3003"
    );
    let loc = &result["locations"][0]["physicalLocation"];
    assert_eq!(
        loc["artifactLocation"]["uri"],
        "testdata/bin/iatexec_clang_x64_O2.sys"
    );
    assert_eq!(loc["artifactLocation"]["uriBaseId"], "SRCROOT");
    assert_eq!(loc["address"]["relativeAddress"], 0x10d8);
    // The slot's file offset: .text starts at RVA 0x1000, file offset 0x200 (pefile agrees).
    assert_eq!(loc["region"]["byteOffset"], 0x2d8);
    assert_eq!(loc["region"]["byteLength"], 8);
    assert!(result["message"]["text"]
        .as_str()
        .unwrap()
        .contains("testdata/bin/iatexec_clang_x64_O2.sys has its import address table"));
    let fp = result["partialFingerprints"]["drvaudit/v2"]
        .as_str()
        .unwrap();
    assert_eq!(fp.len(), 32);
    let hash = run["artifacts"][0]["hashes"]["sha-256"].as_str().unwrap();
    assert_eq!(
        hash,
        drvaudit::sha256_hex(&std::fs::read(testdata("bin/iatexec_clang_x64_O2.sys")).unwrap())
    );
    assert_eq!(run["invocations"][0]["exitCode"], 1);
}

#[test]
fn fingerprints_do_not_depend_on_where_the_file_is() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("renamed-elsewhere.sys");
    std::fs::copy(testdata("bin/untagged_gcc_x64_O2.sys"), &copy).unwrap();
    let fps = |p| {
        let mut v: Vec<String> = scan_paths(&[p])
            .findings
            .into_iter()
            .map(|f| f.fingerprint)
            .collect();
        v.sort();
        v
    };
    assert_eq!(fps(copy), fps(testdata("bin/untagged_gcc_x64_O2.sys")));
}

#[test]
fn package_members_are_nested_artifacts() {
    let log = sarif_of(&[testdata("packages/pkg.zip")]);
    let arts = log["runs"][0]["artifacts"].as_array().unwrap();
    assert_eq!(arts[0]["location"]["uri"], "testdata/packages/pkg.zip");
    // Below its package: unique in the log even where parentIndex is ignored.
    assert_eq!(
        arts[1]["location"]["uri"],
        "testdata/packages/pkg.zip/drivers/amd64/clean.sys"
    );
    assert_eq!(arts[1]["location"]["uriBaseId"], "SRCROOT");
    assert_eq!(arts[1]["parentIndex"], 0);
}

#[test]
fn unreadable_inputs_are_tool_execution_notifications() {
    let log = sarif_of(&[testdata("malformed/notpe.sys")]);
    let n = &log["runs"][0]["invocations"][0]["toolExecutionNotifications"];
    // The file, and that no driver was found at all: both make the audit incomplete.
    assert_eq!(n.as_array().unwrap().len(), 2, "{n:#}");
    assert!(n[0]["message"]["text"]
        .as_str()
        .unwrap()
        .contains("notpe.sys: not a PE image"));
    assert_eq!(n[0]["level"], "error");
    assert!(n[1]["message"]["text"]
        .as_str()
        .unwrap()
        .contains("no driver found"));
    assert_eq!(log["runs"][0]["invocations"][0]["exitCode"], 2);
    assert_eq!(
        log["runs"][0]["invocations"][0]["executionSuccessful"],
        true
    );
}

fn drvaudit(args: &[&str]) -> (i32, String, String) {
    run_binary(&root(), args)
}

#[test]
fn exit_codes_gate_ci() {
    // clean.sys has the DRV3007 note, and is unsigned (DRV4004, an error).
    let (code, out, _) = drvaudit(&["scan", "testdata/bin/clean_gcc_x64_O2.sys"]);
    assert_eq!(code, 1);
    assert_eq!(out.matches("error[").count(), 1, "{out}");
    assert!(out.contains("error[DRV4004]"), "{out}");
    assert_eq!(
        drvaudit(&[
            "scan",
            "--ignore",
            "unsigned-driver",
            "testdata/bin/clean_gcc_x64_O2.sys"
        ])
        .0,
        0
    );
    assert_eq!(
        drvaudit(&[
            "scan",
            "--fail-on",
            "note",
            "testdata/bin/clean_gcc_x64_O2.sys"
        ])
        .0,
        1
    );
    assert_eq!(
        drvaudit(&["scan", "testdata/bin/untagged_gcc_x64_O2.sys"]).0,
        1
    );
    assert_eq!(
        drvaudit(&[
            "scan",
            "--fail-on",
            "never",
            "testdata/bin/untagged_gcc_x64_O2.sys"
        ])
        .0,
        0
    );
    // A bad input file makes the audit incomplete: exit 2, said on standard error; the
    // report is still written.
    let (code, out, err) = drvaudit(&["scan", "testdata/malformed/notpe.sys"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("testdata/malformed/notpe.sys: error: not a PE image"),
        "{err}"
    );
    assert!(out.contains("1 file(s), 0 image(s) analysed"), "{out}");
    // Tool failures are 2, with a message naming the problem.
    assert_eq!(drvaudit(&["scan", "--format", "yaml", "x"]).0, 2);
    let (code, _, err) = drvaudit(&[
        "scan",
        "-o",
        "/nonexistent/dir/out.sarif",
        "testdata/bin/clean_gcc_x64_O2.sys",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("/nonexistent/dir/out.sarif: cannot write output"),
        "{err}"
    );
    let (code, _, err) = drvaudit(&["explain", "DRV0000"]);
    assert_eq!(code, 2);
    assert!(err.contains("no rule `DRV0000`"), "{err}");
}

#[test]
fn text_report_is_compiler_style_with_a_summary() {
    let (_, out, _) = drvaudit(&[
        "scan",
        "--oneline",
        "testdata/bin/wxsection_clang_x64_O2.sys",
    ]);
    let first = out.lines().next().unwrap();
    assert!(
        first.starts_with("testdata/bin/wxsection_clang_x64_O2.sys@0x4000: error[DRV3001] writable-executable-section: testdata/bin/wxsection_clang_x64_O2.sys section `.rwx`"),
        "{first}"
    );
    assert!(out.contains("1 file(s), 1 image(s) analysed: 2 error(s), 0 warning(s), 1 note(s); 1 notification(s) (on standard error)"), "{out}");
}

#[test]
fn tag_inventory_is_in_pooltag_format() {
    let (code, out, _) = drvaudit(&[
        "tags",
        "testdata/bin/untagged_gcc_x86_O2.sys",
        "testdata/bin/clean_clang_arm64_O2.sys",
    ]);
    assert_eq!(code, 0);
    // untagged.c: ExAllocatePool (charged to `None`) and a free with tag 0; clean.c: one tag
    // for ExAllocatePool2 and the matching free. Inputs are listed in path order.
    assert_eq!(
        out,
        "cCln - clean_clang_arm64_O2.sys - ExFreePoolWithTag, ExAllocatePool2: 2 call site(s)\n\
         None - untagged_gcc_x86_O2.sys - ExAllocatePool: 1 call site(s)\n"
    );
    let (_, json, _) = drvaudit(&[
        "tags",
        "--format",
        "json",
        "testdata/bin/pooltest_gcc_x86_O2.sys",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let tags = v["drivers"][0]["tags"].as_array().unwrap();
    let non_printable = tags.iter().find(|t| t["value"] == 0x3184).unwrap();
    assert_eq!(non_printable["tag"], "\\x841\\x00\\x00");
}
