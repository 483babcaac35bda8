//! Dumps built around the compiled fixture drivers of `testdata/bin/` (C drivers built here
//! with gcc and clang): `untagged_*` imports ExAllocatePool, ExFreePoolWithTag,
//! KeInitializeEvent and _wcsnicmp from ntoskrnl.exe and keeps DriverEntry in a discardable
//! INIT section; `ntoskrnl_stub_*` exports them. The writer loads both the way the Windows
//! loader would (binding the driver's IAT to the stub's exports), places them in a kernel
//! address space and writes a dump; the reader must give back exactly the same modules, bytes,
//! imports and pool figures.

use std::path::PathBuf;

use crate::support::dumpwriter::*;
use drvaudit::dump::{recover_imports, Dump, ImportSource, RecoveredImport};

fn fixture(name: &str) -> Option<Vec<u8>> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/bin")
        .join(name);
    match std::fs::read(&p) {
        Ok(b) => Some(b),
        Err(_) => {
            eprintln!("skipping: fixture {} not found", p.display());
            None
        }
    }
}

/// The four imports in IAT order, as (name, stub ordinal).
const IMPORTS: [(&str, u16); 4] = [
    ("ExAllocatePool", 1),
    ("ExFreePoolWithTag", 10),
    ("KeInitializeEvent", 14),
    ("_wcsnicmp", 18),
];

fn expected(iat: u32, ps: u32, how: ImportSource) -> Vec<RecoveredImport> {
    IMPORTS
        .iter()
        .enumerate()
        .map(|(i, &(name, ord))| RecoveredImport {
            iat_rva: iat + i as u32 * ps,
            dll: "ntoskrnl.exe".into(),
            name: Some(name.into()),
            ordinal: if how == ImportSource::FromExportMatch {
                Some(ord)
            } else {
                None
            },
            how,
            note: None,
        })
        .collect()
}

struct Case {
    scenario: Scenario,
    driver: &'static str,
    stub: &'static str,
    sizes: (u32, u32),
    nt_holes: Vec<(u32, u32)>,
    holes: Vec<(u32, u32)>,
    imports: Vec<RecoveredImport>,
}

fn run(mut case: Case) {
    let (Some(drv), Some(nt)) = (fixture(case.driver), fixture(case.stub)) else {
        return;
    };
    case.scenario.images = Some((drv, nt));
    let (bytes, w) = case.scenario.bytes();
    let (_dir, path) = to_file(&bytes, "fixture.dmp");
    let d = Dump::open(&path).expect("open");
    let (nt_base, drv_base, _, _) = layout_of(case.scenario.arch);
    let mods = d.modules().expect("modules");
    let got: Vec<(&str, u64, u32)> = mods
        .iter()
        .map(|m| (m.name.as_str(), m.base, m.size))
        .collect();
    assert_eq!(
        got,
        [
            ("ntoskrnl.exe", nt_base, case.sizes.0),
            (GUID_DRIVER, drv_base, case.sizes.1)
        ]
    );
    let nt_c = d.carve(&mods[0]);
    // The x86 stub has a discardable .reloc section, dropped like INIT.
    assert_eq!(nt_c.holes, case.nt_holes);
    let mut nt_expected = w.nt.bytes.clone();
    for &(rva, len) in &case.nt_holes {
        nt_expected[rva as usize..(rva + len) as usize].fill(0);
    }
    assert!(nt_c.bytes == nt_expected);
    let drv_c = d.carve(&mods[1]);
    assert_eq!(drv_c.holes, case.holes);
    assert!(drv_c.bytes == w.expected_driver_bytes());
    assert!(
        drv_c
            .notes
            .iter()
            .any(|n| n.contains("(INIT: discardable, freed after load (expected))")),
        "{:?}",
        drv_c.notes
    );
    let imports = recover_imports(&[(mods[0].clone(), nt_c), (mods[1].clone(), drv_c)]);
    assert_eq!(imports[1], case.imports);
    assert_eq!(imports[0], []);
    let pool = d.pool_usage().expect("pool");
    assert_eq!(pool.tags.len(), 4);
    let none = pool.tags.iter().find(|t| t.tag == TAG_NONE).unwrap();
    let (a, f, b) = if case.scenario.processors > 1 {
        (150, 25, 0x1F400)
    } else {
        (120, 20, 0x19000)
    };
    assert_eq!(
        (
            none.nonpaged.allocs,
            none.nonpaged.frees,
            none.nonpaged.bytes
        ),
        (a, f, b)
    );
}

#[test]
fn gcc_x86_full_dump_import_directory_survives() {
    run(Case {
        scenario: Scenario::new(Arch::X86, 1, 7601, 1, ImportPlacement::InRdata),
        driver: "untagged_gcc_x86_O2.sys",
        stub: "ntoskrnl_stub_x86.exe",
        nt_holes: vec![(0x4000, 0x1000)],
        sizes: (0x5000, 0x7000),
        // INIT, the .bss page left out of the dump, and the discardable .reloc.
        holes: vec![(0x2000, 0x1000), (0x4000, 0x1000), (0x6000, 0x1000)],
        imports: expected(0x503C, 4, ImportSource::FromImportDirectory),
    });
}

#[test]
fn clang_x86_pae_summary_dump_directory_wiped() {
    let mut s = Scenario::new(Arch::X86Pae, 2, 17763, 2, ImportPlacement::InRdata);
    s.wipe_import_directory = true;
    run(Case {
        scenario: s,
        driver: "untagged_clang_x86_O2.sys",
        stub: "ntoskrnl_stub_x86.exe",
        nt_holes: vec![(0x4000, 0x1000)],
        sizes: (0x5000, 0x6000),
        // .data (left out), INIT and .reloc (discardable).
        holes: vec![(0x3000, 0x3000)],
        imports: expected(0x20CC, 4, ImportSource::FromExportMatch),
    });
}

#[test]
fn clang_x64_bitmap_dump_import_directory_survives() {
    run(Case {
        scenario: Scenario::new(Arch::X64, 5, 19041, 2, ImportPlacement::InRdata),
        driver: "untagged_clang_x64_O2.sys",
        stub: "ntoskrnl_stub_x64.exe",
        nt_holes: vec![],
        sizes: (0x4000, 0x5000),
        holes: vec![(0x3000, 0x2000)],
        imports: expected(0x20E0, 8, ImportSource::FromImportDirectory),
    });
}

#[test]
fn gcc_x64_range_list_dump_found_by_scan() {
    let mut s = Scenario::new(Arch::X64, 8, 26100, 1, ImportPlacement::InRdata);
    s.wipe_import_directory = true;
    s.wipe_iat_directory = true;
    run(Case {
        scenario: s,
        driver: "untagged_gcc_x64_O2.sys",
        stub: "ntoskrnl_stub_x64.exe",
        nt_holes: vec![],
        sizes: (0x4000, 0x8000),
        holes: vec![(0x2000, 0x1000), (0x6000, 0x1000)],
        imports: expected(0x7050, 8, ImportSource::FromExportMatch),
    });
}

#[test]
fn clang_arm64_bitmap_dump_directory_wiped() {
    let mut s = Scenario::new(Arch::Arm64, 6, 22000, 2, ImportPlacement::InRdata);
    s.wipe_import_directory = true;
    s.size_variable = false;
    run(Case {
        scenario: s,
        driver: "untagged_clang_arm64_O2.sys",
        stub: "ntoskrnl_stub_arm64.exe",
        nt_holes: vec![],
        sizes: (0x4000, 0x5000),
        holes: vec![(0x3000, 0x2000)],
        imports: expected(0x20E0, 8, ImportSource::FromExportMatch),
    });
}
