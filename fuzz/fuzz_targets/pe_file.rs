//! A driver image in file layout through the whole per-image audit (PE model, call sites, every
//! rule, the outputs).
//! The entry point is `drvaudit::harness::pe_file`, which `tests/it/regress.rs` replays on
//! stable for every file under `testdata/regress/pe_file/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| drvaudit::harness::pe_file(data));
