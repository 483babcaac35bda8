//! The incident drvaudit starts from, rebuilt: a 32-bit PAE server, one processor, NonPagedPool
//! exhausted, `!poolused` blaming `None` (246,479 allocations, 50,827,424 bytes) and `MmCm`
//! (1,198, 18,462,512), and the culprit a GUID-named driver that exists only in memory and
//! imports ExAllocatePool. `drvaudit scan --dump MEMORY.DMP` must put that driver first.

use crate::common::*;
use crate::support::dumpwriter::*;
use drvaudit::pool::{tag_from_display, TAG_MMCM, TAG_NONE};
use drvaudit::report::Report;

fn counts(tag: &str, np: (u64, u64, u64), p: (u64, u64, u64)) -> TagCounts {
    TagCounts {
        tag: tag_from_display(tag).unwrap(),
        np,
        p,
    }
}

/// The incident's pool tracker figures (the same as testdata/pool/incident.*).
fn incident_tags() -> Vec<TagCounts> {
    vec![
        counts("None", (3_118_902, 2_872_423, 50_827_424), (0, 0, 0)),
        counts("MmCm", (2_207, 1_009, 18_462_512), (0, 0, 0)),
        counts("File", (4_420_263, 4_410_877, 1_501_760), (120, 120, 0)),
        counts("Thre", (89_939, 88_214, 1_104_000), (0, 0, 0)),
        counts("Irp ", (9_129_287, 9_127_755, 431_824), (0, 0, 0)),
        counts("NtFs", (50_531, 47_226, 158_640), (5_529, 2_614, 80_192)),
        counts(
            "Io  ",
            (1_021_196, 1_020_985, 61_344),
            (4_411, 4_399, 1_536),
        ),
        counts("Bone", (52, 12, 20_480), (9, 6, 384)),
        counts("CM31", (0, 0, 0), (10_204, 407, 41_918_464)),
    ]
}

/// MEMORY.DMP: x86 PAE, DumpType 1, Windows 7 SP1 (build 7601, 0x1C-byte tracker entries),
/// one processor. Modules: ntoskrnl (the stub), the GUID driver (untagged_gcc_x86_O2.sys,
/// with INIT discarded), clean.sys and pooltest.sys (which calls MmAllocateContiguousMemory*).
pub(crate) fn incident_dump() -> (tempfile::TempDir, std::path::PathBuf) {
    dump_with_tags(incident_tags())
}

fn dump_with_tags(tags: Vec<TagCounts>) -> (tempfile::TempDir, std::path::PathBuf) {
    let bin = |n: &str| std::fs::read(testdata(&format!("bin/{n}"))).unwrap();
    let mut s = Scenario::new(Arch::X86Pae, 1, 7601, 1, ImportPlacement::InRdata);
    s.images = Some((bin("untagged_gcc_x86_O2.sys"), bin("ntoskrnl_stub_x86.exe")));
    s.extra_drivers = vec![
        ("clean.sys".into(), bin("clean_gcc_x86_O2.sys")),
        ("pooltest.sys".into(), bin("pooltest_gcc_x86_O2.sys")),
    ];
    s.tags = Some(tags);
    to_file(&s.bytes().0, "MEMORY.DMP")
}

pub(crate) fn scan(dump: &std::path::Path, pool: &[std::path::PathBuf]) -> Report {
    let mut s = settings(&[]);
    s.dumps = vec![dump.to_path_buf()];
    s.pool_files = pool.to_vec();
    drvaudit::pipeline::scan(&s)
}

#[test]
fn the_memory_only_guid_driver_comes_first() {
    let (_dir, dump) = incident_dump();
    let r = scan(&dump, &[]);
    let modules: Vec<&str> = r
        .artifacts
        .iter()
        .skip(1)
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(
        modules,
        vec!["ntoskrnl.exe", GUID_DRIVER, "clean.sys", "pooltest.sys"]
    );

    let first = &r.findings[0];
    assert_eq!(first.rule_id, "DRV1001");
    assert_eq!(r.artifacts[first.artifact].name, GUID_DRIVER);
    assert!(r.artifacts[first.artifact].memory_only);
    let e = first.evidence.clone().unwrap();
    assert_eq!((e.nonpaged.bytes, e.nonpaged.live()), (50_827_424, 246_479));
    assert!(
        msg(first).contains(&format!(
            "MEMORY.DMP>{GUID_DRIVER}@0x80600000 (memory-only) calls ExAllocatePool at RVA 0x"
        )),
        "{}",
        msg(first)
    );
    assert!(
        msg(first).contains("tag 'None' holds 50,827,424 bytes of NonPagedPool"),
        "{}",
        msg(first)
    );

    // The text report opens with the dump's facts, then the top consumers, None first.
    let text = drvaudit::output::text::render_oneline(&r);
    let mut lines = text.lines();
    // The facts are wrapped to 120 columns, continuation lines indented.
    let mut facts = lines.next().unwrap().to_string();
    for more in lines.by_ref().take_while(|l| l.starts_with("    ")) {
        facts.push(' ');
        facts.push_str(more.trim_start());
    }
    // The writer's header: DumpType 1 (a run list), build 7601, PAE, bugcheck 0xE2
    // (MANUALLY_INITIATED_CRASH), every described page present; no SystemTime set.
    assert!(
        facts.ends_with(
            "MEMORY.DMP: full (run list), DumpType 1, Windows build 7601 x86 (PAE), crash: \
             bugcheck 0x000000e2; complete: 0x1f of 0x1f described physical pages (100.00%) are \
             in the file of 0x20000 bytes"
        ),
        "{facts}"
    );
    assert_eq!(lines.next(), Some("top pool consumers"));
    let none_row = lines.nth(1).unwrap();
    assert!(
        none_row.contains("'None'")
            && none_row.contains("50,827,424")
            && none_row.contains("246,479"),
        "{none_row}"
    );
    assert!(
        none_row.contains(&format!("{GUID_DRIVER} (memory-only)")),
        "{none_row}"
    );
}

#[test]
fn mmcm_is_attributed_only_to_callers_of_contiguous_memory() {
    let (_dir, dump) = incident_dump();
    let r = scan(&dump, &[]);
    let mmcm = r.consumers.iter().find(|c| c.tag == TAG_MMCM).unwrap();
    assert_eq!(mmcm.drivers, vec!["pooltest.sys (memory-only)"]);
    assert_eq!(
        (mmcm.nonpaged.bytes, mmcm.nonpaged.live()),
        (18_462_512, 1_198)
    );
    assert!(mmcm.owner.as_deref().unwrap().starts_with("kernel: nt!mm"));
    let none = r.consumers.iter().find(|c| c.tag == TAG_NONE).unwrap();
    assert!(!none.drivers.iter().any(|d| d.starts_with("clean.sys")));
}

#[test]
fn the_same_figures_as_poolused_or_poolmon_rank_the_same() {
    let key = |r: &Report| {
        r.findings
            .iter()
            .map(|f| {
                let at = match f.rule_id.as_str() {
                    // Unattributed tags are anchored at their source; compare them by tag.
                    "DRV9001" => format!("{:08x}", f.tags[0]),
                    _ => r.artifacts[f.artifact].name.clone(),
                };
                (
                    f.rule_id.clone(),
                    at,
                    f.rva,
                    f.rank,
                    f.evidence.as_ref().map(|e| (e.bytes(), e.live())),
                )
            })
            .collect::<Vec<_>>()
    };
    let (_d1, dump) = incident_dump();
    let from_dump = key(&scan(&dump, &[]));
    // The same drivers in a dump whose tracker table is empty: the figures come from the
    // export alone.
    let (_d2, bare) = dump_with_tags(Vec::new());
    for export in ["pool/incident_poolused.txt", "pool/incident_poolmon.log"] {
        let r = scan(&bare, &[testdata(export)]);
        assert_eq!(key(&r), from_dump, "{export}");
        assert_eq!(r.findings[0].rule_id, "DRV1001");
    }
}

#[test]
fn the_incident_report_is_valid_sarif() {
    let (_dir, dump) = incident_dump();
    let r = scan(&dump, &[]);
    let text = drvaudit::output::sarif::render(&r, &root());
    let log: serde_json::Value = serde_json::from_str(&text).unwrap();
    let first = &log["runs"][0]["results"][0];
    assert_eq!(first["ruleId"], "DRV1001");
    assert!((first["rank"].as_f64().unwrap() - 44.364_199).abs() < 1e-6);
    assert_eq!(first["properties"]["nonPagedBytes"], 50_827_424);
    assert_eq!(first["properties"]["liveAllocations"], 246_479);
    assert_eq!(first["properties"]["memoryOnly"], true);
    let artifact = first["locations"][0]["physicalLocation"]["artifactLocation"]["index"]
        .as_u64()
        .unwrap();
    assert_eq!(
        log["runs"][0]["artifacts"][artifact as usize]["parentIndex"],
        0
    );
    assert_schema_valid(&log);
    insta::assert_json_snapshot!(
        "incident.sarif",
        redacted_sarif(&text, &[dump.parent().unwrap()])
    );
    // CI hands this log to Microsoft's SARIF Multitool as well.
    if let Some(dir) = std::env::var_os("DRVAUDIT_SARIF_OUT") {
        std::fs::write(std::path::Path::new(&dir).join("incident.sarif"), &text).unwrap();
    }
}
