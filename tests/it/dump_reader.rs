//! Dumps written by the test-only writer (`tests/it/support/dumpwriter.rs`, built from the
//! documented formats) and read back: module list, carved bytes, recovered imports and pool
//! figures are asserted exactly, for every architecture and physical-memory layout.

use crate::support::dumpwriter::*;
use drvaudit::dump::{
    recover_imports, render_text, report, Arch as RArch, Dump, ImportSource, RecoveredImport,
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
