//! Outputs: sinks the pipeline feeds ([`crate::report::Sink`]), one module per format.
//!
//! - [`sarif`]: SARIF 2.1.0, written while the scan runs;
//! - [`text`]: the report grouped by driver or one line per finding, and the tag inventory of `drvaudit tags` (pooltag.txt
//!   lines or JSON);
//! - [`notices`]: what could not be examined, on standard error before the report;
//! - [`merge`]: the SARIF logs of a sharded scan joined into one;
//! - [`identify`]: `drvaudit identify`'s table of driver identities, or JSON.

pub mod identify;
pub mod merge;
pub mod notices;
pub mod sarif;
pub mod text;

use crate::report::Sink;
use crate::rules::Rule;

/// Output formats of `drvaudit scan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// SARIF 2.1.0 JSON.
    Sarif,
    /// A report grouped by driver (or compiler-style lines with `--oneline`) and a summary.
    Text,
}

impl Format {
    /// The sink that writes this format to `out`; `rules` are the rules that run and `root`
    /// the absolute scan root (SARIF `SRCROOT`).
    pub fn sink<'w>(
        self,
        out: Box<dyn std::io::Write + Send + 'w>,
        rules: &[Rule],
        root: &std::path::Path,
        sarif: sarif::SarifOptions,
        text: text::TextOptions,
    ) -> Box<dyn Sink + 'w> {
        match self {
            Format::Sarif => Box::new(sarif::SarifSink::new(out, rules, root, sarif)),
            Format::Text => Box::new(text::TextSink::new(out, text)),
        }
    }
}
