//! The human report: compiler-style lines (`path: level[ID] name: message`), then a summary.
//! When pool evidence was supplied it opens with the "top pool consumers" table. Also the tag
//! inventory of `drvaudit tags`, as pooltag.txt lines or JSON.

use std::fmt::Write;

use crate::driver::ImageSummary;
use crate::pool::tag_display;
use crate::report::{Batch, Finding, Report, Sink};
use crate::util::group;

/// The text report as a sink: it needs the whole run (the consumers table comes first, the
/// summary counts everything), so it keeps the findings until the end.
pub struct TextSink<W: std::io::Write> {
    out: W,
    findings: Vec<Finding>,
    images: Vec<ImageSummary>,
}

impl<W: std::io::Write> TextSink<W> {
    /// A text report written to `out`.
    pub fn new(out: W) -> TextSink<W> {
        TextSink {
            out,
            findings: Vec::new(),
            images: Vec::new(),
        }
    }
}

impl<W: std::io::Write + Send> Sink for TextSink<W> {
    fn results(&mut self, batch: &Batch<'_>) -> std::io::Result<()> {
        self.findings.extend_from_slice(batch.findings);
        self.images.extend_from_slice(batch.images);
        Ok(())
    }

    fn finish(&mut self, report: &Report) -> std::io::Result<()> {
        let whole = Report {
            findings: std::mem::take(&mut self.findings),
            images: std::mem::take(&mut self.images),
            ..report.clone()
        };
        self.out.write_all(render(&whole).as_bytes())?;
        self.out.flush()
    }
}

/// The tag inventory as a sink (`drvaudit tags`): image summaries are kept, findings dropped
/// as they come.
pub struct TagsSink<W: std::io::Write> {
    out: W,
    json: bool,
    images: Vec<ImageSummary>,
}

impl<W: std::io::Write> TagsSink<W> {
    /// The inventory in pooltag.txt form, or JSON.
    pub fn new(out: W, json: bool) -> TagsSink<W> {
        TagsSink {
            out,
            json,
            images: Vec::new(),
        }
    }
}

impl<W: std::io::Write + Send> Sink for TagsSink<W> {
    fn results(&mut self, batch: &Batch<'_>) -> std::io::Result<()> {
        self.images.extend_from_slice(batch.images);
        Ok(())
    }

    fn finish(&mut self, report: &Report) -> std::io::Result<()> {
        let whole = Report {
            images: std::mem::take(&mut self.images),
            ..report.clone()
        };
        let text = if self.json {
            tag_inventory_json(&whole)
        } else {
            tag_inventory(&whole)
        };
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }
}

/// The path shown for an artifact (see [`crate::report::display_path`]).
pub fn artifact_path(report: &Report, index: usize) -> String {
    crate::report::display_path(&report.artifacts, index)
}

/// Renders the report.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    if let Some(why) = &report.unranked {
        let _ = writeln!(out, "unranked: {why}\n");
    }
    for (i, a) in report.artifacts.iter().enumerate() {
        if a.kind != crate::report::ArtifactKind::Dump || a.facts.is_empty() {
            continue;
        }
        let fact = |k: &str| a.facts.get(k).and_then(|v| v.as_str()).unwrap_or("");
        let mut line = format!(
            "{}: {}, Windows {}, {}",
            artifact_path(report, i),
            fact("dumpType"),
            fact("windows"),
            fact("acquisition")
        );
        if !fact("systemTime").is_empty() {
            line.push_str(&format!(", taken {}", fact("systemTime")));
        }
        if !fact("upTime").is_empty() {
            line.push_str(&format!(" (up {})", fact("upTime")));
        }
        let _ = writeln!(out, "{line}; {}\n", fact("coverage"));
    }
    if !report.consumers.is_empty() {
        out.push_str("top pool consumers\n");
        let _ = writeln!(
            out,
            "  {:<8} {:>14} {:>14} {:>12}  drivers",
            "tag", "nonpaged", "paged", "live allocs"
        );
        for c in &report.consumers {
            let mut drivers = c.drivers.join(", ");
            if drivers.is_empty() {
                drivers = c.owner.clone().unwrap_or_else(|| "-".into());
            } else if let Some(o) = &c.owner {
                drivers.push_str(&format!(" (owner: {o})"));
            }
            if c.ambiguous {
                drivers.push_str(" [ambiguous]");
            }
            let _ = writeln!(
                out,
                "  {:<8} {:>14} {:>14} {:>12}  {}",
                format!("'{}'", tag_display(c.tag)),
                group(c.nonpaged.bytes),
                group(c.paged.bytes),
                group(c.nonpaged.live() + c.paged.live()),
                drivers
            );
        }
        out.push('\n');
    }
    let rule = |id: &str| report.rules.iter().find(|r| r.id == id);
    for f in report.findings.iter().filter(|f| f.suppression.is_none()) {
        let mut path = artifact_path(report, f.artifact);
        if let Some(line) = f.line {
            path.push_str(&format!(":{line}"));
        }
        if let Some(rva) = f.rva {
            // A carved image's path already ends in `@base`: show base+rva, the address.
            let sep = match report.artifacts[f.artifact].kind {
                crate::report::ArtifactKind::Carved { .. } => "+",
                _ => "@",
            };
            path.push_str(&format!("{sep}0x{rva:x}"));
        }
        // At the source line when the debug information gave one, the binary location after.
        let (at, binary) = match &f.source {
            Some(src) => {
                let mut at = format!("{}:{}", src.at.path, src.at.line);
                if let Some(c) = src.at.column {
                    at.push_str(&format!(":{c}"));
                }
                (at, format!(" ({path})"))
            }
            None => (path, String::new()),
        };
        let _ = write!(
            out,
            "{at}: {}[{}] {}: {}{binary}",
            f.level,
            f.rule_id,
            rule(&f.rule_id).map_or("", |r| r.name.as_str()),
            f.message(rule(&f.rule_id).map_or("", |r| r.why.as_str()))
        );
        out.push('\n');
    }
    let (e, w, n) = report.counts();
    let images = report.images.len();
    let _ = writeln!(
        out,
        "\n{} file(s), {} image(s) analysed: {} error(s), {} warning(s), {} note(s); {} notification(s) (on standard error)",
        report.artifacts.iter().filter(|a| a.parent.is_none()).count(),
        images,
        e,
        w,
        n,
        report.notices.len()
    );
    let suppressed = report
        .findings
        .iter()
        .filter(|f| f.suppression.is_some())
        .count();
    if suppressed > 0 {
        let _ = writeln!(
            out,
            "{suppressed} finding(s) suppressed by the configuration (kept in SARIF with their reasons)"
        );
    }
    if report.findings.iter().any(|f| f.baseline.is_some()) || !report.absent.is_empty() {
        use crate::report::baseline::BaselineState as B;
        let n = |s| {
            report
                .findings
                .iter()
                .filter(|f| f.baseline == Some(s))
                .count()
        };
        let _ = writeln!(
            out,
            "against the baseline: {} new, {} updated, {} unchanged, {} absent",
            n(B::New),
            n(B::Updated),
            n(B::Unchanged),
            report.absent.len()
        );
    }
    out
}

/// The tag inventory in pooltag.txt format, which PoolMon's `/g` option reads:
/// `Tag - driver.sys - description`, one line per allocation tag and driver. Untagged
/// allocators appear under `None`, contiguous memory under the kernel's `MmCm`.
pub fn tag_inventory(report: &Report) -> String {
    let mut out = String::new();
    for img in &report.images {
        let name = &report.artifacts[img.artifact].name;
        for t in img.tags.iter().filter(|t| t.allocates) {
            let sites = if t.sites == 0 {
                "imported".to_string()
            } else {
                format!("{} call site(s)", t.sites)
            };
            let runtime = if t.runtime {
                ", read at run time from a writable global"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "{} - {} - {}: {}{}",
                tag_display(t.tag),
                name,
                t.apis.join(", "),
                sites,
                runtime
            );
        }
    }
    out
}

/// The tag inventory as JSON: one object per driver with its tags.
pub fn tag_inventory_json(report: &Report) -> String {
    let drivers: Vec<serde_json::Value> = report
        .images
        .iter()
        .map(|img| {
            serde_json::json!({
                "driver": report.artifacts[img.artifact].name,
                "path": artifact_path(report, img.artifact),
                "machine": img.machine.to_string(),
                "callSites": img.call_sites,
                "tags": img.tags.iter().map(|t| serde_json::json!({
                    "tag": tag_display(t.tag),
                    "value": t.tag,
                    "apis": t.apis,
                    "sites": t.sites,
                    "allocates": t.allocates,
                    "runtime": t.runtime,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut s = serde_json::to_string_pretty(&serde_json::json!({ "drivers": drivers }))
        .expect("JSON values always serialise");
    s.push('\n');
    s
}
