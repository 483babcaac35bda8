//! Pool evidence: reading `--pool` exports and `--pooltag`, attributing the observed usage to
//! the drivers, running the report-level rules, and ranking.
//!
//! Ranking: a call-site finding is tied to its tag (an untagged allocation to `None`,
//! contiguous memory to `MmCm`); a driver-level finding (a section, a header flag, an import
//! without a site) to the sum over the driver's allocation tags. `rank` is
//! `ceil(100 × bytes / pool in use)` ([`rank_for`]); findings without evidence get none and
//! sort after ranked ones.

use std::path::PathBuf;

use crate::attribution::Attribution;
use crate::pool::tally::{merge_sources, rank_for};
use crate::pool::PoolSnapshot;
use crate::poolfiles::PoolTagDb;
use crate::report::{Artifact, ArtifactKind, Finding, Level, Notice, NoticeKind, Place, Report};
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
    for (rule, hit) in rules.check_report(&ctx) {
        report
            .findings
            .push(Finding::from_hit(rule, hit, Place::Report));
    }
    for f in &mut report.findings {
        if let Some(e) = attribution.evidence(&f.tags, f.driver_level, f.artifact) {
            f.rank = Some(f64::from(rank_for(e.bytes(), attribution.total)));
            f.evidence = Some(e);
        }
    }
    // Ranked first, largest first; at equal rank errors before warnings before notes, and the
    // per-tag DRV9001 summary after the findings it summarises; otherwise the previous order.
    report.findings.sort_by(|a, b| {
        let key = |f: &Finding| {
            (
                std::cmp::Reverse(f.rank.map(|r| (r * 10.0) as i64).unwrap_or(-1)),
                std::cmp::Reverse(f.level),
                f.anchor == crate::report::AnchorKind::PoolTag,
            )
        };
        key(a).cmp(&key(b))
    });
    report.consumers = attribution.consumers;
    report.pool = Some(attribution.usage);
}
