//! Paths a hostile driver names: its CodeView record's PDB path (looked up as recorded when it
//! is absolute) must never make the audit block or read without end — a FIFO would block
//! `open`, a device such as `/dev/zero` would read forever.

use std::sync::mpsc;
use std::time::Duration;

use drvaudit::pe::Layout;
use drvaudit::pipeline::{audit_bytes, MemoryInput};
use drvaudit::rules::RuleSet;

use crate::common::testdata;

/// `pooltest_clang_x64_O2.sys` (which has findings, so its debug information is looked up) with
/// its CodeView PDB path replaced by `path`.
fn naming_pdb(path: &str) -> Vec<u8> {
    let mut bytes = std::fs::read(testdata("bin/pooltest_clang_x64_O2.sys")).unwrap();
    let name = b"pooltest_clang_x64_O2.pdb";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap();
    assert!(path.len() <= name.len(), "{path} does not fit");
    bytes[at..at + name.len()].fill(0);
    bytes[at..at + path.len()].copy_from_slice(path.as_bytes());
    bytes
}

/// Audits `bytes` on another thread; `None` if it has not finished within 60 s.
fn audit_within(bytes: Vec<u8>) -> Option<drvaudit::report::Report> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rules = RuleSet::builtin().unwrap();
        let r = audit_bytes(
            "evil.sys",
            MemoryInput::Image(Layout::File),
            &bytes,
            &rules,
            None,
        );
        let _ = tx.send(r);
    });
    rx.recv_timeout(Duration::from_secs(60)).ok()
}

#[test]
fn a_pdb_path_naming_a_fifo_or_a_device_does_not_hang() {
    let dir = tempfile::Builder::new()
        .prefix("p")
        .tempdir_in("/tmp")
        .unwrap();
    let fifo = dir.path().join("f.pdb");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: mkfifo is not available");
        return;
    }
    for path in [fifo.display().to_string(), "/dev/zero".to_string()] {
        let report = audit_within(naming_pdb(&path))
            .unwrap_or_else(|| panic!("auditing an image naming {path} as its PDB hangs"));
        assert_eq!(report.drivers, 1);
        let note = report
            .notices
            .iter()
            .find(|n| n.message.contains(&path))
            .unwrap_or_else(|| panic!("no notice names {path}: {:?}", report.notices));
        assert!(
            note.message.contains("not a regular file"),
            "{}",
            note.message
        );
    }
}
