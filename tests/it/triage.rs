//! Triage dumps: the driver list is reported, and matched to the scanned files by name,
//! TimeDateStamp and SizeOfImage (the symbol-server key); nothing disappears into "0 images".

use drvaudit::report::ArtifactKind;

use crate::common::*;

fn scan_with(paths: &[std::path::PathBuf], dump: &std::path::Path) -> drvaudit::report::Report {
    let mut s = settings(paths);
    s.dumps = vec![dump.to_path_buf()];
    drvaudit::pipeline::scan(&s)
}

#[test]
fn the_triage_driver_list_is_reported_and_matched_to_the_scanned_files() {
    let (Some(dump), Some(corpus)) = (
        shared("corpus/dumps/triage_x64.dmp"),
        shared("corpus/drivers"),
    ) else {
        return;
    };
    // With the corpus: none of its files is one of the dump's modules.
    let r = scan_with(std::slice::from_ref(&corpus), &dump);
    let listed = r
        .artifacts
        .iter()
        .filter(|a| matches!(a.kind, ArtifactKind::Listed { .. }))
        .count();
    assert_eq!(listed, 151);
    let note = r
        .notices
        .iter()
        .find(|n| n.message.starts_with("triage dump"))
        .expect("the driver list is reported");
    assert!(
        note.message
            .contains("names 151 module(s) and holds none of their images")
            && note.message.contains("no scanned file matches any"),
        "{}",
        note.message
    );
    assert!(
        note.message.contains("crash: bugcheck 0x1000007e"),
        "{}",
        note.message
    );
    // The corpus's own findings fail the gate; the triage dump does not make it incomplete.
    assert_eq!(r.exit_code, 1);
    assert!(r
        .unranked
        .as_deref()
        .is_some_and(|u| u.contains("triage dump")));

    // A file with CLFS.SYS's name, TimeDateStamp and SizeOfImage (from the independently
    // derived driver list) is the module the dump lists: loaded when the dump was taken.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(testdata("bin/clean_gcc_x64_O2.sys")).unwrap();
    let pe = u32::from_le_bytes(bytes[0x3c..0x40].try_into().unwrap()) as usize;
    bytes[pe + 8..pe + 12].copy_from_slice(&0x5032_08a5u32.to_le_bytes());
    bytes[pe + 24 + 56..pe + 24 + 60].copy_from_slice(&0x6a000u32.to_le_bytes());
    let clfs = dir.path().join("CLFS.SYS");
    std::fs::write(&clfs, &bytes).unwrap();
    let r = scan_with(&[clfs], &dump);
    let file = r
        .artifacts
        .iter()
        .position(|a| a.name == "CLFS.SYS" && a.kind == ArtifactKind::File)
        .unwrap();
    let loaded = r.artifacts[file].facts["loadedInDump"][0].as_str().unwrap();
    assert!(
        loaded.ends_with("triage_x64.dmp>CLFS.SYS@0xfffff80479490000"),
        "{loaded}"
    );
    let findings: Vec<_> = r.findings.iter().filter(|f| f.artifact == file).collect();
    assert!(!findings.is_empty());
    assert!(findings
        .iter()
        .all(|f| f.properties["loadedWhenDumpTaken"] == loaded));
    let note = r
        .notices
        .iter()
        .find(|n| n.message.starts_with("triage dump"))
        .unwrap();
    assert!(
        note.message.contains("1 match scanned files")
            && note.message.contains("150 have no scanned file"),
        "{}",
        note.message
    );
}
