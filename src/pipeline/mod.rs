//! The pipeline: collect the inputs, analyse them in parallel, carve the dumps, merge in a
//! fixed order, attribute pool evidence, and feed the results to a [`Sink`].
//!
//! The walk ([`collect`]) hands each file to rayon's workers as it finds it, in path order;
//! each worker audits its input ([`audit`]) into a unit, and units are merged in walk order
//! whatever order they finish in ([`merge`]), so the report is the same whatever the thread
//! timing. Dumps are analysed after every file ([`dumps`]), so that a carved driver can be
//! recognised as one also scanned on disk. Pool evidence ([`evidence`]) then ranks the
//! findings as a whole.
//!
//! Without pool evidence no finding's rank or order depends on the others, and the results are
//! handed to the sink while the scan runs, in batches, from a thread of their own: memory then
//! stays flat in the size of the tree. With evidence they are handed over once, ranked.
//!
//! A file that cannot be read or parsed becomes a [`crate::report::Notice`] and never costs the
//! results of the others.

mod audit;
mod collect;
mod dumps;
mod evidence;
mod memory;
mod merge;
mod packages;

pub use evidence::{rank_findings, sort_ranked};

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::util::deadline;

use crate::report::{Batch, Finding, Level, Report, Sink};
use crate::rules::RuleSet;

use audit::{analyze_input, artifact_kind, guarded, internal_error, Auditor};
use collect::{collect, kind_of_explicit, uri_for, Input, InputKind};
use merge::{finding_order, Merger, Mode, OwnedBatch};

pub use memory::{audit_bytes, MemoryInput};

/// Everything a scan needs, resolved from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Files and directories to scan.
    pub paths: Vec<PathBuf>,
    /// Crash dumps whose loaded drivers are carved and audited.
    pub dumps: Vec<PathBuf>,
    /// Pool usage exports (`!poolused`, PoolMon, CSV, JSON).
    pub pool_files: Vec<PathBuf>,
    /// pooltag.txt for tag owners.
    pub pooltag: Option<PathBuf>,
    /// Rules to run.
    pub rules: RuleSet,
    /// Show a progress bar (only ever on a terminal).
    pub progress: bool,
    /// Base directory artifact URIs are made relative to (SARIF `SRCROOT`).
    pub root: PathBuf,
    /// Lowest level that makes the exit code 1; `None` never fails.
    pub fail_on: Option<Level>,
    /// Decode code for pool call sites (off: `--imports-only`, import-level findings only).
    pub call_sites: bool,
    /// Inputs that could not be examined do not fail the run (exit code 2); they are still
    /// reported (`--allow-incomplete`, for sweeps of whole systems).
    pub allow_incomplete: bool,
    /// Findings accepted by the configuration (`[[suppress]]`).
    pub suppressions: std::sync::Arc<Vec<crate::report::suppress::Suppression>>,
    /// SARIF log of an earlier scan that results are compared with (`--baseline`).
    pub baseline: Option<PathBuf>,
    /// Which part of the inputs this run audits (`--shard I/N`).
    pub shard: Shard,
    /// Folders of PDBs and symbol stores (`--symbols`); `_NT_SYMBOL_PATH`'s local folders are
    /// searched too.
    pub symbols: Vec<PathBuf>,
    /// Build-path rewrites onto a checkout (`--source-map PREFIX=DIR`).
    pub source_map: Vec<(String, PathBuf)>,
    /// Blocklists drivers are matched against (`--blocklist`).
    pub blocklists: Vec<PathBuf>,
    /// Compute each image's identity (`drvaudit identify`): version resource, signature
    /// class and signer, Authenticode SHA-256, blocklist entries.
    pub identify: bool,
    /// How long one input may be analysed before it is abandoned with a notice
    /// (`--input-timeout`; `None`: no limit). See [`crate::util::deadline`].
    pub input_timeout: Option<std::time::Duration>,
}

/// Loads every blocklist; one that cannot be used is an input that could not be read, and the
/// audit is incomplete (a gate must not pass drivers because it lost its list).
fn load_blocklists(
    paths: &[PathBuf],
    notices: &mut Vec<crate::report::Notice>,
) -> Vec<crate::blocklist::Blocklist> {
    let mut lists = Vec::new();
    for p in paths {
        match crate::blocklist::load(p) {
            Ok(l) => {
                // Rules the matcher cannot evaluate: the policy is checked without them.
                let notes = l.sipolicy().map_or(&[][..], |p| p.notes.as_slice());
                if let Some((first, rest)) = notes.split_first() {
                    notices.push(crate::report::Notice::new(
                        crate::util::display_path(p),
                        crate::report::NoticeKind::Partial,
                        Level::Warning,
                        format!(
                            "matched without the rules it cannot evaluate: {first}{}",
                            if rest.is_empty() {
                                String::new()
                            } else {
                                format!(" (and {} more)", rest.len())
                            }
                        ),
                    ));
                }
                lists.push(l)
            }
            Err(e) => notices.push(crate::report::Notice::new(
                crate::util::display_path(p),
                match e {
                    crate::blocklist::BlocklistError::Io { .. } => {
                        crate::report::NoticeKind::Unreadable
                    }
                    _ => crate::report::NoticeKind::Malformed,
                },
                Level::Error,
                e.to_string(),
            )),
        }
    }
    lists
}

/// A deterministic part of the inputs: `index` of `count` (1-based), chosen by a hash of each
/// input's path relative to the scan root, so that every machine and every run splits the same
/// tree the same way. The default takes everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1-based part.
    pub index: u32,
    /// Number of parts.
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Shard {
        Shard { index: 1, count: 1 }
    }
}

impl Shard {
    /// Whether this shard audits the input at `uri` (its artifact URI, relative to the root).
    pub fn takes(&self, uri: &str) -> bool {
        if self.count <= 1 {
            return true;
        }
        // FNV-1a: fixed, tiny, and the same on every platform (std's hasher is seeded).
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in uri.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        h % u64::from(self.count) == u64::from(self.index - 1)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("`{s}` is not a shard: give I/N, 1 <= I <= N (e.g. 2/4)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse::<u32>().map_err(|_| bad())?,
            n.trim().parse::<u32>().map_err(|_| bad())?,
        );
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// Results go to the sink in batches of about this many findings: one hand-over per driver was
/// a few percent of the run in thread wake-ups.
const BATCH: usize = 1024;

/// Runs a whole scan and returns its report with every finding and image summary (unranked
/// findings are in walk order: by artifact, then rule and address; ranking re-orders them when
/// pool evidence exists).
pub fn scan(settings: &Settings) -> Report {
    let mut keep = Keep::default();
    let (mut report, _) = run(settings, &mut keep);
    report.findings = keep.findings;
    report.images = keep.images;
    report
}

/// Runs a scan and feeds `sink` (see [`Sink`] for the order of calls). Returns the finished
/// report — artifacts, notices, consumers, exit code; its findings and images went to the sink
/// — and what the sink answered: the scan always completes, so the exit code stands even when
/// the output failed part-way (a reader that went away, `| head`).
pub fn run(settings: &Settings, sink: &mut dyn Sink) -> (Report, std::io::Result<()>) {
    run_batched(settings, sink, BATCH)
}

/// [`run`] with streamed batches of about `batch` findings instead of the default: the output
/// must not depend on where batches end, which tests check with small batches.
pub fn run_with_batch_size(
    settings: &Settings,
    sink: &mut dyn Sink,
    batch: usize,
) -> (Report, std::io::Result<()>) {
    run_batched(settings, sink, batch.max(1))
}

/// Whether a scan streams its results ([`run`]): nothing supplies pool usage (no dump, no
/// `--pool` export), so no finding's rank or order depends on the others.
pub fn streamable(settings: &Settings) -> bool {
    settings.dumps.is_empty()
        && settings.pool_files.is_empty()
        && !settings
            .paths
            .iter()
            .any(|p| p.is_file() && kind_of_explicit(p) == InputKind::Dump)
}

fn run_batched(
    settings: &Settings,
    sink: &mut dyn Sink,
    batch: usize,
) -> (Report, std::io::Result<()>) {
    let mut notices = Vec::new();
    let pooltag = evidence::load_pooltag(settings.pooltag.as_ref(), &mut notices);
    let owners = pooltag.as_ref().map(|db| {
        db.entries()
            .iter()
            .map(|e| (e.tag, e.binary.clone()))
            .collect::<HashMap<u32, String>>()
    });
    let debug = audit::DebugLookup {
        search: crate::debuginfo::SymbolSearch::with_environment(settings.symbols.clone()),
        source_map: settings
            .source_map
            .iter()
            .map(|(prefix, dir)| crate::debuginfo::SourceMapRule {
                build_prefix: prefix.clone(),
                dir: dir.clone(),
            })
            .collect(),
        root: settings.root.clone(),
    };
    let blocklists = load_blocklists(&settings.blocklists, &mut notices);
    let packages = packages::FolderPackages::default();
    let auditor = Auditor {
        rules: &settings.rules,
        owners: owners.as_ref(),
        call_sites: settings.call_sites,
        debug: &debug,
        blocklists: &blocklists,
        hash_needs: blocklists.iter().fold(
            // `identify` shows every driver's Authenticode SHA-256: plan it into the one pass.
            crate::blocklist::HashNeeds {
                any: settings.identify,
                ..Default::default()
            },
            |n: crate::blocklist::HashNeeds, l| n.union(l.needs()),
        ),
        packages: &packages,
        now: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
        identify: settings.identify,
    };
    let report = Report {
        rules: settings.rules.enabled(),
        ..Report::default()
    };
    let stream = streamable(settings);
    let mut sink = Some(sink);
    std::thread::scope(|s| {
        // The sink is fed from its own thread while the workers scan; a bounded channel of a
        // few batches keeps it busy and makes the workers wait for a slow output rather than
        // pile results up in memory.
        let (mode, writer) = if stream {
            let (tx, rx) = std::sync::mpsc::sync_channel::<OwnedBatch>(4);
            let sink = sink.take().expect("the sink is taken once");
            // The thread hands the sink back with its answer, for `finish`.
            let writer = s.spawn(move || {
                let fed = feed(&mut *sink, rx);
                (sink, fed)
            });
            let mode = Mode::Stream {
                tx,
                pending: OwnedBatch::default(),
                batch,
            };
            (mode, Some(writer))
        } else {
            (Mode::Keep, None)
        };
        let baseline = settings.baseline.as_ref().and_then(|path| {
            crate::report::baseline::Baseline::load(path)
                .map_err(|e| {
                    let kind = match e {
                        crate::report::baseline::BaselineError::Read { .. } => {
                            crate::report::NoticeKind::Unreadable
                        }
                        _ => crate::report::NoticeKind::Malformed,
                    };
                    notices.push(crate::report::Notice::new(
                        crate::util::display_path(path),
                        kind,
                        Level::Error,
                        e.to_string(),
                    ))
                })
                .ok()
        });
        let mut merger = Merger::new(report, mode, settings.suppressions.clone(), baseline);
        let dumps = walk_and_audit(settings, &auditor, &mut merger, &mut notices);

        // Dumps come after the files, so that a carved driver can be recognised as one that
        // was also scanned on disk (same name and PE key) and otherwise called memory-only.
        let mut snapshots = Vec::new();
        let carving = if dumps.is_empty() {
            ProgressBar::hidden()
        } else {
            phase_spinner(settings.progress, "carving dumps")
        };
        for path in &dumps {
            let on_disk = dumps::on_disk_keys(&merger.report);
            let (unit, snapshot, loaded_in) = guarded(|| {
                deadline::with_limit(settings.input_timeout, || {
                    dumps::analyze_dump(path, uri_for(path, &settings.root), &on_disk, &auditor)
                })
            })
            .unwrap_or_else(|what| {
                let unit = internal_error(
                    path,
                    crate::report::ArtifactKind::Dump,
                    &settings.root,
                    &what,
                );
                (unit, None, Vec::new())
            });
            merger.take(unit);
            mark_loaded(&mut merger.report, &loaded_in);
            snapshots.extend(snapshot);
        }
        carving.finish_and_clear();
        let (mut report, streamed_worst, mut baseline) = merger.finish();
        snapshots.extend(evidence::load_pool_files(
            &settings.pool_files,
            &settings.root,
            &mut report,
        ));
        // Each unit's findings are already in this order (see `analyze_input`) and units are
        // in artifact order, so this stable sort only confirms one run.
        report.findings.sort_by(finding_order);
        let asked = !dumps.is_empty() || !settings.pool_files.is_empty();
        if asked && snapshots.is_empty() {
            let why: Vec<String> = report
                .notices
                .iter()
                .filter(|n| {
                    n.kind == crate::report::NoticeKind::MissingEvidence
                        || n.message.starts_with("no pool usage")
                })
                .map(|n| format!("{}: {}", n.subject, n.message))
                .collect();
            report.unranked = Some(if why.is_empty() {
                "no pool usage could be read from the evidence given".into()
            } else {
                why.join("; ")
            });
        }
        if !snapshots.is_empty() {
            evidence::rank(&mut report, &settings.rules, &snapshots, pooltag.as_ref());
            // Report-level findings, made by ranking, are matched too (those of the files were
            // matched as they were merged, and match no entry twice).
            let (artifacts, findings) = (&report.artifacts, &mut report.findings);
            let fresh: Vec<&mut Finding> = findings
                .iter_mut()
                .filter(|f| f.anchor == crate::report::AnchorKind::PoolTag)
                .collect();
            for f in fresh {
                merge::suppress(&settings.suppressions, artifacts, std::slice::from_mut(f));
            }
        }
        for s in settings.suppressions.iter().filter(|s| s.matched() == 0) {
            report.notices.push(crate::report::Notice::new(
                s.origin.clone(),
                crate::report::NoticeKind::StaleSuppression,
                Level::Warning,
                format!(
                    "suppression of {} matched no finding; remove it (reason given: {})",
                    s.describe(),
                    s.reason
                ),
            ));
        }
        if report.drivers == 0 {
            report.notices.push(crate::report::Notice::new(
                "the inputs",
                crate::report::NoticeKind::NoInput,
                Level::Error,
                "no driver found: nothing was audited (drvaudit reads *.sys files, .zip and .cab \
                 packages, and the drivers loaded in crash dumps)",
            ));
        }
        if let Some(b) = baseline.as_mut() {
            // Kept (ranked) findings, in report order; streamed ones were classified already.
            for f in &mut report.findings {
                f.baseline = Some(b.classify(&f.fingerprint, f.level));
            }
        }
        report.absent = baseline.map(|b| b.into_absent()).unwrap_or_default();
        let kept = merge::worst_counted(&report.findings);
        report.exit_code = if report.incomplete() && !settings.allow_incomplete {
            2
        } else {
            exit_code(streamed_worst.max(kept), settings.fail_on)
        };

        let (sink, fed) = match writer {
            Some(w) => w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            None => {
                let sink = sink.take().expect("the sink is taken once");
                let findings = std::mem::take(&mut report.findings);
                let images = std::mem::take(&mut report.images);
                let fed = sink.results(&Batch {
                    artifacts: &report.artifacts,
                    findings: &findings,
                    images: &images,
                });
                (sink, fed)
            }
        };
        // The report ends the output only once every result is written.
        let written = fed.and_then(|()| sink.finish(&report));
        (report, written)
    })
}

/// Walks the inputs on a thread of their own, handing each file to the workers as it is found,
/// so reading directories (a twentieth of the run on a DriverStore tree) overlaps the
/// analysis; each finished unit is merged as soon as its turn comes. Returns the dumps to
/// analyse: those named on the command line and with `--dump`.
fn walk_and_audit(
    settings: &Settings,
    auditor: &Auditor<'_>,
    merger: &mut Merger,
    notices: &mut Vec<crate::report::Notice>,
) -> Vec<PathBuf> {
    let bar = progress_bar(settings.progress);
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Input)>();
    let shared = std::sync::Mutex::new(merger);
    let walked = std::thread::scope(|s| {
        let walker = s.spawn(|| {
            let bar = bar.clone();
            let done = bar.clone();
            let mut seq = 0;
            let walked = collect(&settings.paths, move |input| {
                if !settings.shard.takes(&uri_for(&input.path, &settings.root)) {
                    return;
                }
                bar.inc_length(1);
                // The receiver lives until every input is analysed; a send cannot fail.
                let _ = tx.send((seq, input));
                seq += 1;
            });
            done.set_message("analysing");
            walked
        });
        rx.into_iter().par_bridge().for_each(|(seq, input)| {
            let unit = guarded(|| {
                deadline::with_limit(settings.input_timeout, || {
                    analyze_input(&input, &settings.root, auditor)
                })
            })
            .unwrap_or_else(|what| {
                internal_error(
                    &input.path,
                    artifact_kind(input.kind),
                    &settings.root,
                    &what,
                )
            });
            bar.inc(1);
            // A panic in another worker while it held the lock leaves the merge consistent
            // (units are merged whole), so a poisoned lock is still usable.
            shared
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .arrive(seq, unit);
        });
        walker
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    });
    bar.finish_and_clear();
    let merger = shared.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut walk_notices = walked.notices;
    walk_notices.append(notices);
    merger.report.notices.splice(0..0, walk_notices);
    let mut dumps = walked.dumps;
    dumps.extend(settings.dumps.iter().cloned());
    dumps.retain(|d| settings.shard.takes(&uri_for(d, &settings.root)));
    dumps
}

/// Marks the scanned files a (triage) dump lists as loaded: the file's artifact says in which
/// dump, and so does each of its findings (`loadedWhenDumpTaken`).
fn mark_loaded(report: &mut Report, loaded_in: &dumps::LoadedIn) {
    for (artifact, module) in loaded_in {
        let facts = &mut report.artifacts[*artifact].facts;
        let entry = facts
            .entry("loadedInDump".to_string())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let Some(list) = entry.as_array_mut() {
            list.push(module.clone().into());
        }
        for f in report
            .findings
            .iter_mut()
            .filter(|f| f.artifact == *artifact)
        {
            f.properties
                .insert("loadedWhenDumpTaken".into(), module.clone().into());
        }
    }
}

/// Hands the streamed batches to the sink in order; after a sink error the rest is drained
/// unwritten (the scan still finishes) and the error returned.
fn feed(sink: &mut dyn Sink, rx: std::sync::mpsc::Receiver<OwnedBatch>) -> std::io::Result<()> {
    let mut artifacts = Vec::new();
    let mut result = Ok(());
    for batch in rx {
        if result.is_err() {
            // Dropping the receiver would fail the workers' sends; keep draining instead.
            continue;
        }
        artifacts.extend(batch.artifacts);
        result = sink.results(&Batch {
            artifacts: &artifacts,
            findings: &batch.findings,
            images: &batch.images,
        });
    }
    result
}

/// A sink that keeps everything, for [`scan`].
#[derive(Default)]
struct Keep {
    findings: Vec<Finding>,
    images: Vec<crate::driver::ImageSummary>,
}

impl Sink for Keep {
    fn results(&mut self, batch: &Batch<'_>) -> std::io::Result<()> {
        self.findings.extend_from_slice(batch.findings);
        self.images.extend_from_slice(batch.images);
        Ok(())
    }
    fn finish(&mut self, _: &Report) -> std::io::Result<()> {
        Ok(())
    }
}

/// 1 when the most severe finding reaches the `--fail-on` level, else 0.
fn exit_code(worst: Option<Level>, fail_on: Option<Level>) -> i32 {
    match (worst, fail_on) {
        (Some(worst), Some(level)) if worst >= level => 1,
        _ => 0,
    }
}

/// The progress bar of the file phase: the phase (`walking` while inputs are still being
/// found, then `analysing`), files done of files found, the rate and the time left. The ETA is
/// indicatif's estimate from the recent rate; while the walk runs the length still grows, so
/// it is a lower bound until the phase reads `analysing`.
fn progress_bar(wanted: bool) -> ProgressBar {
    if !wanted || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    // The length grows as the walk finds files.
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {msg:<10} {pos}/{len} {wide_bar} {rate} {elapsed} (ETA {eta})",
    ) {
        // Files per second, whole: indicatif's `{per_sec}` prints four decimals.
        let style = style.with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0} files/s", state.per_sec());
            },
        );
        bar.set_style(style);
    }
    bar.set_message("walking");
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// A spinner for a phase without a count (`carving dumps`), shown only on a terminal and when
/// progress is wanted. Writing the report has none: the notices and the report go to the same
/// terminal then, and a bar drawn between them would be left in the output.
fn phase_spinner(wanted: bool, phase: &'static str) -> ProgressBar {
    if !wanted || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
        bar.set_style(style);
    }
    bar.set_message(phase);
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}
