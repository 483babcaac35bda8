//! A SiPolicy XML (Microsoft's driver block rules), then the matcher.
//! The entry point is `drvaudit::harness::sipolicy`, which `tests/it/regress.rs` replays on
//! stable for every file under `testdata/regress/sipolicy/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| drvaudit::harness::sipolicy(data));
