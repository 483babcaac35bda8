//! Outputs: sinks the pipeline feeds ([`crate::report::Sink`]), one module per format.
//!
//! - [`sarif`]: SARIF 2.1.0, written while the scan runs;
//! - [`text`]: the compiler-style report, and the tag inventory of `drvaudit tags` (pooltag.txt
//!   lines or JSON).

pub mod sarif;
pub mod text;

/// Output formats of `drvaudit scan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// SARIF 2.1.0 JSON.
    Sarif,
    /// Compiler-style lines and a summary.
    Text,
}
