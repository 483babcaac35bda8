//! Seeds for the `dump` fuzz target, written by the project's own dump writer (the dumps every
//! reader test uses: each architecture and physical layout, fixture drivers bound to the kernel
//! stub, pool tracker tables). Run by `fuzz/tools/seeds.py` as
//! `DRVAUDIT_FUZZ_SEEDS=DIR cargo test --test it -- --ignored fuzz_seeds`; without the
//! variable it does nothing.

use crate::common::testdata;
use crate::support::dumpwriter::*;

#[test]
#[ignore = "writes fuzz seeds when DRVAUDIT_FUZZ_SEEDS names a folder"]
fn write_dump_seeds() {
    let Some(dir) = std::env::var_os("DRVAUDIT_FUZZ_SEEDS") else {
        eprintln!("SKIPPED: DRVAUDIT_FUZZ_SEEDS is not set");
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let bin = |n: &str| std::fs::read(testdata(&format!("bin/{n}"))).unwrap();
    // (name, scenario: arch, dump type, build, processors, placement; fixture images)
    type Case<'a> = (&'a str, Scenario, Option<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        (
            "x86-full-7601",
            Scenario::new(Arch::X86, 1, 7601, 1, ImportPlacement::InRdata),
            Some(("untagged_gcc_x86_O2.sys", "ntoskrnl_stub_x86.exe")),
        ),
        (
            "x86pae-kernel-17763",
            Scenario::new(Arch::X86Pae, 2, 17763, 2, ImportPlacement::InInit),
            None,
        ),
        (
            "x64-bitmap-19041",
            Scenario::new(Arch::X64, 5, 19041, 2, ImportPlacement::InRdata),
            Some(("untagged_clang_x64_O2.sys", "ntoskrnl_stub_x64.exe")),
        ),
        (
            "x64-rangelist-26100",
            Scenario::new(Arch::X64, 8, 26100, 1, ImportPlacement::InInit),
            None,
        ),
        (
            "arm64-bitmap-22000",
            Scenario::new(Arch::Arm64, 6, 22000, 2, ImportPlacement::InRdata),
            Some(("untagged_clang_arm64_O2.sys", "ntoskrnl_stub_arm64.exe")),
        ),
    ];
    for (name, mut s, images) in cases {
        if let Some((drv, nt)) = images {
            s.images = Some((bin(drv), bin(nt)));
        }
        let (bytes, _) = s.bytes();
        std::fs::write(dir.join(format!("{name}.dmp")), bytes).unwrap();
    }
}
