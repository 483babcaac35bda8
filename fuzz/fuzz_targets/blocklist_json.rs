//! LOLDrivers' drivers.json, then the matcher.
//! The entry point is `drvaudit::harness::blocklist_json`, which `tests/it/regress.rs` replays on
//! stable for every file under `testdata/regress/blocklist_json/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| drvaudit::harness::blocklist_json(data));
