//! The report grouped by driver: a heading per driver (display path, machine, signature class
//! when a rule decided it, counts by level), one short line per finding (where, `level[ID]`,
//! the facts), and each rule's reason once at the end with a pointer to `drvaudit explain`.
//!
//! Drivers come in the order of their first finding in the report, so a ranked report (pool
//! evidence given) keeps its ranking across drivers: a driver is placed by its best-ranked
//! finding, and its findings keep their order under it. Lines are wrapped at spaces to
//! [`WIDTH`] columns; a word longer than a line (a path) is kept whole.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use super::names;
use super::options::{TextOptions, WIDTH};
use super::style::Styles;
use crate::callsite::{CallSite, Provenance};
use crate::pool::apis::{ApiKind, Role};
use crate::report::display_path;
use crate::report::{AnchorKind, ArtifactKind, Finding, Report};
use crate::rules::Level;
use crate::util::group as thousands;

/// The widest location-and-function column before the level; a longer one pushes that line's
/// level right rather than widening every line.
const LOCATION_COLUMN: usize = 34;

/// Indentation of a finding line, and of its continuation and `= why` lines.
const INDENT: usize = 2;
const CONTINUATION: usize = 6;

/// The findings grouped by driver, and the rules' reasons.
pub(super) fn findings(report: &Report, options: &TextOptions, st: &Styles) -> String {
    let mut out = String::new();
    let shown: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| f.suppression.is_none() && f.level >= options.min_level)
        .collect();
    let mut order: Vec<(usize, Vec<&Finding>)> = Vec::new();
    let mut index: HashMap<usize, usize> = HashMap::new();
    for f in &shown {
        let slot = *index.entry(f.artifact).or_insert_with(|| {
            order.push((f.artifact, Vec::new()));
            order.len() - 1
        });
        order[slot].1.push(f);
    }
    // Unranked, a driver's errors come first (stable: by rule and address within a level);
    // ranked, the ranking's order is kept.
    if report.findings.iter().all(|f| f.rank.is_none()) {
        for (_, members) in &mut order {
            members.sort_by_key(|f| std::cmp::Reverse(f.level));
        }
    }
    for (artifact, members) in &order {
        out.push_str(&heading(report, *artifact, st));
        let rows: Vec<(String, &Finding)> =
            members.iter().map(|f| (location(report, f), *f)).collect();
        let column = rows
            .iter()
            .map(|(l, _)| l.chars().count())
            .filter(|&w| w <= LOCATION_COLUMN)
            .max()
            .unwrap_or(0);
        for (loc, f) in rows {
            // `warning[DRV1001]` is the widest level tag: the facts start in one column.
            let tag = format!("{:<16}", format!("{}[{}]", f.level, f.rule_id));
            // Without any location in the group, no empty column before the level.
            let gap = if column == 0 && loc.is_empty() {
                ""
            } else {
                " "
            };
            let lead = format!(
                "{:INDENT$}{loc:<column$}{gap}{} ",
                "",
                st.paint(st.level(f.level), tag.trim_end())
            ) + &" ".repeat(tag.len() - tag.trim_end().len());
            let lead_plain = INDENT + column.max(loc.chars().count()) + gap.len() + 1 + tag.len();
            out.push_str(&wrap(&lead, lead_plain, &facts(f), CONTINUATION));
            if let Some(e) = f
                .evidence
                .as_ref()
                .filter(|_| f.anchor != AnchorKind::PoolTag)
            {
                let observed = format!(
                    "observed: {} {} B nonpaged, {} B paged, {} live, {:.1}% of pool in use",
                    e.observed
                        .iter()
                        .map(|&t| names::tag(t))
                        .collect::<Vec<_>>()
                        .join(" + "),
                    thousands(e.nonpaged.bytes),
                    thousands(e.paged.bytes),
                    thousands(e.live()),
                    100.0 * e.share
                );
                let lead = format!("{:CONTINUATION$}", "");
                out.push_str(&wrap(&lead, CONTINUATION, &observed, CONTINUATION + 2));
            }
            if options.verbose {
                let why = report.why(&f.rule_id);
                let lead = format!("{:CONTINUATION$}{} ", "", st.paint(st.dim, "= why:"));
                out.push_str(&wrap(&lead, CONTINUATION + 7, why, CONTINUATION + 2));
            }
        }
        out.push('\n');
    }
    // Each rule's reason once, as rustc ends a diagnostic with `= note:`.
    let mut rules: BTreeMap<&str, ()> = BTreeMap::new();
    for f in &shown {
        rules.insert(f.rule_id.as_str(), ());
    }
    if !rules.is_empty() && !options.verbose {
        let _ = writeln!(out, "{}", st.paint(st.heading, "why"));
        for id in rules.keys() {
            let name = report
                .rules
                .iter()
                .find(|r| r.id == *id)
                .map_or("", |r| r.name.as_str());
            let text = format!(
                "{name}: {}; `drvaudit\u{a0}explain\u{a0}{id}`",
                report.why(id)
            );
            let lead = format!("  = {} ", st.paint(st.path, id));
            out.push_str(&wrap(&lead, 5 + id.len(), &text, CONTINUATION));
        }
    }
    out
}

/// A driver's heading: its path (bold), then machine, signature class and counts by level.
fn heading(report: &Report, artifact: usize, st: &Styles) -> String {
    let path = display_path(&report.artifacts, artifact);
    let mut facts = Vec::new();
    if let Some(img) = report.images.iter().find(|i| i.artifact == artifact) {
        facts.push(img.machine.to_string());
        if let Some(id) = &img.identity {
            if let Some(v) = &id.file_version {
                facts.push(format!("version {v}"));
            }
            if let Some(c) = &id.company {
                facts.push(c.clone());
            }
        }
        if let Some(class) = img
            .signature
            .or(img.identity.as_ref().and_then(|i| i.signature))
        {
            facts.push(class.to_string());
        }
    }
    match &report.artifacts[artifact].kind {
        ArtifactKind::Carved { .. } => facts.push("carved from the dump".into()),
        ArtifactKind::Listed { .. } => facts.push("listed in the dump, not in it".into()),
        _ => {}
    }
    if report.artifacts[artifact].memory_only {
        facts.push("memory-only".into());
    }
    let mut counts = [0usize; 3];
    for f in report
        .findings
        .iter()
        .filter(|f| f.artifact == artifact && f.suppression.is_none())
    {
        counts[f.level as usize] += 1;
    }
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut levels = Vec::new();
    for (n, level, one, many) in [
        (counts[2], Level::Error, "error", "errors"),
        (counts[1], Level::Warning, "warning", "warnings"),
        (counts[0], Level::Note, "note", "notes"),
    ] {
        if n > 0 {
            levels.push(st.paint(st.level(level), &plural(n, one, many)));
        }
    }
    let plain_levels: usize = [counts[2], counts[1], counts[0]]
        .iter()
        .zip([
            ("error", "errors"),
            ("warning", "warnings"),
            ("note", "notes"),
        ])
        .filter(|(n, _)| **n > 0)
        .map(|(n, (one, many))| plural(*n, one, many).len() + 2)
        .sum();
    let facts_plain = facts.join(", ");
    let tail = if facts.is_empty() {
        levels.join(", ")
    } else {
        format!("{}; {}", st.paint(st.dim, &facts_plain), levels.join(", "))
    };
    let tail_width = facts_plain.chars().count() + 2 + plain_levels;
    if path.chars().count() + 2 + tail_width <= WIDTH {
        format!("{}  {tail}\n", st.paint(st.path, &path))
    } else {
        format!("{}\n  {tail}\n", st.paint(st.path, &path))
    }
}

/// Where a finding is: the source line when known, else `@0xrva` (`+0xrva` in a carved image,
/// whose path ends in its base), an INF's `:line`; then the function of a call site.
fn location(report: &Report, f: &Finding) -> String {
    let mut at = match (&f.source, f.rva, f.line) {
        (Some(src), _, _) => {
            let file = src
                .at
                .path
                .rsplit(['/', '\\'])
                .next()
                .unwrap_or(&src.at.path);
            format!("{file}:{}", src.at.line)
        }
        (None, Some(rva), _) => {
            let sep = match report.artifacts[f.artifact].kind {
                ArtifactKind::Carved { .. } => "+",
                _ => "@",
            };
            format!("{sep}0x{rva:x}")
        }
        (None, None, Some(line)) => format!(":{line}"),
        (None, None, None) => String::new(),
    };
    if f.anchor == AnchorKind::CallSite {
        if let Some(l) = &f.logical {
            at.push(' ');
            at.push_str(&l.name);
        }
    }
    at
}

/// The facts of a finding without its driver's name: a call site as `API(type, size) → tag`,
/// what any other finding says.
fn facts(f: &Finding) -> String {
    let Some(site) = f.site.as_ref().filter(|_| f.anchor == AnchorKind::CallSite) else {
        return f.what.clone();
    };
    let free = site.spec().kind == ApiKind::Free;
    let mut args = Vec::new();
    for (role, v) in &site.args {
        let runtime = if v.how == Provenance::Runtime {
            " at run time"
        } else {
            ""
        };
        let text = match (role, v.value) {
            (Role::Tag, _) if !free => continue,
            (Role::Tag, Some(t)) => format!("tag {}{runtime}", names::tag(t as u32)),
            (Role::PoolType, Some(x)) => format!("{}{runtime}", names::pool_type(x)),
            (Role::PoolFlags, Some(x)) => format!("{}{runtime}", names::pool_flags(x)),
            (Role::LookasideFlags, Some(x)) => format!("{}{runtime}", names::lookaside_flags(x)),
            (Role::PoolType | Role::PoolFlags | Role::LookasideFlags, None) => {
                let show = |x: u64| match role {
                    Role::PoolType => names::pool_type(x),
                    Role::PoolFlags => names::pool_flags(x),
                    _ => names::lookaside_flags(x),
                };
                detail_text(site, *role, &show).unwrap_or_else(|| "?".into())
            }
            (r, Some(x)) => match r.label() {
                Some(label) => format!("{label} 0x{x:x}{runtime}"),
                None => continue,
            },
            (r, None) => match r.label() {
                Some(label) => {
                    let known = detail_text(site, *r, &|x| format!("0x{x:x}"));
                    format!("{label} {}", known.as_deref().unwrap_or("?"))
                }
                None => continue,
            },
        };
        args.push(text);
    }
    let mut s = format!("{}({})", site.api, args.join(", "));
    if !free {
        if let Some(t) = tag_text(site) {
            s.push_str(&format!(" → tag {t}"));
        }
    }
    if site.via.is_some() {
        if let Some(w) = f
            .what
            .split_once("through wrapper ")
            .and_then(|(_, rest)| rest.split_once(" from RVA"))
            .map(|(w, _)| w)
        {
            s.push_str(&format!(" via wrapper {w}"));
        }
    }
    s.push_str(tail_of(f, site));
    s
}

/// The tag an allocation records, as far as it is known: the constant or implied tag, the
/// values of one read at run time, `?` when the code does not say; `None` when the API takes
/// no tag at all.
fn tag_text(site: &CallSite) -> Option<String> {
    if let Some(t) = site.spec().implied_tag {
        return Some(names::tag(t));
    }
    let v = site.arg(Role::Tag).or_else(|| {
        site.arg(Role::ContextType)
            .map(|_| crate::callsite::ArgValue::UNKNOWN)
    })?;
    Some(match (v.constant(), v.how, site.tag_values.as_slice()) {
        (Some(t), _, _) => names::tag(t as u32),
        (None, Provenance::Runtime, [one]) => {
            format!("{} (a global the code never changes)", names::tag(*one))
        }
        (None, Provenance::Runtime, values @ [_, _, ..]) => format!(
            "one of {} (a global set at run time)",
            values
                .iter()
                .map(|t| names::tag(*t))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (None, Provenance::Runtime, []) => match v.value {
            Some(t) => format!(
                "{} at first (a global set at run time)",
                names::tag(t as u32)
            ),
            None => "? (read at run time)".into(),
        },
        _ => detail_text(site, Role::Tag, &|t| names::tag(t as u32)).unwrap_or_else(|| "?".into()),
    })
}

/// What the analysis knows of an argument that is not one constant ([`ArgDetail`]): the set it
/// is one of, the global whose address it is, the global it is read from at run time; each
/// value shown by `show`.
fn detail_text(site: &CallSite, role: Role, show: &dyn Fn(u64) -> String) -> Option<String> {
    use crate::callsite::ArgDetail;
    Some(match site.detail(role)? {
        // Braced: the set sits inside an argument list whose items are comma-separated too.
        ArgDetail::OneOf(xs) => format!(
            "one of {{{}}}",
            xs.iter().map(|&x| show(x)).collect::<Vec<_>>().join(", ")
        ),
        ArgDetail::AddressOf { global, holds } => match holds {
            Some(h) => format!("the address of global 0x{global:x} (holding {})", show(*h)),
            None => format!("the address of global 0x{global:x}"),
        },
        ArgDetail::SetAtRunTime { global, initial } => format!(
            "set at run time in global 0x{global:x} (initially {})",
            show(*initial)
        ),
    })
}

/// What a rule said after the call's own description (DRV1006's count of unknown tags):
/// the rest of the message after the argument list the rules' description ends with.
fn tail_of<'a>(f: &'a Finding, site: &CallSite) -> &'a str {
    let described = described_args(site);
    if described.is_empty() {
        return "";
    }
    match f.what.find(&described) {
        Some(at) => &f.what[at + described.len()..],
        None => "",
    }
}

/// The argument list as the rules' site description writes it (`crate::rules::describe_site`):
/// ` (pool type 0x0, size 0x40)`, so that what follows it can be found.
fn described_args(site: &CallSite) -> String {
    let mut parts = Vec::new();
    for (role, v) in &site.args {
        let Some(label) = role.label() else {
            continue;
        };
        let text = match (role, v.value) {
            (Role::Tag, Some(t)) => format!("'{}'", crate::pool::tag_display(t as u32)),
            (_, Some(x)) => format!("0x{x:x}"),
            (_, None) => "unknown".into(),
        };
        let shown = |t: &u32| format!("'{}'", crate::pool::tag_display(*t));
        let suffix = match (role, site.tag_values.as_slice()) {
            (_, _) if v.how != Provenance::Runtime => String::new(),
            (Role::Tag, [_]) => " at run time, from a global the code never changes".into(),
            (Role::Tag, values @ [_, _, ..]) => format!(
                " at run time, one of {}",
                values.iter().map(shown).collect::<Vec<_>>().join(", ")
            ),
            _ => " at run time".into(),
        };
        parts.push(format!("{label} {text}{suffix}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

/// `lead` (already styled, `lead_width` columns wide) then `text` wrapped at spaces to
/// [`WIDTH`], continuation lines indented by `indent`; a word longer than a line stays whole.
pub(super) fn wrap(lead: &str, lead_width: usize, text: &str, indent: usize) -> String {
    let mut out = String::from(lead);
    let mut col = lead_width;
    let mut first = true;
    for word in text.split(' ') {
        let w = word.chars().count();
        if !first && col + 1 + w > WIDTH && col > indent {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            col = indent;
        } else if !first {
            out.push(' ');
            col += 1;
        }
        // A no-break space keeps `drvaudit explain ID` on one line.
        out.push_str(&word.replace('\u{a0}', " "));
        col += w;
        first = false;
    }
    out.push('\n');
    out
}

/// Unsuppressed findings per rule: the id, the highest level among them and the count,
/// most frequent first.
pub(super) fn per_rule(report: &Report) -> Vec<(String, Level, usize)> {
    let mut by: BTreeMap<&str, (Level, usize)> = BTreeMap::new();
    for f in report.findings.iter().filter(|f| f.suppression.is_none()) {
        let e = by.entry(f.rule_id.as_str()).or_insert((f.level, 0));
        e.0 = e.0.max(f.level);
        e.1 += 1;
    }
    let mut v: Vec<(String, Level, usize)> = by
        .into_iter()
        .map(|(id, (level, n))| (id.to_string(), level, n))
        .collect();
    v.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    v
}

/// `--statistics`: counts per rule (with its level and name) and per driver, as ruff prints
/// its statistics; suppressed findings are not counted.
pub(super) fn statistics(report: &Report, st: &Styles) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n{}", st.paint(st.heading, "statistics by rule"));
    let _ = writeln!(out, "  {:>6}  {:<8} {:<8} name", "count", "rule", "level");
    for (id, level, n) in per_rule(report) {
        let name = report
            .rules
            .iter()
            .find(|r| r.id == id)
            .map_or("", |r| r.name.as_str());
        let _ = writeln!(
            out,
            "  {n:>6}  {id:<8} {} {name}",
            st.paint(st.level(level), &format!("{:<8}", level.to_string()))
        );
    }
    let mut by: Vec<(usize, [usize; 3])> = Vec::new();
    let mut index: HashMap<usize, usize> = HashMap::new();
    for f in report.findings.iter().filter(|f| f.suppression.is_none()) {
        let slot = *index.entry(f.artifact).or_insert_with(|| {
            by.push((f.artifact, [0; 3]));
            by.len() - 1
        });
        by[slot].1[f.level as usize] += 1;
    }
    by.sort_by(|a, b| {
        let total = |c: &[usize; 3]| c.iter().sum::<usize>();
        (b.1[2], b.1[1], total(&b.1)).cmp(&(a.1[2], a.1[1], total(&a.1)))
    });
    let _ = writeln!(out, "\n{}", st.paint(st.heading, "statistics by driver"));
    let _ = writeln!(
        out,
        "  {:>6} {:>8} {:>6}  driver",
        "errors", "warnings", "notes"
    );
    for (artifact, c) in by {
        let _ = writeln!(
            out,
            "  {:>6} {:>8} {:>6}  {}",
            c[2],
            c[1],
            c[0],
            display_path(&report.artifacts, artifact)
        );
    }
    out
}
