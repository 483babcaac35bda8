//! pooltag.txt.
//! The entry point is `drvaudit::harness::pooltag`, which `tests/it/regress.rs` replays on
//! stable for every file under `testdata/regress/pooltag/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| drvaudit::harness::pooltag(data));
