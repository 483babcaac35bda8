//! Test-only helpers shared by the dump tests.
#![allow(dead_code)]

pub mod dumpwriter;
