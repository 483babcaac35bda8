//! `drvaudit scan --dump`: drivers carved from a dump are audited like files, nested in the
//! dump in SARIF, and called memory-only unless a scanned file is the same driver.

use crate::common::*;
use crate::support::dumpwriter::*;
use drvaudit::report::ArtifactKind;

/// A 64-bit bitmap dump (DumpType 5) holding ntoskrnl_stub and the GUID-named driver built
/// from untagged_clang_x64_O2.sys, its import directory wiped in memory.
fn dump_file() -> Option<(tempfile::TempDir, std::path::PathBuf)> {
    let drv = std::fs::read(testdata("bin/untagged_clang_x64_O2.sys")).ok()?;
    let nt = std::fs::read(testdata("bin/ntoskrnl_stub_x64.exe")).ok()?;
    let mut s = Scenario::new(Arch::X64, 5, 19041, 1, ImportPlacement::InRdata);
    s.wipe_import_directory = true;
    s.images = Some((drv, nt));
    Some(to_file(&s.bytes().0, "MEMORY.DMP"))
}

fn scan_with_dump(
    paths: &[std::path::PathBuf],
    dump: &std::path::Path,
) -> drvaudit::report::Report {
    let mut s = settings(paths);
    s.dumps = vec![dump.to_path_buf()];
    drvaudit::pipeline::scan(&s)
}

#[test]
fn carved_guid_driver_is_audited_as_memory_only() {
    let (_dir, dump) = dump_file().unwrap();
    let r = scan_with_dump(&[], &dump);
    let names: Vec<(&str, Option<usize>)> = r
        .artifacts
        .iter()
        .map(|a| (a.name.as_str(), a.parent))
        .collect();
    assert_eq!(
        names,
        vec![
            ("MEMORY.DMP", None),
            ("ntoskrnl.exe", Some(0)),
            (GUID_DRIVER, Some(0))
        ]
    );
    let guid = &r.artifacts[2];
    assert!(guid.memory_only);
    assert!(
        matches!(guid.kind, ArtifactKind::Carved { base, .. } if base == layout_of(Arch::X64).1)
    );
    // The import directory was wiped: ExAllocatePool is named by matching the IAT slot's
    // value against the stub's exports, and its call site is found in the carved code.
    let untagged: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.rule_id == "DRV1001")
        .collect();
    assert_eq!(untagged.len(), 1, "{:#?}", r.findings);
    assert_eq!(untagged[0].artifact, 2);
    assert!(
        msg(untagged[0]).contains(&format!(
            "MEMORY.DMP>{GUID_DRIVER}@0xfffff80010200000 (memory-only) calls ExAllocatePool at RVA 0x"
        )),
        "{}",
        msg(untagged[0])
    );
    assert_eq!(untagged[0].properties["memoryOnly"], true);
    // The dump's pool table gives the finding its evidence (the writer's `None` figures).
    let e = untagged[0].evidence.clone().unwrap();
    assert_eq!(
        (e.nonpaged.allocs, e.nonpaged.frees, e.nonpaged.bytes),
        (120, 20, 0x19000)
    );
}

#[test]
fn carved_driver_also_scanned_from_disk_is_not_memory_only() {
    let (dir, dump) = dump_file().unwrap();
    let same = dir.path().join(GUID_DRIVER);
    std::fs::copy(testdata("bin/untagged_clang_x64_O2.sys"), &same).unwrap();
    let r = scan_with_dump(&[same], &dump);
    let carved = r
        .artifacts
        .iter()
        .position(|a| matches!(a.kind, ArtifactKind::Carved { .. }) && a.name == GUID_DRIVER)
        .unwrap();
    assert!(!r.artifacts[carved].memory_only);
    let on_carved: Vec<_> = r.findings.iter().filter(|f| f.artifact == carved).collect();
    assert!(!on_carved.is_empty());
    assert!(on_carved.iter().all(|f| !msg(f).contains("memory-only")));
}

#[test]
fn carved_images_are_nested_artifacts_in_sarif() {
    let (_dir, dump) = dump_file().unwrap();
    let r = scan_with_dump(&[], &dump);
    let text = drvaudit::output::sarif::render(&r, &root());
    let log: serde_json::Value = serde_json::from_str(&text).unwrap();
    let arts = &log["runs"][0]["artifacts"];
    assert_eq!(arts[2]["parentIndex"], 0);
    let uri = arts[2]["location"]["uri"].as_str().unwrap();
    assert!(
        uri.ends_with(
            "/MEMORY.DMP/%7B5E5B3A60-1C2D-4E8F-9A0B-7C6D5E4F3A21%7D.sys@0xfffff80010200000"
        ),
        "{uri}"
    );
    assert_eq!(arts[2]["properties"]["memoryOnly"], true);
    assert_schema_valid(&log);
}

#[test]
fn unreadable_dump_is_a_notice_and_files_still_scan() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.dmp");
    std::fs::write(&bad, b"PAGEDU64 but far too short").unwrap();
    let r = scan_with_dump(&[testdata("bin/untagged_gcc_x64_O2.sys")], &bad);
    assert_eq!(problems(&r).len(), 1, "{:?}", problems(&r));
    assert!(problems(&r)[0].subject.ends_with("bad.dmp"));
    assert!(r.findings.iter().any(|f| f.rule_id == "DRV1001"));
}

/// Issue 19's hostile dumps through the whole pipeline: each finishes (times printed, not
/// asserted), every module keeps its artifact, and the budget reached is a notice that makes the
/// run incomplete.
#[test]
fn hostile_dumps_finish_with_their_budget_notices() {
    use drvaudit::report::NoticeKind;
    let cases = [
        (
            "modules.dmp",
            hostile_modules(4096, 0x800_0000, true).0,
            4096,
        ),
        (
            "alias-modules.dmp",
            hostile_modules(64, 0x800_0000, false).0,
            64,
        ),
        ("pool.dmp", hostile_pool(2048, (1 << 20) + 1).0, 2),
    ];
    for (name, bytes, modules) in cases {
        let (_dir, dump) = to_file(&bytes, name);
        let t = std::time::Instant::now();
        let r = scan_with_dump(&[], &dump);
        eprintln!("scan --dump {name}: {:?}", t.elapsed());
        assert_eq!(r.artifacts.len(), modules + 1, "{name}");
        // The pool table is read after the dump's notices are taken: its budget is named in the
        // pool notice.
        let budget: Vec<&str> = r
            .notices
            .iter()
            .filter(|n| {
                n.kind == NoticeKind::Budget
                    || n.kind == NoticeKind::MissingEvidence && n.message.contains("budget reached")
            })
            .map(|n| n.message.as_str())
            .collect();
        assert!(!budget.is_empty(), "{name}: {:?}", r.notices);
        assert!(r.incomplete(), "{name}");
        assert_eq!(r.exit_code, 2, "{name}");
    }
}

/// Dumps whose pool tables hold chipsec's `\x841\x00\x00`, a zero key in a used slot and keys
/// with the protected bit among ordinary tags (x64 bitmap, x86 PAE): the table is read, and the
/// scan ranks the carved driver's untagged allocation — `None` holds the most NonPaged bytes —
/// first.
#[test]
fn odd_tags_do_not_stop_the_ranking() {
    use crate::dump_reader::{odd_cpu1_tags, odd_global_tags};
    for (arch, dump_type, build, drv, nt) in [
        (
            Arch::X64,
            5,
            19041,
            "untagged_clang_x64_O2.sys",
            "ntoskrnl_stub_x64.exe",
        ),
        (
            Arch::X86Pae,
            2,
            17763,
            "untagged_clang_x86_O2.sys",
            "ntoskrnl_stub_x86.exe",
        ),
    ] {
        let mut s = Scenario::new(arch, dump_type, build, 2, ImportPlacement::InRdata);
        s.images = Some((
            std::fs::read(testdata(&format!("bin/{drv}"))).unwrap(),
            std::fs::read(testdata(&format!("bin/{nt}"))).unwrap(),
        ));
        s.tags = Some(odd_global_tags());
        s.cpu1_tags = Some(odd_cpu1_tags());
        let (_dir, dump) = to_file(&s.bytes().0, "ODD.DMP");
        let r = scan_with_dump(&[], &dump);
        // Only the carved image's known gaps (a page of .data, the freed INIT) are noted.
        assert!(
            r.notices
                .iter()
                .all(|n| n.level != drvaudit::report::Level::Error),
            "{arch:?}: {:?}",
            r.notices
        );
        assert!(r.unranked.is_none(), "{arch:?}: {:?}", r.unranked);
        let pool = r.pool.as_ref().expect("the dump's pool usage");
        let chipsec = pool.tags.iter().find(|t| t.tag == 0x3184).expect("0x3184");
        assert_eq!(
            (
                chipsec.nonpaged.allocs,
                chipsec.nonpaged.frees,
                chipsec.nonpaged.bytes
            ),
            (8, 2, 0x300),
            "{arch:?}"
        );
        let first = &r.findings[0];
        assert_eq!(first.rule_id, "DRV1001", "{arch:?}: {}", msg(first));
        assert_eq!(r.artifacts[first.artifact].name, GUID_DRIVER, "{arch:?}");
        // The highest rank (DRV2001 on the same call shares it: two errors of one site).
        assert!(r.findings.iter().all(|f| f.rank <= first.rank), "{arch:?}");
        assert_eq!(first.evidence.as_ref().unwrap().nonpaged.bytes, 0x1F400);
    }
}
