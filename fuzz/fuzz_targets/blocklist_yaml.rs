//! One LOLDrivers YAML file (drvaudit's subset YAML reader and its pre-pass), then the matcher.
//! The entry point is `drvaudit::harness::blocklist_yaml`, which `tests/it/regress.rs` replays on
//! stable for every file under `testdata/regress/blocklist_yaml/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| drvaudit::harness::blocklist_yaml(data));
