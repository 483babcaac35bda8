//! Whole-log snapshots: the SARIF of `testdata/` and of the incident dump, redacted of paths and
//! version, so every change shows exactly what moved in the logs users read. Also the contract
//! that a log written while the scan runs is the log of the finished report.

use drvaudit::output::sarif::SarifSink;
use drvaudit::pipeline;

use crate::common::*;

/// The committed fixture folders of `testdata/`: every folder but the git-ignored build
/// intermediates (`.build/`), which exist only where `build.sh` ran, and the fuzz targets'
/// regression files (`regress/`), which must only not crash (tests/it/regress.rs).
fn committed_testdata() -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(testdata(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            p.is_dir() && !name.starts_with('.') && name != "regress"
        })
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn sarif_of_testdata() {
    let report = scan_paths(&committed_testdata());
    insta::assert_json_snapshot!("testdata.sarif", redacted_sarif(&sarif_text(&report), &[]));
}

/// A scan without pool evidence is written while it runs, in batches (here of seven results,
/// so most batches end inside an input and some inputs have none): the log is byte for byte
/// the one written from the whole report, and the returned report keeps every artifact and
/// notice, with the exit code the findings decide.
#[test]
fn streamed_log_is_the_log_of_the_whole_report() {
    let mut s = settings(&[testdata("bin"), testdata("packages"), testdata("malformed")]);
    assert!(pipeline::streamable(&s));
    let whole = pipeline::scan(&s);
    let mut streamed = Vec::new();
    let rules = s.rules.enabled();
    let mut sink = SarifSink::new(&mut streamed, &rules, &root(), Default::default());
    let (report, written) = pipeline::run_with_batch_size(&s, &mut sink, 7);
    written.unwrap();
    drop(sink);
    assert_eq!(String::from_utf8(streamed).unwrap(), sarif_text(&whole));
    assert!(whole.findings.len() > 300 && report.findings.is_empty());
    // testdata/malformed makes the audit incomplete.
    assert_eq!((whole.exit_code, report.exit_code), (2, 2));
    assert_eq!(report.artifacts, whole.artifacts);
    assert_eq!(report.notices, whole.notices);

    // An output that fails part-way (a reader gone away): the error is returned, and the scan
    // still runs to its end, so the report and exit code are whole. With one result per batch,
    // the workers are blocked on the channel when it breaks.
    struct Breaks(usize);
    impl std::io::Write for Breaks {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 = self
                .0
                .checked_sub(buf.len())
                .ok_or(std::io::ErrorKind::BrokenPipe)?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let log = sarif_text(&whole);
    let results = log.find("\"results\"").unwrap();
    // In the head, among the results, and in the artifacts after them.
    for at in [results / 2, (results + log.len()) / 2, log.len() - 100] {
        let mut sink = SarifSink::new(Breaks(at), &rules, &root(), Default::default());
        let (report, written) = pipeline::run_with_batch_size(&s, &mut sink, 1);
        assert_eq!(written.unwrap_err().kind(), std::io::ErrorKind::BrokenPipe);
        assert_eq!(report.exit_code, 2);
        assert_eq!(report.artifacts, whole.artifacts);
    }

    // Pool evidence ranks the report as a whole: no streaming.
    s.pool_files = vec![testdata("pool/incident.csv")];
    assert!(!pipeline::streamable(&s));
}
