//! Dumps written by the test-only writer (`tests/it/support/dumpwriter.rs`, built from the
//! documented formats) and read back: module list, carved bytes, recovered imports and pool
//! figures are asserted exactly, for every architecture and physical-memory layout.

use crate::support::dumpwriter::*;
use drvaudit::dump::{
    recover_imports, render_text, report, AnomalyKind, Arch as RArch, Dump, ImportSource, PoolKind,
    RecoveredImport, SizeSource,
};
use drvaudit::pool::{PoolCounters, TagUsage};

fn c(allocs: u64, frees: u64, bytes: u64) -> PoolCounters {
    PoolCounters {
        allocs,
        frees,
        bytes,
    }
}

/// Pool totals over the global table and, with two processors, the second CPU's table.
fn expected_pool(two_cpus: bool) -> Vec<TagUsage> {
    let mut v = if two_cpus {
        vec![
            TagUsage {
                tag: TAG_DDK,
                nonpaged: c(5, 1, 0x400),
                paged: c(33, 11, 0x2900),
            },
            TagUsage {
                tag: TAG_PROC,
                nonpaged: c(50, 10, 0x8000),
                paged: c(0, 0, 0),
            },
            TagUsage {
                tag: TAG_BONE,
                nonpaged: c(0, 0, 0),
                paged: c(7, 2, 0x500),
            },
            TagUsage {
                tag: TAG_NONE,
                nonpaged: c(150, 25, 0x1F400),
                paged: c(0, 0, 0),
            },
        ]
    } else {
        vec![
            TagUsage {
                tag: TAG_DDK,
                nonpaged: c(5, 1, 0x400),
                paged: c(30, 10, 0x2800),
            },
            TagUsage {
                tag: TAG_PROC,
                nonpaged: c(50, 10, 0x8000),
                paged: c(0, 0, 0),
            },
            TagUsage {
                tag: TAG_BONE,
                nonpaged: c(0, 0, 0),
                paged: c(7, 2, 0x500),
            },
            TagUsage {
                tag: TAG_NONE,
                nonpaged: c(120, 20, 0x19000),
                paged: c(0, 0, 0),
            },
        ]
    };
    v.sort_by_key(|t| t.tag);
    v
}

fn matched(iat_rva: u32, name: &str, ordinal: u16) -> RecoveredImport {
    RecoveredImport {
        iat_rva,
        dll: "ntoskrnl.exe".into(),
        name: Some(name.into()),
        ordinal: Some(ordinal),
        how: ImportSource::FromExportMatch,
        note: None,
    }
}

/// The GUID driver's four imports named by matching the IAT values against ntoskrnl's
/// exports (ordinals: position in the sorted export list + 1).
fn by_export_match(ps: u32) -> Vec<RecoveredImport> {
    vec![
        matched(0x2000, "ExAllocatePool", 1),
        matched(0x2000 + ps, "_wcsnicmp", 6),
        matched(0x2000 + 2 * ps, "ExFreePoolWithTag", 3),
        matched(0x2000 + 3 * ps, "KeInitializeEvent", 5),
    ]
}

struct Case {
    s: Scenario,
    arch: RArch,
    imports: Vec<RecoveredImport>,
}

fn run(case: Case) {
    let (bytes, w) = case.s.bytes();
    let (_dir, path) = to_file(&bytes, "test.dmp");
    let d = Dump::open(&path).expect("open written dump");
    let s = d.summary();
    assert_eq!(s.arch, case.arch);
    assert_eq!(s.dump_type, case.s.dump_type);
    assert_eq!(s.build, case.s.build);
    assert_eq!(s.processors, case.s.processors);

    let (nt_base, drv_base, _, _) = layout_of(case.s.arch);
    let mods = d.modules().expect("module list");
    let got: Vec<(&str, &str, u64, u32)> = mods
        .iter()
        .map(|m| (m.name.as_str(), m.full_path.as_str(), m.base, m.size))
        .collect();
    assert_eq!(
        got,
        [
            ("ntoskrnl.exe", NT_PATH, nt_base, 0x4000),
            (GUID_DRIVER, GUID_DRIVER_PATH, drv_base, 0x7000)
        ]
    );

    let nt = d.carve(&mods[0]);
    assert_eq!(nt.holes, []);
    assert!(nt.bytes == w.nt.bytes, "ntoskrnl carved bytes differ");
    let drv = d.carve(&mods[1]);
    // .data page 1 is not in the dump; PAGE is paged out; INIT is discarded.
    assert_eq!(drv.holes, [(0x3000, 0x1000), (0x5000, 0x2000)]);
    assert!(
        drv.bytes == w.expected_driver_bytes(),
        "driver carved bytes differ"
    );
    assert!(
        drv.notes
            .iter()
            .any(|n| n
                == "rva 0x6000..0x7000 missing (INIT: discardable, freed after load (expected))"),
        "{:?}",
        drv.notes
    );
    assert!(
        drv.notes
            .iter()
            .any(|n| n == "rva 0x5000..0x6000 missing (PAGE: not in the dump)"),
        "{:?}",
        drv.notes
    );

    let imports = recover_imports(&[(mods[0].clone(), nt), (mods[1].clone(), drv)]);
    assert_eq!(imports.len(), 2);
    assert_eq!(imports[0], []);
    assert_eq!(imports[1], case.imports);

    let pool = d.pool_usage().expect("pool usage");
    assert_eq!(pool.tags, expected_pool(case.s.processors > 1));

    let r = report(&d);
    assert_eq!(
        r.pool.first().map(|p| p.tag.as_str()),
        Some("None"),
        "sorted by NonPaged bytes"
    );
    assert_eq!(r.modules.len(), 2);
    let text = render_text(&r);
    assert!(text.contains(GUID_DRIVER));
    serde_json::to_string(&r).expect("report serialises");
}

#[test]
fn x86_full_run_list_with_surviving_import_directory_and_hook() {
    let mut s = Scenario::new(Arch::X86, 1, 7601, 1, ImportPlacement::InRdata);
    s.hook = true;
    s.kdbg_unset = true;
    let dir = |rva: u32, name: &str, note: Option<String>| RecoveredImport {
        iat_rva: rva,
        dll: "ntoskrnl.exe".into(),
        name: Some(name.into()),
        ordinal: None,
        how: ImportSource::FromImportDirectory,
        note,
    };
    let (nt_base, ..) = layout_of(Arch::X86);
    let hooked = nt_base + 0x1020;
    let imports = vec![
        dir(0x2000, "ExAllocatePool", None),
        dir(0x2004, "_wcsnicmp", None),
        dir(0x2008, "ExFreePoolWithTag", None),
        dir(
            0x200C,
            "KeInitializeEvent",
            Some(format!("import directory says ntoskrnl.exe!KeInitializeEvent but the slot holds {hooked:#x} = ntoskrnl.exe!ExFreePoolWithTag")),
        ),
    ];
    run(Case {
        s,
        arch: RArch::X86,
        imports,
    });
}

#[test]
fn x86_pae_summary_bitmap() {
    let s = Scenario::new(Arch::X86Pae, 2, 17763, 2, ImportPlacement::InInit);
    run(Case {
        s,
        arch: RArch::X86Pae,
        imports: by_export_match(4),
    });
}

#[test]
fn x64_bitmap_dump() {
    let s = Scenario::new(Arch::X64, 5, 19041, 2, ImportPlacement::InInit);
    run(Case {
        s,
        arch: RArch::X64,
        imports: by_export_match(8),
    });
}

#[test]
fn x64_kernel_range_list_24h2_layout() {
    let s = Scenario::new(Arch::X64, 8, 26100, 1, ImportPlacement::InInit);
    run(Case {
        s,
        arch: RArch::X64,
        imports: by_export_match(8),
    });
}

#[test]
fn x64_complete_range_list_pre_1709_layout() {
    let s = Scenario::new(Arch::X64, 0xA, 14393, 2, ImportPlacement::InInit);
    run(Case {
        s,
        arch: RArch::X64,
        imports: by_export_match(8),
    });
}

#[test]
fn arm64_bitmap_without_iat_directory_or_size_variable() {
    let mut s = Scenario::new(
        Arch::Arm64,
        6,
        22000,
        2,
        ImportPlacement::InInitNoIatDirectory,
    );
    s.size_variable = false;
    run(Case {
        s,
        arch: RArch::Arm64,
        imports: by_export_match(8),
    });
}

#[test]
fn x86_pae_bitmap_dump_win81_at_0x1000() {
    // Win8+ 32-bit kernels write BITMAP_DUMP right after the 0x1000-byte header (§1.4.3).
    let s = Scenario::new(Arch::X86Pae, 5, 9600, 2, ImportPlacement::InInit);
    run(Case {
        s,
        arch: RArch::X86Pae,
        imports: by_export_match(4),
    });
}

#[test]
fn x64_full_run_list() {
    let s = Scenario::new(Arch::X64, 1, 17134, 2, ImportPlacement::InInit);
    run(Case {
        s,
        arch: RArch::X64,
        imports: by_export_match(8),
    });
}

#[test]
fn x64_kernel_and_user_range_list() {
    let s = Scenario::new(Arch::X64, 9, 18362, 2, ImportPlacement::InInit);
    run(Case {
        s,
        arch: RArch::X64,
        imports: by_export_match(8),
    });
}

// ---------------------------------------------------------------------------------------------
// Pool tracker tables read on structure: any 32-bit key is a tag.

/// chipsec's helper driver tags its allocations 0x00003184 (`\x841\x00\x00`).
const TAG_CHIPSEC: u32 = 0x0000_3184;
const PROTECTED: u32 = 0x8000_0000;

fn t(tag: u32, np: (u64, u64, u64), p: (u64, u64, u64)) -> TagCounts {
    TagCounts { tag, np, p }
}

/// Ordinary tags among a non-printable one, a zero key in a used slot and two keys carrying the
/// PROTECTED_POOL bit (one of them non-printable, 0x80000001).
pub(crate) fn odd_global_tags() -> Vec<TagCounts> {
    vec![
        t(TAG_NONE, (120, 20, 0x19000), (0, 0, 0)),
        t(TAG_CHIPSEC, (7, 2, 0x2C0), (0, 0, 0)),
        t(0, (4, 1, 0x180), (0, 0, 0)),
        t(TAG_BONE | PROTECTED, (0, 0, 0), (7, 2, 0x500)),
        t(1 | PROTECTED, (2, 0, 0x40), (1, 1, 0)),
        t(TAG_DDK, (5, 1, 0x400), (30, 10, 0x2800)),
    ]
}

pub(crate) fn odd_cpu1_tags() -> Vec<TagCounts> {
    vec![
        t(TAG_NONE, (30, 5, 0x6400), (0, 0, 0)),
        t(TAG_CHIPSEC, (1, 0, 0x40), (0, 0, 0)),
        t(0, (2, 2, 0), (0, 0, 0)),
        t(TAG_BONE | PROTECTED, (0, 0, 0), (3, 0, 0x100)),
    ]
}

/// The rows `dump` must list for the two tables above, summed by hand, sorted by NonPaged
/// bytes: (tag as shown, value, NP outstanding, NP bytes, P outstanding, P bytes).
fn odd_rows() -> Vec<(&'static str, u32, u64, u64, u64, u64)> {
    vec![
        ("None", TAG_NONE, 125, 0x1F400, 0, 0),
        ("Ddk ", TAG_DDK, 4, 0x400, 20, 0x2800),
        ("\\x841\\x00\\x00", TAG_CHIPSEC, 6, 0x300, 0, 0),
        ("\\x00\\x00\\x00\\x00", 0, 3, 0x180, 0, 0),
        ("\\x01\\x00\\x00\\x00", 1, 2, 0x40, 0, 0),
        ("Bone", TAG_BONE, 0, 0, 8, 0x600),
    ]
}

fn odd_scenario(arch: Arch, dump_type: u32, build: u32) -> Scenario {
    let mut s = Scenario::new(arch, dump_type, build, 2, ImportPlacement::InInit);
    s.tags = Some(odd_global_tags());
    s.cpu1_tags = Some(odd_cpu1_tags());
    s
}

fn rows(d: &Dump) -> Vec<(String, u32, u64, u64, u64, u64)> {
    report(d)
        .pool
        .into_iter()
        .map(|r| {
            (
                r.tag,
                r.tag_value,
                r.nonpaged_allocs,
                r.nonpaged_bytes,
                r.paged_allocs,
                r.paged_bytes,
            )
        })
        .collect()
}

#[test]
fn pool_tags_are_read_whatever_their_bytes() {
    for (arch, dump_type, build) in [
        (Arch::X64, 5, 19041),
        (Arch::X86Pae, 2, 17763),
        (Arch::X86Pae, 1, 7601),
        (Arch::X64, 1, 14393),
    ] {
        let (bytes, _) = odd_scenario(arch, dump_type, build).bytes();
        let d = Dump::from_bytes("odd.dmp", bytes).expect("open");
        let want: Vec<(String, u32, u64, u64, u64, u64)> = odd_rows()
            .into_iter()
            .map(|(s, v, a, b, c, e)| (s.to_string(), v, a, b, c, e))
            .collect();
        assert_eq!(rows(&d), want, "{arch:?} {build}");
        let p = d.pool_tables().expect("pool tables");
        assert_eq!(
            p.size_source,
            SizeSource::Variable {
                value: 129,
                placed: 6,
                used: 6
            },
            "{arch:?} {build}"
        );
        assert_eq!(p.tables.len(), 2);
        assert_eq!(
            (p.tables[0].used, p.tables[1].used, p.tables[1].processor),
            (6, 4, Some(1))
        );
        assert_eq!(p.anomalies, []);
        assert!(p.complete, "{:?}", p.not_included);
        let text = render_text(&report(&d));
        assert!(text.contains("\\x841\\x00\\x00"), "{text}");
    }
}

#[test]
fn table_size_is_probed_from_hash_placement_without_the_variable() {
    let mut s = odd_scenario(Arch::X64, 5, 19041);
    s.size_variable = false;
    let (bytes, _) = s.bytes();
    let d = Dump::from_bytes("probe.dmp", bytes).unwrap();
    let p = d.pool_tables().unwrap();
    assert_eq!(
        p.size_source,
        SizeSource::Probed {
            exponent: 7,
            placed: 6,
            used: 6
        }
    );
    assert_eq!(
        p.rejected_sizes[0],
        "the value before nt!PoolTrackTable is 0x0, not 2^n + 1 with n in 6..=20"
    );
    assert_eq!(p.tables.len(), 2);
    assert_eq!(rows(&d).len(), 6);
}

#[test]
fn a_wrong_size_variable_is_rejected_and_the_size_probed() {
    let s = odd_scenario(Arch::X64, 5, 19041);
    let mut w = s.kernel();
    let (_, _, data, _) = layout_of(Arch::X64);
    w.kernel.write_ptr(data, 1025);
    let bytes = encode(&w.header, &w.kernel.build());
    let d = Dump::from_bytes("wrong.dmp", bytes).unwrap();
    let p = d.pool_tables().unwrap();
    assert!(
        matches!(p.size_source, SizeSource::Probed { exponent: 7, .. }),
        "{:?} {:?}",
        p.size_source,
        p.rejected_sizes
    );
    assert!(
        p.rejected_sizes[0].starts_with("PoolTrackTableSize 1025: only "),
        "{:?}",
        p.rejected_sizes
    );
    assert_eq!(rows(&d).len(), 6);
}

#[test]
fn probing_stops_at_the_table_even_when_another_follows() {
    // One processor; right after the global table's 129 entries, a second table with the same
    // tags at the same slots (as a per-processor table allocated next to it would be).
    let mut s = Scenario::new(Arch::X64, 5, 19041, 1, ImportPlacement::InInit);
    s.tags = Some(odd_global_tags());
    s.size_variable = false;
    let mut w = s.kernel();
    let (_, _, _, pool) = layout_of(Arch::X64);
    let next = pool + 0x1000 + TRACKER_ENTRIES * 0x38;
    let twin = tracker_table_like(
        Arch::X64,
        19041,
        TRACKER_ENTRIES,
        &odd_global_tags(),
        &odd_global_tags(),
    );
    w.kernel.write(next, &twin);
    let d = Dump::from_bytes("twin.dmp", encode(&w.header, &w.kernel.build())).unwrap();
    let p = d.pool_tables().unwrap();
    assert!(
        matches!(p.size_source, SizeSource::Probed { exponent: 7, .. }),
        "{:?} {:?}",
        p.size_source,
        p.rejected_sizes
    );
    assert_eq!(p.entries, 129);
    // The global table alone: None's 120 - 20 outstanding, not twice that.
    let none = p.snapshot.tags.iter().find(|t| t.tag == TAG_NONE).unwrap();
    assert_eq!(none.nonpaged, c(120, 20, 0x19000));
}

#[test]
fn inconsistent_entries_are_flagged_not_fatal() {
    const WRAP: u32 = 0x7061_7257; // 'Wrap'
    const NEGB: u32 = 0x6267_654E; // 'Negb'
                                   // Win10 1607 x64 (0x28 entries, 32-bit counters): a wrapped allocation counter.
    let mut s = Scenario::new(Arch::X64, 1, 14393, 1, ImportPlacement::InInit);
    let mut tags = odd_global_tags();
    tags.push(t(WRAP, (3, 0xFFFF_FFF0, 0x100), (0, 0, 0)));
    s.tags = Some(tags);
    let d = Dump::from_bytes("wrap.dmp", s.bytes().0).unwrap();
    let p = d.pool_tables().unwrap();
    assert_eq!(p.anomalies.len(), 1, "{:?}", p.anomalies);
    assert_eq!(p.anomalies[0].tag, WRAP);
    assert_eq!(
        p.anomalies[0].anomaly,
        AnomalyKind::FreesAboveAllocs {
            pool: PoolKind::NonPaged,
            allocs: 3,
            frees: 0xFFFF_FFF0,
            counters_32bit: true
        }
    );
    assert_eq!(p.snapshot.tags.len(), 7);
    let wrap = p.snapshot.tags.iter().find(|t| t.tag == WRAP).unwrap();
    assert_eq!((wrap.nonpaged.live(), wrap.nonpaged.bytes), (0, 0x100));

    // Win10 2004 x64 (0x38 entries): a byte total below zero, and one entry whose padding is
    // written (no tracker entry has that), in a table that is otherwise read as usual.
    let mut s = Scenario::new(Arch::X64, 5, 19041, 1, ImportPlacement::InInit);
    let mut tags = odd_global_tags();
    tags.push(t(NEGB, (5, 3, (-0x40i64) as u64), (0, 0, 0)));
    s.tags = Some(tags.clone());
    let mut w = s.kernel();
    let (_, _, _, pool) = layout_of(Arch::X64);
    let slots = tracker_slots(TRACKER_ENTRIES, &tags);
    let ddk = tags.iter().position(|t| t.tag == TAG_DDK).unwrap();
    w.kernel
        .write(pool + 0x1000 + slots[ddk] * 0x38 + 4, &[0x5A]);
    let d = Dump::from_bytes("neg.dmp", encode(&w.header, &w.kernel.build())).unwrap();
    let p = d.pool_tables().unwrap();
    assert!(matches!(
        p.size_source,
        SizeSource::Variable { value: 129, .. }
    ));
    let kinds: Vec<(u32, AnomalyKind)> = p
        .anomalies
        .iter()
        .map(|a| (a.tag, a.anomaly.clone()))
        .collect();
    assert_eq!(
        kinds,
        // In slot order.
        [
            (
                NEGB,
                AnomalyKind::BytesBelowZero {
                    pool: PoolKind::NonPaged,
                    bytes: -0x40
                }
            ),
            (
                TAG_DDK,
                AnomalyKind::NotAnEntry {
                    why: "padding at +0x4..+0x8 is not zero".into()
                }
            )
        ]
    );
    assert!(!p.snapshot.tags.iter().any(|t| t.tag == TAG_DDK));
    let negb = p.snapshot.tags.iter().find(|t| t.tag == NEGB).unwrap();
    assert_eq!(negb.nonpaged, c(5, 3, 0));
}

// ---------------------------------------------------------------------------------------------
// Header facts: time, uptime, what took the dump, how much of it is in the file.

#[test]
fn time_uptime_and_acquisition_come_from_the_header() {
    use drvaudit::dump::Acquisition;
    // 2021-02-21T01:38:22.9877657Z, the triage_x64 sample's SystemTime, and 38 min 41.1 s.
    const FT: u64 = 0x01D7_07F2_3DBB_3399;
    for arch in [Arch::X64, Arch::X86Pae] {
        let mut s = Scenario::new(arch, 5, 19041, 1, ImportPlacement::InInit);
        s.system_time = Some(FT);
        s.up_time = Some(23_211_047_238);
        let d = Dump::from_bytes("t.dmp", s.bytes().0).unwrap();
        let h = d.summary();
        assert_eq!(
            h.system_time.as_ref().map(|t| (t.filetime, t.utc.as_str())),
            Some((FT, "2021-02-21T01:38:22.9877657Z"))
        );
        assert_eq!(
            h.system_up_time.as_ref().map(|u| u.text.as_str()),
            Some("0d 00:38:41.1047238")
        );
        assert_eq!(h.acquisition, Acquisition::Crash { code: 0xE2 });
        let j = serde_json::to_value(report(&d)).unwrap();
        assert_eq!(
            j["header"]["system_time"]["utc"],
            "2021-02-21T01:38:22.9877657Z"
        );
        assert_eq!(j["header"]["acquisition"]["kind"], "crash");
    }
    let mut s = Scenario::new(Arch::X64, 6, 22621, 1, ImportPlacement::InInit);
    s.bugcheck = (0x161, [0, 0, 0, 0]);
    let d = Dump::from_bytes("live.dmp", s.bytes().0).unwrap();
    assert_eq!(
        d.summary().acquisition,
        Acquisition::LiveKernelDump {
            code: 0x161,
            name: "LIVE_SYSTEM_DUMP"
        }
    );
    assert_eq!(d.summary().system_time, None, "the PAGE fill is no time");
    let mut s = Scenario::new(Arch::X86Pae, 1, 7601, 1, ImportPlacement::InInit);
    s.bugcheck = (0, [0, 0, 0, 0]);
    s.comment = Some("LiveKD live system view".into());
    let d = Dump::from_bytes("livekd.dmp", s.bytes().0).unwrap();
    assert_eq!(d.summary().acquisition, Acquisition::LiveKd);
}

#[test]
fn a_dump_cut_short_says_how_much_of_it_is_there() {
    for (arch, dump_type) in [
        (Arch::X64, 1),
        (Arch::X64, 5),
        (Arch::X86Pae, 2),
        (Arch::X64, 8),
    ] {
        let s = Scenario::new(arch, dump_type, 19041, 1, ImportPlacement::InInit);
        let (bytes, _) = s.bytes();
        let whole = Dump::from_bytes("whole.dmp", bytes.clone()).unwrap();
        let c = whole.coverage().clone();
        assert!(!c.truncated, "{arch:?} {dump_type}: {c:?}");
        assert_eq!(c.pages_described, Some(c.pages_held));
        // Cut the last three pages off.
        let cut = Dump::from_bytes("cut.dmp", bytes[..bytes.len() - 0x3000].to_vec()).unwrap();
        let k = cut.coverage();
        assert!(k.truncated, "{arch:?} {dump_type}");
        assert_eq!(
            (k.pages_described, k.pages_held),
            (c.pages_described, c.pages_held - 3),
            "{arch:?} {dump_type}"
        );
    }
}

#[test]
fn a_dump_in_memory_reads_as_the_same_file() {
    let s = Scenario::new(Arch::X64, 5, 19041, 2, ImportPlacement::InInit);
    let (bytes, _) = s.bytes();
    let (_dir, path) = to_file(&bytes, "same.dmp");
    let from_file = report(&Dump::open(&path).unwrap());
    let mut from_bytes = report(&Dump::from_bytes(&path, bytes).unwrap());
    from_bytes.path = from_file.path.clone();
    assert_eq!(from_bytes, from_file);
}
