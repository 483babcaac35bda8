//! A driver image in loaded layout (as carved from a crash dump) through the whole per-image audit.
//! The entry point is `drvaudit::harness::pe_loaded`, which `tests/it/regress.rs` replays on
//! stable for every file under `testdata/regress/pe_loaded/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| drvaudit::harness::pe_loaded(data));
