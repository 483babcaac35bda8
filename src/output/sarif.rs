//! SARIF 2.1.0, the only module that knows the SARIF object model (serde-sarif).
//!
//! Mapping (facts from `pool-apis-and-rules.md` §7 and the OASIS specification):
//! - one rule per `tool.driver.rules` entry, with short/full description, help text and
//!   Markdown, helpUri and default level;
//! - each result has a physical location with the artifact (relative to `SRCROOT`), the byte
//!   region of the IAT slot, section header or instruction, and `address.relativeAddress` (the
//!   RVA). Absolute kernel addresses are never written: validators break on values above 2^31;
//! - artifacts carry SHA-256; a package member or carved image is nested through `parentIndex`;
//! - the invocation carries the exit code and one notification per unreadable input;
//! - the run lists its results before its artifacts and invocation, which a scan written while
//!   it runs only knows at the end (JSON members are unordered; the layout is the same either
//!   way).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write as _;

use serde_sarif::sarif;

use crate::finding::{Artifact, ArtifactKind, Finding, Level, Report};
use crate::pool::apis::Role;
use crate::pool::tag_display;
use crate::rules::Rule;

/// Where the SARIF log is written from: the scan root, for `originalUriBaseIds.SRCROOT`.
pub struct SarifContext<'a> {
    /// Absolute scan root (artifact URIs are relative to it).
    pub root: &'a std::path::Path,
}

/// Renders the report as a SARIF 2.1.0 log (pretty JSON).
pub fn render(report: &Report, ctx: &SarifContext<'_>) -> String {
    let mut out = Vec::new();
    write(report, ctx, &mut out).expect("writing to memory cannot fail");
    String::from_utf8(out).expect("SARIF JSON is UTF-8")
}

/// Writes the SARIF log to `out`. Results are converted one at a time while serialising, so a
/// scan of thousands of drivers never holds the whole SARIF object tree in memory.
pub fn write(
    report: &Report,
    ctx: &SarifContext<'_>,
    out: impl std::io::Write,
) -> std::io::Result<()> {
    let locations = report.artifacts.iter().map(uri_and_base).collect();
    let log = Log::new(&report.rules, ctx, Source::Report { report, locations });
    finish(&log, out)
}

/// Scans and writes the log. Without pool evidence ([`crate::scan::streamable`]) the log is
/// written while the scan runs, each input's results as soon as the inputs before it are done,
/// so memory stays flat however large the tree; with evidence the findings are ranked as a
/// whole first. Either way the bytes are those of [`write`] of [`crate::scan::scan`]'s report
/// (tested). Returns the report (a streamed one has no findings or images) and whether the log
/// was written: the scan is always completed, so the exit code stands even when the output
/// failed (a reader that went away, `| head`).
pub fn scan_and_write(
    settings: &crate::scan::Settings,
    out: impl std::io::Write,
) -> (Report, std::io::Result<()>) {
    // Results go to the writer in batches of about this many: one hand-over per driver was a
    // few percent of the run in thread wake-ups.
    scan_and_write_batched(settings, out, 1024)
}

fn scan_and_write_batched(
    settings: &crate::scan::Settings,
    out: impl std::io::Write,
    batch: usize,
) -> (Report, std::io::Result<()>) {
    let ctx = SarifContext {
        root: &settings.root,
    };
    if !crate::scan::streamable(settings) {
        let report = crate::scan::scan(settings);
        let written = write(&report, &ctx, out);
        return (report, written);
    }
    // A few batches in flight keep the writer busy; a bounded channel makes the workers wait
    // for a slow output rather than pile results up in memory.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(4);
    let rules = settings.rules.enabled();
    std::thread::scope(|s| {
        let scanner = s.spawn(move || {
            let mut sent = 0;
            let mut pending = Batch::default();
            // The log does not list image summaries; they are dropped as they come.
            let report = crate::scan::scan_streaming(settings, &mut |artifacts, findings, _| {
                pending.artifacts.extend_from_slice(&artifacts[sent..]);
                sent = artifacts.len();
                pending.findings.extend(findings);
                if pending.findings.len() >= batch {
                    // A failed send means the writer stopped (its error is returned); the scan
                    // then only finishes.
                    let _ = tx.send(std::mem::take(&mut pending));
                }
            });
            let _ = tx.send(pending);
            report
        });
        let scanner = std::cell::Cell::new(Some(scanner));
        let join = || {
            let scanner = scanner.take()?;
            Some(
                scanner
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            )
        };
        let finished = || join().expect("the scan is joined once");
        let (report, written) = write_streamed(&rules, &ctx, rx.into_iter(), finished, out);
        // The writer stopped before the end of the results: the channel is closed, and the
        // scan only finishes, for its exit code.
        let report = report.or_else(join).expect("the scan is joined once");
        (report, written)
    })
}

/// A stretch of a streamed log's results: the findings of consecutive inputs, and the
/// artifacts added since the previous batch (so that result locations can name them).
#[derive(Debug, Default)]
pub struct Batch {
    /// New artifacts, in report order.
    pub artifacts: Vec<Artifact>,
    /// Findings with report-wide artifact indices, in report order.
    pub findings: Vec<Finding>,
}

/// Writes the log of a scan while it runs ([`crate::scan::scan_streaming`]): `rules` are the
/// rules that run, `batches` yields the results in report order, and once it ends `report`
/// returns the finished report (artifacts, notices, exit code), which is written after the
/// results and returned (`None` when writing failed before it was asked for). The same log
/// as [`write`] of a report holding those findings (tested), in memory that does not grow
/// with the number of results.
pub fn write_streamed(
    rules: &[Rule],
    ctx: &SarifContext<'_>,
    batches: impl Iterator<Item = Batch>,
    report: impl FnOnce() -> Report,
    out: impl std::io::Write,
) -> (Option<Report>, std::io::Result<()>) {
    let stream = Stream {
        batches: Box::new(batches),
        report: Some(Box::new(report)),
        locations: Vec::new(),
        finished: None,
    };
    let log = Log::new(rules, ctx, Source::Stream(Box::new(RefCell::new(stream))));
    let written = finish(&log, out);
    let [run] = log.runs;
    let Source::Stream(stream) = run.results.source else {
        unreachable!("built as a stream above")
    };
    // Dropping the stream drops `batches` (closing a channel behind it) before returning.
    (stream.into_inner().finished, written)
}

fn finish(log: &Log<'_>, out: impl std::io::Write) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(out);
    serde_json::to_writer_pretty(&mut out, log)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// The log: one run whose results are serialised lazily, followed by what is only known once
/// they are all written (artifacts, invocation).
#[derive(serde::Serialize)]
struct Log<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    version: &'static str,
    runs: [RunView<'a>; 1],
}

impl<'a> Log<'a> {
    fn new(rules: &'a [Rule], ctx: &SarifContext<'_>, source: Source<'a>) -> Log<'a> {
        Log {
            schema: "https://json.schemastore.org/sarif-2.1.0.json",
            version: "2.1.0",
            runs: [RunView {
                head: head(rules, ctx),
                results: LazyResults::new(rules, source),
            }],
        }
    }
}

/// The run: its head (tool, `originalUriBaseIds`, `columnKind`), the results, then the
/// artifacts and invocation, which a streamed scan only knows once the results are written.
struct RunView<'a> {
    head: sarif::Run,
    results: LazyResults<'a>,
}

impl serde::Serialize for RunView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap};
        let mut m = s.serialize_map(None)?;
        if let serde_json::Value::Object(head) =
            serde_json::to_value(&self.head).map_err(S::Error::custom)?
        {
            for (k, v) in &head {
                m.serialize_entry(k, v)?;
            }
        }
        m.serialize_entry("results", &self.results)?;
        let stream;
        let report = match &self.results.source {
            Source::Report { report, .. } => *report,
            Source::Stream(cell) => {
                stream = cell.borrow();
                stream.finished.as_ref().ok_or_else(|| {
                    S::Error::custom("the scan ended before its report was complete")
                })?
            }
        };
        m.serialize_entry("artifacts", &Artifacts(report))?;
        m.serialize_entry("invocations", &[invocation(report)])?;
        m.end()
    }
}

struct LazyResults<'a> {
    rule_index: BTreeMap<&'a str, usize>,
    source: Source<'a>,
}

/// Where the results come from: a finished report, or a scan still running.
enum Source<'a> {
    Report {
        report: &'a Report,
        /// Each artifact's encoded URI and base, computed once rather than once per result.
        locations: Vec<(String, Option<&'static str>)>,
    },
    /// Serialising takes `&self`, hence the cell.
    Stream(Box<RefCell<Stream<'a>>>),
}

struct Stream<'a> {
    batches: Box<dyn Iterator<Item = Batch> + 'a>,
    report: Option<Box<dyn FnOnce() -> Report + 'a>>,
    locations: Vec<(String, Option<&'static str>)>,
    /// The finished report, once the batches have ended.
    finished: Option<Report>,
}

/// Results are converted and encoded in parallel, a chunk at a time, then written in order:
/// the log of a large tree is tens of megabytes, and encoding it on one thread after the
/// parallel scan would be a third of the run. Chunks keep memory bounded.
const RESULT_CHUNK: usize = 2048;

impl serde::Serialize for LazyResults<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use rayon::prelude::*;
        use serde::ser::{Error, SerializeSeq};
        match &self.source {
            Source::Report { report, locations } => {
                let rules = &self.rule_index;
                let mut seq = s.serialize_seq(Some(report.findings.len()))?;
                for chunk in report.findings.chunks(RESULT_CHUNK) {
                    let encoded: Vec<Box<serde_json::value::RawValue>> = chunk
                        .par_iter()
                        .map(|f| serde_json::value::to_raw_value(&Self::view(rules, f, locations)))
                        .collect::<Result<_, _>>()
                        .map_err(S::Error::custom)?;
                    for r in &encoded {
                        seq.serialize_element(r)?;
                    }
                }
                seq.end()
            }
            // Written on this thread as the batches arrive: the scan's workers have the cores.
            Source::Stream(stream) => {
                let mut stream = stream.borrow_mut();
                let stream = &mut *stream;
                let mut seq = s.serialize_seq(None)?;
                for batch in stream.batches.by_ref() {
                    stream
                        .locations
                        .extend(batch.artifacts.iter().map(uri_and_base));
                    for f in &batch.findings {
                        // Encoded compact first, as the other source does, so that both write
                        // the same bytes.
                        let view = Self::view(&self.rule_index, f, &stream.locations);
                        let raw =
                            serde_json::value::to_raw_value(&view).map_err(S::Error::custom)?;
                        seq.serialize_element(&raw)?;
                    }
                }
                let report = stream.report.take().expect("results are written once");
                stream.finished = Some(report());
                seq.end()
            }
        }
    }
}

fn level(l: Level) -> sarif::ResultLevel {
    match l {
        Level::Error => sarif::ResultLevel::Error,
        Level::Warning => sarif::ResultLevel::Warning,
        Level::Note => sarif::ResultLevel::Note,
    }
}

fn text(s: impl Into<String>) -> sarif::Message {
    sarif::Message {
        text: Some(s.into()),
        ..Default::default()
    }
}

fn multiformat(t: &str, markdown: Option<&str>) -> sarif::MultiformatMessageString {
    // Types with required fields have no `Default`; build them, then set optional fields.
    let mut m = sarif::MultiformatMessageString::builder().text(t).build();
    m.markdown = markdown.map(str::to_string);
    m
}

fn bag(
    map: BTreeMap<String, serde_json::Value>,
    tags: Option<Vec<String>>,
) -> Option<sarif::PropertyBag> {
    if map.is_empty() && tags.is_none() {
        return None;
    }
    Some(sarif::PropertyBag {
        tags,
        additional_properties: map,
    })
}

/// Percent-encodes a path for use as a URI reference: braces of GUID names, spaces and other
/// reserved characters are escaped; `/` separators stay.
pub fn encode_uri_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The artifact's location: relative to SRCROOT for scanned files, absolute `file://` for
/// paths outside the root, and relative to the parent for nested artifacts.
fn artifact_location(a: &Artifact, index: usize) -> sarif::ArtifactLocation {
    let (uri, base) = uri_and_base(a);
    sarif::ArtifactLocation {
        uri: Some(uri),
        uri_base_id: base.map(str::to_string),
        index: Some(index as i64),
        ..Default::default()
    }
}

/// The artifact's URI and the base it is relative to (see [`artifact_location`]).
fn uri_and_base(a: &Artifact) -> (String, Option<&'static str>) {
    if a.parent.is_some() {
        (encode_uri_path(&a.uri), None)
    } else if a.uri.starts_with('/') {
        (format!("file://{}", encode_uri_path(&a.uri)), None)
    } else {
        (encode_uri_path(&a.uri), Some("SRCROOT"))
    }
}

/// The run's tool (with its rules), `originalUriBaseIds` and `columnKind`.
fn head(rules: &[Rule], ctx: &SarifContext<'_>) -> sarif::Run {
    let rules = rules
        .iter()
        .map(|r| {
            let mut d = sarif::ReportingDescriptor::builder().id(&r.id).build();
            d.name = Some(r.name.clone());
            d.short_description = Some(multiformat(&r.short, None));
            d.full_description = Some(multiformat(&r.full, None));
            d.help = Some(multiformat(&r.full, Some(r.help.trim())));
            d.help_uri = r.help_uri.clone();
            d.default_configuration = Some(sarif::ReportingConfiguration {
                enabled: Some(r.enabled),
                level: Some(serde_json::json!(r.level.to_string())),
                ..Default::default()
            });
            d.properties = bag(BTreeMap::new(), Some(vec!["driver".into(), "pool".into()]));
            d
        })
        .collect();
    let root_uri = format!(
        "file://{}/",
        encode_uri_path(crate::scan::display_path(ctx.root).trim_end_matches('/'))
    );
    let mut driver = sarif::ToolComponent::builder().name("drvaudit").build();
    driver.version = Some(env!("CARGO_PKG_VERSION").into());
    driver.semantic_version = Some(env!("CARGO_PKG_VERSION").into());
    driver.information_uri = Some("https://github.com/drvaudit/drvaudit".into());
    driver.rules = Some(rules);
    let mut run = sarif::Run::builder()
        .tool(sarif::Tool::builder().driver(driver).build())
        .build();
    run.original_uri_base_ids = Some(BTreeMap::from([(
        "SRCROOT".to_string(),
        sarif::ArtifactLocation {
            uri: Some(root_uri),
            ..Default::default()
        },
    )]));
    run.column_kind = Some(serde_json::json!("utf16CodeUnits"));
    run
}

/// The run's artifacts, each converted as it is written (a tree has thousands).
struct Artifacts<'a>(&'a Report);

impl serde::Serialize for Artifacts<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.0
                .artifacts
                .iter()
                .enumerate()
                .map(|(i, a)| artifact(a, i)),
        )
    }
}

fn artifact(a: &Artifact, index: usize) -> sarif::Artifact {
    let mut props = BTreeMap::new();
    if let ArtifactKind::Carved { base, full_path } = &a.kind {
        props.insert("loadedBase".into(), format!("0x{base:x}").into());
        props.insert("modulePath".into(), full_path.clone().into());
        props.insert("memoryOnly".into(), a.memory_only.into());
    }
    sarif::Artifact {
        location: Some(artifact_location(a, index)),
        parent_index: a.parent.map(|p| p as i64),
        length: a.length.map(|l| l as i64),
        hashes: a
            .sha256
            .as_ref()
            .map(|h| BTreeMap::from([("sha-256".to_string(), h.clone())])),
        roles: Some(vec![serde_json::json!("analysisTarget")]),
        properties: bag(props, None),
        ..Default::default()
    }
}

/// The run's invocation: exit code, one notification per notice.
fn invocation(report: &Report) -> sarif::Invocation {
    let notifications = report
        .notices
        .iter()
        .map(|n| {
            let mut note = sarif::Notification::builder()
                .message(text(format!("{}: {}", n.subject, n.message)))
                .build();
            note.level = Some(serde_json::json!(n.level.to_string()));
            note
        })
        .collect::<Vec<_>>();
    let mut invocation = sarif::Invocation::builder()
        .execution_successful(true)
        .build();
    invocation.exit_code = Some(i64::from(report.exit_code));
    invocation.tool_execution_notifications = (!notifications.is_empty()).then_some(notifications);
    invocation
}

/// A finding as an owned serde-sarif `Result`: the reference the borrowed [`ResultView`] that
/// the log is written with must serialise identically to (tested).
#[cfg(test)]
fn result(f: &Finding, report: &Report, rule_index: &BTreeMap<&str, usize>) -> sarif::Result {
    let artifact = &report.artifacts[f.artifact];
    let mut props = f.properties.clone();
    if let Some(site) = &f.site {
        site_properties(site, &mut props);
    }
    if !f.tags.is_empty() {
        props.insert(
            "poolTags".into(),
            f.tags
                .iter()
                .map(|&t| tag_display(t))
                .collect::<Vec<_>>()
                .into(),
        );
    }
    if let Some(e) = &f.evidence {
        props.insert("nonPagedBytes".into(), e.nonpaged.bytes.into());
        props.insert("pagedBytes".into(), e.paged.bytes.into());
        props.insert("liveAllocations".into(), e.live().into());
        props.insert("nonPagedLiveAllocations".into(), e.nonpaged.live().into());
        props.insert("pagedLiveAllocations".into(), e.paged.live().into());
    }
    let region = f.region.map(|(offset, length)| sarif::Region {
        byte_offset: Some(offset as i64),
        byte_length: Some(length as i64),
        ..Default::default()
    });
    let address = f.rva.map(|rva| sarif::Address {
        relative_address: Some(i64::from(rva)),
        kind: Some(
            match f.logical.as_ref().map(|l| l.kind) {
                Some("section") => "section",
                Some("function") if f.site.is_some() => "instruction",
                _ => "data",
            }
            .into(),
        ),
        ..Default::default()
    });
    let logical = f.logical.as_ref().map(|l| {
        let mut lp = BTreeMap::new();
        if let Some((start, end)) = l.bounds {
            lp.insert("startRva".into(), format!("0x{start:x}").into());
            lp.insert("endRva".into(), format!("0x{end:x}").into());
        }
        vec![sarif::LogicalLocation {
            name: Some(l.name.clone()),
            fully_qualified_name: Some(l.fully_qualified.clone()),
            kind: Some(l.kind.into()),
            properties: bag(lp, None),
            ..Default::default()
        }]
    });
    let mut r = sarif::Result::builder()
        .message(text(f.message.clone()))
        .build();
    r.rule_id = Some(f.rule_id.clone());
    r.rule_index = rule_index.get(f.rule_id.as_str()).map(|&i| i as i64);
    r.level = Some(level(f.level));
    r.kind = Some(sarif::ResultKind::Fail);
    r.locations = Some(vec![sarif::Location {
        physical_location: Some(sarif::PhysicalLocation {
            artifact_location: Some(artifact_location(artifact, f.artifact)),
            region,
            address,
            ..Default::default()
        }),
        logical_locations: logical,
        ..Default::default()
    }]);
    r.partial_fingerprints = Some(BTreeMap::from([(
        "drvaudit/v1".to_string(),
        f.fingerprint.clone(),
    )]));
    r.rank = f.rank;
    r.properties = bag(props, None);
    r
}

/// SARIF properties of a call site: api, tag (display and u32), pool type or flags, and how
/// each value was recovered.
#[cfg(test)]
fn site_properties(
    site: &crate::callsite::CallSite,
    props: &mut BTreeMap<String, serde_json::Value>,
) {
    use serde_json::json;
    props.insert("api".into(), site.api.into());
    props.insert("callRva".into(), format!("0x{:x}", site.rva).into());
    if let Some(v) = site.via {
        props.insert("wrapperCallerRva".into(), format!("0x{v:x}").into());
    }
    props.insert("reach".into(), json!(site.reach));
    if let Some(t) = site.spec().implied_tag {
        props.insert("tag".into(), crate::pool::tag_display(t).into());
        props.insert("tagValue".into(), t.into());
        props.insert("tagHow".into(), "implied-by-api".into());
    }
    for (role, v) in &site.args {
        let key = match role {
            Role::PoolType => "poolType",
            Role::PoolFlags => "poolFlags",
            Role::LookasideFlags => "lookasideFlags",
            Role::Size => "size",
            Role::Tag => "tag",
            Role::Priority => "priority",
            Role::CacheType => "cacheType",
            Role::ContextType => "contextType",
            Role::Other => continue,
        };
        match (role, v.value) {
            (Role::Tag, Some(t)) => {
                props.insert("tag".into(), crate::pool::tag_display(t as u32).into());
                props.insert("tagValue".into(), t.into());
            }
            (_, Some(x)) => {
                props.insert(key.into(), format!("0x{x:x}").into());
            }
            (_, None) => {
                props.insert(key.into(), "unknown".into());
            }
        }
        props.insert(format!("{key}How"), json!(v.how));
    }
    if !site.tag_values.is_empty() {
        let shown: Vec<String> = site.tag_values.iter().map(|&t| tag_display(t)).collect();
        props.insert("tagValues".into(), shown.into());
    }
}

/// A finding as the SARIF result the log carries, borrowed from the report. It serialises to
/// exactly the JSON serde-sarif's `Result` gives for the same finding (members in the
/// generated code's alphabetical order, absent ones skipped; a test compares them byte for
/// byte), without first copying every string of every finding into an owned object tree and
/// rebuilding its properties as a map of owned values: for the ~25,000 results of a 2,400-driver
/// tree that conversion was a tenth of the scan's CPU time.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultView<'a> {
    kind: sarif::ResultKind,
    level: sarif::ResultLevel,
    locations: [LocationView<'a>; 1],
    message: MessageView<'a>,
    partial_fingerprints: FingerprintView<'a>,
    #[serde(skip_serializing_if = "PropertiesView::is_empty")]
    properties: PropertiesView<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rank: Option<f64>,
    rule_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule_index: Option<i64>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct LocationView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    logical_locations: Option<[LogicalView<'a>; 1]>,
    physical_location: PhysicalView<'a>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct PhysicalView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<AddressView>,
    artifact_location: ArtifactLocationView<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<RegionView>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct AddressView {
    kind: &'static str,
    relative_address: i64,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactLocationView<'a> {
    index: i64,
    uri: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri_base_id: Option<&'static str>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct RegionView {
    byte_length: i64,
    byte_offset: i64,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct LogicalView<'a> {
    fully_qualified_name: &'a str,
    kind: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    properties: Option<BoundsView>,
}

/// A function's `.pdata` bounds, as the logical location's properties.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct BoundsView {
    end_rva: Hex,
    start_rva: Hex,
}

#[derive(serde::Serialize)]
struct MessageView<'a> {
    text: &'a str,
}

#[derive(serde::Serialize)]
struct FingerprintView<'a> {
    #[serde(rename = "drvaudit/v1")]
    v1: &'a str,
}

/// `0x…`, written straight into the output.
struct Hex(u64);

impl serde::Serialize for Hex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("0x{:x}", self.0))
    }
}

/// One property value of a result.
enum Prop<'a> {
    Json(&'a serde_json::Value),
    Str(&'static str),
    Hex(u64),
    U64(u64),
    Tag(u32),
    Tags(&'a [u32]),
    How(crate::callsite::Provenance),
    Reach(crate::callsite::Reach),
}

impl serde::Serialize for Prop<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Prop::Json(v) => v.serialize(s),
            Prop::Str(v) => s.serialize_str(v),
            Prop::Hex(v) => Hex(*v).serialize(s),
            Prop::U64(v) => s.serialize_u64(*v),
            Prop::Tag(t) => s.serialize_str(&tag_display(*t)),
            Prop::Tags(ts) => s.collect_seq(ts.iter().map(|&t| tag_display(t))),
            Prop::How(h) => h.serialize(s),
            Prop::Reach(r) => r.serialize(s),
        }
    }
}

/// A result's properties: the finding's own, its call site's (api, tag as shown and as u32,
/// pool type or flags, size, how each was recovered), its pool tags and pool evidence. Later
/// entries replace earlier ones of the same name, and names come out sorted, as they would
/// from the map serde-sarif's property bag holds.
struct PropertiesView<'a>(Vec<(&'a str, Prop<'a>)>);

impl PropertiesView<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl serde::Serialize for PropertiesView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<'a> PropertiesView<'a> {
    fn of(f: &'a Finding) -> PropertiesView<'a> {
        let mut p: Vec<(&'a str, Prop<'a>)> = f
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), Prop::Json(v)))
            .collect();
        if let Some(site) = &f.site {
            p.push(("api", Prop::Str(site.api)));
            p.push(("callRva", Prop::Hex(u64::from(site.rva))));
            if let Some(v) = site.via {
                p.push(("wrapperCallerRva", Prop::Hex(u64::from(v))));
            }
            p.push(("reach", Prop::Reach(site.reach)));
            if let Some(t) = site.spec().implied_tag {
                p.push(("tag", Prop::Tag(t)));
                p.push(("tagValue", Prop::U64(u64::from(t))));
                p.push(("tagHow", Prop::Str("implied-by-api")));
            }
            for (role, v) in &site.args {
                let (key, how) = match role {
                    Role::PoolType => ("poolType", "poolTypeHow"),
                    Role::PoolFlags => ("poolFlags", "poolFlagsHow"),
                    Role::LookasideFlags => ("lookasideFlags", "lookasideFlagsHow"),
                    Role::Size => ("size", "sizeHow"),
                    Role::Tag => ("tag", "tagHow"),
                    Role::Priority => ("priority", "priorityHow"),
                    Role::CacheType => ("cacheType", "cacheTypeHow"),
                    Role::ContextType => ("contextType", "contextTypeHow"),
                    Role::Other => continue,
                };
                match (role, v.value) {
                    (Role::Tag, Some(t)) => {
                        p.push(("tag", Prop::Tag(t as u32)));
                        p.push(("tagValue", Prop::U64(t)));
                    }
                    (_, Some(x)) => p.push((key, Prop::Hex(x))),
                    (_, None) => p.push((key, Prop::Str("unknown"))),
                }
                p.push((how, Prop::How(v.how)));
            }
            if !site.tag_values.is_empty() {
                p.push(("tagValues", Prop::Tags(&site.tag_values)));
            }
        }
        if !f.tags.is_empty() {
            p.push(("poolTags", Prop::Tags(&f.tags)));
        }
        if let Some(e) = &f.evidence {
            p.push(("nonPagedBytes", Prop::U64(e.nonpaged.bytes)));
            p.push(("pagedBytes", Prop::U64(e.paged.bytes)));
            p.push(("liveAllocations", Prop::U64(e.live())));
            p.push(("nonPagedLiveAllocations", Prop::U64(e.nonpaged.live())));
            p.push(("pagedLiveAllocations", Prop::U64(e.paged.live())));
        }
        // Stable: of equal names the last pushed is last, and is the one kept.
        p.sort_by(|a, b| a.0.cmp(b.0));
        let mut out: Vec<(&'a str, Prop<'a>)> = Vec::with_capacity(p.len());
        for entry in p {
            match out.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => out.push(entry),
            }
        }
        PropertiesView(out)
    }
}

impl<'a> LazyResults<'a> {
    fn new(rules: &'a [Rule], source: Source<'a>) -> LazyResults<'a> {
        let rule_index = rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        LazyResults { rule_index, source }
    }

    fn view<'s>(
        rule_index: &'s BTreeMap<&'a str, usize>,
        f: &'s Finding,
        locations: &'s [(String, Option<&'static str>)],
    ) -> ResultView<'s> {
        let (uri, base) = &locations[f.artifact];
        let logical = f.logical.as_ref().map(|l| {
            [LogicalView {
                fully_qualified_name: &l.fully_qualified,
                kind: l.kind,
                name: &l.name,
                properties: l.bounds.map(|(start, end)| BoundsView {
                    end_rva: Hex(u64::from(end)),
                    start_rva: Hex(u64::from(start)),
                }),
            }]
        });
        let address = f.rva.map(|rva| AddressView {
            kind: match f.logical.as_ref().map(|l| l.kind) {
                Some("section") => "section",
                Some("function") if f.site.is_some() => "instruction",
                _ => "data",
            },
            relative_address: i64::from(rva),
        });
        ResultView {
            kind: sarif::ResultKind::Fail,
            level: level(f.level),
            locations: [LocationView {
                logical_locations: logical,
                physical_location: PhysicalView {
                    address,
                    artifact_location: ArtifactLocationView {
                        index: f.artifact as i64,
                        uri,
                        uri_base_id: *base,
                    },
                    region: f.region.map(|(offset, length)| RegionView {
                        byte_length: length as i64,
                        byte_offset: offset as i64,
                    }),
                },
            }],
            message: MessageView { text: &f.message },
            partial_fingerprints: FingerprintView { v1: &f.fingerprint },
            properties: PropertiesView::of(f),
            rank: f.rank,
            rule_id: &f.rule_id,
            rule_index: rule_index.get(f.rule_id.as_str()).map(|&i| i as i64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scan without pool evidence is written while it runs, in batches (here of seven
    /// results, so most batches end inside an input and some inputs have none): the log is
    /// byte for byte the one written from the whole report, and the returned report keeps
    /// every artifact and notice but no finding, with the exit code the findings decide.
    #[test]
    fn streamed_log_is_the_log_of_the_whole_report() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut settings = crate::scan::Settings {
            paths: ["bin", "packages", "malformed"]
                .map(|d| root.join("testdata").join(d))
                .to_vec(),
            dumps: Vec::new(),
            pool_files: Vec::new(),
            pooltag: None,
            rules: crate::rules::RuleSet::builtin().unwrap(),
            progress: false,
            root: root.to_path_buf(),
            fail_on: Some(Level::Error),
            call_sites: true,
        };
        assert!(crate::scan::streamable(&settings));
        let whole = crate::scan::scan(&settings);
        let mut streamed = Vec::new();
        let (report, written) = scan_and_write_batched(&settings, &mut streamed, 7);
        written.unwrap();
        assert_eq!(
            String::from_utf8(streamed).unwrap(),
            render(&whole, &SarifContext { root })
        );
        assert!(whole.findings.len() > 300 && report.findings.is_empty());
        assert_eq!((whole.exit_code, report.exit_code), (1, 1));
        assert_eq!(report.artifacts, whole.artifacts);
        assert_eq!(report.notices, whole.notices);

        // An output that fails part-way (a reader gone away): the error is returned, and the
        // scan still runs to its end, so the report and exit code are whole. With one result
        // per batch and a small buffer, the workers are blocked on the channel when it breaks.
        struct Breaks(usize);
        impl std::io::Write for Breaks {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0 = self
                    .0
                    .checked_sub(buf.len())
                    .ok_or(std::io::ErrorKind::BrokenPipe)?;
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let log = render(&whole, &SarifContext { root });
        let results = log.find("\"results\"").unwrap();
        // In the head, among the results, and in the artifacts after them.
        for at in [results / 2, (results + log.len()) / 2, log.len() - 100] {
            let (report, written) = scan_and_write_batched(&settings, Breaks(at), 1);
            assert_eq!(written.unwrap_err().kind(), std::io::ErrorKind::BrokenPipe);
            assert_eq!(report.exit_code, 1);
            assert_eq!(report.artifacts, whole.artifacts);
        }

        // Pool evidence ranks the report as a whole: no streaming.
        settings.pool_files = vec![root.join("testdata/pool/incident.csv")];
        assert!(!crate::scan::streamable(&settings));
    }

    /// The borrowed view writes every result exactly as serde-sarif's model would: all
    /// fixtures and packages, ranked against a pool export, with tag owners from pooltag.txt
    /// (call sites, wrapper callers, evidence, rank, nested artifacts, logical bounds).
    #[test]
    fn result_view_serialises_as_the_serde_sarif_result() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let settings = crate::scan::Settings {
            paths: vec![root.join("testdata/bin"), root.join("testdata/packages")],
            dumps: Vec::new(),
            pool_files: vec![root.join("testdata/pool/incident.csv")],
            pooltag: Some(root.join("testdata/pool/pooltag.txt")),
            rules: crate::rules::RuleSet::builtin().unwrap(),
            progress: false,
            root: root.to_path_buf(),
            fail_on: None,
            call_sites: true,
        };
        let report = crate::scan::scan(&settings);
        let locations: Vec<_> = report.artifacts.iter().map(uri_and_base).collect();
        let lazy = LazyResults::new(
            &report.rules,
            Source::Report {
                report: &report,
                locations: Vec::new(),
            },
        );
        let mut ranked = 0;
        for f in &report.findings {
            let reference = result(f, &report, &lazy.rule_index);
            let view = LazyResults::view(&lazy.rule_index, f, &locations);
            assert_eq!(
                serde_json::to_string(&view).unwrap(),
                serde_json::to_string(&reference).unwrap()
            );
            ranked += usize::from(f.rank.is_some());
        }
        assert!(
            report.findings.len() >= 374 && ranked >= 64,
            "{} {ranked}",
            report.findings.len()
        );
    }
}
