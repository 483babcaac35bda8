//! SARIF 2.1.0, the only module that knows the SARIF object model (serde-sarif).
//!
//! Mapping (facts from `pool-apis-and-rules.md` §7 and the OASIS specification):
//! - one rule per `tool.driver.rules` entry, with short/full description, help text and
//!   Markdown, helpUri and default level;
//! - each result has a physical location with the artifact (relative to `SRCROOT`), the byte
//!   region of the IAT slot, section header or instruction, and `address.relativeAddress` (the
//!   RVA). Absolute kernel addresses are never written: validators break on values above 2^31;
//! - artifacts carry SHA-256; a package member or carved image is nested through `parentIndex`;
//! - the invocation carries the exit code and one notification per unreadable input.

use std::collections::BTreeMap;

use std::io::Write as _;

use serde_sarif::sarif;

use crate::callsite::{CallSite, Role};
use crate::finding::{Artifact, ArtifactKind, Finding, Level, Report};
use crate::poolusage::tag_display;

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
    let mut out = std::io::BufWriter::new(out);
    serde_json::to_writer_pretty(&mut out, &build(report, ctx))?;
    out.write_all(b"\n")?;
    out.flush()
}

/// The log with a lazily serialised `results` array spliced into its single run.
#[derive(serde::Serialize)]
struct Log<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    version: &'static str,
    runs: [RunWithResults<'a>; 1],
}

#[derive(serde::Serialize)]
struct RunWithResults<'a> {
    #[serde(flatten)]
    run: sarif::Run,
    results: LazyResults<'a>,
}

struct LazyResults<'a> {
    report: &'a Report,
    rule_index: BTreeMap<&'a str, usize>,
}

/// Results are converted and encoded in parallel, a chunk at a time, then written in order:
/// the log of a large tree is tens of megabytes, and encoding it on one thread after the
/// parallel scan would be a third of the run. Chunks keep memory bounded.
const RESULT_CHUNK: usize = 2048;

impl serde::Serialize for LazyResults<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use rayon::prelude::*;
        use serde::ser::{Error, SerializeSeq};
        let mut seq = s.serialize_seq(Some(self.report.findings.len()))?;
        for chunk in self.report.findings.chunks(RESULT_CHUNK) {
            let encoded: Vec<Box<serde_json::value::RawValue>> = chunk
                .par_iter()
                .map(|f| serde_json::value::to_raw_value(&result(f, self.report, &self.rule_index)))
                .collect::<Result<_, _>>()
                .map_err(S::Error::custom)?;
            for r in &encoded {
                seq.serialize_element(r)?;
            }
        }
        seq.end()
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
    let (uri, base) = if a.parent.is_some() {
        (encode_uri_path(&a.uri), None)
    } else if a.uri.starts_with('/') {
        (format!("file://{}", encode_uri_path(&a.uri)), None)
    } else {
        (encode_uri_path(&a.uri), Some("SRCROOT".to_string()))
    };
    sarif::ArtifactLocation {
        uri: Some(uri),
        uri_base_id: base,
        index: Some(index as i64),
        ..Default::default()
    }
}

fn build<'a>(report: &'a Report, ctx: &SarifContext<'_>) -> Log<'a> {
    let rule_index: BTreeMap<&str, usize> = report
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let rules = report
        .rules
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

    let artifacts = report
        .artifacts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut props = BTreeMap::new();
            if let ArtifactKind::Carved { base, full_path } = &a.kind {
                props.insert("loadedBase".into(), format!("0x{base:x}").into());
                props.insert("modulePath".into(), full_path.clone().into());
                props.insert("memoryOnly".into(), a.memory_only.into());
            }
            sarif::Artifact {
                location: Some(artifact_location(a, i)),
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
        })
        .collect();

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

    let root_uri = format!(
        "file://{}/",
        encode_uri_path(crate::scan::display_path(ctx.root).trim_end_matches('/'))
    );
    let mut driver = sarif::ToolComponent::builder().name("drvaudit").build();
    driver.version = Some(env!("CARGO_PKG_VERSION").into());
    driver.semantic_version = Some(env!("CARGO_PKG_VERSION").into());
    driver.information_uri = Some("https://github.com/drvaudit/drvaudit".into());
    driver.rules = Some(rules);
    let mut invocation = sarif::Invocation::builder()
        .execution_successful(true)
        .build();
    invocation.exit_code = Some(i64::from(report.exit_code));
    invocation.tool_execution_notifications = (!notifications.is_empty()).then_some(notifications);
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
    run.artifacts = Some(artifacts);
    run.invocations = Some(vec![invocation]);
    run.column_kind = Some(serde_json::json!("utf16CodeUnits"));
    Log {
        schema: "https://json.schemastore.org/sarif-2.1.0.json",
        version: "2.1.0",
        runs: [RunWithResults {
            run,
            results: LazyResults { report, rule_index },
        }],
    }
}

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
fn site_properties(site: &CallSite, props: &mut BTreeMap<String, serde_json::Value>) {
    use serde_json::json;
    props.insert("api".into(), site.api.into());
    props.insert("callRva".into(), format!("0x{:x}", site.rva).into());
    if let Some(v) = site.via {
        props.insert("wrapperCallerRva".into(), format!("0x{v:x}").into());
    }
    props.insert("reach".into(), json!(site.reach));
    if let Some(t) = site.spec().implied_tag {
        props.insert("tag".into(), crate::poolusage::tag_display(t).into());
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
                props.insert("tag".into(), crate::poolusage::tag_display(t as u32).into());
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
}
