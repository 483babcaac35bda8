//! Hostile packages (issues 18 and 19): the archives `testdata/regress/make_hostile.py` builds
//! from the structures the issues describe, and variants built here from them. Each must finish
//! with its notice, the rest of the package and of the run still reported, and nothing of a
//! panic on standard error.

use std::path::PathBuf;
use std::process::Command;

use drvaudit::package::{self, Limits, Member, PackageKind, ProblemKind, MAX_EXPANDED, MAX_MEMBER};
use drvaudit::report::NoticeKind;

use crate::common::*;

fn regress(rel: &str) -> PathBuf {
    testdata(&format!("regress/{rel}"))
}

fn drvaudit_cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_drvaudit"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What `read_members` hands over: (member paths, the largest member, total bytes), problems.
fn members(kind: PackageKind, bytes: &[u8]) -> ((Vec<String>, usize, u64), Vec<package::Problem>) {
    let mut paths = Vec::new();
    let (mut largest, mut total) = (0, 0u64);
    let problems = package::read_members(kind, bytes, &package::is_driver, &mut |m: Member| {
        largest = largest.max(m.bytes.len());
        total += m.bytes.len() as u64;
        paths.push(m.path);
    })
    .unwrap();
    ((paths, largest, total), problems)
}

/// The defect of issue 18 is still in the cab crate release drvaudit uses (mdsteele/rust-cab
/// issue 41, fixed by pull request 42, unreleased): when this test fails, a release has the
/// fix and the check in `package::cabinet::check_member` may go.
#[test]
fn the_cab_crate_still_panics_on_issue_18() {
    let bytes = std::fs::read(regress("cab/issue18-empty-folder.cab")).unwrap();
    let panicked = std::panic::catch_unwind(|| {
        let mut cab = cab::Cabinet::new(std::io::Cursor::new(&bytes[..])).unwrap();
        let _ = cab.read_file("drivers\\amd64\\clean.sys");
    })
    .is_err();
    assert!(
        panicked,
        "cab reads issue 18's cabinet without panicking now"
    );
}

/// Issue 18: each driver in the folder without data blocks is named as a malformed member,
/// nothing of a panic reaches standard error (even with RUST_BACKTRACE=1), and the sound
/// member of the other cabinet and the other inputs are still reported.
#[test]
fn issue_18_cabinet_names_its_members_and_prints_no_panic() {
    let (code, stdout, stderr) = drvaudit_cli(
        &[
            "scan",
            "--no-progress",
            "--oneline",
            "testdata/regress/cab/issue18-empty-folder.cab",
            "testdata/regress/cab/issue18-two-folders.cab",
            "testdata/packages/pkg.zip",
        ],
        &[("RUST_BACKTRACE", "1")],
    );
    assert_eq!(code, 2, "a malformed member makes the audit incomplete");
    for text in [&stdout, &stderr] {
        assert!(!text.contains("panicked"), "{text}");
        assert!(!text.contains("stack backtrace"), "{text}");
        assert!(!text.contains("drvaudit bug"), "{text}");
    }
    for member in ["clean.sys", "untagged.sys"] {
        let line = format!(
            "testdata/regress/cab/issue18-empty-folder.cab:drivers/amd64/{member}: error: \
             malformed member: its data"
        );
        assert!(stderr.contains(&line), "{line}\n{stderr}");
    }
    assert!(stderr.contains(
        "testdata/regress/cab/issue18-two-folders.cab:drivers/amd64/untagged.sys: error: \
         malformed member: its data (offset 0x0, 7609 bytes) lies past the end of its folder's \
         0 bytes of uncompressed data (0 data blocks)"
    ));
    // The sound member of the second cabinet and both drivers of pkg.zip.
    for member in [
        "issue18-two-folders.cab:drivers/amd64/clean.sys: note[DRV3007]",
        "pkg.zip:drivers/amd64/clean.sys: note[DRV3007]",
        "pkg.zip:drivers/amd64/untagged.sys@0x1035: error[DRV1001]",
    ] {
        assert!(stdout.contains(member), "{member}\n{stdout}");
    }

    // The same through the library: one notice per bad member, of kind Malformed.
    let report = scan_paths(&[regress("cab/issue18-empty-folder.cab")]);
    let subjects: Vec<_> = report
        .notices
        .iter()
        .filter(|n| n.kind == NoticeKind::Malformed)
        .map(|n| n.subject.rsplit(':').next().unwrap().to_string())
        .collect();
    // The damaged name ending `.inf` is read too: a package's INFs are part of its audit.
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    assert!(subjects[0].ends_with(".sys.inf"), "{subjects:?}");
    assert_eq!(
        subjects[1..],
        ["drivers/amd64/clean.sys", "drivers/amd64/untagged.sys"]
    );
}

/// The other ways cab 0.6.0 would index past its data: a member past its folder's last block,
/// a stored block whose sizes differ. Each is that member's notice.
#[test]
fn cabinet_members_past_their_data_are_malformed() {
    for (file, expect) in [
        (
            "cab/offset-past-folder.cab",
            "malformed member: its data (offset 0x40, 16 bytes) lies past the end of its \
             folder's 16 bytes of uncompressed data (1 data block)",
        ),
        (
            "cab/stored-size-mismatch.cab",
            "cabinet directory: folder 0, data block 0 at offset 0x46: stored block of 8 bytes \
             claims 4096 uncompressed",
        ),
    ] {
        let bytes = std::fs::read(regress(file)).unwrap();
        let ((paths, _, _), problems) = members(PackageKind::Cab, &bytes);
        assert!(paths.is_empty(), "{file}");
        assert_eq!(problems.len(), 1, "{file}: {problems:?}");
        assert_eq!(problems[0].kind, ProblemKind::Malformed);
        assert_eq!(problems[0].message, expect, "{file}");
    }
}

/// Forty entries over the bytes of one cabinet member (other names, or the same name again):
/// the member once, the forty in one notice.
#[test]
fn overlapping_cabinet_members_are_expanded_once() {
    let bytes = std::fs::read(regress("cab/overlap-names.cab")).unwrap();
    let ((paths, _, _), problems) = members(PackageKind::Cab, &bytes);
    assert_eq!(paths, ["clean.sys"]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].message.starts_with(
        "hostile structure: 40 member(s) overlap the stored data of an earlier member"
    ));
}

/// The local header and deflate stream of `issue19-overlap-200.zip`'s one member, and its
/// central-directory entry's fixed part (crc, sizes), to build variants from.
struct ZipMember {
    local: Vec<u8>,
    crc: u32,
    compressed: u32,
    size: u32,
}

fn issue_19_member() -> ZipMember {
    let z = std::fs::read(regress("zip/issue19-overlap-200.zip")).unwrap();
    let u16_at = |o: usize| u16::from_le_bytes([z[o], z[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes([z[o], z[o + 1], z[o + 2], z[o + 3]]);
    assert_eq!(u32_at(0), 0x0403_4b50);
    let compressed = u32_at(18);
    let local_len = 30 + u16_at(26) + u16_at(28) + compressed as usize;
    ZipMember {
        local: z[..local_len].to_vec(),
        crc: u32_at(14),
        compressed,
        size: u32_at(22),
    }
}

/// A zip of `copies` separate copies of the member (each its own local header), and `entries`
/// central-directory entries pointing at them in turn (more entries than copies overlap).
fn zip_of(m: &ZipMember, copies: usize, entries: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offsets = Vec::new();
    for _ in 0..copies {
        offsets.push(out.len() as u32);
        out.extend_from_slice(&m.local);
    }
    let cd_start = out.len() as u32;
    for i in 0..entries {
        let name = format!("bomb/{i:04}.sys");
        out.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        for v in [20u16, 20, 0, 8, 0, 0x5021] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [m.crc, m.compressed, m.size] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [name.len() as u16, 0, 0, 0, 0] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&offsets[i % copies].to_le_bytes());
        out.extend_from_slice(name.as_bytes());
    }
    let cd_len = out.len() as u32 - cd_start;
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    for v in [0u16, 0, entries as u16, entries as u16] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&cd_len.to_le_bytes());
    out.extend_from_slice(&cd_start.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// Issue 19: 200 central-directory entries on one 16 MiB deflate member. The member is
/// expanded once (16 MiB held, 16 MiB decompressed in all), the 199 others are one notice; with
/// 2 and 2,000 entries the same.
#[test]
fn overlapping_zip_entries_are_one_notice_and_one_expansion() {
    let bytes = std::fs::read(regress("zip/issue19-overlap-200.zip")).unwrap();
    let m = issue_19_member();
    assert_eq!(m.size, 16 << 20);
    assert_eq!(
        zip_of(&m, 1, 200),
        bytes,
        "the variants are built like the committed file"
    );
    for entries in [2, 200, 2000] {
        let zip = zip_of(&m, 1, entries);
        let ((paths, largest, total), problems) = members(PackageKind::Zip, &zip);
        assert_eq!(paths, ["bomb/0000.sys"], "{entries} entries");
        assert_eq!((largest, total), (16 << 20, 16 << 20));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].kind, ProblemKind::Malformed);
        assert!(
            problems[0].message.starts_with(&format!(
                "hostile structure: {} member(s) overlap the stored data of an earlier member",
                entries - 1
            )),
            "{}",
            problems[0].message
        );
    }
}

/// The overlapping zip beside a normal driver: the driver is reported, the zip named with its
/// problem once; its one member is audited.
#[test]
fn overlapping_zip_beside_a_driver() {
    let report = scan_paths(&[
        regress("zip/issue19-overlap-200.zip"),
        testdata("bin/untagged_gcc_x64_O2.sys"),
    ]);
    assert_eq!(report.drivers, 2);
    assert_eq!(report.notices.len(), 1, "{:?}", report.notices);
    let n = &report.notices[0];
    assert!(n
        .subject
        .ends_with("testdata/regress/zip/issue19-overlap-200.zip"));
    assert_eq!(n.kind, NoticeKind::Malformed);
    assert!(n.message.contains("199 member(s) overlap"), "{}", n.message);
    let rules: Vec<_> = triples(&report)
        .into_iter()
        .filter(|(_, a, _)| a == "untagged_gcc_x64_O2.sys")
        .map(|(r, _, _)| r)
        .collect();
    assert!(rules.contains(&"DRV1001".to_string()), "{rules:?}");
}

/// Distinct members beyond the archive's decompression budget (here five members of 16 MiB
/// under a budget of 3.5 of them; the scan's figure is 64): those within it are handed over one
/// at a time, never more than one member's bytes held; then one budget notice names the limit
/// and the figure, and nothing after it is expanded.
#[test]
fn a_zip_beyond_the_decompression_budget_stops_with_a_notice() {
    let m = issue_19_member();
    let per = u64::from(m.size);
    let limits = Limits {
        member: MAX_MEMBER,
        expanded: 3 * per + per / 2,
    };
    let zip = zip_of(&m, 5, 5);
    let mut paths = Vec::new();
    let mut largest = 0;
    let problems = package::read_members_within(
        PackageKind::Zip,
        &zip,
        limits,
        &package::is_driver,
        &mut |m: Member| {
            largest = largest.max(m.bytes.len() as u64);
            paths.push(m.path);
        },
    )
    .unwrap();
    assert_eq!(paths, ["bomb/0000.sys", "bomb/0001.sys", "bomb/0002.sys"]);
    assert_eq!(largest, per);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].kind, ProblemKind::Budget);
    assert_eq!(
        problems[0].message,
        format!(
            "decompression budget reached: reading `bomb/0003.sys` brings the bytes \
             decompressed from this archive to {}, over the limit of {}; it and every member \
             after it were not examined",
            limits.expanded + 1,
            limits.expanded
        )
    );
    // The scan's figures.
    assert_eq!(
        Limits::default(),
        Limits {
            member: 256 << 20,
            expanded: 1 << 30
        }
    );
    assert_eq!(MAX_EXPANDED / per, 64);
}
