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

// ---------------------------------------------------------------------------------------------
// Checked against testdata/truth/dumps, derived from the same files by derive.py (plain struct
// reads, no drvaudit code).

fn truth(name: &str) -> Vec<Vec<String>> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/truth/dumps")
        .join(name);
    let text = std::fs::read_to_string(&p).expect("truth file");
    text.lines()
        .skip(1)
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).expect(s)
}

/// The header row of `file` in headers.tsv.
fn header_truth(file: &str) -> Vec<String> {
    truth("headers.tsv")
        .into_iter()
        .find(|r| r[0] == file)
        .expect("row")
}

/// Every driver of a triage dump's list: path, base, SizeOfImage, CheckSum, TimeDateStamp, and
/// the symbol-server key the pipeline matches scanned files by.
fn check_triage_modules(file: &str, truth_file: &str) -> Option<Vec<drvaudit::dump::LoadedModule>> {
    let p = sample(file)?;
    let d = Dump::open(&p).expect("open");
    let mods = d.modules().expect("driver list");
    let want = truth(truth_file);
    assert_eq!(mods.len(), want.len());
    for (m, w) in mods.iter().zip(&want) {
        assert_eq!(m.full_path, w[1], "#{}", w[0]);
        assert_eq!(
            (m.base, u64::from(m.size), m.checksum, m.time_date_stamp),
            (
                hex(&w[2]),
                hex(&w[3]),
                Some(hex(&w[4]) as u32),
                Some(hex(&w[5]) as u32)
            ),
            "#{} {}",
            w[0],
            w[1]
        );
        assert_eq!(
            m.symbol_key(),
            Some(format!("{:08X}{:x}", hex(&w[5]), hex(&w[3])))
        );
    }
    // A triage dump holds no images: the plan says so for every module, none is dropped.
    let images = d.images(&mods);
    assert_eq!(images.plan().len(), mods.len());
    assert!(images
        .plan()
        .iter()
        .all(|p| matches!(p, drvaudit::dump::CarvePlan::NoImage { .. })));
    let s = d.summary();
    let h = header_truth(file);
    assert_eq!(
        s.acquisition,
        drvaudit::dump::Acquisition::Crash {
            code: hex(&h[1]) as u32
        }
    );
    assert_eq!(s.system_time.as_ref().unwrap().utc, h[6]);
    assert_eq!(
        s.system_up_time.as_ref().unwrap().ticks_100ns.to_string(),
        h[7]
    );
    let c = d.coverage();
    assert!(!c.truncated, "{c:?}");
    assert_eq!(c.file_len, hex(&h[11]));
    Some(mods)
}

#[test]
fn triage_x64_modules_match_the_truth() {
    let Some(mods) = check_triage_modules("triage_x64.dmp", "triage_x64_drivers.tsv") else {
        return;
    };
    assert_eq!(mods.len(), 151);
    assert_eq!(mods[0].name, "ntoskrnl.exe");
    assert_eq!(mods[150].name, "rdpbus.sys");
    // TimeDateStamps the derivation cross-checked against the PE headers held in data blocks.
    assert_eq!(
        (mods[0].time_date_stamp, mods[0].size, mods[0].checksum),
        (Some(0x0D83_33E6), 0x104_6000, Some(0xA5_938C))
    );
    let amdppm = mods
        .iter()
        .find(|m| m.name.eq_ignore_ascii_case("amdppm.sys"))
        .unwrap();
    assert!(amdppm.contains(0xfffff8048b58334c));
}

#[test]
fn triage_arm64_modules_match_the_truth() {
    let Some(mods) = check_triage_modules("triage_arm64.dmp", "triage_arm64_drivers.tsv") else {
        return;
    };
    assert_eq!(mods.len(), 245);
    assert_eq!(
        (mods[0].name.as_str(), mods[244].name.as_str()),
        ("ntoskrnl.exe", "terminpt.sys")
    );
    assert_eq!(mods[244].time_date_stamp, Some(0xF0F0_74C9));
}

#[test]
fn dumpit_truncated_full_dump_is_a_truncated_live_acquisition_with_its_time() {
    let Some(p) = sample("dumpit_win10_x64_truncated.dmp") else {
        return;
    };
    let d = Dump::open(&p).expect("open");
    let h = header_truth("dumpit_win10_x64_truncated.dmp");
    let s = d.summary();
    assert_eq!(h[2], "MATT");
    assert_eq!(
        s.acquisition,
        drvaudit::dump::Acquisition::DumpIt {
            parameters: ["MOON", "SOLS", "MOON", "SOLS"].map(String::from)
        }
    );
    assert_eq!(s.acquisition.is_live(), Some(true));
    assert_eq!(s.system_time.as_ref().unwrap().utc, h[6]);
    assert_eq!(
        s.system_time.as_ref().unwrap().utc,
        "2024-10-12T12:57:59.7110784Z"
    );
    assert_eq!(
        s.system_up_time.as_ref().map(|u| u.ticks_100ns.to_string()),
        Some(h[7].clone())
    );
    let c = d.coverage();
    assert!(c.truncated);
    assert_eq!(
        (
            c.pages_described,
            c.pages_held,
            c.file_len,
            c.required_dump_space
        ),
        (
            Some(hex(&h[9])),
            hex(&h[10]),
            hex(&h[11]),
            Some(hex(&h[12]))
        )
    );
    assert_eq!(
        c.describe(),
        "truncated: 0x2 of 0x7fe86 described physical pages (0.000382%) are in the file of 0x4000 bytes"
    );
    let r = report(&d);
    assert_eq!(r.header.coverage, *c);
    let text = drvaudit::dump::render_text(&r);
    assert!(text.contains("live acquisition by DumpIt"), "{text}");
    assert!(text.contains("2024-10-12T12:57:59.7110784Z"), "{text}");
    assert!(text.contains("truncated"), "{text}");
}

#[test]
fn livekd_headers_are_live_acquisitions_with_their_time() {
    for file in [
        "livekd_win7_x86pae_header.raw",
        "livekd_win10_x64_header.raw",
    ] {
        let Some(p) = sample(file) else { return };
        let d = Dump::open(&p).expect("open");
        let h = header_truth(file);
        let s = d.summary();
        assert_eq!(s.acquisition, drvaudit::dump::Acquisition::LiveKd);
        assert_eq!(s.system_time.as_ref().unwrap().utc, h[6], "{file}");
        assert_eq!(s.system_up_time, None, "SystemUpTime holds the PAGE fill");
        let c = d.coverage();
        assert!(c.truncated, "header only");
        assert_eq!(
            (c.pages_described, c.pages_held),
            (Some(hex(&h[9])), 0),
            "{file}"
        );
    }
}
