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
        assert!(problems(r).is_empty(), "{p}: {:?}", problems(r));
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
    // 100 × 50,827,424 / 114,566,576 bytes in use × 1.0 (a call site's error).
    assert!(
        (first.rank.unwrap() - 44.364_199).abs() < 1e-6,
        "{:?}",
        first.rank
    );
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
    // 90,000,000 of 100,500,000 bytes, weighted by the finding's level (a direct finding).
    let w = match first.level {
        Level::Error => 1.0,
        Level::Warning => 0.98,
        Level::Note => 0.96,
    };
    let want = 100.0 * 90_000_000.0 / 100_500_000.0 * w;
    assert!(
        (first.rank.unwrap() - want).abs() < 1e-9,
        "{:?}",
        first.rank
    );
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
    assert_eq!(problems(&r).len(), 1);
    assert!(
        problems(&r)[0]
            .message
            .contains("bad.txt:1: `hello` starts no known pool usage format"),
        "{}",
        problems(&r)[0].message
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
    // pooltest.c allocates 'Loop' four times (clang -O2 unrolls the loop): one finding for the
    // tag, its four sites listed; 'Pool' is its own and MmCm is the kernel's tag for
    // contiguous memory, not a driver's choice.
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert!(hits.iter().all(|f| f.level == Level::Warning));
    assert!(
        msg(hits[0])
            .contains("(and 3 more call sites with it); pooltag.txt lists 'Loop' for otherdrv.sys"),
        "{}",
        msg(hits[0])
    );
    let sites = hits[0].properties["callSites"].as_array().unwrap();
    assert_eq!(sites.len(), 4);
    // Anchored at the first of them.
    assert_eq!(
        sites[0].as_str(),
        Some(format!("0x{:x}", hits[0].rva.unwrap()).as_str())
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
    // 737,280 of the 999,424 bytes in use, a note at its call site: 100 × 0.7377 × 0.96.
    assert!(
        (site.rank.unwrap() - 70.819_672).abs() < 1e-6,
        "{:?}",
        site.rank
    );
    assert!(msg(site).contains("tag 'Init' at run time, one of 'SRun', 'Init'"));
}

/// The finding that explains the pool usage comes first: a driver built without CFG (DRV3007,
/// a note about the driver as a whole) that also owns the top tag shows its call-site errors
/// first; within the driver no two findings of different levels share a rank, and neither the
/// CFG note nor the tag's DRV9001 summary ranks with or above the errors they summarise.
#[test]
fn call_site_errors_rank_above_the_driver_level_notes_of_their_driver() {
    let mut s = settings(&[
        testdata("bin/untagged_clang_x64_O2.sys"),
        testdata("bin/pooltest_clang_x64_O2.sys"),
    ]);
    s.pool_files = vec![testdata("pool/incident.csv")];
    let r = drvaudit::pipeline::scan(&s);
    // untagged_clang_x64_O2.sys: x64 without /guard:cf, and its ExAllocatePool holds `None`.
    let art = r
        .artifacts
        .iter()
        .position(|a| a.name == "untagged_clang_x64_O2.sys")
        .unwrap();
    let of_driver: Vec<_> = r.findings.iter().filter(|f| f.artifact == art).collect();
    let cfg = of_driver
        .iter()
        .find(|f| f.rule_id == "DRV3007")
        .expect("a CFG note");
    let errors: Vec<_> = of_driver
        .iter()
        .filter(|f| f.level == Level::Error)
        .collect();
    assert!(!errors.is_empty());
    let least_error = errors
        .iter()
        .map(|f| f.rank.unwrap())
        .fold(f64::INFINITY, f64::min);
    assert!(
        cfg.rank.unwrap() < least_error,
        "{:?} vs {least_error}",
        cfg.rank
    );
    // In report order every error of the driver comes before its CFG note.
    let pos =
        |f: &drvaudit::report::Finding| r.findings.iter().position(|g| std::ptr::eq(g, f)).unwrap();
    assert!(errors.iter().all(|e| pos(e) < pos(cfg)));
    // Strict levels within the driver.
    for a in &of_driver {
        for b in &of_driver {
            if a.level != b.level {
                assert_ne!(a.rank, b.rank, "{} {} share a rank", a.rule_id, b.rule_id);
            }
        }
    }
    // DRV9001 about `None` ranks below every error tied to `None`.
    let none_summary = r
        .findings
        .iter()
        .find(|f| f.rule_id == "DRV9001" && f.tags == vec![TAG_NONE])
        .unwrap();
    for e in r
        .findings
        .iter()
        .filter(|f| f.level == Level::Error && f.tags == vec![TAG_NONE])
    {
        assert!(e.rank.unwrap() > none_summary.rank.unwrap());
    }
    // Ranks stay within 0-100.
    assert!(r
        .findings
        .iter()
        .filter_map(|f| f.rank)
        .all(|x| (0.0..=100.0).contains(&x)));
}
