//! drvaudit: an offline static audit linter for Windows kernel drivers.
//!
//! Layers, lowest first; a module imports only from layers below its own (a test derives the
//! module graph from the sources and fails on a cycle):
//!
//! 1. [`util`] — printable text, hashes, display paths, reading and mapping files;
//! 2. [`pe`] — the facts of one PE image (headers, sections, imports, exports, debug, `.pdata`);
//!    [`pool`] — pool usage types, tag display, the pool API table and the arithmetic of usage;
//!    [`authenticode`] — Authenticode digests and first-page hashes, embedded signatures,
//!    catalogs and the signature classes (a leaf over byte slices);
//!    [`identity`] — version resource, imphash, flat hashes; [`inf`] — INF files;
//! 3. [`dump`] — the crash-dump reader; [`callsite`] — pool call sites recovered from code;
//!    [`poolfiles`] — `!poolused`/PoolMon/CSV/JSON exports and pooltag.txt; [`package`] —
//!    `.zip`/`.cab` members; [`debuginfo`] — PDB and DWARF: RVA → source file, line, function,
//!    inlining chain; [`blocklist`] — LOLDrivers and SiPolicy lists and their matcher;
//! 4. [`driver`] — per-driver facts: image, call sites, carve holes, identity, memory-only;
//!    [`attribution`] — observed pool usage joined with the drivers' tag inventories;
//! 5. [`rules`] — rule metadata, declarative matchers, native checks, report-level rules;
//! 6. [`report`] — findings (made only from a rule's hit), notices, artifacts, the run's report,
//!    and the [`report::Sink`] trait outputs implement;
//! 7. [`pipeline`] — collect inputs, load, audit, carve dumps, merge, attribute pool evidence,
//!    feed a sink;
//! 8. [`output`] — the SARIF, text and tag-inventory sinks; [`harness`] — one input's bytes
//!    through everything that reads them (the fuzz targets' entry points);
//! 9. the `drvaudit` binary (`main.rs`): arguments in, a sink chosen, the exit code out.

pub mod util;

pub mod authenticode;
pub mod identity;
pub mod inf;
pub mod pe;
pub mod pool;

pub mod blocklist;
pub mod callsite;
pub mod debuginfo;
pub mod dump;
pub mod package;
pub mod poolfiles;

pub mod attribution;
pub mod driver;
pub mod facts;
pub mod packageinfo;

pub mod rules;

pub mod report;

pub mod pipeline;

pub mod output;

pub mod config;

pub mod harness;

pub use util::{printable_text, sha256_hex};
