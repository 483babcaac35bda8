//! Shard logs merged by `drvaudit merge` (the log alone and as two shards).
//! The entry point is `drvaudit::harness::merge_sarif`, which `tests/it/regress.rs` replays on
//! stable for every file under `testdata/regress/merge_sarif/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| drvaudit::harness::merge_sarif(data));
