//! The scan pipeline on the project's fixture drivers and on the real corpus.

use crate::common::*;
use drvaudit::report::Level;

/// The RVAs of `rule`'s findings in `report`, in report order.
fn rvas_of(report: &drvaudit::report::Report, rule: &str) -> Vec<Option<u32>> {
    report
        .findings
        .iter()
        .filter(|f| f.rule_id == rule)
        .map(|f| f.rva)
        .collect()
}

fn findings_of(file: &str, rule: &str) -> Vec<Option<u32>> {
    let report = scan_paths(&[testdata(&format!("bin/{file}"))]);
    assert!(problems(&report).is_empty(), "{:?}", problems(&report));
    triples(&report)
        .into_iter()
        .filter(|(r, _, _)| r == rule)
        .map(|(_, _, rva)| rva)
        .collect()
}

#[test]
fn writable_executable_section_is_reported_at_its_header() {
    // wxsection.c puts code in `.rwx`, linked ERW: the fourth section, at RVA 0x4000.
    assert_eq!(
        findings_of("wxsection_clang_x64_O2.sys", "DRV3001"),
        vec![Some(0x4000)]
    );
    assert_eq!(findings_of("clean_clang_x64_O2.sys", "DRV3001"), vec![]);
}

#[test]
fn small_section_alignment_is_reported_once() {
    // Linked with --section-alignment 0x200: a header-level finding without an RVA.
    let report = scan_paths(&[testdata("bin/misaligned_gcc_x64_O2.sys")]);
    let f: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.rule_id == "DRV3002")
        .collect();
    assert_eq!(f.len(), 1);
    assert!(
        msg(f[0]).contains("SectionAlignment 0x200"),
        "{}",
        msg(f[0])
    );
    assert_eq!(findings_of("clean_gcc_x64_O2.sys", "DRV3002"), vec![]);
}

#[test]
fn iat_merged_into_text_is_reported_at_its_first_slot() {
    // Linked with /merge:.rdata=.text: the first IAT slot (ExAllocatePool2) is at 0x10d8.
    assert_eq!(
        findings_of("iatexec_clang_x64_O2.sys", "DRV3003"),
        vec![Some(0x10d8)]
    );
    assert_eq!(findings_of("clean_clang_x64_O2.sys", "DRV3003"), vec![]);
}

#[test]
fn ndis_allocate_memory_is_reported_at_its_call_site() {
    // testdata/truth/sites.tsv: pooltest.c:135 compiles to these calls.
    assert_eq!(
        findings_of("pooltest_gcc_x64_O2.sys", "DRV1008"),
        vec![Some(0x149e)]
    );
    assert_eq!(
        findings_of("pooltest_gcc_x86_O2.sys", "DRV1008"),
        vec![Some(0x13ac)]
    );
    assert_eq!(findings_of("untagged_gcc_x64_O2.sys", "DRV1008"), vec![]);
}

#[test]
fn control_flow_guard_note_applies_to_x64_and_arm64_only() {
    assert_eq!(findings_of("clean_clang_x64_O2.sys", "DRV3007"), vec![None]);
    assert_eq!(
        findings_of("clean_clang_arm64_O2.sys", "DRV3007"),
        vec![None]
    );
    assert_eq!(findings_of("clean_clang_x86_O2.sys", "DRV3007"), vec![]);
}

#[test]
fn force_integrity_rule_is_off_by_default() {
    assert_eq!(findings_of("clean_clang_x64_O2.sys", "DRV3006"), vec![]);
}

#[test]
fn packages_are_opened_in_memory_and_members_nested() {
    for pkg in ["packages/pkg.zip", "packages/pkg.cab"] {
        let report = scan_paths(&[testdata(pkg)]);
        assert!(
            problems(&report).is_empty(),
            "{pkg}: {:?}",
            problems(&report)
        );
        let mut members: Vec<_> = report
            .artifacts
            .iter()
            .filter(|a| a.parent == Some(0))
            .map(|a| a.uri.as_str())
            .collect();
        // In archive order, which differs between the two.
        members.sort_unstable();
        assert_eq!(
            members,
            // The INF is a member too: the package rules report at its lines.
            vec![
                "drivers/amd64/clean.sys",
                "drivers/amd64/untagged.sys",
                "fixture.inf"
            ],
            "{pkg}"
        );
        let untagged = report
            .findings
            .iter()
            .filter(|f| f.rule_id == "DRV1001")
            .map(|f| report.artifacts[f.artifact].uri.as_str())
            .collect::<Vec<_>>();
        assert!(!untagged.is_empty(), "{pkg}");
        assert!(
            untagged.iter().all(|u| *u == "drivers/amd64/untagged.sys"),
            "{pkg}"
        );
    }
}

#[test]
fn bad_files_become_notices_and_do_not_lose_other_results() {
    let report = scan_paths(&[
        testdata("malformed"),
        testdata("bin/untagged_gcc_x64_O2.sys"),
    ]);
    let notices: Vec<_> = report
        .notices
        .iter()
        .map(|n| (n.subject.rsplit('/').next().unwrap().to_string(), n.level))
        .collect();
    assert_eq!(
        notices,
        vec![
            ("empty.sys".to_string(), Level::Error),
            ("notpe.sys".to_string(), Level::Error),
            ("truncated.sys".to_string(), Level::Error),
        ]
    );
    assert!(report
        .notices
        .iter()
        .all(|n| n.subject.contains("testdata/malformed/")));
    assert!(report.findings.iter().any(|f| f.rule_id == "DRV1001"));
}

#[test]
fn output_is_identical_whatever_the_thread_count() {
    let paths = [testdata("bin"), testdata("packages")];
    let many = scan_paths(&paths);
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| scan_paths(&paths));
    assert_eq!(
        drvaudit::output::sarif::render(&many, &root()),
        drvaudit::output::sarif::render(&one, &root())
    );
}

#[test]
fn untagged_rule_fires_on_exactly_the_corpus_drivers_marked_untagged() {
    let (Some(drivers), Some(truth)) =
        (shared("corpus/drivers"), shared("corpus/truth/drivers.tsv"))
    else {
        return;
    };
    let report = scan_paths(&[drivers]);
    assert!(problems(&report).is_empty(), "{:?}", problems(&report));
    let mut flagged: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.rule_id == "DRV1001")
        .map(|f| report.artifacts[f.artifact].name.clone())
        .collect();
    flagged.sort();
    flagged.dedup();
    let mut expected: Vec<String> = read(&truth)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (cols.get(2) == Some(&"yes")).then(|| cols[0].to_string())
        })
        .collect();
    expected.sort();
    assert_eq!(expected.len(), 6);
    assert_eq!(flagged, expected);
}

#[test]
fn symlink_loops_are_notices_not_failures() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("pkg");
    std::fs::create_dir(&sub).unwrap();
    std::fs::copy(
        testdata("bin/untagged_gcc_x64_O2.sys"),
        sub.join("UNTAGGED.SYS"),
    )
    .unwrap();
    std::os::unix::fs::symlink(dir.path(), sub.join("loop")).unwrap();
    let report = scan_paths(&[dir.path().to_path_buf()]);
    assert_eq!(problems(&report).len(), 1, "{:?}", problems(&report));
    assert!(
        problems(&report)[0]
            .message
            .starts_with("symbolic link loop back to"),
        "{:?}",
        report.notices
    );
    assert_eq!(problems(&report)[0].level, Level::Warning);
    // The upper-case .SYS file is still analysed.
    assert!(report.findings.iter().any(|f| f.rule_id == "DRV1001"));
}

/// A copy of untagged_gcc_x64_O2.sys with bytes overwritten at the given file offsets.
fn patched(dir: &std::path::Path, name: &str, edit: impl Fn(&mut Vec<u8>)) -> std::path::PathBuf {
    let mut b = std::fs::read(testdata("bin/untagged_gcc_x64_O2.sys")).unwrap();
    edit(&mut b);
    let p = dir.join(name);
    std::fs::write(&p, b).unwrap();
    p
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn hostile_inputs_give_one_notice_each_and_the_scan_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(testdata("bin/untagged_gcc_x64_O2.sys")).unwrap();
    let pe = u32::from_le_bytes(good[0x3c..0x40].try_into().unwrap()) as usize;
    let opt = pe + 24;
    let image = drvaudit::pe::Image::parse(&good, drvaudit::pe::Layout::File).unwrap();
    let import_dir = u32::from_le_bytes(good[opt + 120..opt + 124].try_into().unwrap());
    let first_descriptor = image.offset_of(import_dir).unwrap() as usize;
    let text_rva = image.sections[0].rva;
    let cases = [
        patched(dir.path(), "sizeofimage.sys", |b| {
            put32(b, opt + 56, 0xFFFF_F000)
        }),
        patched(dir.path(), "sections.sys", |b| {
            b[pe + 6..pe + 8].copy_from_slice(&[0xFF, 0xFF])
        }),
        // OriginalFirstThunk of the first descriptor far outside the image.
        patched(dir.path(), "int-outside.sys", |b| {
            put32(b, first_descriptor, 0x7FFF_FFF0)
        }),
        // The import directory moved onto code: descriptors that never end in a null one.
        patched(dir.path(), "import-loop.sys", |b| {
            put32(b, opt + 120, text_rva)
        }),
        patched(dir.path(), "directory-outside.sys", |b| {
            put32(b, opt + 120, 0x7FFF_0000)
        }),
    ];
    let zip = dir.path().join("corrupt.zip");
    std::fs::write(&zip, b"PK\x03\x04 this is not really a zip archive").unwrap();
    for case in cases.iter().chain([&zip]) {
        let report = scan_paths(&[case.clone(), testdata("bin/clean_gcc_x64_O2.sys")]);
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            problems(&report).len(),
            1,
            "{name}: {:#?}",
            problems(&report)
        );
        assert!(
            problems(&report)[0].subject.ends_with(&name),
            "{name}: {:?}",
            report.notices
        );
        assert!(
            report
                .findings
                .iter()
                .any(|f| report.artifacts[f.artifact].name == "clean_gcc_x64_O2.sys"),
            "{name}: the good file's results were lost"
        );
    }
}

#[test]
fn imports_only_reports_untagged_allocators_at_their_import() {
    let mut s = settings(&[testdata("bin/untagged_gcc_x64_O2.sys")]);
    s.call_sites = false;
    let report = drvaudit::pipeline::scan(&s);
    let untagged: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.rule_id == "DRV1001")
        .collect();
    // The IAT slot of ExAllocatePool, not its call at 0x1035 (testdata/truth/sites.tsv).
    assert_eq!(untagged.len(), 1);
    assert_eq!(untagged[0].rva, Some(0x7050));
    assert!(msg(untagged[0]).contains("imports ntoskrnl.exe!ExAllocatePool"));
    assert_eq!(report.images[0].call_sites, 0);
}

/// PE32+ headers at 4 mod 8 (legal: the loader wants 4) are read like the same image with its
/// headers at 8 mod 8 (pelite reads them through a reference that needs 8); an optional header
/// size that is not a multiple of 4 (damage) is refused with the reason; a control character in
/// a section name is escaped in the report. The good file beside them keeps its results.
#[test]
fn odd_header_placement_and_hostile_names() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(testdata("bin/untagged_gcc_x64_O2.sys")).unwrap();
    let pe = u32::from_le_bytes(good[0x3c..0x40].try_into().unwrap()) as usize;
    assert_eq!(pe % 8, 0);
    let nsec = u16::from_le_bytes([good[pe + 6], good[pe + 7]]) as usize;
    let opt_size = u16::from_le_bytes([good[pe + 20], good[pe + 21]]) as usize;
    let headers_end = pe + 24 + opt_size + 40 * nsec;
    // Four bytes of room after the section table (SizeOfHeaders is 0x400).
    assert!(good[headers_end..headers_end + 4].iter().all(|&b| b == 0));

    let shifted = patched(dir.path(), "shifted.sys", |b| {
        b.copy_within(pe..headers_end, pe + 4);
        put32(b, 0x3c, (pe + 4) as u32);
    });
    let odd_opt = patched(dir.path(), "odd-optional-header.sys", |b| {
        b[pe + 20..pe + 22].copy_from_slice(&((opt_size + 2) as u16).to_le_bytes());
    });
    let escape = patched(dir.path(), "escape.sys", |b| {
        // `.text` becomes `.t\x1b[2J` (a terminal escape sequence).
        let name_at = pe + 24 + opt_size;
        b[name_at + 2..name_at + 6].copy_from_slice(b"\x1b[2J");
    });

    let original = drvaudit::pe::Image::parse(&good, drvaudit::pe::Layout::File).unwrap();
    let bytes = std::fs::read(&shifted).unwrap();
    let moved = drvaudit::pe::Image::parse(&bytes, drvaudit::pe::Layout::File).unwrap();
    assert_eq!(moved.sections.len(), original.sections.len());
    assert_eq!(moved.imports, original.imports);
    assert_eq!(moved.entry_point, original.entry_point);
    assert_eq!(moved.image_base, original.image_base);

    let report = scan_paths(&[
        shifted,
        odd_opt,
        escape,
        testdata("bin/clean_gcc_x64_O2.sys"),
    ]);
    assert_eq!(problems(&report).len(), 1, "{:#?}", problems(&report));
    assert!(problems(&report)[0]
        .subject
        .ends_with("odd-optional-header.sys"));
    assert!(
        problems(&report)[0]
            .message
            .contains("SizeOfOptionalHeader 0xf2 is not a multiple of 4"),
        "{}",
        problems(&report)[0].message
    );
    let untagged_at = |name: &str| {
        report
            .findings
            .iter()
            .filter(|f| f.rule_id == "DRV1001" && report.artifacts[f.artifact].name == name)
            .map(|f| f.rva)
            .collect::<Vec<_>>()
    };
    // The call of ExAllocatePool at 0x1035 (testdata/truth/sites.tsv), in both copies.
    assert_eq!(untagged_at("shifted.sys"), vec![Some(0x1035)]);
    assert_eq!(untagged_at("escape.sys"), vec![Some(0x1035)]);
    let bytes = std::fs::read(dir.path().join("escape.sys")).unwrap();
    let escaped = drvaudit::pe::Image::parse(&bytes, drvaudit::pe::Layout::File).unwrap();
    assert_eq!(escaped.sections[0].name, ".t\\x1b[2J");
    assert!(report
        .findings
        .iter()
        .any(|f| report.artifacts[f.artifact].name == "clean_gcc_x64_O2.sys"));
}

/// Data directories whose RVA and Size run past 4 GiB (the debug directory, `.pdata`) are read
/// only as far as they can exist: no offset inside them overflows, and the image is analysed.
#[test]
fn directories_running_past_four_gib_are_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(testdata("bin/untagged_gcc_x64_O2.sys")).unwrap();
    let pe = u32::from_le_bytes(good[0x3c..0x40].try_into().unwrap()) as usize;
    let dirs = pe + 24 + 112;
    let path = patched(dir.path(), "far-directories.sys", |b| {
        put32(b, dirs + 6 * 8, 0xFFFF_FFF8); // debug: RVA
        put32(b, dirs + 6 * 8 + 4, 0x1C); //        Size (one entry)
        put32(b, dirs + 3 * 8, 0xFFFF_FFFC); // exception (.pdata): RVA
        put32(b, dirs + 3 * 8 + 4, 0x18); //        Size (two entries)
    });
    let report = scan_paths(&[path]);
    assert!(problems(&report).is_empty(), "{:#?}", problems(&report));
    let untagged = rvas_of(&report, "DRV1001");
    assert_eq!(untagged, vec![Some(0x1035)]);
}

#[test]
fn import_names_and_counts_are_bounded() {
    // make_hostile.py: one sound descriptor, then 1,022 sharing a 16,383-entry name table whose
    // names (5,000 bytes) and DLL name (300 bytes) end past their bounds (4,096 and 255 bytes).
    let path = testdata("regress/pe_file/imports-overlapping-descriptors.sys");
    let bytes = std::fs::read(&path).unwrap();
    let image = drvaudit::pe::Image::parse(&bytes, drvaudit::pe::Layout::File).unwrap();
    assert_eq!(image.imports.len(), 65536);
    assert_eq!(image.imports[0].display(), "ntoskrnl.exe!ExAllocatePool");
    assert_eq!(image.imports[0].iat_rva, 0x28000);
    assert!(image.imports[1..]
        .iter()
        .all(|i| i.dll == "?" && i.name.is_none() && i.ordinal.is_none()));
    assert_eq!(
        image.anomalies,
        [
            "import descriptor names its DLL at RVA 0x239b, which has no terminating NUL \
             within 255 bytes",
            "imports of ?: 16383 names have no terminating NUL within 4096 bytes; kept without \
             a name",
            "more than 65536 imports in all descriptors; the rest were not read",
            "imports of ?: 3 names have no terminating NUL within 4096 bytes; kept without a name",
        ]
    );
    // The sound import is still reported, and the damage is one notice.
    let report = scan_paths(&[path]);
    assert_eq!(problems(&report).len(), 1, "{:#?}", problems(&report));
    let untagged = rvas_of(&report, "DRV1001");
    assert_eq!(untagged, vec![Some(0x28000)]);
}
