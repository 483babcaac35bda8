//! The fuzz targets' regression files, replayed on a stable toolchain: every file under
//! `testdata/regress/<target>/` goes to the entry point of that target
//! ([`drvaudit::harness`], the same function the fuzz target calls) and must come back
//! without a panic — not even one the library contains and reports.

use std::cell::Cell;
use std::sync::Once;

use crate::common::testdata;

thread_local! {
    /// Panics raised on this thread (contained or not).
    static PANICS: Cell<usize> = const { Cell::new(0) };
}

/// Counts panics per thread, then lets the previous hook print them as usual.
fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            previous(info);
        }));
    });
}

#[test]
fn every_regression_file_replays_without_a_panic() {
    count_panics();
    let dir = testdata("regress");
    let mut targets: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    targets.sort();
    let mut replayed = 0;
    let mut failed = Vec::new();
    for target in targets {
        let name = target.file_name().unwrap().to_string_lossy().to_string();
        let run = drvaudit::harness::target(&name)
            .unwrap_or_else(|| panic!("testdata/regress/{name}/ names no fuzz target"));
        let mut files: Vec<_> = std::fs::read_dir(&target)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            let before = PANICS.with(Cell::get);
            let outcome = std::panic::catch_unwind(|| run(&bytes));
            if outcome.is_err() || PANICS.with(Cell::get) != before {
                failed.push(format!(
                    "{name}/{}",
                    file.file_name().unwrap().to_string_lossy()
                ));
            }
            replayed += 1;
        }
    }
    assert!(failed.is_empty(), "panicked on: {failed:?}");
    // The hostile archives built by make_hostile.py at least.
    assert!(replayed >= 6, "only {replayed} regression files");
}

/// Every target has an entry point, and the fuzz crate has a target for each (by file name).
#[test]
fn every_target_has_a_fuzz_target_file() {
    let fuzz = crate::common::root().join("fuzz/fuzz_targets");
    for (name, _) in drvaudit::harness::TARGETS {
        let file = fuzz.join(format!("{name}.rs"));
        assert!(file.is_file(), "{} is missing", file.display());
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains(&format!("drvaudit::harness::{name}(")),
            "{} does not call harness::{name}",
            file.display()
        );
    }
}
