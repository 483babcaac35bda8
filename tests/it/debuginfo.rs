//! Source locations from PDB and DWARF (src/debuginfo), against truth derived without drvaudit:
//! testdata/truth/debug_sites.tsv and systeminformer_lines.tsv (make_debug_truth.py: llvm-pdbutil,
//! llvm-symbolizer, addr2line) and ../shared/corpus/truth/wine8.0-x64-sites.txt.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use drvaudit::debuginfo::{
    open, CodeViewRef, DebugInfoError, DebugSource, ImageRef, Mismatch, Place, SourceLocation,
    SymbolSearch, Symbolizer, Unavailable, Wanted,
};
use object::{Object, ObjectSection};

use crate::common;

fn debug(rel: &str) -> PathBuf {
    common::testdata("debug").join(rel)
}

fn open_file(path: &Path, search: &SymbolSearch) -> Result<Symbolizer, Unavailable> {
    let bytes = std::fs::read(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    open(
        &ImageRef {
            path: Some(path),
            display_name: &name,
            file_bytes: Some(&bytes),
            codeview: None,
        },
        search,
    )
}

/// The truth table's `inlined` column for a location.
fn chain(loc: &SourceLocation) -> String {
    if loc.inlined.is_empty() {
        return "-".into();
    }
    loc.inlined
        .iter()
        .map(|f| {
            format!(
                "{}@{}:{}{}",
                f.function.as_deref().unwrap_or("?"),
                f.file.as_deref().unwrap_or("?"),
                f.line.unwrap_or(0),
                f.column.map(|c| format!(":{c}")).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(" ; ")
}

/// (file, line, column, function, inlined) as the truth tables write them.
fn row(loc: &SourceLocation) -> [String; 5] {
    [
        loc.file.clone(),
        loc.line.to_string(),
        loc.column
            .map(|c| c.to_string())
            .unwrap_or_else(|| "-".into()),
        loc.function.clone().unwrap_or_else(|| "-".into()),
        chain(loc),
    ]
}

fn parse_rva(s: &str) -> u32 {
    u32::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

#[test]
fn every_fixture_call_site_maps_to_its_truth_line_function_and_chain() {
    let text = std::fs::read_to_string(common::testdata("truth/debug_sites.tsv")).unwrap();
    let mut by_binary: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<String> = line.split('\t').map(String::from).collect();
        by_binary.entry(f[0].clone()).or_default().push(f);
    }
    assert_eq!(by_binary.len(), 16, "debug images in the truth table");
    let mut checked = 0;
    let mut with_chain = 0;
    for (binary, rows) in &by_binary {
        let path = debug(binary);
        let sym =
            open_file(&path, &SymbolSearch::default()).unwrap_or_else(|e| panic!("{binary}: {e}"));
        let want_source = if binary.starts_with("debuglink/") {
            DebugSource::DebugLink(path.with_extension("debug"))
        } else if binary.contains("_clang_") {
            DebugSource::Pdb(path.with_extension("pdb"))
        } else {
            DebugSource::DwarfInImage
        };
        assert_eq!(sym.source(), &want_source, "{binary}");
        for r in rows {
            let rva = parse_rva(&r[1]);
            let loc = sym
                .locate(rva)
                .unwrap_or_else(|e| panic!("{binary} {}: {e}", r[1]))
                .unwrap_or_else(|| panic!("{binary} {}: no location", r[1]));
            assert_eq!(
                row(&loc),
                [&r[3], &r[4], &r[5], &r[6], &r[7]].map(String::clone),
                "{binary} {} ({})",
                r[1],
                r[2]
            );
            assert_eq!(
                sym.function_name(rva).unwrap().as_deref(),
                Some(r[6].as_str()),
                "{binary} {}: function_name",
                r[1]
            );
            checked += 1;
            with_chain += usize::from(!loc.inlined.is_empty());
        }
    }
    assert_eq!(checked, 223);
    // inlined.c: two inlined sites in each of its 6 builds (one of them two levels deep).
    assert_eq!(with_chain, 12);
}

#[test]
fn pdb_function_ranges_come_from_procedure_symbols() {
    // pooltest_clang_x64_O2.pdb, llvm-pdbutil dump -symbols: S_GPROC32 `LoopAlloc`, addr =
    // 0001:224, code size = 118 (.text at RVA 0x1000).
    let sym = open_file(
        &debug("pooltest_clang_x64_O2.sys"),
        &SymbolSearch::default(),
    )
    .unwrap();
    let f = sym.function(0x10fc).unwrap().unwrap();
    assert_eq!(f.name, "LoopAlloc");
    assert_eq!((f.start_rva, f.end_rva), (Some(0x10e0), Some(0x10e0 + 118)));
    assert_eq!(
        sym.locate(0x0fff).unwrap(),
        None,
        "before .text: headers, no line"
    );
}

#[test]
fn systeminformer_call_sites_map_to_the_pdb_truth() {
    let (Some(drivers), Some(pdbs)) = (
        common::shared("corpus/drivers"),
        common::shared("corpus/pdb"),
    ) else {
        return;
    };
    let text = std::fs::read_to_string(common::testdata("truth/systeminformer_lines.tsv")).unwrap();
    let search = SymbolSearch {
        symbol_dirs: vec![pdbs.clone()],
        nt_symbol_path: None,
    };
    let mut seen = BTreeMap::new();
    for arch in ["amd64", "arm64"] {
        let binary = format!("systeminformer-{arch}.sys");
        // The record names C:\…\Release64\SystemInformer.pdb; the corpus keeps it under the
        // driver's own stem, which --symbols finds.
        let sym = open_file(&drivers.join(&binary), &search).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            sym.source(),
            &DebugSource::Pdb(pdbs.join(format!("systeminformer-{arch}.pdb")))
        );
        for line in text.lines().skip(1).filter(|l| l.starts_with(&binary)) {
            let r: Vec<&str> = line.split('\t').collect();
            let loc = sym
                .locate(parse_rva(r[1]))
                .unwrap()
                .unwrap_or_else(|| panic!("{line}: no location"));
            assert_eq!(
                row(&loc),
                [r[2], r[3], r[4], r[5], r[6]].map(String::from),
                "{binary} {}",
                r[1]
            );
            *seen.entry(arch).or_insert(0) += 1;
        }
    }
    assert_eq!(seen.get("amd64"), Some(&61));
    assert_eq!(seen.get("arm64"), Some(&61));
}

/// ImageBase of a PE32+ image (optional header offset 24 from the PE signature + 24).
fn image_base(bytes: &[u8]) -> u64 {
    let pe = u32::from_le_bytes(bytes[0x3c..0x40].try_into().unwrap()) as usize;
    u64::from_le_bytes(bytes[pe + 24 + 24..pe + 24 + 32].try_into().unwrap())
}

#[test]
fn wine_x64_untagged_allocations_map_to_the_first_listed_line() {
    let Some(truth) = common::shared("corpus/truth/wine8.0-x64-sites.txt") else {
        return;
    };
    let drivers = common::shared("corpus/drivers").unwrap();
    let mut checked = 0;
    let mut opened: BTreeMap<String, (Symbolizer, u64)> = BTreeMap::new();
    for line in std::fs::read_to_string(truth).unwrap().lines() {
        // amd64 hidclass.sys 0x332e43aef ExAllocatePool type=0x1 -> hidclass.sys/pnp.c:325 hidclass.sys/pnp.c:544
        let (head, lines) = line.split_once(" -> ").unwrap();
        let h: Vec<&str> = head.split_whitespace().collect();
        if h[3] != "ExAllocatePool" {
            continue; // DRV1001 is the untagged ExAllocatePool; ExFreePool sites are not findings
        }
        let (sym, base) = opened.entry(h[1].to_string()).or_insert_with(|| {
            let path = drivers.join(format!("wine8.0-x64-{}", h[1]));
            let bytes = std::fs::read(&path).unwrap();
            let base = image_base(&bytes);
            let sym = open_file(&path, &SymbolSearch::default()).unwrap();
            assert_eq!(sym.source(), &DebugSource::DwarfInImage);
            (sym, base)
        });
        let rva = (u64::from_str_radix(h[2].trim_start_matches("0x"), 16).unwrap() - *base) as u32;
        let loc = sym
            .locate(rva)
            .unwrap()
            .unwrap_or_else(|| panic!("{line}: no location"));
        let listed: Vec<&str> = lines.split_whitespace().collect();
        let (file, l) = listed[0].rsplit_once(':').unwrap();
        assert!(
            loc.file.replace('\\', "/").ends_with(&format!("/{file}")),
            "{line}: {}",
            loc.file
        );
        assert_eq!(loc.line.to_string(), l, "{line}");
        // The rest of the list is the chain of inlined calls, innermost first.
        let rest: Vec<String> = loc
            .inlined
            .iter()
            .map(|f| {
                format!(
                    "{}:{}",
                    f.file.as_deref().unwrap_or("?"),
                    f.line.unwrap_or(0)
                )
            })
            .collect();
        assert_eq!(rest.len(), listed.len() - 1, "{line}: chain {rest:?}");
        for (got, want) in rest.iter().zip(&listed[1..]) {
            let (wf, wl) = want.rsplit_once(':').unwrap();
            assert!(
                got.replace('\\', "/").ends_with(&format!("/{wf}:{wl}")),
                "{line}: {got} vs {want}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 20, "ExAllocatePool sites in wine8.0-x64-sites.txt");
}

/// A copy of a fixture image alone in a temporary folder (nothing beside it).
fn lone_copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::copy(debug(name), &path).unwrap();
    (dir, path)
}

fn not_found(r: Result<Symbolizer, Unavailable>) -> drvaudit::debuginfo::SearchReport {
    match r {
        Err(Unavailable::NotFound(report)) => report,
        Err(other) => panic!("expected NotFound, got {other}"),
        Ok(s) => panic!("expected NotFound, got {:?}", s.source()),
    }
}

#[test]
fn a_pdb_of_another_build_is_refused_with_a_note_naming_it() {
    let (_tmp, image) = lone_copy("pooltest_clang_x64_O2.sys");
    let other = debug("other");
    let report = not_found(open_file(
        &image,
        &SymbolSearch {
            symbol_dirs: vec![other.clone()],
            nt_symbol_path: None,
        },
    ));
    // GUIDs from llvm-pdbutil dump -summary: the image's PDB {D7F28A80-67BB-AD3E-4C4C-44205044422E},
    // other/pooltest_clang_x64_O2.pdb {A4C54338-E7A6-F611-4C4C-44205044422E}.
    let Wanted::Pdb(cv) = &report.wanted else {
        panic!()
    };
    assert_eq!(
        cv.guid.to_string(),
        "{D7F28A80-67BB-AD3E-4C4C-44205044422E}"
    );
    let hit = report
        .attempts
        .iter()
        .find(|a| a.path == other.join("pooltest_clang_x64_O2.pdb"))
        .unwrap();
    assert_eq!(hit.place, Place::SymbolDir);
    assert_eq!(
        hit.mismatch.to_string(),
        "GUID differs (the file has {A4C54338-E7A6-F611-4C4C-44205044422E})"
    );
    let note = report.to_string();
    assert!(!note.contains('\n'));
    assert!(
        note.starts_with(
            "no matching PDB for pooltest_clang_x64_O2.sys: wanted pooltest_clang_x64_O2.pdb with GUID {D7F28A80-67BB-AD3E-4C4C-44205044422E} age 1; "
        ),
        "{note}"
    );
    assert!(
        note.contains(&format!(
            "{} (--symbols): GUID differs (the file has {{A4C54338-E7A6-F611-4C4C-44205044422E}})",
            other.join("pooltest_clang_x64_O2.pdb").display()
        )),
        "{note}"
    );
    assert!(
        note.contains(&format!(
            "absent: {} (beside the driver)",
            image.with_extension("pdb").display()
        )),
        "{note}"
    );
}

#[test]
fn the_same_builds_pdb_at_another_age_is_refused() {
    let (_tmp, image) = lone_copy("pooltest_clang_x64_O2.sys");
    let age2 = debug("age2");
    let report = not_found(open_file(
        &image,
        &SymbolSearch {
            symbol_dirs: vec![age2.clone()],
            nt_symbol_path: None,
        },
    ));
    let hit = report
        .attempts
        .iter()
        .find(|a| a.path == age2.join("pooltest_clang_x64_O2.pdb"))
        .unwrap();
    assert_eq!(hit.mismatch, Mismatch::AgeDiffers { found: 2 });
    assert!(report.to_string().contains("age differs (the file has 2)"));
}

#[test]
fn symbol_store_layout_through_symbols_and_nt_symbol_path() {
    let (tmp, image) = lone_copy("pooltest_clang_x64_O2.sys");
    let store = tmp.path().join("store");
    // Key: GUID {D7F28A80-67BB-AD3E-4C4C-44205044422E} without dashes, then age 1 in hex.
    let dir = store
        .join("pooltest_clang_x64_O2.pdb")
        .join("D7F28A8067BBAD3E4C4C44205044422E1");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        debug("pooltest_clang_x64_O2.pdb"),
        dir.join("pooltest_clang_x64_O2.pdb"),
    )
    .unwrap();
    let via_symbols = open_file(
        &image,
        &SymbolSearch {
            symbol_dirs: vec![store.clone()],
            nt_symbol_path: None,
        },
    )
    .unwrap();
    assert_eq!(
        via_symbols.source(),
        &DebugSource::Pdb(dir.join("pooltest_clang_x64_O2.pdb"))
    );
    let via_env = open_file(
        &image,
        &SymbolSearch {
            symbol_dirs: vec![],
            nt_symbol_path: Some(format!(
                "srv*{}*https://symbols.example.invalid/download",
                store.display()
            )),
        },
    )
    .unwrap();
    assert_eq!(
        via_env.source(),
        &DebugSource::Pdb(dir.join("pooltest_clang_x64_O2.pdb"))
    );
    assert_eq!(
        via_env.function_name(0x10fc).unwrap().as_deref(),
        Some("LoopAlloc")
    );
}

#[test]
fn carved_images_map_through_their_codeview_record_alone() {
    // A carved image has no file bytes in file layout: only the record is used.
    let bytes = std::fs::read(debug("untagged_clang_arm64_O2.sys")).unwrap();
    let cv = CodeViewRef::from_image(&bytes, Path::new("untagged_clang_arm64_O2.sys"))
        .unwrap()
        .unwrap();
    assert_eq!(cv.pdb_path, "untagged_clang_arm64_O2.pdb");
    let sym = open(
        &ImageRef {
            path: None,
            display_name: "dump!untagged.sys",
            file_bytes: None,
            codeview: Some(&cv),
        },
        &SymbolSearch {
            symbol_dirs: vec![debug("")],
            nt_symbol_path: None,
        },
    )
    .unwrap();
    // debug_sites.tsv: untagged_clang_arm64_O2.sys 0x101c ExAllocatePool untagged.c:29 RefillCache.
    let loc = sym.locate(0x101c).unwrap().unwrap();
    assert_eq!(
        (loc.file.as_str(), loc.line, loc.function.as_deref()),
        ("/fixtures/src/untagged.c", 29, Some("RefillCache"))
    );
}

#[test]
fn images_without_debug_information_say_so() {
    let path = common::testdata("bin/untagged_gcc_x64_O2.sys");
    match open_file(&path, &SymbolSearch::default()) {
        Err(e @ Unavailable::NoDebugInfo { .. }) => assert_eq!(
            e.to_string(),
            "untagged_gcc_x64_O2.sys records no debug information (no CodeView record, no DWARF, no .gnu_debuglink)"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_separate_debug_file_with_another_crc_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("inlined_gcc_x64_O2.sys");
    std::fs::copy(debug("debuglink/inlined_gcc_x64_O2.sys"), &image).unwrap();
    let mut dbg = std::fs::read(debug("debuglink/inlined_gcc_x64_O2.debug")).unwrap();
    let n = dbg.len();
    dbg[n - 1] ^= 0x55;
    std::fs::write(tmp.path().join("inlined_gcc_x64_O2.debug"), &dbg).unwrap();
    let report = not_found(open_file(&image, &SymbolSearch::default()));
    assert!(
        matches!(report.wanted, Wanted::DebugLink { ref file_name, .. } if file_name == "inlined_gcc_x64_O2.debug")
    );
    assert!(
        matches!(report.attempts[0].mismatch, Mismatch::CrcDiffers { .. }),
        "{report}"
    );
    assert!(report.to_string().contains("CRC-32 differs"), "{report}");
}

#[test]
fn a_truncated_pdb_is_unreadable_not_a_panic() {
    let (tmp, image) = lone_copy("pooltest_clang_x64_O2.sys");
    let pdb = std::fs::read(debug("pooltest_clang_x64_O2.pdb")).unwrap();
    std::fs::write(tmp.path().join("pooltest_clang_x64_O2.pdb"), &pdb[..10_000]).unwrap();
    let report = not_found(open_file(&image, &SymbolSearch::default()));
    assert_eq!(
        report.attempts[0].mismatch.to_string(),
        "unreadable: truncated: the superblock declares 21 blocks of 4096 bytes (86016 bytes), the file has 10000"
    );
    // Garbage after a valid superblock, and a file of zeros: refused, never a panic.
    let mut garbage = pdb.clone();
    for (i, b) in garbage.iter_mut().enumerate().skip(56) {
        *b = (i as u8).wrapping_mul(151).wrapping_add(7);
    }
    std::fs::write(tmp.path().join("pooltest_clang_x64_O2.pdb"), &garbage).unwrap();
    let report = not_found(open_file(&image, &SymbolSearch::default()));
    assert!(
        matches!(report.attempts[0].mismatch, Mismatch::Unreadable(_)),
        "{report}"
    );
    std::fs::write(
        tmp.path().join("pooltest_clang_x64_O2.pdb"),
        vec![0u8; 86016],
    )
    .unwrap();
    let report = not_found(open_file(&image, &SymbolSearch::default()));
    assert_eq!(
        report.attempts[0].mismatch.to_string(),
        "unreadable: no MSF 7.00 signature (not a PDB 7.0 file)"
    );
}

/// The file range of a section of a PE file.
fn section_range(bytes: &[u8], name: &str) -> std::ops::Range<usize> {
    let file = object::File::parse(bytes).unwrap();
    let s = file.section_by_name(name).unwrap();
    let (off, size) = s.file_range().unwrap();
    off as usize..(off + size) as usize
}

#[test]
fn garbage_dwarf_is_an_error_not_a_panic() {
    let good = std::fs::read(debug("pooltest_gcc_x64_O2.sys")).unwrap();
    let info = section_range(&good, ".debug_info");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("pooltest_gcc_x64_O2.sys");
    // 1. .debug_info overwritten with a byte pattern.
    let mut bad = good.clone();
    for (k, b) in bad[info.clone()].iter_mut().enumerate() {
        *b = (k as u8).wrapping_mul(37) ^ 0xA5;
    }
    std::fs::write(&path, &bad).unwrap();
    match open_file(&path, &SymbolSearch::default()) {
        Err(Unavailable::Failed(e)) => assert!(matches!(e, DebugInfoError::Dwarf { .. }), "{e}"),
        Ok(sym) => assert!(sym.locate(0x100d).is_err(), "garbage gave a location"),
        Err(other) => panic!("{other}"),
    }
    // 2. A unit whose entries nest deeper than the limit (each DIE opens a child list): refused
    //    before the recursive inline parser sees it.
    let abbrev = section_range(&good, ".debug_abbrev");
    let mut deep = good.clone();
    // abbrev 1: DW_TAG_compile_unit, children; abbrev 2: DW_TAG_inlined_subroutine, children.
    let abbrevs = [1u8, 0x11, 1, 0, 0, 2, 0x1d, 1, 0, 0, 0];
    deep[abbrev.start..abbrev.start + abbrevs.len()].copy_from_slice(&abbrevs);
    let body = info.len() - 11;
    let mut unit = Vec::new();
    unit.extend_from_slice(&((body + 7) as u32).to_le_bytes()); // unit_length
    unit.extend_from_slice(&4u16.to_le_bytes()); // DWARF 4
    unit.extend_from_slice(&0u32.to_le_bytes()); // debug_abbrev_offset
    unit.push(8); // address size
    unit.push(1);
    unit.resize(11 + body, 2);
    deep[info.clone()].copy_from_slice(&unit);
    std::fs::write(&path, &deep).unwrap();
    match open_file(&path, &SymbolSearch::default()) {
        Err(Unavailable::Failed(DebugInfoError::BadDwarf { why, .. })) => {
            assert_eq!(why, "entries nested 257 deep, over the limit of 256")
        }
        other => panic!("{other:?}"),
    }
}

/// Times `runs` repetitions of: open the image's debug information, then locate and name every
/// RVA. Returns (open, map) medians.
fn time_runs(
    path: &Path,
    search: &SymbolSearch,
    rvas: &[u32],
    runs: usize,
) -> (std::time::Duration, std::time::Duration) {
    let bytes = std::fs::read(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let (mut opens, mut maps) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let t0 = std::time::Instant::now();
        let sym = open(
            &ImageRef {
                path: Some(path),
                display_name: &name,
                file_bytes: Some(&bytes),
                codeview: None,
            },
            search,
        )
        .unwrap();
        let t1 = std::time::Instant::now();
        for &rva in rvas {
            assert!(sym.locate(rva).unwrap().is_some());
            assert!(sym.function_name(rva).unwrap().is_some());
        }
        opens.push(t1 - t0);
        maps.push(t1.elapsed());
    }
    opens.sort();
    maps.sort();
    (opens[runs / 2], maps[runs / 2])
}

#[test]
#[ignore = "timing: cargo test --release --test it debuginfo::timing -- --ignored --nocapture"]
fn timing_open_and_map_every_site() {
    let (Some(drivers), Some(pdbs)) = (
        common::shared("corpus/drivers"),
        common::shared("corpus/pdb"),
    ) else {
        return;
    };
    let runs = 5;
    let text = std::fs::read_to_string(common::testdata("truth/systeminformer_lines.tsv")).unwrap();
    let rvas: Vec<u32> = text
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("systeminformer-amd64.sys"))
        .map(|l| parse_rva(l.split('\t').nth(1).unwrap()))
        .collect();
    let search = SymbolSearch {
        symbol_dirs: vec![pdbs],
        nt_symbol_path: None,
    };
    let (o, m) = time_runs(
        &drivers.join("systeminformer-amd64.sys"),
        &search,
        &rvas,
        runs,
    );
    println!(
        "systeminformer-amd64.sys + PDB: open {o:?}, map {} sites {m:?} (median of {runs})",
        rvas.len()
    );
    let wine = common::shared("corpus/truth/wine8.0-x64-sites.txt").unwrap();
    for drv in ["winebus.sys", "hidclass.sys"] {
        let path = drivers.join(format!("wine8.0-x64-{drv}"));
        let base = image_base(&std::fs::read(&path).unwrap());
        let rvas: Vec<u32> = std::fs::read_to_string(&wine)
            .unwrap()
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some(drv))
            .map(|l| {
                (u64::from_str_radix(
                    l.split_whitespace()
                        .nth(2)
                        .unwrap()
                        .trim_start_matches("0x"),
                    16,
                )
                .unwrap()
                    - base) as u32
            })
            .collect();
        let (o, m) = time_runs(&path, &SymbolSearch::default(), &rvas, runs);
        println!(
            "wine8.0-x64-{drv} (DWARF inside): open {o:?}, map {} sites {m:?} (median of {runs})",
            rvas.len()
        );
    }
    let plain = common::testdata("bin/untagged_gcc_x64_O2.sys");
    let bytes = std::fs::read(&plain).unwrap();
    let t = std::time::Instant::now();
    for _ in 0..1000 {
        let r = open(
            &ImageRef {
                path: Some(&plain),
                display_name: "untagged_gcc_x64_O2.sys",
                file_bytes: Some(&bytes),
                codeview: None,
            },
            &SymbolSearch::default(),
        );
        assert!(matches!(r, Err(Unavailable::NoDebugInfo { .. })));
    }
    println!(
        "an image without debug information: open {:?} each (mean of 1000)",
        t.elapsed() / 1000
    );
}
