//! The real sample dumps of crash-dumps.md §8: two triage dumps and two header-only LiveKD
//! files. Expected values are the ones listed in §8.2/§8.3 (rizin's test db and direct reads).
//!
//! The files are never committed. They are read from `$DRVAUDIT_TESTDATA` or, by default,
//! `../shared/corpus/dumps` next to the crate; without them every test here prints why it is
//! skipped and passes.

use std::path::PathBuf;

use drvaudit::dump::{report, Arch, Dump};

fn sample(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("DRVAUDIT_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/dumps")
        });
    let p = dir.join(name);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!(
            "skipping: sample dump {} not found (set DRVAUDIT_TESTDATA to the dumps directory)",
            p.display()
        );
        None
    }
}

#[test]
fn triage_x64_header_and_driver_list() {
    let Some(p) = sample("triage_x64.dmp") else {
        return;
    };
    let d = Dump::open(&p).expect("open triage_x64.dmp");
    let s = d.summary();
    assert_eq!(s.arch, Arch::X64);
    assert_eq!(s.dump_type, 4);
    assert_eq!(s.major_version, 0xF);
    assert_eq!(s.build, 19041);
    assert_eq!(s.directory_table_base, 0x1ad000);
    assert_eq!(s.pfn_database, 0xfffff8047c6fc500);
    assert_eq!(s.ps_loaded_module_list, 0xfffff8047c62a390);
    assert_eq!(s.ps_active_process_head, 0xfffff8047c61e200);
    assert_eq!(s.processors, 16);
    assert_eq!(s.bugcheck_code, 0x1000007e);
    assert_eq!(
        s.bugcheck_parameters,
        [
            0xffffffffc0000005,
            0xfffff8048b58334c,
            0xffff850429891ee8,
            0xffff850429891720
        ]
    );
    assert_eq!(s.kd_debugger_data_block, Some(0xfffff8047c600b20));
    assert_eq!(s.required_dump_space, 0x197915);
    assert_eq!(s.mini_dump_fields, 0xCFF);

    let k = d.kdbg().expect("triage KDBG copy");
    assert_eq!(k.size, 0x380);
    assert_eq!(k.kern_base, 0xfffff8047ba00000);
    assert_eq!(k.ps_loaded_module_list, 0xfffff8047c62a390);
    assert_eq!(k.pool_track_table, 0xfffff8047c6168a8);
    assert_eq!(k.pte_base, Some(0xfffffd8000000000));

    let mods = d.modules().expect("driver list");
    assert_eq!(mods.len(), 151);
    let first: Vec<(&str, &str, u64, u32)> = mods[..3]
        .iter()
        .map(|m| (m.name.as_str(), m.full_path.as_str(), m.base, m.size))
        .collect();
    assert_eq!(
        first,
        [
            (
                "ntoskrnl.exe",
                r"\SystemRoot\system32\ntoskrnl.exe",
                0xfffff8047ba00000,
                0x1046000
            ),
            (
                "hal.dll",
                r"\SystemRoot\system32\hal.dll",
                0xfffff80479440000,
                0x6000
            ),
            (
                "kd.dll",
                r"\SystemRoot\system32\kd.dll",
                0xfffff80479450000,
                0xb000
            ),
        ]
    );
    assert_eq!(
        (mods[150].name.as_str(), mods[150].base),
        ("rdpbus.sys", 0xfffff8048b680000)
    );
    // The bugcheck address is inside amdppm.sys (§8.1).
    let pc = s.bugcheck_parameters[1];
    let hit = mods
        .iter()
        .find(|m| pc >= m.base && pc < m.base + u64::from(m.size))
        .expect("module holding the fault");
    assert_eq!(hit.name.to_ascii_lowercase(), "amdppm.sys");

    // The ntoskrnl header page is in a data block; the rest of the image is not.
    let c = d.carve(&mods[0]);
    assert_eq!(c.bytes.len(), 0x1046000);
    assert_eq!(&c.bytes[..2], b"MZ");
    assert!(c.present(0) && !c.holes.is_empty());

    // JSON carries addresses as hex strings (kernel VAs do not survive a trip through doubles);
    // a Comment holding only the PAGE fill is empty.
    let j = serde_json::to_value(report(&d)).expect("json");
    assert_eq!(j["header"]["kd_debugger_data_block"], "0xfffff8047c600b20");
    assert_eq!(j["header"]["bugcheck_parameters"][1], "0xfffff8048b58334c");
    assert_eq!(j["modules"][0]["base"], "0xfffff8047ba00000");
    assert_eq!(j["header"]["comment"], "");

    let err = d
        .pool_usage()
        .expect_err("no pool table in a triage dump")
        .to_string();
    assert!(
        err.contains("triage dump does not contain the pool tracker table"),
        "{err}"
    );
    assert!(err.contains("triage_x64.dmp"), "{err}");
}

#[test]
fn triage_arm64_header_and_driver_list() {
    let Some(p) = sample("triage_arm64.dmp") else {
        return;
    };
    let d = Dump::open(&p).expect("open triage_arm64.dmp");
    let s = d.summary();
    assert_eq!(s.arch, Arch::Arm64);
    assert_eq!(s.machine, 0xAA64);
    assert_eq!(s.dump_type, 4);
    assert_eq!(s.build, 22000);
    assert_eq!(s.directory_table_base, 0x946aa000);
    assert_eq!(s.pfn_database, 0xfffff803f3b19960);
    assert_eq!(s.ps_loaded_module_list, 0xfffff803f3a2aa20);
    assert_eq!(s.ps_active_process_head, 0xfffff803f3a1d1c0);
    assert_eq!(s.processors, 8);
    assert_eq!(s.bugcheck_code, 0x1c8);
    assert_eq!(s.bugcheck_parameters, [0x1b58, 0xfffff803f3a20860, 0, 0]);
    assert_eq!(s.kd_debugger_data_block, Some(0xfffff803f3a00d00));
    assert_eq!(s.required_dump_space, 0x161714);

    let k = d.kdbg().expect("triage KDBG copy");
    assert_eq!(
        (k.size, k.kern_base, k.pool_track_table),
        (0x380, 0xfffff803f2e00000, 0xfffff803f3a169f8)
    );
    assert_eq!(k.pte_base, Some(0xffffa88000000000));

    let mods = d.modules().expect("driver list");
    assert_eq!(mods.len(), 245);
    let first: Vec<(&str, u64, u32)> = mods[..3]
        .iter()
        .map(|m| (m.name.as_str(), m.base, m.size))
        .collect();
    assert_eq!(
        first,
        [
            ("ntoskrnl.exe", 0xfffff803f2e00000, 0x103e000),
            ("hal.dll", 0xfffff803f0110000, 0x5000),
            ("kd.dll", 0xfffff803f0120000, 0xb000)
        ]
    );
    assert_eq!(
        (mods[244].name.as_str(), mods[244].base),
        ("terminpt.sys", 0xfffff803fa230000)
    );
    assert!(d.pool_usage().is_err());
}

#[test]
fn livekd_win7_x86_pae_header() {
    let Some(p) = sample("livekd_win7_x86pae_header.raw") else {
        return;
    };
    let d = Dump::open(&p).expect("open header-only LiveKD file");
    let s = d.summary();
    assert_eq!(s.arch, Arch::X86Pae);
    assert!(!s.is_64bit_header);
    assert_eq!(s.dump_type, 1);
    assert_eq!(s.build, 7601);
    assert_eq!(s.directory_table_base, 0xbf62f2e0);
    assert_eq!(s.pfn_database, 0x829b9700);
    assert_eq!(s.ps_loaded_module_list, 0x82999850);
    assert_eq!(s.ps_active_process_head, 0x82991f18);
    assert_eq!((s.machine, s.processors, s.bugcheck_code), (0x14C, 2, 0));
    assert_eq!(s.kd_debugger_data_block, None, "the PAGE fill means unset");
    assert_eq!(s.comment, "LiveKD live system view");
    assert_eq!(d.physical_pages(), 0);
    let r = report(&d);
    assert_eq!(
        r.header.directory_table_base_masked, 0xbf62f2e0,
        "PAE keeps the 32-byte aligned PDPT address"
    );
    assert!(
        d.notices()
            .iter()
            .any(|n| n.contains("claims 0xbff7d pages but the file holds only 0x0")),
        "{:?}",
        d.notices()
    );
    assert!(d.modules().is_err());
    assert!(d.pool_usage().is_err());
}

#[test]
fn livekd_win10_x64_header() {
    let Some(p) = sample("livekd_win10_x64_header.raw") else {
        return;
    };
    let d = Dump::open(&p).expect("open header-only LiveKD file");
    let s = d.summary();
    assert_eq!(s.arch, Arch::X64);
    assert_eq!(s.dump_type, 1);
    assert_eq!(s.build, 9200);
    assert_eq!(s.directory_table_base, 0x3e6b1a000);
    assert_eq!(s.pfn_database, 0xffffdf8000000000);
    assert_eq!(s.ps_loaded_module_list, 0xfffff80510a2a2b0);
    assert_eq!(s.ps_active_process_head, 0xfffff80510a1e060);
    assert_eq!((s.machine, s.processors), (0x8664, 8));
    assert_eq!(s.kd_debugger_data_block, Some(0xfffff80510a00b20));
    assert_eq!(d.physical_pages(), 0);
    assert!(
        d.notices()
            .iter()
            .any(|n| n.contains("claims 0x3ffc6f pages")),
        "{:?}",
        d.notices()
    );
    let text = drvaudit::dump::render_text(&report(&d));
    assert!(text.contains("LiveKD live system view"));
    assert!(text.contains("unavailable"));
}

/// The real triage dumps with corrupted header, triage header, driver list and block table:
/// no panic, bounded time.
#[test]
fn corrupted_triage_dumps_never_panic() {
    for name in ["triage_x64.dmp", "triage_arm64.dmp"] {
        let Some(p) = sample(name) else { return };
        let clean = std::fs::read(&p).expect("read sample");
        let dir = tempfile::tempdir().expect("temp dir");
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..40 {
            let mut b = clean.clone();
            for _ in 0..12 {
                // The structures that steer parsing sit in the first 0x20000 bytes.
                let at = (next() as usize) % 0x20000;
                if round % 2 == 0 {
                    b[at] = next() as u8;
                } else {
                    let at = at & !3;
                    b[at..at + 4].copy_from_slice(&(next() as u32).to_le_bytes());
                }
            }
            let path = dir.path().join("corrupt.dmp");
            std::fs::write(&path, &b).expect("write");
            let t = std::time::Instant::now();
            if let Ok(d) = Dump::open(&path) {
                if let Ok(mods) = d.modules() {
                    for m in mods.iter().take(4) {
                        let _ = d.carve(m);
                    }
                }
                let _ = d.pool_usage();
                let _ = report(&d);
            }
            assert!(
                t.elapsed() < std::time::Duration::from_secs(5),
                "round {round} took {:?}",
                t.elapsed()
            );
        }
    }
}
