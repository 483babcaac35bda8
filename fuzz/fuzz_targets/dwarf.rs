//! DWARF inside a PE image (mingw builds): sections read, then lookups.
//! The entry point is `drvaudit::harness::dwarf`, which `tests/it/regress.rs` replays on
//! stable for every file under `testdata/regress/dwarf/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| drvaudit::harness::dwarf(data));
