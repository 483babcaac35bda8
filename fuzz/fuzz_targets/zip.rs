//! A .zip driver package: members streamed and each audited.
//! The entry point is `drvaudit::harness::zip`, which `tests/it/regress.rs` replays on
//! stable for every file under `testdata/regress/zip/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| drvaudit::harness::zip(data));
