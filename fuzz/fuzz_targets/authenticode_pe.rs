//! A PE image's certificate table, PKCS#7 signatures, digests and signature class.
//! The entry point is `drvaudit::harness::authenticode_pe`, which `tests/it/regress.rs` replays on
//! stable for every file under `testdata/regress/authenticode_pe/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| drvaudit::harness::authenticode_pe(data));
