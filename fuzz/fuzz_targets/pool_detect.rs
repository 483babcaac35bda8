//! Any pool usage file, its format detected as `--pool` does.
//! The entry point is `drvaudit::harness::pool_detect`, which `tests/it/regress.rs` replays on
//! stable for every file under `testdata/regress/pool_detect/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| drvaudit::harness::pool_detect(data));
