//! What a scan produces: artifacts, findings, notices, and the report that holds them.
//!
//! Everything here is owned and plain, so that a mapped image can be dropped as soon as its
//! rules have run, and so that output writers are pure functions of a [`Report`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::pe::Machine;
use crate::pool::{PoolCounters, PoolSnapshot};

/// Severity of a finding, ordered from least to most severe. Also the `--fail-on` threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Informational.
    Note,
    /// A problem worth fixing.
    Warning,
    /// A problem that fails the gate by default.
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Note => "note",
            Level::Warning => "warning",
            Level::Error => "error",
        })
    }
}

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
}

/// A logical location: the function, section or import a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Logical {
    /// Short name (`DriverEntry`, `sub_1400011a0`, `.text`, `ExAllocatePool`).
    pub name: String,
    /// Qualified name (`untagged.sys!sub_1400011a0`, `ntoskrnl.exe!ExAllocatePool`).
    pub fully_qualified: String,
    /// SARIF logical location kind (`function`, `section`, `module`).
    pub kind: &'static str,
    /// Start and end RVA of the function, when known (from `.pdata`).
    pub bounds: Option<(u32, u32)>,
}

/// Observed pool figures tied to a finding through its tags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// NonPaged counters summed over the finding's tags.
    pub nonpaged: PoolCounters,
    /// Paged counters summed over the finding's tags.
    pub paged: PoolCounters,
}

impl Evidence {
    /// Bytes in use in both pools.
    pub fn bytes(&self) -> u64 {
        self.nonpaged.bytes.saturating_add(self.paged.bytes)
    }
    /// Outstanding allocations in both pools.
    pub fn live(&self) -> u64 {
        self.nonpaged.live().saturating_add(self.paged.live())
    }
}

/// One result of one rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Stable rule id (`DRV1001`).
    pub rule_id: String,
    /// Level after any per-hit adjustment.
    pub level: Level,
    /// The full message: driver, what, why.
    pub message: String,
    /// Index into [`Report::artifacts`].
    pub artifact: usize,
    /// RVA of the instruction, import slot or section the finding is about.
    pub rva: Option<u32>,
    /// Byte offset and length within the artifact.
    pub region: Option<(u64, u64)>,
    /// Logical location.
    pub logical: Option<Logical>,
    /// Extra facts for SARIF `properties` (api, tag, pool type, provenance, …).
    pub properties: BTreeMap<String, serde_json::Value>,
    /// Pool tags the finding is tied to (for ranking by observed usage).
    pub tags: Vec<u32>,
    /// The call site a call-site finding is about; its facts (api, tag, pool type, how each
    /// was recovered) become SARIF properties when the log is written.
    pub site: Option<crate::callsite::CallSite>,
    /// About the driver as a whole (an import, a section, a header flag) rather than one call
    /// site: ranked by the sum over all of the driver's allocation tags.
    pub driver_level: bool,
    /// Observed pool figures for those tags, when any source was supplied.
    pub evidence: Option<Evidence>,
    /// 0–100 by share of pool in use; only findings with evidence are ranked.
    pub rank: Option<f64>,
    /// Machine-independent identity: same driver bytes and finding give the same value.
    pub fingerprint: String,
}

/// A problem met while reading inputs: never fatal, always reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    /// The file (or nested artifact) concerned.
    pub subject: String,
    /// What went wrong and why.
    pub message: String,
    /// `error` when an input could not be analysed at all, `warning` when only partly.
    pub level: Level,
}

/// Pool tags used by one image, from its call sites (or, failing those, its imports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagUse {
    /// The tag (u32 as the kernel stores it).
    pub tag: u32,
    /// APIs that allocate, free or initialise a lookaside list with it.
    pub apis: Vec<&'static str>,
    /// Number of call sites.
    pub sites: usize,
    /// Whether any site allocates (as opposed to only freeing).
    pub allocates: bool,
    /// Whether some site reads it at run time from a writable global, as one of the values the
    /// global can hold ([`crate::callsite::CallSite::tag_values`]).
    pub runtime: bool,
}

/// Per-image facts kept after analysis for inventories and attribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageSummary {
    /// Index into [`Report::artifacts`].
    pub artifact: usize,
    /// Processor.
    pub machine: Machine,
    /// Lower-case hex SHA-256 of the image bytes.
    pub sha256: String,
    /// Number of pool call sites found.
    pub call_sites: usize,
    /// `TimeDateStamp` and `SizeOfImage` as `XXXXXXXXxxxx` (the symbol-server key): the same
    /// image on disk and carved from memory share it, whereas their bytes never hash alike.
    pub pe_key: String,
    /// Tags used, sorted by tag.
    pub tags: Vec<TagUse>,
    /// Malformed structures parsing worked around (each also becomes a notice).
    pub anomalies: Vec<String>,
}

/// One row of the "top pool consumers" table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Consumer {
    /// The tag.
    pub tag: u32,
    /// NonPaged counters.
    pub nonpaged: PoolCounters,
    /// Paged counters.
    pub paged: PoolCounters,
    /// Share of all pool bytes in use, 0.0–1.0.
    pub share: f64,
    /// Names of the artifacts the tag is attributed to.
    pub drivers: Vec<String>,
    /// More than one driver uses the tag.
    pub ambiguous: bool,
    /// Owner from pooltag.txt, when supplied (`nt!mm`).
    pub owner: Option<String>,
}

/// Everything one run produced; the sole input of every output writer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Inputs and nested inputs, in deterministic order.
    pub artifacts: Vec<Artifact>,
    /// Findings, ordered by rank then artifact, rule and address.
    pub findings: Vec<Finding>,
    /// Problems met while reading inputs.
    pub notices: Vec<Notice>,
    /// Per-image facts.
    pub images: Vec<ImageSummary>,
    /// Merged pool usage from dumps and `--pool` files, when any.
    pub pool: Option<PoolSnapshot>,
    /// Top pool consumers with attribution, largest first.
    pub consumers: Vec<Consumer>,
    /// The process exit code the run ends with (0, 1), decided by `--fail-on`.
    pub exit_code: i32,
    /// The rules that ran (all enabled rules), sorted by id, for SARIF `tool.driver.rules`.
    #[serde(skip)]
    pub rules: Vec<crate::rules::Rule>,
}

impl Report {
    /// Number of findings at each level: (error, warning, note).
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |l| self.findings.iter().filter(|f| f.level == l).count();
        (n(Level::Error), n(Level::Warning), n(Level::Note))
    }
}
