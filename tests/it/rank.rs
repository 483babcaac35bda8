//! Ranking by observed pool usage: the same figures from any export give the same ranking,
//! tags are attributed through the drivers' call sites, and the largest consumer comes first.

use crate::common::*;
use drvaudit::pool::{tag_from_display, TAG_MMCM, TAG_NONE};
use drvaudit::report::{Level, Report};

const DRIVERS: [&str; 3] = [
    "bin/untagged_clang_arm64_O2.sys",
    "bin/pooltest_clang_arm64_O2.sys",
    "bin/clean_clang_arm64_O2.sys",
];

fn ranked(pool: &[std::path::PathBuf]) -> Report {
    let mut s = settings(&DRIVERS.map(testdata));
    s.pool_files = pool.to_vec();
    drvaudit::pipeline::scan(&s)
}

/// (rule, where, rva, rank); DRV9001 of a tag no driver uses is anchored at the export
/// itself, whose name differs between sources, so it is identified by its tag instead.
fn ranking(r: &Report) -> Vec<(String, String, Option<u32>, Option<f64>)> {
    r.findings
        .iter()
        .map(|f| {
            let a = &r.artifacts[f.artifact];
            let at = if a.kind == drvaudit::report::ArtifactKind::PoolExport {
                format!("tag {:08x}", f.tags[0])
            } else {
                a.name.clone()
            };
            (f.rule_id.clone(), at, f.rva, f.rank)
        })
        .collect()
}

#[test]
fn every_export_format_gives_the_same_ranking() {
    let sources = [
        "pool/incident_poolused.txt",
        "pool/incident_poolmon.log",
        "pool/incident.csv",
        "pool/incident.json",
    ];
    let reports: Vec<Report> = sources.iter().map(|p| ranked(&[testdata(p)])).collect();
    for (r, p) in reports.iter().zip(sources) {
        assert!(r.notices.is_empty(), "{p}: {:?}", r.notices);
    }
    for (r, p) in reports.iter().zip(sources).skip(1) {
        assert_eq!(ranking(r), ranking(&reports[0]), "{p} ranks differently");
    }
    // A driver-level finding of pooltest (its CFG note) sums all its tags and ranks first;
    // the first finding about one allocation is the untagged one.
    let first = reports[0]
        .findings
        .iter()
        .find(|f| !f.driver_level)
        .unwrap();
    assert_eq!(first.rule_id, "DRV1001");
    let e = first
        .evidence
        .clone()
        .expect("the first finding carries evidence");
    assert_eq!((e.nonpaged.bytes, e.nonpaged.live()), (50_827_424, 246_479));
    // ceil(100 × 50,827,424 / 114,566,576 bytes in use)
    assert_eq!(first.rank, Some(45.0));
    assert!(
        msg(first).contains("tag 'None' holds 50,827,424 bytes of NonPagedPool"),
        "{}",
        msg(first)
    );
}

#[test]
fn kernel_tags_are_attributed_only_to_the_drivers_that_cause_them() {
    let r = ranked(&[testdata("pool/incident.csv")]);
    let consumer = |tag| r.consumers.iter().find(|c| c.tag == tag).unwrap();
    let mmcm = consumer(TAG_MMCM);
    assert_eq!(mmcm.drivers, vec!["pooltest_clang_arm64_O2.sys"]);
    assert_eq!(mmcm.nonpaged.bytes, 18_462_512);
    assert!(mmcm.owner.as_deref().unwrap().contains("nt!mm"));
    let none = consumer(TAG_NONE);
    assert_eq!(
        none.drivers,
        vec!["pooltest_clang_arm64_O2.sys", "untagged_clang_arm64_O2.sys"]
    );
    assert!(none.ambiguous);
    // A tag no scanned driver uses is reported, attributed to nobody.
    assert!(consumer(tag_from_display("CM31").unwrap())
        .drivers
        .is_empty());
    let summary = r
        .findings
        .iter()
        .find(|f| f.rule_id == "DRV9001" && f.tags == vec![TAG_MMCM])
        .unwrap();
    assert_eq!(summary.level, Level::Warning); // 16% of the pool in use, above 10%
}

#[test]
fn none_is_not_always_the_top_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("usage.csv");
    std::fs::write(
        &csv,
        "tag,nonpaged_allocs,nonpaged_frees,nonpaged_bytes,paged_allocs,paged_frees,paged_bytes\n\
         None,100,0,10000000,0,0,0\n\
         Loop,0,0,0,5000,1000,90000000\n\
         Ex2N,10,5,500000,0,0,0\n",
    )
    .unwrap();
    let r = ranked(&[csv]);
    let first = r.findings.iter().find(|f| !f.driver_level).unwrap();
    assert_eq!(first.tags, vec![tag_from_display("Loop").unwrap()]);
    assert_eq!(
        r.artifacts[first.artifact].name,
        "pooltest_clang_arm64_O2.sys"
    );
    assert_eq!(first.rank, Some(90.0));
    assert_eq!(r.consumers[0].tag, tag_from_display("Loop").unwrap());
    assert_eq!(r.consumers[0].paged.live(), 4000);
    // Ranked findings come before unranked ones, in non-increasing rank.
    let ranks: Vec<f64> = r.findings.iter().map(|f| f.rank.unwrap_or(-1.0)).collect();
    assert!(ranks.windows(2).all(|w| w[0] >= w[1]), "{ranks:?}");
}

#[test]
fn unreadable_pool_export_is_a_notice_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "hello\nworld\n").unwrap();
    let r = ranked(&[bad]);
    assert_eq!(r.notices.len(), 1);
    assert!(
        r.notices[0]
            .message
            .contains("bad.txt:1: `hello` starts no known pool usage format"),
        "{}",
        r.notices[0].message
    );
    assert!(r.findings.iter().all(|f| f.rank.is_none()));
}

#[test]
fn tags_owned_by_another_binary_in_pooltag_txt_are_collisions() {
    let dir = tempfile::tempdir().unwrap();
    let pooltag = dir.path().join("pooltag.txt");
    std::fs::write(
        &pooltag,
        "rem test pooltag\n\
         Loop - otherdrv.sys - somebody else's loop buffers\n\
         Pool - pooltest_clang_arm64_O2.sys - our own tag\n\
         MmCm - nt!mm - Calls made to MmAllocateContiguousMemory\n",
    )
    .unwrap();
    let mut s = settings(&[testdata("bin/pooltest_clang_arm64_O2.sys")]);
    s.pooltag = Some(pooltag);
    let r = drvaudit::pipeline::scan(&s);
    let hits: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.rule_id == "DRV1005")
        .collect();
    // pooltest.c allocates 'Loop' four times (clang -O2 unrolls the loop); 'Pool' is its own
    // and MmCm is the kernel's tag for contiguous memory, not a driver's choice.
    assert_eq!(hits.len(), 4, "{hits:#?}");
    assert!(hits.iter().all(|f| f.level == Level::Warning));
    assert!(
        msg(hits[0]).contains("pooltag.txt assigns 'Loop' to otherdrv.sys"),
        "{}",
        msg(hits[0])
    );
    // Without --pooltag the rule is silent.
    let plain = scan_paths(&[testdata("bin/pooltest_clang_arm64_O2.sys")]);
    assert!(plain.findings.iter().all(|f| f.rule_id != "DRV1005"));
}

/// Pool usage under a tag that a driver reads at run time from a writable global is attributed
/// to that driver: the inventory lists every value the global can hold, and the call site's
/// finding carries the bytes (runtimetag.c: g_SetTag is 'Init', then 'SRun').
#[test]
fn usage_under_a_tag_read_at_run_time_is_attributed() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("usage.csv");
    std::fs::write(
        &csv,
        "tag,nonpaged_allocs,nonpaged_frees,nonpaged_bytes,paged_allocs,paged_frees,paged_bytes\n\
         SRun,100,10,737280,0,0,0\n\
         Irp,5000,4000,262144,0,0,0\n",
    )
    .unwrap();
    let mut s = settings(&[testdata("bin/runtimetag_gcc_x64_O2.sys")]);
    s.pool_files = vec![csv];
    let r = drvaudit::pipeline::scan(&s);
    let inventory = drvaudit::output::text::tag_inventory(&r);
    for tag in ["Fixd", "Init", "SRun"] {
        assert!(
            inventory.contains(&format!(
                "{tag} - runtimetag_gcc_x64_O2.sys - ExAllocatePoolWithTag, ExFreePoolWithTag: \
                 2 call site(s), read at run time from a writable global"
            )),
            "{inventory}"
        );
    }
    let site = r
        .findings
        .iter()
        .find(|f| f.rule_id == "DRV1002" && f.rva == Some(0x1037))
        .unwrap();
    let e = site.evidence.clone().unwrap();
    assert_eq!(e.nonpaged.bytes, 737_280);
    // 737,280 of the 999,424 bytes in use: rank ceil(100 x 0.7377) = 74.
    assert_eq!(site.rank, Some(74.0));
    assert!(msg(site).contains("tag 'Init' at run time, one of 'SRun', 'Init'"));
}
