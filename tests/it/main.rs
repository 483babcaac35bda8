//! The integration tests: one binary, one module per concern, helpers once (`common`, and
//! `support` for the dump writer).

mod action;
mod architecture;
mod authenticode;
mod authenticode_hostile;
mod blocklist;
mod callsite_arm64;
mod callsite_x86;
mod common;
mod debuginfo;
mod dump_corpus;
mod dump_fixtures;
mod dump_hostile;
mod dump_reader;
mod dump_scan;
mod fixture_rules;
mod fuzz_seeds;
mod gate;
mod gating;
mod hostile_paths;
mod identity;
mod incident;
mod inf;
mod meta;
mod package_hostile;
mod panics;
mod poolfiles;
mod rank;
mod regress;
mod rules_alone;
mod sarif;
mod scan;
mod snapshots;
mod source_lines;
mod support;
mod triage;
