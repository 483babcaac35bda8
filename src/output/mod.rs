//! Output writers: pure functions from a [`Report`](crate::finding::Report) to text.

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
