//! A baseline SARIF log (`--baseline`), then findings classified against it.
//! The entry point is `drvaudit::harness::baseline_sarif`, which `tests/it/regress.rs` replays on
//! stable for every file under `testdata/regress/baseline_sarif/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| drvaudit::harness::baseline_sarif(data));
