//! Pool evidence: reading `--pool` exports and `--pooltag`, attributing the observed usage to
//! the drivers, running the report-level rules, and ranking.
//!
//! Ranking: a call-site finding is tied to its tag (an untagged allocation to `None`,
//! contiguous memory to `MmCm`), a driver-level finding (a section, a header flag, an import
//! without a site) to the sum over the driver's allocation tags; [`rank_findings`] turns the
//! share of pool those tags hold into `rank`. Findings without evidence get none and sort after
//! ranked ones.

use std::path::PathBuf;

use crate::attribution::Attribution;
use crate::pool::tally::merge_sources;
use crate::pool::PoolSnapshot;
use crate::poolfiles::PoolTagDb;
use crate::report::{
    AnchorKind, Artifact, ArtifactKind, Finding, Level, Notice, NoticeKind, Place, Report,
};
use crate::rules::{ReportContext, RuleSet};
use crate::util::{display_path, file_name};

use super::collect::uri_for;

/// Reads every `--pool` export; each becomes an artifact (DRV9001 of a tag no driver uses is
/// anchored there), and one that cannot be read a notice naming the file and line.
pub(crate) fn load_pool_files(
    files: &[PathBuf],
    root: &std::path::Path,
    report: &mut Report,
) -> Vec<PoolSnapshot> {
    let mut snapshots = Vec::new();
    for path in files {
        let subject = display_path(path);
        // Read once: the same bytes are parsed and hashed for the artifact.
        let parsed = std::fs::read(path)
            .map_err(|e| (NoticeKind::Unreadable, format!("cannot read: {e}")))
            .and_then(|bytes| {
                crate::poolfiles::parse_pool_bytes(&bytes, &path.display().to_string())
                    .map(|snapshot| (snapshot, bytes))
                    .map_err(|e| (NoticeKind::MissingEvidence, e.to_string()))
            });
        match parsed {
            Ok((snapshot, bytes)) => {
                report.artifacts.push(Artifact {
                    name: file_name(&subject),
                    uri: uri_for(path, root),
                    parent: None,
                    kind: ArtifactKind::PoolExport,
                    sha256: Some(crate::util::sha256_hex(&bytes)),
                    length: Some(bytes.len() as u64),
                    memory_only: false,
                    facts: Default::default(),
                });
                snapshots.push(snapshot);
            }
            Err((kind, message)) => {
                report
                    .notices
                    .push(Notice::new(subject, kind, Level::Error, message))
            }
        }
    }
    snapshots
}

/// Reads `--pooltag`; a bad file is a notice, and the scan goes on without owners.
pub(crate) fn load_pooltag(path: Option<&PathBuf>, notices: &mut Vec<Notice>) -> Option<PoolTagDb> {
    let path = path?;
    match crate::poolfiles::load_pooltag_file(path) {
        Ok(db) => Some(db),
        Err(e) => {
            notices.push(Notice::new(
                display_path(path),
                NoticeKind::MissingEvidence,
                Level::Error,
                e.to_string(),
            ));
            None
        }
    }
}

/// Ties every finding to the observed usage, adds the report-level rules' findings and the
/// consumers table, and orders the findings by rank.
pub(crate) fn rank(
    report: &mut Report,
    rules: &RuleSet,
    snapshots: &[PoolSnapshot],
    pooltag: Option<&PoolTagDb>,
) {
    let usage = merge_sources(snapshots);
    let label = |a: usize| {
        let art = &report.artifacts[a];
        if art.memory_only {
            format!("{} (memory-only)", art.name)
        } else {
            art.name.clone()
        }
    };
    let attribution = Attribution::new(usage, &report.images, label, pooltag);
    let evidence_artifact = report
        .artifacts
        .iter()
        .position(|a| matches!(a.kind, ArtifactKind::Dump | ArtifactKind::PoolExport))
        .unwrap_or(0);
    let ctx = ReportContext {
        attribution: &attribution,
        evidence_artifact,
    };
    let mut summaries: Vec<Finding> = rules
        .check_report(&ctx)
        .into_iter()
        .map(|(rule, hit)| Finding::from_hit(rule, hit, Place::Report))
        .collect();
    crate::report::assign_fingerprints(&mut summaries);
    report.findings.append(&mut summaries);
    for f in &mut report.findings {
        f.evidence = attribution.evidence(&f.tags, f.driver_level, f.artifact);
    }
    rank_findings(&mut report.findings);
    sort_ranked(&mut report.findings);
    report.consumers = attribution.consumers;
    report.pool = Some(attribution.usage);
}

/// How a finding stands to the pool figures it is tied to, for its rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tie {
    /// Tied to its own tags (a call site, an untagged allocator's import).
    Direct,
    /// A report-level summary of one tag (DRV9001).
    Summary,
    /// About the driver as a whole, tied to all of its tags (a section, a header flag).
    Driver,
}

fn tie(f: &Finding) -> Tie {
    if f.anchor == AnchorKind::PoolTag {
        Tie::Summary
    } else if f.tags.is_empty() && f.driver_level {
        Tie::Driver
    } else {
        Tie::Direct
    }
}

/// The weight of a finding's share of pool in its rank. Direct findings come first, then a
/// tag's summary, then what is about a driver as a whole; within each, errors, warnings, notes.
/// The gaps keep every pair apart at equal evidence.
fn weight(tie: Tie, level: Level) -> f64 {
    match (tie, level) {
        (Tie::Direct, Level::Error) => 1.00,
        (Tie::Direct, Level::Warning) => 0.98,
        (Tie::Direct, Level::Note) => 0.96,
        (Tie::Summary, Level::Error) => 0.955,
        (Tie::Summary, Level::Warning) => 0.95,
        (Tie::Summary, Level::Note) => 0.945,
        (Tie::Driver, Level::Error) => 0.94,
        (Tie::Driver, Level::Warning) => 0.92,
        (Tie::Driver, Level::Note) => 0.90,
    }
}

/// Gives every finding with evidence its `rank` (0–100):
///
/// `rank = 100 × share × weight(tie, level)`
///
/// where `share` is the fraction of all pool bytes in use that the finding's tags hold — for a
/// finding about a driver as a whole, the sum over the driver's tags, but never more than the
/// share of the least of the driver's direct findings at their highest level: a driver-level
/// note (DRV3007) then always ranks below the errors of its driver it summarises. The weights
/// ([`weight`]) put, at equal evidence, direct findings before a tag's summary (DRV9001) before
/// driver-level findings, and within each errors before warnings before notes, strictly.
pub fn rank_findings(findings: &mut [Finding]) {
    use std::collections::HashMap;
    // Per artifact: the highest level among its direct findings with evidence, and the least
    // share among those of that level.
    let mut cap: HashMap<usize, (Level, f64)> = HashMap::new();
    for f in findings.iter() {
        let (Some(e), Tie::Direct) = (&f.evidence, tie(f)) else {
            continue;
        };
        let c = cap.entry(f.artifact).or_insert((f.level, e.share));
        if f.level > c.0 {
            *c = (f.level, e.share);
        } else if f.level == c.0 {
            c.1 = c.1.min(e.share);
        }
    }
    for f in findings.iter_mut() {
        let Some(e) = &f.evidence else {
            f.rank = None;
            continue;
        };
        let t = tie(f);
        let share = match (t, cap.get(&f.artifact)) {
            (Tie::Driver, Some(&(_, least))) => e.share.min(least),
            _ => e.share,
        };
        f.rank = Some(100.0 * share * weight(t, f.level));
    }
}

/// Ranked findings first, highest rank first (ties: errors first, a tag's summary after the
/// findings it summarises), then the unranked ones; otherwise the order they are in.
pub fn sort_ranked(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        let r = |f: &Finding| f.rank.unwrap_or(-1.0);
        r(b).total_cmp(&r(a))
            .then(b.level.cmp(&a.level))
            .then((a.anchor == AnchorKind::PoolTag).cmp(&(b.anchor == AnchorKind::PoolTag)))
    });
}
