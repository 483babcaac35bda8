//! What a run produces — artifacts, findings, notices — and the [`Sink`] outputs implement.
//!
//! Everything here is owned and plain, so that an image can be dropped as soon as its rules
//! have run, and so that outputs are functions of what the pipeline feeds them. A [`Finding`]
//! can only be made from a rule and one of its hits ([`Finding::from_hit`]), so every finding
//! has the rule's id, level and reason and a location.

pub mod baseline;
mod finding;
pub mod sarif_shape;
mod source;
pub mod suppress;

use serde::Serialize;

pub use crate::rules::Level;
pub use finding::{assign_fingerprints, AnchorKind, Finding, Logical, Place};
pub use source::{InlinedCall, Source, SourcePosition};

use crate::attribution::Consumer;
use crate::driver::ImageSummary;
use crate::pool::PoolSnapshot;

/// What kind of thing an artifact is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ArtifactKind {
    /// A driver file on disk.
    File,
    /// A driver package (`.zip`, `.cab`) whose members are analysed.
    Package,
    /// A member of a package (its parent is the package).
    Member,
    /// A crash dump.
    Dump,
    /// A pool usage export given with `--pool`.
    PoolExport,
    /// A module a triage dump lists without holding its image (its parent is the dump).
    Listed {
        /// Kernel virtual address the module was loaded at.
        base: u64,
        /// Full path recorded in the module list.
        full_path: String,
    },
    /// A driver image carved from a dump (its parent is the dump), loaded at `base`.
    Carved {
        /// Kernel virtual address the module was loaded at.
        base: u64,
        /// Full path recorded in the module list.
        full_path: String,
    },
}

/// One input or nested input, as listed in SARIF `run.artifacts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Artifact {
    /// Location: a path relative to the scan root (forward slashes), a member path inside a
    /// package, or `name@0xbase` for a carved image.
    pub uri: String,
    /// Short name used in messages (`untagged.sys`, `{GUID}.sys`).
    pub name: String,
    /// Index of the containing artifact (package or dump).
    pub parent: Option<usize>,
    /// What the artifact is.
    pub kind: ArtifactKind,
    /// Lower-case hex SHA-256 of its bytes, when they were read.
    pub sha256: Option<String>,
    /// Length in bytes, when known.
    pub length: Option<u64>,
    /// For carved images: no scanned file has the same name and contents.
    pub memory_only: bool,
    /// Facts about the artifact for SARIF `artifact.properties` and the text report: a dump's
    /// time and how it was taken, a listed module's TimeDateStamp, the dump a file was loaded in.
    pub facts: std::collections::BTreeMap<String, serde_json::Value>,
}

/// The path an artifact is shown by: nested artifacts as `package:member` and `dump>module`.
pub fn display_path(artifacts: &[Artifact], index: usize) -> String {
    let a = &artifacts[index];
    match a.parent {
        Some(p) => {
            let sep = if matches!(
                a.kind,
                ArtifactKind::Carved { .. } | ArtifactKind::Listed { .. }
            ) {
                ">"
            } else {
                ":"
            };
            format!("{}{sep}{}", display_path(artifacts, p), a.uri)
        }
        None => a.uri.clone(),
    }
}

/// What kind of problem a notice reports: outputs and the exit code decide on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoticeKind {
    /// The input could not be opened or read at all (missing, permission denied, I/O error).
    Unreadable,
    /// The input was read but is not what it claims to be, or is damaged beyond use (not a PE
    /// image, a corrupt archive, a dump whose header cannot be parsed).
    Malformed,
    /// The input was analysed only in part (damaged structures worked around, pages missing
    /// from a dump, a link loop not followed).
    Partial,
    /// The input uses something drvaudit does not support (five-level paging, …).
    Unsupported,
    /// Evidence the user asked for could not be used (a `--pool` or `--pooltag` file, a dump's
    /// pool tracker table).
    MissingEvidence,
    /// drvaudit itself failed on this input (a bug); the rest of the run is unaffected.
    Internal,
    /// A driver's debug information was looked for and not found or not usable: its findings
    /// have no source lines (a note; the audit itself is complete).
    NoDebugInfo,
    /// A limit on the work one input may cause was reached (a hostile or damaged input);
    /// what was left unexamined is named.
    Budget,
    /// The inputs held no driver at all.
    NoInput,
    /// A suppression in the configuration matched no finding.
    StaleSuppression,
}

impl NoticeKind {
    /// Whether a notice of this kind means something the user asked drvaudit to examine was not
    /// examined: the audit is then incomplete, and the run fails closed (exit code 2) unless
    /// `--allow-incomplete` is given.
    pub fn makes_incomplete(self) -> bool {
        matches!(
            self,
            NoticeKind::Unreadable
                | NoticeKind::Malformed
                | NoticeKind::Unsupported
                | NoticeKind::MissingEvidence
                | NoticeKind::Internal
                | NoticeKind::Budget
                | NoticeKind::NoInput
        )
    }

    /// How the notices of this kind are headed when reported together.
    pub fn heading(self) -> &'static str {
        match self {
            NoticeKind::Unreadable => "could not be read",
            NoticeKind::Malformed => "could not be parsed",
            NoticeKind::Partial => "analysed only in part",
            NoticeKind::Unsupported => "not supported",
            NoticeKind::MissingEvidence => "pool evidence missing",
            NoticeKind::Internal => "internal errors",
            NoticeKind::Budget => "limits reached",
            NoticeKind::NoInput => "nothing to audit",
            NoticeKind::StaleSuppression => "stale suppressions",
            NoticeKind::NoDebugInfo => "no source lines",
        }
    }
}

/// A problem met while reading inputs: never fatal to the run, always reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    /// The file (or nested artifact) concerned.
    pub subject: String,
    /// What went wrong and why.
    pub message: String,
    /// `error` when an input could not be analysed at all, `warning` when only partly.
    pub level: Level,
    /// What kind of problem it is.
    pub kind: NoticeKind,
}

impl Notice {
    /// A notice about `subject`. A notice that makes the audit incomplete is always an error,
    /// whatever `level` says.
    pub fn new(
        subject: impl Into<String>,
        kind: NoticeKind,
        level: Level,
        message: impl Into<String>,
    ) -> Notice {
        Notice {
            subject: subject.into(),
            message: message.into(),
            level: if kind.makes_incomplete() {
                Level::Error
            } else {
                level
            },
            kind,
        }
    }
}

/// Everything one run produced: what outputs are given once the run is over.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Inputs and nested inputs, in deterministic order.
    pub artifacts: Vec<Artifact>,
    /// Findings, ordered by rank then artifact, rule and address. Empty in a report whose
    /// findings were streamed to the sink as the run went.
    pub findings: Vec<Finding>,
    /// Problems met while reading inputs.
    pub notices: Vec<Notice>,
    /// Per-image facts (empty when streamed, like the findings).
    pub images: Vec<ImageSummary>,
    /// Merged pool usage from dumps and `--pool` files, when any.
    pub pool: Option<PoolSnapshot>,
    /// Top pool consumers with attribution, largest first.
    pub consumers: Vec<Consumer>,
    /// The process exit code the run ends with: 0 clean, 1 a finding at or above `--fail-on`,
    /// 2 the audit is incomplete (see [`NoticeKind::makes_incomplete`]).
    pub exit_code: i32,
    /// Driver images modelled (files, package members, carved images).
    pub drivers: usize,
    /// Pool evidence was asked for (a dump or `--pool`) but none could be used: why. The report
    /// is then unranked, and says so first.
    pub unranked: Option<String>,
    /// With a baseline: its results that no finding matched, as it holds them, marked absent.
    pub absent: Vec<serde_json::Value>,
    /// The rules that ran (all enabled rules), sorted by id, for SARIF `tool.driver.rules`.
    #[serde(skip)]
    pub rules: Vec<crate::rules::Rule>,
}

impl Report {
    /// Number of findings at each level: (error, warning, note).
    /// Suppressed findings are not counted.
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |l| {
            self.findings
                .iter()
                .filter(|f| f.level == l && f.suppression.is_none())
                .count()
        };
        (n(Level::Error), n(Level::Warning), n(Level::Note))
    }

    /// Whether some input could not be examined ([`NoticeKind::makes_incomplete`]).
    pub fn incomplete(&self) -> bool {
        self.notices.iter().any(|n| n.kind.makes_incomplete())
    }

    /// The "why" of rule `id` (appended to its findings' messages).
    pub fn why(&self, id: &str) -> &str {
        self.rules
            .iter()
            .find(|r| r.id == id)
            .map_or("", |r| r.why.as_str())
    }
}

/// A stretch of a run's results handed to a sink: consecutive findings in report order, with
/// every artifact known so far (the findings' `artifact` indices point into it).
pub struct Batch<'a> {
    /// Every artifact so far, in report order.
    pub artifacts: &'a [Artifact],
    /// Findings, in report order.
    pub findings: &'a [Finding],
    /// Summaries of the images those findings came from.
    pub images: &'a [ImageSummary],
}

/// An output: what the pipeline feeds with a run's results.
///
/// The pipeline calls [`Sink::results`] for each batch of results in report order — while the
/// scan runs when nothing ranks the findings, or once after ranking — and then
/// [`Sink::finish`] once with the finished report (artifacts, notices, consumers, exit code;
/// its `findings` and `images` hold what was not already given as batches). An error from a
/// sink stops what is written, never the run: the exit code still reflects the whole scan.
pub trait Sink: Send {
    /// One batch of results.
    fn results(&mut self, batch: &Batch<'_>) -> std::io::Result<()>;
    /// The end of the run.
    fn finish(&mut self, report: &Report) -> std::io::Result<()>;
}
