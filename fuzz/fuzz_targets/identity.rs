//! A driver's identity facts: version resource in both layouts, flat hashes, imphash.
//! The entry point is `drvaudit::harness::identity`, which `tests/it/regress.rs` replays on
//! stable for every file under `testdata/regress/identity/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| drvaudit::harness::identity(data));
