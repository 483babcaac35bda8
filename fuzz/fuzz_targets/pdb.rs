//! A PDB: the MSF checks, identity, symbol index and lookups.
//! The entry point is `drvaudit::harness::pdb`, which `tests/it/regress.rs` replays on
//! stable for every file under `testdata/regress/pdb/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| drvaudit::harness::pdb(data));
