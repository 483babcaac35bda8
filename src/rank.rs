//! Ranking: tie findings to the pool their tags hold, attribute every observed tag to the
//! drivers that use it, and order the report so the finding that explains an outage comes
//! first.
//!
//! - A call-site finding is tied to its tag (an untagged allocation to `None`, contiguous
//!   memory to `MmCm`); a driver-level finding (a section, a header flag, an import without a
//!   site) to the sum over the driver's allocation tags.
//! - Tags are attributed through the tag inventory of every scanned and carved image, so
//!   `None` goes to the callers of `ExAllocatePool*` and `MmCm` only to callers of
//!   `MmAllocateContiguousMemory*`. A tag used by several drivers goes to each, marked
//!   ambiguous.
//! - `rank` is `ceil(100 × bytes / pool in use)` ([`crate::pool::tally::rank_for`]);
//!   findings without evidence get none and sort after ranked ones.
//! - DRV9001 reports each of the [`TOP_TAGS`] largest tags; it is a warning above
//!   [`WARNING_SHARE`] of the pool in use.

use std::collections::{BTreeMap, HashMap};

use crate::finding::{ArtifactKind, Consumer, Evidence, Finding, Level, Logical, Report};
use crate::pool::tally::{pool_in_use_total, rank_for, share, top_consumers};
use crate::pool::{tag_display, PoolCounters, PoolSnapshot, TagUsage, TAG_MMCM, TAG_NONE};
use crate::poolfiles::PoolTagDb;

/// How many of the largest tags DRV9001 reports and the text report lists.
pub const TOP_TAGS: usize = 10;
/// Share of all pool bytes in use above which DRV9001 is a warning rather than a note.
pub const WARNING_SHARE: f64 = 0.10;

/// Ties every finding to observed usage, adds DRV9001 findings and the consumers table, and
/// orders the findings by rank.
pub fn apply(report: &mut Report, usage: PoolSnapshot, pooltag: Option<&PoolTagDb>) {
    let total = pool_in_use_total(&usage);
    let by_tag: HashMap<u32, TagUsage> = usage.tags.iter().map(|t| (t.tag, *t)).collect();

    // Allocation tags per artifact, and the artifacts attributed to each tag.
    let mut tags_of: HashMap<usize, Vec<u32>> = HashMap::new();
    let mut drivers_of: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for img in &report.images {
        for t in img.tags.iter().filter(|t| t.allocates) {
            tags_of.entry(img.artifact).or_default().push(t.tag);
            drivers_of.entry(t.tag).or_default().push(img.artifact);
        }
    }

    for f in &mut report.findings {
        // A site whose tag is unknown has no evidence; a driver-level finding takes them all.
        let tags = if f.tags.is_empty() && f.driver_level {
            tags_of.get(&f.artifact).cloned().unwrap_or_default()
        } else {
            f.tags.clone()
        };
        let seen: Vec<&TagUsage> = tags.iter().filter_map(|t| by_tag.get(t)).collect();
        if seen.is_empty() {
            continue;
        }
        let mut e = Evidence::default();
        for u in &seen {
            e.nonpaged.add(&u.nonpaged);
            e.paged.add(&u.paged);
        }
        f.rank = Some(f64::from(rank_for(e.bytes(), total)));
        f.message.push_str(&format!(
            "; observed: {} holds {} bytes of NonPagedPool and {} bytes of PagedPool ({} live allocations, {:.1}% of pool in use)",
            tags.iter()
                .filter(|t| by_tag.contains_key(t))
                .map(|&t| format!("tag '{}'", tag_display(t)))
                .collect::<Vec<_>>()
                .join(" + "),
            crate::output::text::group(e.nonpaged.bytes),
            crate::output::text::group(e.paged.bytes),
            crate::output::text::group(e.live()),
            100.0 * share(e.bytes(), total)
        ));
        f.evidence = Some(e);
    }

    report.consumers = top_consumers(&usage, TOP_TAGS)
        .into_iter()
        .map(|c| {
            let mut artifacts = drivers_of.get(&c.tag).cloned().unwrap_or_default();
            artifacts.sort();
            artifacts.dedup();
            let mut drivers: Vec<String> =
                artifacts.iter().map(|&a| driver_label(report, a)).collect();
            drivers.dedup();
            let u = by_tag.get(&c.tag).copied();
            Consumer {
                tag: c.tag,
                nonpaged: u.map_or(PoolCounters::default(), |u| u.nonpaged),
                paged: u.map_or(PoolCounters::default(), |u| u.paged),
                share: share(c.total_bytes(), total),
                ambiguous: drivers.len() > 1,
                drivers,
                owner: owner_label(c.tag, pooltag),
            }
        })
        .collect();

    if let Some(rule) = report.rules.iter().find(|r| r.id == "DRV9001").cloned() {
        let consumers = report.consumers.clone();
        for c in consumers
            .iter()
            .filter(|c| c.nonpaged.bytes + c.paged.bytes > 0)
        {
            let finding = pool_consumer(report, &rule, c, &drivers_of, total);
            report.findings.push(finding);
        }
    }

    // Ranked first, largest first; at equal rank errors before warnings before notes, and the
    // per-tag DRV9001 summary after the findings it summarises; otherwise the previous order.
    report.findings.sort_by(|a, b| {
        let key = |f: &Finding| {
            (
                std::cmp::Reverse(f.rank.map(|r| (r * 10.0) as i64).unwrap_or(-1)),
                std::cmp::Reverse(f.level),
                f.rule_id == "DRV9001",
            )
        };
        key(a).cmp(&key(b))
    });
    report.pool = Some(usage);
}

/// `name.sys`, with "(memory-only)" for carved images no scanned file matches.
fn driver_label(report: &Report, artifact: usize) -> String {
    let a = &report.artifacts[artifact];
    if a.memory_only {
        format!("{} (memory-only)", a.name)
    } else {
        a.name.clone()
    }
}

/// The owner pooltag.txt gives a tag; the kernel's own tags are labelled even without it.
fn owner_label(tag: u32, pooltag: Option<&PoolTagDb>) -> Option<String> {
    if let Some(e) = pooltag.and_then(|db| db.lookup(tag)) {
        let kind = if e.owner_is_kernel() { "kernel: " } else { "" };
        return Some(format!("{kind}{} - {}", e.binary, e.description));
    }
    match tag {
        TAG_NONE => Some("kernel: allocations made without a tag (ExAllocatePool)".into()),
        TAG_MMCM => Some("kernel: nt!mm - MmAllocateContiguousMemory".into()),
        _ => None,
    }
}

fn pool_consumer(
    report: &Report,
    rule: &crate::rules::Rule,
    c: &Consumer,
    drivers_of: &BTreeMap<u32, Vec<usize>>,
    total: u64,
) -> Finding {
    let bytes = c.nonpaged.bytes + c.paged.bytes;
    let first_driver = drivers_of.get(&c.tag).and_then(|v| v.iter().min().copied());
    // Anchor at the first attributed driver; an unattributed tag at the evidence itself.
    let artifact = first_driver.unwrap_or_else(|| {
        report
            .artifacts
            .iter()
            .position(|a| matches!(a.kind, ArtifactKind::Dump | ArtifactKind::PoolExport))
            .unwrap_or(0)
    });
    let who = if c.drivers.is_empty() {
        "no scanned or carved driver uses it".to_string()
    } else {
        format!(
            "attributed to {}{}",
            c.drivers.join(", "),
            if c.ambiguous { " (ambiguous)" } else { "" }
        )
    };
    let owner = c
        .owner
        .as_ref()
        .map(|o| format!("; owner: {o}"))
        .unwrap_or_default();
    let message = format!(
        "tag '{}' holds {} bytes of NonPagedPool and {} bytes of PagedPool ({} live allocations, {:.1}% of pool in use); {who}{owner}: {}",
        tag_display(c.tag),
        crate::output::text::group(c.nonpaged.bytes),
        crate::output::text::group(c.paged.bytes),
        crate::output::text::group(c.nonpaged.live() + c.paged.live()),
        100.0 * c.share,
        rule.why
    );
    let mut properties = BTreeMap::new();
    properties.insert("tag".into(), tag_display(c.tag).into());
    properties.insert("tagValue".into(), c.tag.into());
    properties.insert("drivers".into(), c.drivers.clone().into());
    properties.insert("ambiguous".into(), c.ambiguous.into());
    if let Some(o) = &c.owner {
        properties.insert("owner".into(), o.clone().into());
    }
    Finding {
        rule_id: rule.id.clone(),
        level: if c.share > WARNING_SHARE {
            Level::Warning
        } else {
            rule.level
        },
        message,
        artifact,
        rva: None,
        region: Some((0, 0)),
        logical: Some(Logical {
            name: tag_display(c.tag),
            fully_qualified: format!("pool tag '{}'", tag_display(c.tag)),
            kind: "resource",
            bounds: None,
        }),
        properties,
        tags: vec![c.tag],
        driver_level: false,
        site: None,
        evidence: Some(Evidence {
            nonpaged: c.nonpaged,
            paged: c.paged,
        }),
        rank: Some(f64::from(rank_for(bytes, total))),
        fingerprint: crate::rules::fingerprint(&rule.id, "pool", &format!("tag:{:08x}", c.tag)),
    }
}
