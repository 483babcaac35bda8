//! A security catalog (.cat).
//! The entry point is `drvaudit::harness::catalog`, which `tests/it/regress.rs` replays on
//! stable for every file under `testdata/regress/catalog/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| drvaudit::harness::catalog(data));
