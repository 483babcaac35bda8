//! Merging units into the report in walk order, whatever order the workers finish in.

use std::collections::BTreeMap;
use std::sync::mpsc::SyncSender;

use crate::driver::ImageSummary;
use crate::report::{Artifact, Finding, Level, Notice, Report};

/// The result of analysing one input, with artifact indices local to it (0 = the input).
#[derive(Debug, Default)]
pub(crate) struct Unit {
    pub(crate) artifacts: Vec<Artifact>,
    pub(crate) findings: Vec<Finding>,
    pub(crate) images: Vec<ImageSummary>,
    pub(crate) notices: Vec<Notice>,
}

/// Results handed from the merge to the thread that feeds the sink: the artifacts added since
/// the previous batch, and findings and images with report-wide artifact indices.
#[derive(Debug, Default)]
pub(crate) struct OwnedBatch {
    pub(crate) artifacts: Vec<Artifact>,
    pub(crate) findings: Vec<Finding>,
    pub(crate) images: Vec<ImageSummary>,
}

/// Where merged results go.
pub(crate) enum Mode {
    /// Kept in the report, to be ranked and handed to the sink as a whole.
    Keep,
    /// Sent on in batches of about `batch` findings as soon as their turn comes.
    Stream {
        tx: SyncSender<OwnedBatch>,
        pending: OwnedBatch,
        batch: usize,
    },
}

/// Merges units into the report in walk order as they complete: the walk numbers its inputs,
/// and a unit that finishes early waits for the ones before it. The report therefore does not
/// depend on thread timing, and no unit is held after its turn.
pub(crate) struct Merger {
    pub(crate) report: Report,
    next: usize,
    waiting: BTreeMap<usize, Unit>,
    mode: Mode,
    /// Highest level among findings sent on (they are not kept for the exit code).
    pub(crate) worst: Option<Level>,
}

impl Merger {
    pub(crate) fn new(report: Report, mode: Mode) -> Merger {
        Merger {
            report,
            next: 0,
            waiting: BTreeMap::new(),
            mode,
            worst: None,
        }
    }

    /// Unit `seq` of the walk has finished.
    pub(crate) fn arrive(&mut self, seq: usize, unit: Unit) {
        self.waiting.insert(seq, unit);
        while let Some(unit) = self.waiting.remove(&self.next) {
            self.next += 1;
            self.take(unit);
        }
    }

    /// Merges a unit now (dumps, analysed one at a time after the walk).
    pub(crate) fn take(&mut self, unit: Unit) {
        let first_new = self.report.artifacts.len();
        let (findings, images) = merge(&mut self.report, unit);
        self.report.drivers += images.len();
        match &mut self.mode {
            Mode::Keep => {
                self.report.findings.extend(findings);
                self.report.images.extend(images);
            }
            Mode::Stream { tx, pending, batch } => {
                self.worst = self.worst.max(findings.iter().map(|f| f.level).max());
                pending
                    .artifacts
                    .extend_from_slice(&self.report.artifacts[first_new..]);
                pending.findings.extend(findings);
                pending.images.extend(images);
                if pending.findings.len() >= *batch {
                    // A failed send means the writer stopped (its error is returned); the
                    // scan then only finishes.
                    let _ = tx.send(std::mem::take(pending));
                }
            }
        }
    }

    /// Sends what is left and closes the stream; the report is complete once every unit has
    /// arrived.
    pub(crate) fn finish(self) -> (Report, Option<Level>) {
        debug_assert!(self.waiting.is_empty(), "every walked input was merged");
        if let Mode::Stream { tx, pending, .. } = self.mode {
            let _ = tx.send(pending);
        }
        (self.report, self.worst)
    }
}

/// Shifts a unit's local artifact indices, appends its artifacts and notices to the report,
/// and returns its findings and images (indices shifted) for the caller to keep or stream.
fn merge(report: &mut Report, unit: Unit) -> (Vec<Finding>, Vec<ImageSummary>) {
    let base = report.artifacts.len();
    for mut a in unit.artifacts {
        a.parent = a.parent.map(|p| p + base);
        report.artifacts.push(a);
    }
    report.notices.extend(unit.notices);
    let mut findings = unit.findings;
    for f in &mut findings {
        f.artifact += base;
    }
    let mut images = unit.images;
    for i in &mut images {
        i.artifact += base;
    }
    (findings, images)
}

/// The order of unranked findings: artifact, rule, address, fingerprint.
pub(crate) fn finding_order(a: &Finding, b: &Finding) -> std::cmp::Ordering {
    (a.artifact, &a.rule_id, a.rva, &a.fingerprint).cmp(&(
        b.artifact,
        &b.rule_id,
        b.rva,
        &b.fingerprint,
    ))
}
