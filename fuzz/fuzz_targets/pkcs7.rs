//! A bare PKCS#7 SignedData and X.509 certificate.
//! The entry point is `drvaudit::harness::pkcs7`, which `tests/it/regress.rs` replays on
//! stable for every file under `testdata/regress/pkcs7/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| drvaudit::harness::pkcs7(data));
