//! A .cab driver package: the cabinet directory checked, members streamed and each audited.
//! The entry point is `drvaudit::harness::cab`, which `tests/it/regress.rs` replays on
//! stable for every file under `testdata/regress/cab/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| drvaudit::harness::cab(data));
