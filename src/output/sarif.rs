//! SARIF 2.1.0: the sink that writes a run as a SARIF log, and the only module that knows the
//! SARIF object model.
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
//!
//! The log is written as the results arrive ([`SarifSink`]): the head (`$schema`, the run's
//! tool, `originalUriBaseIds`, `columnKind`) with the first batch, each result as one compact
//! line, then the artifacts and the invocation. Its layout is exactly what `serde_json`'s pretty
//! printer gives for the whole log with results as raw values, so memory stays flat however
//! large the tree. The rule descriptors, artifacts and invocation use serde-sarif's types; a
//! result is written from a borrowed view of its finding (`ResultView`), field for field the
//! serde-sarif `Result` of the same name, because building an owned object tree for each of a
//! large tree's ~25,000 results was a tenth of the scan's CPU time.

use std::collections::BTreeMap;
use std::io::Write;

use serde_sarif::sarif;

use crate::callsite::Provenance;
use crate::pool::apis::Role;
use crate::pool::tag_display;
use crate::report::{Artifact, ArtifactKind, Batch, Finding, Level, Report, Sink};
use crate::rules::Rule;

/// Results are encoded in parallel, a chunk at a time, when they come as one large batch
/// (a ranked report): encoding tens of megabytes on one thread after the parallel scan would
/// be a third of the run. Streamed batches are smaller and encoded on the writer's thread,
/// since the scan's workers have the cores then.
const RESULT_CHUNK: usize = 2048;

/// GitHub code scanning rejects a result with more than 1,000 locations: an aggregated result
/// lists at most this many sites, and more become further results.
const MAX_RELATED: usize = 1000;

/// How a log is written beyond the report itself.
#[derive(Debug, Clone)]
pub struct SarifOptions {
    /// `run.automationDetails.id`: tells several uploads for one commit apart (GitHub's
    /// "category").
    pub automation_id: String,
    /// Most results the run may hold (0: no limit). Past it, the results of one rule in one
    /// driver are folded into one result listing every site as a related location — notes
    /// first, then warnings, errors last — until the run fits; no site is lost.
    pub max_results: usize,
}

impl Default for SarifOptions {
    fn default() -> SarifOptions {
        SarifOptions {
            automation_id: "drvaudit/".into(),
            max_results: 0,
        }
    }
}

/// Writes a run as a SARIF log to `out`.
pub struct SarifSink<W: Write> {
    out: std::io::BufWriter<W>,
    rules: Vec<Rule>,
    rule_index: BTreeMap<String, usize>,
    root: std::path::PathBuf,
    options: SarifOptions,
    /// Each artifact's encoded URI and base, computed once rather than once per result.
    locations: Vec<Location>,
    /// With a result limit, the findings are kept until the end, when it is known whether
    /// the run fits.
    kept: Vec<Finding>,
    /// Each image artifact's allocation tags (`allocationTags`: what `drvaudit merge` needs to
    /// attribute pool usage over shards).
    tags_of: BTreeMap<usize, Vec<u32>>,
    started: bool,
    results: usize,
}

impl<W: Write> SarifSink<W> {
    /// A sink writing to `out`; `rules` are the rules that run (the log's
    /// `tool.driver.rules`), `root` the absolute scan root (`SRCROOT`).
    pub fn new(
        out: W,
        rules: &[Rule],
        root: &std::path::Path,
        options: SarifOptions,
    ) -> SarifSink<W> {
        SarifSink {
            out: std::io::BufWriter::new(out),
            rules: rules.to_vec(),
            rule_index: rules
                .iter()
                .enumerate()
                .map(|(i, r)| (r.id.clone(), i))
                .collect(),
            root: root.to_path_buf(),
            options,
            locations: Vec::new(),
            kept: Vec::new(),
            tags_of: BTreeMap::new(),
            started: false,
            results: 0,
        }
    }

    /// The log's opening, up to the results array.
    fn start(&mut self) -> std::io::Result<()> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        let head =
            serde_json::to_value(head(&self.rules, &self.root, &self.options.automation_id))?;
        self.out.write_all(b"{")?;
        member(
            &mut self.out,
            1,
            "$schema",
            &"https://json.schemastore.org/sarif-2.1.0.json",
            true,
        )?;
        member(&mut self.out, 1, "version", &"2.1.0", false)?;
        self.out.write_all(b",\n  \"runs\": [\n    {")?;
        if let serde_json::Value::Object(entries) = head {
            for (i, (k, v)) in entries.iter().enumerate() {
                member(&mut self.out, 3, k, v, i == 0)?;
            }
        }
        self.out.write_all(b",\n      \"results\": [")
    }

    /// Writes one encoded result.
    fn result(&mut self, json: &str) -> std::io::Result<()> {
        let sep: &[u8] = if self.results == 0 {
            b"\n        "
        } else {
            b",\n        "
        };
        self.out.write_all(sep)?;
        self.out.write_all(json.as_bytes())?;
        self.results += 1;
        Ok(())
    }

    /// Encodes and writes `findings`, in parallel when there are many.
    fn write_findings(&mut self, findings: &[Finding]) -> std::io::Result<()> {
        use rayon::prelude::*;
        let mut encoded = Vec::new();
        for chunk in findings.chunks(RESULT_CHUNK) {
            encoded.clear();
            let encode = |f: &Finding| {
                serde_json::to_string(&view(&self.rule_index, &self.rules, f, &self.locations))
            };
            if findings.len() > RESULT_CHUNK {
                encoded.par_extend(chunk.par_iter().map(encode));
            } else {
                encoded.extend(chunk.iter().map(encode));
            }
            for r in std::mem::take(&mut encoded) {
                self.result(&r?)?;
            }
        }
        Ok(())
    }
}

/// Writes `"key": value` as the pretty printer would at `depth` (two spaces a level), after a
/// comma unless it is the object's `first` member.
pub(super) fn member(
    out: &mut impl Write,
    depth: usize,
    key: &str,
    value: &impl serde::Serialize,
    first: bool,
) -> std::io::Result<()> {
    let indent = "  ".repeat(depth);
    let value = serde_json::to_string_pretty(value)?;
    // JSON strings never hold a raw newline: every line break is the printer's.
    let value = value.replace('\n', &format!("\n{indent}"));
    write!(
        out,
        "{}\n{indent}{}: {value}",
        if first { "" } else { "," },
        serde_json::to_string(key)?
    )
}

impl<W: Write + Send> Sink for SarifSink<W> {
    fn results(&mut self, batch: &Batch<'_>) -> std::io::Result<()> {
        self.start()?;
        extend_locations(batch.artifacts, &mut self.locations);
        for img in batch.images {
            let tags: Vec<u32> = img
                .tags
                .iter()
                .filter(|t| t.allocates)
                .map(|t| t.tag)
                .collect();
            if !tags.is_empty() {
                self.tags_of.insert(img.artifact, tags);
            }
        }
        if self.options.max_results > 0 {
            self.kept.extend_from_slice(batch.findings);
            return Ok(());
        }
        self.write_findings(batch.findings)
    }

    fn finish(&mut self, report: &Report) -> std::io::Result<()> {
        self.start()?;
        extend_locations(&report.artifacts, &mut self.locations);
        let kept = std::mem::take(&mut self.kept);
        let limit = self.options.max_results;
        let mut aggregated = None;
        if limit > 0 && kept.len() + report.absent.len() > limit {
            let (encoded, summary) =
                self.aggregate(&kept, limit - report.absent.len().min(limit))?;
            for r in &encoded {
                self.result(r)?;
            }
            aggregated = Some(summary);
        } else {
            self.write_findings(&kept)?;
        }
        for r in &report.absent {
            self.result(&serde_json::to_string(r)?)?;
        }
        if self.results > 0 {
            self.out.write_all(b"\n      ")?;
        }
        self.out.write_all(b"]")?;
        let artifacts = Artifacts(&report.artifacts, &self.locations, &self.tags_of);
        member(&mut self.out, 3, "artifacts", &artifacts, false)?;
        member(
            &mut self.out,
            3,
            "invocations",
            &[invocation(report)],
            false,
        )?;
        let properties = RunProperties {
            aggregated: aggregated.map(|a| a.aggregated),
            pool_usage: report.pool.as_ref().map(|p| &p.tags),
        };
        if properties.aggregated.is_some() || properties.pool_usage.is_some() {
            member(&mut self.out, 3, "properties", &properties, false)?;
        }
        self.out.write_all(b"\n    }\n  ]\n}\n")?;
        self.out.flush()
    }
}

/// What the run says about folding results to fit the limit (`run.properties`).
struct Aggregation {
    aggregated: AggregationFacts,
}

/// `run.properties`: the folding done, and the pool usage the run was ranked by (so that
/// `drvaudit merge` can attribute it over the drivers of every shard).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct RunProperties<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    aggregated: Option<AggregationFacts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pool_usage: Option<&'a Vec<crate::pool::TagUsage>>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct AggregationFacts {
    /// The limit.
    max_results: usize,
    /// Results before folding.
    results_before: usize,
    /// Results written.
    results_written: usize,
    /// Levels whose results were folded.
    levels: Vec<&'static str>,
    /// Rules whose results were folded over the whole run, not per artifact.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rules_folded_across_artifacts: Vec<String>,
}

impl<W: Write> SarifSink<W> {
    /// Folds findings to fit `limit`. First, for notes, then warnings, then errors, the
    /// findings of one rule in one artifact become one result (largest groups first) until the
    /// count fits; when that is not enough (a rule that fires once in each of thousands of
    /// drivers), then the findings of one rule in the whole run, in the same order. Returns
    /// the encoded results in report order (a folded result where its first finding was) and
    /// what was done.
    fn aggregate(
        &self,
        findings: &[Finding],
        limit: usize,
    ) -> std::io::Result<(Vec<String>, Aggregation)> {
        use std::collections::HashMap;
        const LEVELS: [Level; 3] = [Level::Note, Level::Warning, Level::Error];
        let results_of = |n: usize| n.div_ceil(MAX_RELATED);
        // Groups of (level, rule, artifact), by first occurrence.
        type Key<'k> = (Level, &'k str, usize);
        let mut groups: HashMap<Key<'_>, Vec<usize>> = HashMap::new();
        for (i, f) in findings.iter().enumerate() {
            groups
                .entry((f.level, f.rule_id.as_str(), f.artifact))
                .or_default()
                .push(i);
        }
        let mut count = findings.len();
        // The folded groups, keyed by (level, rule) so that the second stage can replace a
        // rule's per-artifact groups with one.
        let mut folded: HashMap<(Level, &str), Vec<Vec<usize>>> = HashMap::new();
        let mut levels = Vec::new();
        for level in LEVELS {
            if count <= limit {
                break;
            }
            let mut of_level: Vec<(&Key<'_>, &Vec<usize>)> = groups
                .iter()
                .filter(|((l, ..), members)| *l == level && members.len() > 1)
                .collect();
            // Largest first, then report order: deterministic.
            of_level.sort_by_key(|(_, m)| (std::cmp::Reverse(m.len()), m[0]));
            for (&(l, rule, _), m) in of_level {
                if count <= limit {
                    break;
                }
                count -= m.len() - results_of(m.len());
                folded.entry((l, rule)).or_default().push(m.clone());
                if !levels.contains(&level_name(level)) {
                    levels.push(level_name(level));
                }
            }
        }
        let mut across = Vec::new();
        if count > limit {
            let mut of_rule: HashMap<(Level, &str), Vec<usize>> = HashMap::new();
            for (i, f) in findings.iter().enumerate() {
                of_rule
                    .entry((f.level, f.rule_id.as_str()))
                    .or_default()
                    .push(i);
            }
            for level in LEVELS {
                let mut rules: Vec<(&(Level, &str), &Vec<usize>)> =
                    of_rule.iter().filter(|((l, _), _)| *l == level).collect();
                rules.sort_by_key(|(_, m)| (std::cmp::Reverse(m.len()), m[0]));
                for (&key, m) in rules {
                    if count <= limit {
                        break;
                    }
                    // What the rule takes now: its unfolded findings and its folded groups.
                    let groups_now = folded.get(&key).map_or(&[][..], Vec::as_slice);
                    let in_groups: usize = groups_now.iter().map(Vec::len).sum();
                    let now = m.len() - in_groups
                        + groups_now
                            .iter()
                            .map(|g| results_of(g.len()))
                            .sum::<usize>();
                    let then = results_of(m.len());
                    if then >= now {
                        continue;
                    }
                    count -= now - then;
                    folded.insert(key, vec![m.clone()]);
                    across.push(key.1.to_string());
                    if !levels.contains(&level_name(level)) {
                        levels.push(level_name(level));
                    }
                }
            }
        }
        let mut first_of: HashMap<usize, &Vec<usize>> = HashMap::new();
        let mut skip = vec![false; findings.len()];
        for m in folded.values().flatten() {
            first_of.insert(m[0], m);
            for &i in m.iter() {
                skip[i] = true;
            }
        }
        let mut out = Vec::new();
        for (i, f) in findings.iter().enumerate() {
            if let Some(members) = first_of.get(&i) {
                for chunk in members.chunks(MAX_RELATED) {
                    out.push(self.folded(findings, chunk, members.len())?);
                }
            } else if !skip[i] {
                out.push(serde_json::to_string(&view(
                    &self.rule_index,
                    &self.rules,
                    f,
                    &self.locations,
                ))?);
            }
        }
        let summary = Aggregation {
            aggregated: AggregationFacts {
                max_results: limit,
                results_before: findings.len(),
                results_written: out.len(),
                levels,
                rules_folded_across_artifacts: across,
            },
        };
        Ok((out, summary))
    }

    /// One result for the findings `members` of one rule in one artifact (`total` in all): the
    /// first finding's location and properties, every finding's location as a related location
    /// with its own message, and the count.
    fn folded(
        &self,
        findings: &[Finding],
        members: &[usize],
        total: usize,
    ) -> std::io::Result<String> {
        let first = &findings[members[0]];
        let mut r =
            serde_json::to_value(view(&self.rule_index, &self.rules, first, &self.locations))?;
        let rule = self
            .rule_index
            .get(&first.rule_id)
            .and_then(|&i| self.rules.get(i));
        let why = rule.map_or("", |r| r.why.as_str());
        let mut related = Vec::new();
        let mut fingerprints = Vec::new();
        let mut state = None;
        for (n, &i) in members.iter().enumerate() {
            let f = &findings[i];
            let v = serde_json::to_value(view(&self.rule_index, &self.rules, f, &self.locations))?;
            let mut loc = v["locations"][0].clone();
            loc["id"] = n.into();
            loc["message"] = serde_json::json!({ "text": f.message(why) });
            related.push(loc);
            fingerprints.push(f.fingerprint.clone());
            state = fold_state(state, f.baseline);
        }
        let artifacts: std::collections::BTreeSet<usize> =
            members.iter().map(|&i| findings[i].artifact).collect();
        let within = if artifacts.len() > 1 {
            format!("{} files", artifacts.len())
        } else {
            first.subject.clone().unwrap_or_else(|| "the report".into())
        };
        r["message"]["text"] = format!(
            "{} result(s) of {} in {within}, folded into one to fit the run's result limit (each \
             is a related location); the first: {}",
            members.len(),
            first.rule_id,
            first.message(why)
        )
        .into();
        r["relatedLocations"] = related.into();
        r["properties"]["aggregatedResults"] = members.len().into();
        if members.len() != total {
            r["properties"]["aggregatedOf"] = total.into();
        }
        r["properties"]["memberFingerprints"] = fingerprints.into();
        if let Some(s) = state {
            r["baselineState"] = s.as_str().into();
        }
        Ok(serde_json::to_string(&r)?)
    }
}

/// A folded result is new when any of its findings is, else updated when any is.
fn fold_state(
    acc: Option<crate::report::baseline::BaselineState>,
    next: Option<crate::report::baseline::BaselineState>,
) -> Option<crate::report::baseline::BaselineState> {
    use crate::report::baseline::BaselineState::*;
    match (acc, next) {
        (None, n) | (n, None) => n,
        (Some(New), _) | (_, Some(New)) => Some(New),
        (Some(Updated), _) | (_, Some(Updated)) => Some(Updated),
        (a, _) => a,
    }
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::Note => "note",
        Level::Warning => "warning",
        Level::Error => "error",
    }
}

/// A finding that stands for several call sites (DRV1005: one per colliding tag and driver)
/// lists them in its `callSites` property; each site after the first, where the result is,
/// becomes a related location at its instruction.
fn with_other_sites<'a>(
    f: &Finding,
    uri: &'a str,
    base: Option<&'static str>,
    related: Option<Vec<LocationView<'a>>>,
) -> Option<Vec<LocationView<'a>>> {
    let Some(sites) = f.properties.get("callSites").and_then(|v| v.as_array()) else {
        return related;
    };
    let rvas: Vec<i64> = sites
        .iter()
        .filter_map(|v| v.as_str())
        .filter_map(|s| i64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .filter(|&rva| Some(rva) != f.rva.map(i64::from))
        .collect();
    if rvas.is_empty() {
        return related;
    }
    let mut related = related.unwrap_or_default();
    for rva in rvas {
        related.push(LocationView {
            id: Some(related.len()),
            logical_locations: None,
            message: Some(MessageView {
                text: format!("another call site with this tag, at RVA 0x{rva:x}"),
            }),
            physical_location: PhysicalView {
                address: Some(AddressView {
                    kind: "instruction",
                    relative_address: rva,
                }),
                artifact_location: ArtifactLocationView {
                    index: Some(f.artifact as i64),
                    uri: uri.into(),
                    uri_base_id: base,
                },
                region: None,
            },
        });
    }
    Some(related)
}

/// Renders a finished report (with its findings) as a SARIF log, without a result limit.
pub fn render(report: &Report, root: &std::path::Path) -> String {
    let mut out = Vec::new();
    let mut sink = SarifSink::new(&mut out, &report.rules, root, SarifOptions::default());
    let written = sink
        .results(&Batch {
            artifacts: &report.artifacts,
            findings: &report.findings,
            images: &report.images,
        })
        .and_then(|()| sink.finish(report));
    written.expect("writing to memory cannot fail");
    drop(sink);
    String::from_utf8(out).expect("SARIF JSON is UTF-8")
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

/// An artifact's URI and the base it is relative to: relative to SRCROOT for scanned files,
/// absolute `file://` for paths outside the root; a nested artifact (package member, carved
/// image) below its parent's URI (`pkg.zip/drivers/x.sys`, `MEMORY.DMP/x.sys@0x82000000`), so
/// every URI of a log is unique even where tools ignore `parentIndex`.
pub(super) type Location = (String, Option<&'static str>);

/// The locations of `artifacts[from..]`, appended to `known` (which holds those before).
fn extend_locations(artifacts: &[Artifact], known: &mut Vec<Location>) {
    for a in &artifacts[known.len()..] {
        let loc = match a.parent {
            Some(p) => {
                let (parent, base) = &known[p];
                (format!("{parent}/{}", encode_uri_path(&a.uri)), *base)
            }
            None if a.uri.starts_with('/') => (format!("file://{}", encode_uri_path(&a.uri)), None),
            None => (encode_uri_path(&a.uri), Some("SRCROOT")),
        };
        known.push(loc);
    }
}

/// The run's tool (with its rules), `originalUriBaseIds` and `columnKind`.
fn head(rules: &[Rule], root: &std::path::Path, automation_id: &str) -> sarif::Run {
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
            let mut props = BTreeMap::new();
            if let Some(p) = r.precision {
                props.insert("precision".into(), p.as_str().into());
            }
            // GitHub reads `security-severity` as a string holding the number.
            if let Some(s) = r.security_severity {
                props.insert("security-severity".into(), format!("{s:.1}").into());
            }
            props.insert(
                "problem.severity".into(),
                match r.level {
                    Level::Error => "error",
                    Level::Warning => "warning",
                    Level::Note => "recommendation",
                }
                .into(),
            );
            let tags = r.tags.iter().map(|t| t.as_str().to_string()).collect();
            d.properties = bag(props, Some(tags));
            d
        })
        .collect();
    let root_uri = format!(
        "file://{}/",
        encode_uri_path(crate::util::display_path(root).trim_end_matches('/'))
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
    run.automation_details = Some(sarif::RunAutomationDetails {
        id: Some(automation_id.to_string()),
        ..Default::default()
    });
    run
}

/// The run's artifacts, each converted as it is written (a tree has thousands).
struct Artifacts<'a>(
    &'a [Artifact],
    &'a [Location],
    &'a BTreeMap<usize, Vec<u32>>,
);

impl serde::Serialize for Artifacts<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.0
                .iter()
                .zip(self.1)
                .enumerate()
                .map(|(i, (a, loc))| artifact(a, i, loc, self.2.get(&i))),
        )
    }
}

fn artifact(
    a: &Artifact,
    index: usize,
    (uri, base): &Location,
    tags: Option<&Vec<u32>>,
) -> sarif::Artifact {
    let mut props = a.facts.clone();
    props.insert(
        "kind".into(),
        match a.kind {
            ArtifactKind::File => "file",
            ArtifactKind::Package => "package",
            ArtifactKind::Member => "member",
            ArtifactKind::Dump => "dump",
            ArtifactKind::PoolExport => "pool-export",
            ArtifactKind::Carved { .. } => "carved",
            ArtifactKind::Listed { .. } => "listed",
        }
        .into(),
    );
    if let Some(tags) = tags {
        let shown: Vec<String> = tags.iter().map(|&t| tag_display(t)).collect();
        props.insert("allocationTags".into(), shown.into());
    }
    if let ArtifactKind::Carved { base, full_path } | ArtifactKind::Listed { base, full_path } =
        &a.kind
    {
        props.insert("loadedBase".into(), format!("0x{base:x}").into());
        props.insert("modulePath".into(), full_path.clone().into());
    }
    if let ArtifactKind::Carved { .. } = &a.kind {
        props.insert("memoryOnly".into(), a.memory_only.into());
    }
    sarif::Artifact {
        location: Some(sarif::ArtifactLocation {
            uri: Some(uri.clone()),
            uri_base_id: base.map(str::to_string),
            index: Some(index as i64),
            ..Default::default()
        }),
        parent_index: a.parent.map(|p| p as i64),
        length: a.length.map(|l| l as i64),
        hashes: a
            .sha256
            .as_ref()
            .map(|h| BTreeMap::from([("sha-256".to_string(), h.clone())])),
        // A listed module's image is not in the log's inputs: it is only named.
        roles: Some(vec![serde_json::json!(match a.kind {
            ArtifactKind::Listed { .. } => "referencedOnCommandLine",
            _ => "analysisTarget",
        })]),
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

/// A finding as the SARIF result the log carries, borrowed from the report. It serialises to
/// exactly the JSON serde-sarif's `Result` gives for the same finding (members in the
/// generated code's alphabetical order, absent ones skipped; a test compares them byte for
/// byte), without first copying every string of every finding into an owned object tree and
/// rebuilding its properties as a map of owned values: for the ~25,000 results of a 2,400-driver
/// tree that conversion was a tenth of the scan's CPU time.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline_state: Option<&'static str>,
    kind: sarif::ResultKind,
    level: sarif::ResultLevel,
    locations: [LocationView<'a>; 1],
    message: MessageView,
    partial_fingerprints: FingerprintView<'a>,
    #[serde(skip_serializing_if = "PropertiesView::is_empty")]
    properties: PropertiesView<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rank: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    related_locations: Option<Vec<LocationView<'a>>>,
    rule_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule_index: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    suppressions: Option<[SuppressionView<'a>; 1]>,
}

/// A suppression by the configuration (SARIF §3.35): kept in the log, accepted, with its
/// reason.
#[derive(serde::Serialize)]
struct SuppressionView<'a> {
    justification: &'a str,
    kind: &'static str,
    status: &'static str,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct LocationView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logical_locations: Option<[LogicalView<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<MessageView>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<i64>,
    uri: std::borrow::Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri_base_id: Option<&'static str>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct RegionView {
    #[serde(skip_serializing_if = "Option::is_none")]
    byte_length: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    byte_offset: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_column: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_line: Option<u32>,
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
struct MessageView {
    text: String,
}

#[derive(serde::Serialize)]
struct FingerprintView<'a> {
    #[serde(rename = "drvaudit/v2")]
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
    /// What more is known about arguments, by the role's property name: `{"size": {"oneOf":
    /// ["0x10", "0x20"]}, "tag": {"addressOf": "0x3000", "holds": "Tag1"}, "poolType":
    /// {"setAtRunTime": "0x5000", "initial": "0x0"}}` (tags shown as tags).
    Details(&'a [(Role, crate::callsite::ArgDetail)]),
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
            Prop::Details(ds) => s.collect_map(ds.iter().filter_map(|(role, d)| {
                let (key, _) = role.property_names()?;
                Some((key, DetailView(*role, d)))
            })),
        }
    }
}

/// One [`crate::callsite::ArgDetail`] as a SARIF property value.
struct DetailView<'a>(Role, &'a crate::callsite::ArgDetail);

impl serde::Serialize for DetailView<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use crate::callsite::ArgDetail;
        use serde::ser::SerializeMap;
        let role = self.0;
        let value = |x: u64| match role {
            Role::Tag => tag_display(x as u32),
            _ => format!("0x{x:x}"),
        };
        let mut m = s.serialize_map(None)?;
        match self.1 {
            ArgDetail::OneOf(xs) => {
                m.serialize_entry("oneOf", &xs.iter().map(|&x| value(x)).collect::<Vec<_>>())?
            }
            ArgDetail::AddressOf { global, holds } => {
                m.serialize_entry("addressOf", &Hex(u64::from(*global)))?;
                if let Some(h) = holds {
                    m.serialize_entry("holds", &value(*h))?;
                }
            }
            ArgDetail::SetAtRunTime { global, initial } => {
                m.serialize_entry("setAtRunTime", &Hex(u64::from(*global)))?;
                m.serialize_entry("initial", &value(*initial))?;
            }
        }
        m.end()
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
                let Some((key, how)) = role.property_names() else {
                    continue;
                };
                match (role, v.value) {
                    // A tag set at run time whose initial content it never keeps (a zero the
                    // code replaces) has no one tag to show: `tagValues` holds what it can be.
                    (Role::Tag, Some(t))
                        if v.how == Provenance::Runtime
                            && !site.tag_values.contains(&(t as u32))
                            && (t == 0 || !site.tag_values.is_empty()) => {}
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
            if !site.details.is_empty() {
                p.push(("argumentDetails", Prop::Details(&site.details)));
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

fn view<'s>(
    rule_index: &'s BTreeMap<String, usize>,
    rules: &'s [Rule],
    f: &'s Finding,
    locations: &'s [(String, Option<&'static str>)],
) -> ResultView<'s> {
    let (uri, base) = &locations[f.artifact];
    let index = rule_index.get(f.rule_id.as_str()).copied();
    let rule = index.and_then(|i| rules.get(i));
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
    let binary = PhysicalView {
        address,
        artifact_location: ArtifactLocationView {
            index: Some(f.artifact as i64),
            uri: uri.into(),
            uri_base_id: *base,
        },
        // A binary artifact has no lines, but GitHub code scanning requires `startLine`: line 1
        // stands beside the byte region, which viewers that read bytes use.
        region: match (f.region, f.line) {
            (Some((offset, length)), _) => Some(RegionView {
                byte_length: Some(length as i64),
                byte_offset: Some(offset as i64),
                start_column: None,
                start_line: f.source.is_none().then_some(1),
            }),
            // A line of a text artifact (an INF).
            (None, Some(line)) => Some(RegionView {
                byte_length: None,
                byte_offset: None,
                start_column: None,
                start_line: Some(line),
            }),
            (None, None) => None,
        },
    };
    // With a source location, the result is at the source line, and the binary location and
    // the inlining chain become related locations.
    let (primary, related) = match &f.source {
        None => (binary, None),
        Some(src) => {
            let mut related = vec![LocationView {
                id: Some(0),
                logical_locations: None,
                message: Some(MessageView {
                    text: match f.rva {
                        Some(rva) => format!("the code, at RVA 0x{rva:x}"),
                        None => "the code".to_string(),
                    },
                }),
                physical_location: binary,
            }];
            for (i, call) in src.inlined.iter().enumerate() {
                let Some(at) = &call.at else { continue };
                related.push(LocationView {
                    id: Some(i + 1),
                    logical_locations: None,
                    message: Some(MessageView {
                        text: format!(
                            "`{}` inlined here",
                            call.function.as_deref().unwrap_or("a function")
                        ),
                    }),
                    physical_location: source_location(at),
                });
            }
            (source_location(&src.at), Some(related))
        }
    };
    let related = with_other_sites(f, uri, *base, related);
    ResultView {
        baseline_state: f.baseline.map(|b| b.as_str()),
        kind: sarif::ResultKind::Fail,
        level: level(f.level),
        locations: [LocationView {
            id: None,
            logical_locations: logical,
            message: None,
            physical_location: primary,
        }],
        related_locations: related,
        message: MessageView {
            text: f.message(rule.map_or("", |r| r.why.as_str())),
        },
        partial_fingerprints: FingerprintView { v1: &f.fingerprint },
        properties: PropertiesView::of(f),
        rank: f.rank,
        rule_id: &f.rule_id,
        rule_index: index.map(|i| i as i64),
        suppressions: f.suppression.as_deref().map(|j| {
            [SuppressionView {
                justification: j,
                kind: "external",
                status: "accepted",
            }]
        }),
    }
}

/// A source position as a physical location: relative to SRCROOT when it lies under the scan
/// root, else an absolute `file://` URI.
fn source_location(at: &crate::report::SourcePosition) -> PhysicalView<'static> {
    let (uri, base) = if at.relative {
        (encode_uri_path(&at.path), Some("SRCROOT"))
    } else if at.path.starts_with('/') {
        (format!("file://{}", encode_uri_path(&at.path)), None)
    } else if at.path.as_bytes().get(1) == Some(&b':') {
        // A Windows path (`C:/…`) that no source map rewrote.
        (format!("file:///{}", encode_uri_path(&at.path)), None)
    } else {
        (encode_uri_path(&at.path), None)
    };
    PhysicalView {
        address: None,
        artifact_location: ArtifactLocationView {
            index: None,
            uri: uri.into(),
            uri_base_id: base,
        },
        region: Some(RegionView {
            byte_length: None,
            byte_offset: None,
            start_column: at.column,
            start_line: Some(at.line),
        }),
    }
}

/// One finding as the compact JSON of its SARIF result (for `merge`, which writes results the
/// scan did not).
pub(super) fn encode(
    rule_index: &BTreeMap<String, usize>,
    rules: &[Rule],
    f: &Finding,
    locations: &[Location],
) -> serde_json::Result<String> {
    serde_json::to_string(&view(rule_index, rules, f, locations))
}
