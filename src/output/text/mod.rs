//! The human report, and the tag inventory of `drvaudit tags` (pooltag.txt lines or JSON).
//!
//! The report opens with each dump's facts and, when pool evidence was supplied, the "top pool
//! consumers" table. Then the findings: by default grouped by driver ([`grouped`]: a heading
//! with the driver's machine, signature class and counts, one short line of facts per finding,
//! each rule's reason once at the end, as rustc prints `= note:`), or one compiler-style line
//! each (`path@0xrva: level[ID] name: message`, [`TextOptions::oneline`]) for grep and
//! editors. Then the summary: counts by level and by rule.
//!
//! Invariants: colour is only ever added by [`style::Styles`] (nothing else writes escapes),
//! so the plain report is the coloured one with its escapes removed; lines of the grouped
//! report and the consumers table stay within [`WIDTH`] columns unless one word (a path) is
//! longer.

use std::fmt::Write;

use crate::driver::ImageSummary;
use crate::pool::tag_display;
use crate::report::{Batch, Finding, Report, Sink};
use crate::util::group;

mod grouped;
pub mod names;
mod options;
pub mod style;

pub use options::{TextOptions, WIDTH};

/// The text report as a sink: it needs the whole run (the consumers table comes first, the
/// summary counts everything, findings are grouped by driver), so it keeps the findings until
/// the end.
pub struct TextSink<W: std::io::Write> {
    out: W,
    options: TextOptions,
    findings: Vec<Finding>,
    images: Vec<ImageSummary>,
}

impl<W: std::io::Write> TextSink<W> {
    /// A text report written to `out`.
    pub fn new(out: W, options: TextOptions) -> TextSink<W> {
        TextSink {
            out,
            options,
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
        self.out
            .write_all(render(&whole, &self.options).as_bytes())?;
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

/// Renders the report: what the dumps are and the top pool consumers, then the findings
/// (grouped by driver, or one line each with [`TextOptions::oneline`]), then the summary.
pub fn render(report: &Report, options: &TextOptions) -> String {
    let st = style::Styles::new(options.color);
    let mut out = preamble(report, &st);
    if options.oneline {
        out.push_str(&oneline_findings(report, options));
    } else {
        out.push_str(&grouped::findings(report, options, &st));
    }
    if options.statistics {
        out.push_str(&grouped::statistics(report, &st));
    }
    out.push_str(&summary(report, options, &st));
    out
}

/// The compiler-style report of earlier versions: [`render`] with [`TextOptions::oneline`].
pub fn render_oneline(report: &Report) -> String {
    render(
        report,
        &TextOptions {
            oneline: true,
            ..TextOptions::default()
        },
    )
}

/// What opens the report: why it is not ranked, each dump's facts, the top pool consumers.
fn preamble(report: &Report, st: &style::Styles) -> String {
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
            "{}{}{}: {}, Windows {}, {}",
            st.path.render(),
            artifact_path(report, i),
            st.path.render_reset(),
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
        line.push_str(&format!("; {}", fact("coverage")));
        // The path and its facts, wrapped like the findings.
        let plain_width = artifact_path(report, i).chars().count();
        let (head, rest) = line.split_at(line.find(": ").map_or(0, |p| p + 2));
        out.push_str(&grouped::wrap(head, plain_width + 2, rest, 4));
        out.push('\n');
    }
    if !report.consumers.is_empty() {
        let _ = writeln!(
            out,
            "{}top pool consumers{}",
            st.heading.render(),
            st.heading.render_reset()
        );
        let _ = writeln!(
            out,
            "  {:<8} {:>14} {:>14} {:>12}  drivers",
            "tag", "nonpaged", "paged", "live allocs"
        );
        // The columns before the drivers take 2+8+1+14+1+14+1+12+2 = 55.
        let room = WIDTH - 55;
        for c in &report.consumers {
            let flag = if c.ambiguous { " [ambiguous]" } else { "" };
            let owner = c.owner.as_ref().filter(|_| !c.drivers.is_empty());
            let drivers = if c.drivers.is_empty() {
                shorten(c.owner.as_deref().unwrap_or("-"), room)
            } else {
                // The first driver and the flag always; the others as they fit, then the
                // owner in what is left (shortened with `…`).
                let list = fit_list(&c.drivers, room.saturating_sub(flag.len()));
                let left = room.saturating_sub(list.chars().count() + flag.len());
                match owner {
                    Some(o) if left > " (owner: …)".len() + 4 => {
                        let o = shorten(o, left - " (owner: )".len());
                        format!("{list} (owner: {o})")
                    }
                    _ => list,
                }
            };
            let tail = flag;
            let _ = writeln!(
                out,
                "  {:<8} {:>14} {:>14} {:>12}  {drivers}{tail}",
                format!("'{}'", tag_display(c.tag)),
                group(c.nonpaged.bytes),
                group(c.paged.bytes),
                group(c.nonpaged.live() + c.paged.live()),
            );
        }
        out.push('\n');
    }
    out
}

/// `text` cut to `room` columns, ending in `…` when it was longer.
fn shorten(text: &str, room: usize) -> String {
    if text.chars().count() <= room {
        return text.to_string();
    }
    let mut s: String = text.chars().take(room.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// `a, b, c` when it fits in `room` columns, else as many as fit and `+N more`; at least
/// one name is shown, however long.
pub fn fit_list(names: &[String], room: usize) -> String {
    let mut shown = String::new();
    for (i, name) in names.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let left = names.len() - i - 1;
        let more = if left == 0 {
            String::new()
        } else {
            format!(", +{left} more")
        };
        let width = shown.chars().count() + sep.len() + name.chars().count() + more.len();
        if i > 0 && width > room {
            return format!("{shown}, +{} more", names.len() - i);
        }
        shown.push_str(sep);
        shown.push_str(name);
    }
    shown
}

/// One line per finding, compiler style (`path@0xrva: level[ID] name: message`).
fn oneline_findings(report: &Report, options: &TextOptions) -> String {
    let mut out = String::new();
    let rule = |id: &str| report.rules.iter().find(|r| r.id == id);
    for f in report
        .findings
        .iter()
        .filter(|f| f.suppression.is_none() && f.level >= options.min_level)
    {
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
    out
}

/// The closing lines: inputs and counts by level, counts by rule, suppressed findings, the
/// baseline comparison.
fn summary(report: &Report, options: &TextOptions, st: &style::Styles) -> String {
    let mut out = String::new();
    let (e, w, n) = report.counts();
    let images = report.images.len();
    let line = format!(
        "{} file(s), {} image(s) analysed: {} error(s), {} warning(s), {} note(s); {} notification(s) (on standard error)",
        report.artifacts.iter().filter(|a| a.parent.is_none()).count(),
        images,
        e,
        w,
        n,
        report.notices.len()
    );
    out.push('\n');
    if options.oneline {
        let _ = writeln!(out, "{line}");
    } else {
        // Large trees make it longer than a line: wrapped as the findings are.
        out.push_str(&grouped::wrap("", 0, &line, 2));
    }
    if !options.oneline {
        let by_rule = grouped::per_rule(report);
        if !by_rule.is_empty() {
            let parts: Vec<String> = by_rule
                .iter()
                .map(|(id, _, count)| format!("{id}\u{a0}{count},"))
                .collect();
            let text = parts.join(" ");
            let lead = format!("{} ", st.paint(st.dim, "by rule:"));
            out.push_str(&grouped::wrap(&lead, 9, text.trim_end_matches(','), 9));
        }
        let hidden = report
            .findings
            .iter()
            .filter(|f| f.suppression.is_none() && f.level < options.min_level)
            .count();
        if hidden > 0 {
            let _ = writeln!(
                out,
                "{hidden} finding(s) below --min-level {} not shown",
                options.min_level
            );
        }
    }
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
