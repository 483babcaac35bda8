//! An INF file: sections, version, catalogs, models, install sections, copied files, services,
//! problems.
//! The entry point is `drvaudit::harness::inf`, which `tests/it/regress.rs` replays on
//! stable for every file under `testdata/regress/inf/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| drvaudit::harness::inf(data));
