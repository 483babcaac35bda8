//! A kernel crash dump held in memory: `drvaudit dump`'s report, then every loaded driver carved
//! and audited.
//! The entry point is `drvaudit::harness::dump`, which `tests/it/regress.rs` replays on
//! stable for every file under `testdata/regress/dump/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| drvaudit::harness::dump(data));
