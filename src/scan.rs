//! The scan pipeline: walk the inputs, analyse them in parallel, merge in a fixed order.
//!
//! The walk hands each file to rayon's workers as it finds it, in path order; the units come
//! back in any order and each is merged when those before it are, so the report is the same
//! whatever the thread timing. A file that cannot be read or parsed becomes a [`Notice`] and
//! never costs the results of the others.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use walkdir::WalkDir;

use crate::callsite::CallSite;
use crate::finding::{
    Artifact, ArtifactKind, Finding, ImageSummary, Level, Notice, Report, TagUse,
};
use crate::pe::{Image, Layout};
use crate::pool::apis::ApiKind;
use crate::rules::{ImageContext, RuleSet};

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
}

/// What every image is audited with: the rules, the tag owners of `--pooltag`, and whether
/// its code is analysed for call sites.
pub(crate) struct Auditor<'a> {
    pub(crate) rules: &'a RuleSet,
    pub(crate) owners: Option<&'a HashMap<u32, String>>,
    pub(crate) call_sites: bool,
}

/// What kind of input a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InputKind {
    Image,
    Zip,
    Cab,
    Dump,
}

#[derive(Debug, Clone)]
struct Input {
    path: PathBuf,
    kind: InputKind,
}

/// The result of analysing one input, with artifact indices local to it (0 = the input).
#[derive(Debug, Default)]
pub(crate) struct Unit {
    pub(crate) artifacts: Vec<Artifact>,
    pub(crate) findings: Vec<Finding>,
    pub(crate) images: Vec<ImageSummary>,
    pub(crate) notices: Vec<Notice>,
}

/// Runs a whole scan and returns its report (unranked findings are in walk order: by
/// artifact, then rule and address; ranking re-orders them when pool evidence exists).
pub fn scan(settings: &Settings) -> Report {
    run(settings, None)
}

/// Where a streamed scan hands each input's results: the report's artifacts so far (the
/// input's own are the last ones), then its findings and image summaries, with report-wide
/// artifact indices.
pub type Sink<'a> = dyn FnMut(&[Artifact], Vec<Finding>, Vec<ImageSummary>) + Send + 'a;

/// Whether a scan can stream its findings ([`scan_streaming`]): nothing supplies pool usage
/// (no dump, no `--pool` export), so no finding's rank or order depends on the others.
pub fn streamable(settings: &Settings) -> bool {
    settings.dumps.is_empty()
        && settings.pool_files.is_empty()
        && !settings
            .paths
            .iter()
            .any(|p| p.is_file() && kind_of_explicit(p) == InputKind::Dump)
}

/// Runs a scan like [`scan`], but hands each input's findings and image summaries to `sink`
/// in report order as soon as the inputs before it are done, instead of keeping them: memory
/// then stays flat in the size of the tree (a DriverStore of thousands of drivers yields tens
/// of thousands of findings). The returned report has every artifact and notice, no findings
/// or images, and the exit code the findings decide. Only for [`streamable`] settings: ranking
/// by pool usage orders the whole report, and the findings of carved images go unranked here.
pub fn scan_streaming(settings: &Settings, sink: &mut Sink<'_>) -> Report {
    run(settings, Some(sink))
}

/// Merges units into the report in walk order as they complete: the walk numbers its inputs,
/// and a unit that finishes early waits for the ones before it. The report therefore does not
/// depend on thread timing, and no unit is held after its turn.
struct Merger<'s> {
    report: Report,
    next: usize,
    waiting: BTreeMap<usize, Unit>,
    sink: Option<&'s mut Sink<'s>>,
    /// Highest level among findings handed to the sink (they are not kept for the exit code).
    worst: Option<Level>,
}

impl Merger<'_> {
    fn arrive(&mut self, seq: usize, unit: Unit) {
        self.waiting.insert(seq, unit);
        while let Some(unit) = self.waiting.remove(&self.next) {
            self.next += 1;
            self.take(unit);
        }
    }

    fn take(&mut self, unit: Unit) {
        let (findings, images) = merge(&mut self.report, unit);
        match self.sink.as_mut() {
            Some(sink) => {
                self.worst = self.worst.max(findings.iter().map(|f| f.level).max());
                sink(&self.report.artifacts, findings, images);
            }
            None => {
                self.report.findings.extend(findings);
                self.report.images.extend(images);
            }
        }
    }
}

fn run<'s>(settings: &Settings, sink: Option<&'s mut Sink<'s>>) -> Report {
    let mut pooltag_notices = Vec::new();
    let pooltag = load_pooltag(settings, &mut pooltag_notices);
    let owners = pooltag.as_ref().map(|db| {
        db.entries()
            .iter()
            .map(|e| (e.tag, e.binary.clone()))
            .collect::<HashMap<u32, String>>()
    });
    let auditor = Auditor {
        rules: &settings.rules,
        owners: owners.as_ref(),
        call_sites: settings.call_sites,
    };
    let merger = std::sync::Mutex::new(Merger {
        report: Report {
            rules: settings.rules.enabled(),
            ..Report::default()
        },
        next: 0,
        waiting: BTreeMap::new(),
        sink,
        worst: None,
    });

    // The walk runs on its own thread and hands each file to the workers as it is found, so
    // reading directories (a twentieth of the run on a DriverStore tree) overlaps the
    // analysis; each finished unit is merged as soon as its turn comes.
    let bar = progress_bar(settings.progress);
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Input)>();
    let walked = std::thread::scope(|s| {
        let walker = s.spawn(|| {
            let bar = bar.clone();
            let mut seq = 0;
            collect(&settings.paths, move |input| {
                bar.inc_length(1);
                // The receiver lives until every input is analysed; a send cannot fail.
                let _ = tx.send((seq, input));
                seq += 1;
            })
        });
        rx.into_iter().par_bridge().for_each(|(seq, input)| {
            let unit =
                guarded(|| analyze_input(&input, settings, &auditor)).unwrap_or_else(|what| {
                    let kind = artifact_kind(input.kind);
                    internal_error(&input.path, kind, &settings.root, &what)
                });
            bar.inc(1);
            // A panic in another worker while it held the lock leaves the merge consistent
            // (units are merged whole), so a poisoned lock is still usable.
            merger
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .arrive(seq, unit);
        });
        walker
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    });
    bar.finish_and_clear();
    let mut merger = merger.into_inner().unwrap_or_else(|p| p.into_inner());
    debug_assert!(merger.waiting.is_empty(), "every walked input was merged");
    let Walked {
        mut notices,
        mut dumps,
    } = walked;
    notices.append(&mut pooltag_notices);
    dumps.extend(settings.dumps.iter().cloned());
    merger.report.notices.splice(0..0, notices);

    // Dumps come after the files, so that a carved driver can be recognised as one that was
    // also scanned on disk (same name and PE key) and otherwise called memory-only.
    let mut snapshots = Vec::new();
    for path in &dumps {
        let on_disk = on_disk_keys(&merger.report);
        let (unit, snapshot) = guarded(|| {
            crate::dumpscan::analyze_dump(path, uri_for(path, &settings.root), &on_disk, &auditor)
        })
        .unwrap_or_else(|what| {
            let unit = internal_error(path, ArtifactKind::Dump, &settings.root, &what);
            (unit, None)
        });
        merger.take(unit);
        snapshots.extend(snapshot);
    }
    let worst = merger.worst;
    let mut report = merger.report;
    snapshots.extend(load_pool_files(settings, &mut report));
    // Each unit's findings are already in this order (see `analyze_input`) and units are in
    // artifact order, so this stable sort only confirms one run.
    report.findings.sort_by(finding_order);
    if !snapshots.is_empty() {
        let usage = crate::pool::tally::merge_sources(&snapshots);
        crate::rank::apply(&mut report, usage, pooltag.as_ref());
    }
    let kept = report.findings.iter().map(|f| f.level).max();
    report.exit_code = exit_code(worst.max(kept), settings.fail_on);
    report
}

/// The order of unranked findings: artifact, rule, address, fingerprint.
fn finding_order(a: &Finding, b: &Finding) -> std::cmp::Ordering {
    (a.artifact, &a.rule_id, a.rva, &a.fingerprint).cmp(&(
        b.artifact,
        &b.rule_id,
        b.rva,
        &b.fingerprint,
    ))
}

/// Reads every `--pool` export; each becomes an artifact (DRV9001 of a tag no driver uses is
/// anchored there), and one that cannot be read a notice naming the file and line.
fn load_pool_files(settings: &Settings, report: &mut Report) -> Vec<crate::pool::PoolSnapshot> {
    let mut snapshots = Vec::new();
    for path in &settings.pool_files {
        let subject = display_path(path);
        // Read once: the same bytes are parsed and hashed for the artifact.
        let parsed = std::fs::read(path)
            .map_err(|e| format!("cannot read: {e}"))
            .and_then(|bytes| {
                crate::poolfiles::parse_pool_bytes(&bytes, &path.display().to_string())
                    .map(|snapshot| (snapshot, bytes))
                    .map_err(|e| e.to_string())
            });
        match parsed {
            Ok((snapshot, bytes)) => {
                report.artifacts.push(Artifact {
                    name: file_name(&subject),
                    uri: uri_for(path, &settings.root),
                    parent: None,
                    kind: ArtifactKind::PoolExport,
                    sha256: Some(crate::sha256_hex(&bytes)),
                    length: Some(bytes.len() as u64),
                    memory_only: false,
                });
                snapshots.push(snapshot);
            }
            Err(message) => report.notices.push(Notice {
                subject,
                message,
                level: Level::Error,
            }),
        }
    }
    snapshots
}

/// `(lower-case name, PE key)` of every image scanned from a file or package.
fn on_disk_keys(report: &Report) -> std::collections::HashSet<(String, String)> {
    report
        .images
        .iter()
        .filter(|i| {
            !matches!(
                report.artifacts[i.artifact].kind,
                ArtifactKind::Carved { .. }
            )
        })
        .map(|i| {
            (
                report.artifacts[i.artifact].name.to_ascii_lowercase(),
                i.pe_key.clone(),
            )
        })
        .collect()
}

/// 1 when the most severe finding reaches the `--fail-on` level, else 0.
fn exit_code(worst: Option<Level>, fail_on: Option<Level>) -> i32 {
    match (worst, fail_on) {
        (Some(worst), Some(level)) if worst >= level => 1,
        _ => 0,
    }
}

fn progress_bar(wanted: bool) -> ProgressBar {
    if !wanted || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    // The length grows as the walk finds files.
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template("{spinner} {pos}/{len} {wide_bar} {elapsed}") {
        bar.set_style(style);
    }
    bar
}

/// Reads `--pooltag`; a bad file is a notice, and the scan goes on without owners.
fn load_pooltag(
    settings: &Settings,
    notices: &mut Vec<Notice>,
) -> Option<crate::poolfiles::PoolTagDb> {
    let path = settings.pooltag.as_ref()?;
    match crate::poolfiles::load_pooltag_file(path) {
        Ok(db) => Some(db),
        Err(e) => {
            notices.push(Notice {
                subject: display_path(path),
                message: e.to_string(),
                level: Level::Error,
            });
            None
        }
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

/// What the walk found besides the files it handed on.
struct Walked {
    /// Unreadable paths, link loops.
    notices: Vec<Notice>,
    /// Files named on the command line that are crash dumps (analysed after every file).
    dumps: Vec<PathBuf>,
}

/// Expands the command-line paths into inputs, handing each file to `emit` once as it is
/// found. Directories are walked (links followed, so loops are detected and reported);
/// explicit files are taken whatever their name.
fn collect(paths: &[PathBuf], mut emit: impl FnMut(Input)) -> Walked {
    let mut walked = Walked {
        notices: Vec::new(),
        dumps: Vec::new(),
    };
    // Overlapping arguments (`dir dir/a.sys`) name a file twice; it is analysed once. One
    // directory alone never yields a path twice, so nothing is remembered then.
    let overlap = paths.len() > 1;
    let mut seen = std::collections::HashSet::new();
    let mut take = |input: Input, walked: &mut Walked| {
        if input.kind == InputKind::Dump {
            walked.dumps.push(input.path);
        } else if !overlap || seen.insert(input.path.clone()) {
            emit(input);
        }
    };
    // Roots in path order, and each directory's entries by name: the inputs then come out in
    // path order (component by component), the order the report lists them in.
    let mut roots: Vec<&PathBuf> = paths.iter().collect();
    roots.sort();
    for root in roots {
        match std::fs::metadata(root) {
            Err(e) => walked.notices.push(Notice {
                subject: display_path(root),
                message: format!("cannot read: {e}"),
                level: Level::Error,
            }),
            Ok(m) if m.is_file() => {
                let input = Input {
                    path: root.clone(),
                    kind: kind_of_explicit(root),
                };
                take(input, &mut walked);
            }
            Ok(_) => {
                for entry in WalkDir::new(root).follow_links(true).sort_by_file_name() {
                    match entry {
                        Err(e) => walked.notices.push(Notice {
                            subject: e.path().map_or_else(|| display_path(root), display_path),
                            message: walk_error_message(&e),
                            level: Level::Warning,
                        }),
                        Ok(e) if e.file_type().is_file() => {
                            if let Some(kind) = kind_by_extension(e.path()) {
                                let path = e.into_path();
                                take(Input { path, kind }, &mut walked);
                            }
                        }
                        Ok(_) => {}
                    }
                }
            }
        }
    }
    walked.dumps.sort();
    walked.dumps.dedup();
    walked
}

fn walk_error_message(e: &walkdir::Error) -> String {
    if let Some(ancestor) = e.loop_ancestor() {
        format!(
            "symbolic link loop back to {}; not followed",
            display_path(ancestor)
        )
    } else if let Some(io) = e.io_error() {
        format!("cannot read directory entry: {io}")
    } else {
        e.to_string()
    }
}

fn kind_by_extension(path: &Path) -> Option<InputKind> {
    let ext = path.extension()?.to_str()?;
    [
        ("sys", InputKind::Image),
        ("zip", InputKind::Zip),
        ("cab", InputKind::Cab),
    ]
    .into_iter()
    .find(|(e, _)| ext.eq_ignore_ascii_case(e))
    .map(|(_, k)| k)
}

/// A file named on the command line: a package by extension, a dump by its `PAGE` signature,
/// otherwise an image.
fn kind_of_explicit(path: &Path) -> InputKind {
    if let Some(k @ (InputKind::Zip | InputKind::Cab)) = kind_by_extension(path) {
        return k;
    }
    let mut magic = [0u8; 8];
    let is_dump = File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && (&magic == b"PAGEDU64" || &magic == b"PAGEDUMP");
    if is_dump {
        InputKind::Dump
    } else {
        InputKind::Image
    }
}

/// The path as the user wrote it, with forward slashes.
pub fn display_path(p: &Path) -> String {
    p.to_string_lossy().replace('\\', "/")
}

/// The artifact URI of a path: relative to `root` when inside it, else absolute.
pub(crate) fn uri_for(path: &Path, root: &Path) -> String {
    // The working directory is read once: `absolute` of a relative path asks the kernel for it
    // every time, a system call per input on a tree of thousands.
    static CWD: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    let joined = match CWD.get_or_init(|| std::env::current_dir().ok()) {
        Some(cwd) if path.is_relative() => cwd.join(path),
        _ => path.to_path_buf(),
    };
    let abs = std::path::absolute(&joined).unwrap_or(joined);
    match abs.strip_prefix(root) {
        Ok(rel) => display_path(rel),
        Err(_) => display_path(&abs),
    }
}

pub(crate) fn file_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// The artifact of an input named by the user (hash and length filled in once read).
fn input_artifact(path: &Path, kind: ArtifactKind, root: &Path) -> Artifact {
    let uri = uri_for(path, root);
    Artifact {
        name: file_name(&uri),
        uri,
        parent: None,
        kind,
        sha256: None,
        length: None,
        memory_only: false,
    }
}

fn artifact_kind(kind: InputKind) -> ArtifactKind {
    match kind {
        InputKind::Image => ArtifactKind::File,
        InputKind::Zip | InputKind::Cab => ArtifactKind::Package,
        InputKind::Dump => ArtifactKind::Dump,
    }
}

fn analyze_input(input: &Input, settings: &Settings, auditor: &Auditor<'_>) -> Unit {
    let mut unit = Unit::default();
    let subject = display_path(&input.path);
    let kind = artifact_kind(input.kind);
    unit.artifacts
        .push(input_artifact(&input.path, kind, &settings.root));
    let file = match load_file(&input.path) {
        Ok(m) => m,
        Err(message) => {
            unit.notices.push(Notice {
                subject,
                message,
                level: Level::Error,
            });
            return unit;
        }
    };
    let bytes: &[u8] = &file;
    unit.artifacts[0].length = Some(bytes.len() as u64);
    match input.kind {
        InputKind::Image => {
            let name = unit.artifacts[0].name.clone();
            audit_file_bytes(&mut unit, 0, &subject, &name, bytes, auditor);
        }
        InputKind::Zip | InputKind::Cab => {
            unit.artifacts[0].sha256 = Some(crate::sha256_hex(bytes));
            let members = if input.kind == InputKind::Zip {
                crate::package::zip_members(bytes)
            } else {
                crate::package::cab_members(bytes)
            };
            match members {
                Err(e) => unit.notices.push(Notice {
                    subject,
                    message: e,
                    level: Level::Error,
                }),
                Ok((members, problems)) => {
                    for p in problems {
                        unit.notices.push(Notice {
                            subject: subject.clone(),
                            message: p,
                            level: Level::Warning,
                        });
                    }
                    for m in members {
                        let idx = unit.artifacts.len();
                        unit.artifacts.push(Artifact {
                            name: file_name(&m.path),
                            uri: m.path.clone(),
                            parent: Some(0),
                            kind: ArtifactKind::Member,
                            sha256: None,
                            length: Some(m.bytes.len() as u64),
                            memory_only: false,
                        });
                        let member_subject = format!("{subject}:{}", m.path);
                        let name = file_name(&m.path);
                        audit_file_bytes(&mut unit, idx, &member_subject, &name, &m.bytes, auditor);
                    }
                }
            }
        }
        // Dumps are analysed by `dumpscan` after every file (see `scan`).
        InputKind::Dump => {}
    }
    unit.findings.sort_by(finding_order);
    unit
}

/// Parses and audits one file-layout image into `unit`, or records why it could not.
fn audit_file_bytes(
    unit: &mut Unit,
    artifact: usize,
    subject: &str,
    name: &str,
    bytes: &[u8],
    auditor: &Auditor<'_>,
) {
    if bytes.is_empty() {
        unit.notices.push(Notice {
            subject: subject.to_string(),
            message: "empty file: not a PE image".into(),
            level: Level::Error,
        });
        return;
    }
    match auditor.audit(bytes, Layout::File, artifact, name, None, |_| false) {
        Ok((summary, findings)) => {
            // The model hashed the bytes already; hashing is most of a scan's CPU time.
            unit.artifacts[artifact].sha256 = Some(summary.sha256.clone());
            if let Some(message) = anomaly_notice(&summary.anomalies) {
                unit.notices.push(Notice {
                    subject: subject.to_string(),
                    message,
                    level: Level::Warning,
                });
            }
            unit.images.push(summary);
            unit.findings.extend(findings);
        }
        Err(e) => {
            unit.artifacts[artifact].sha256 = Some(crate::sha256_hex(bytes));
            unit.notices.push(Notice {
                subject: subject.to_string(),
                message: e.to_string(),
                level: Level::Error,
            })
        }
    }
}

/// One notice for all of an image's anomalies: a damaged directory can yield dozens of them,
/// and the reader needs to know the file is damaged and how, not every entry.
pub(crate) fn anomaly_notice(anomalies: &[String]) -> Option<String> {
    let (first, rest) = anomalies.split_first()?;
    let mut m = format!("malformed image, analysed as far as it could be read: {first}");
    for a in rest.iter().take(2) {
        m.push_str("; ");
        m.push_str(a);
    }
    if rest.len() > 2 {
        m.push_str(&format!(" (and {} more)", rest.len() - 2));
    }
    Some(m)
}

impl Auditor<'_> {
    /// Builds the model of one image (file or loaded layout), analyses its code and runs the
    /// rules. `prepare` runs between parsing and code analysis (carved images use it to
    /// install the imports recovered from their IAT) and says whether the image exists only
    /// in memory.
    ///
    /// A panic while doing so (a bug, perhaps met only on one odd image) becomes this image's
    /// error: the other files of the scan, and the other modules of a dump, keep their results.
    pub(crate) fn audit(
        &self,
        bytes: &[u8],
        layout: Layout,
        artifact: usize,
        name: &str,
        identity: Option<String>,
        prepare: impl FnOnce(&mut Image) -> bool,
    ) -> Result<(ImageSummary, Vec<Finding>), crate::pe::ImageError> {
        let run = || {
            let mut image = Image::parse(bytes, layout)?;
            let memory_only = prepare(&mut image);
            // After `prepare`: a carved image's imports are only known once recovered.
            let sites = if self.call_sites {
                crate::callsite::analyze(&image, bytes)
            } else {
                Vec::new()
            };
            let identity = identity.unwrap_or_else(|| image.sha256.clone());
            let ctx = ImageContext {
                image: &image,
                sites: &sites,
                artifact,
                name,
                identity: &identity,
                pooltag: self.owners,
                memory_only,
            };
            let findings = self.rules.check_image(&ctx);
            Ok((summarize(&image, &sites, artifact), findings))
        };
        guarded(run).unwrap_or_else(|what| Err(crate::pe::ImageError::Internal(what)))
    }
}

/// Runs `f`, turning a panic into its message: a bug met on one input must not end the scan
/// of the others.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string())
    })
}

/// A unit for an input whose analysis failed with a bug: the input as an artifact, and a
/// notice naming it.
fn internal_error(input: &Path, kind: ArtifactKind, root: &Path, what: &str) -> Unit {
    Unit {
        artifacts: vec![input_artifact(input, kind, root)],
        notices: vec![Notice {
            subject: display_path(input),
            message: format!(
                "internal error while analysing this file (a drvaudit bug; please report it with the file): {what}"
            ),
            level: Level::Error,
        }],
        ..Unit::default()
    }
}

/// The tag inventory of an image: every tag its call sites use; for an image whose code
/// yielded no site of an untagged or contiguous API it imports, that API's implied tag.
pub fn summarize(image: &Image, sites: &[CallSite], artifact: usize) -> ImageSummary {
    let mut tags: BTreeMap<u32, TagUse> = BTreeMap::new();
    let mut note = |tag: u32, api: &'static str, allocates: bool, site: bool, runtime: bool| {
        let e = tags.entry(tag).or_insert(TagUse {
            tag,
            apis: Vec::new(),
            sites: 0,
            allocates: false,
            runtime: false,
        });
        if !e.apis.contains(&api) {
            e.apis.push(api);
        }
        e.sites += usize::from(site);
        e.allocates |= allocates;
        e.runtime |= runtime;
    };
    for s in sites {
        let runtime = s.effective_tag().is_none();
        for tag in s.possible_tags() {
            note(tag, s.api, s.spec().kind != ApiKind::Free, true, runtime);
        }
    }
    for imp in &image.imports {
        let Some(spec) = imp
            .name
            .as_deref()
            .and_then(|n| crate::pool::apis::for_import(&imp.dll, n))
        else {
            continue;
        };
        if let Some(tag) = spec.implied_tag {
            if !sites.iter().any(|s| s.api == spec.name) {
                note(tag, spec.name, true, false, false);
            }
        }
    }
    ImageSummary {
        artifact,
        pe_key: format!("{:08X}{:x}", image.timestamp, image.size_of_image),
        sha256: image.sha256.clone(),
        machine: image.machine,
        call_sites: sites.len(),
        tags: tags.into_values().collect(),
        anomalies: image.anomalies.clone(),
    }
}

/// Files at least this large are memory-mapped; smaller ones are read into memory.
///
/// Measured on the benchmark tree (2,400 drivers of 66 KB on average, warm cache, 2 cores):
/// touching every page of every file — hashing does — took 46-48 ms through mappings and
/// 16-17 ms through `read`, because each mapping pays page faults and each `munmap` a TLB
/// shootdown on the other cores. A mapping pays off when copying the file would cost more than
/// that: large files, and crash dumps, of which only a few pages are read (`dump::open`).
const MAP_AT_LEAST: u64 = 16 << 20;

/// The bytes of one input file.
enum FileBytes {
    Read(Vec<u8>),
    Mapped(memmap2::Mmap),
}

thread_local! {
    /// Each worker's read buffer, handed from file to file: allocating a fresh buffer per file
    /// had the allocator return and re-fault the same pages for every driver (a tenth of the
    /// benchmark's time once freed memory is returned promptly, see `tune_allocator`).
    static READ_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

impl Drop for FileBytes {
    fn drop(&mut self) {
        if let FileBytes::Read(v) = self {
            READ_BUFFER.set(std::mem::take(v));
        }
    }
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Read(v) => v,
            FileBytes::Mapped(m) => m,
        }
    }
}

/// Reads a small file, maps a large one (see [`MAP_AT_LEAST`]); an empty file is empty bytes
/// (it cannot be mapped).
fn load_file(path: &Path) -> Result<FileBytes, String> {
    let mut file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot read metadata: {e}"))?
        .len();
    if len >= MAP_AT_LEAST {
        return map_readonly(&file)
            .map(FileBytes::Mapped)
            .map_err(|e| format!("cannot map into memory: {e}"));
    }
    // `take(len)`: one `read` of the size just learnt, without the size probes (`fstat`,
    // `lseek`) `read_to_end` on a `File` makes again.
    let mut bytes = READ_BUFFER.take();
    bytes.clear();
    bytes.reserve(len as usize);
    (&mut file)
        .take(len)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    Ok(FileBytes::Read(bytes))
}

/// SAFETY: the map is read-only and private to this process; drvaudit never writes the file.
/// Another process truncating a file during the scan could fault, a risk every mmap-based
/// reader (ripgrep included) accepts for the speed of not copying inputs.
#[allow(unsafe_code)]
fn map_readonly(file: &File) -> std::io::Result<memmap2::Mmap> {
    unsafe { memmap2::Mmap::map(file) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panic while auditing one image (here injected where carved images install their
    /// imports) is that image's error; the auditor goes on with the next.
    #[test]
    fn a_panic_while_auditing_is_the_image_error() {
        let rules = RuleSet::builtin().unwrap();
        let auditor = Auditor {
            rules: &rules,
            owners: None,
            call_sites: true,
        };
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/bin/clean_gcc_x64_O2.sys");
        let bytes = std::fs::read(path).unwrap();
        let err = auditor
            .audit(&bytes, Layout::File, 0, "clean.sys", None, |_| {
                panic!("injected failure")
            })
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("internal error while analysing this image")
                && err.ends_with("injected failure"),
            "{err}"
        );
        let (summary, _) = auditor
            .audit(&bytes, Layout::File, 0, "clean.sys", None, |_| false)
            .unwrap();
        assert_eq!(summary.sha256.len(), 64);
    }

    /// A panic outside any image (reading a package, walking a dump) becomes a notice naming
    /// the input, with the panic's own words.
    #[test]
    fn a_panic_analysing_an_input_is_a_notice_naming_it() {
        let what = guarded(|| -> u8 { panic!("{} failure", "formatted") }).unwrap_err();
        assert_eq!(what, "formatted failure");
        let unit = internal_error(
            Path::new("pkgs/broken.cab"),
            ArtifactKind::Package,
            Path::new("/no/such/root"),
            &what,
        );
        assert_eq!(unit.artifacts.len(), 1);
        assert_eq!(unit.artifacts[0].name, "broken.cab");
        assert_eq!(unit.notices[0].subject, "pkgs/broken.cab");
        assert_eq!(unit.notices[0].level, Level::Error);
        assert!(unit.notices[0].message.ends_with(": formatted failure"));
        assert_eq!(guarded(|| 7), Ok(7));
    }
}
