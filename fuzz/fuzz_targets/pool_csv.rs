//! drvaudit's pool usage CSV.
//! The entry point is `drvaudit::harness::pool_csv`, which `tests/it/regress.rs` replays on
//! stable for every file under `testdata/regress/pool_csv/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| drvaudit::harness::pool_csv(data));
