//! A drvaudit.toml configuration file, resolved with the built-in rules and rendered.
//! The entry point is `drvaudit::harness::config_toml`, which `tests/it/regress.rs` replays on
//! stable for every file under `testdata/regress/config_toml/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| drvaudit::harness::config_toml(data));
