//! A rule file (`--rules DIR`), then its rules run against a fixture driver.
//! The entry point is `drvaudit::harness::rule_toml`, which `tests/it/regress.rs` replays on
//! stable for every file under `testdata/regress/rule_toml/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| drvaudit::harness::rule_toml(data));
