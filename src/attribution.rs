//! Attribution: observed pool usage tied to the drivers that allocate with each tag.
//!
//! Pool figures (from a dump's pool tracker table or a `--pool` export) are per tag; drivers
//! are known by their tag inventories ([`ImageSummary::tags`]). This module joins the two, as
//! a pure function the pipeline calls once per run:
//! - a tag goes to every scanned or carved image whose code allocates with it, so `None` goes
//!   to the callers of `ExAllocatePool*` and `MmCm` to callers of `MmAllocateContiguousMemory*`;
//!   a tag used by several drivers goes to each, marked ambiguous;
//! - a finding's [`Evidence`] sums the figures of the tags it is tied to (a driver-level finding
//!   without tags of its own: every allocation tag of its driver).
//!
//! Nothing here writes prose: outputs render the figures.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::driver::ImageSummary;
use crate::pool::tally::{pool_in_use_total, share, top_consumers};
use crate::pool::{PoolCounters, PoolSnapshot, TagUsage, TAG_MMCM, TAG_NONE};
use crate::poolfiles::PoolTagDb;

/// How many of the largest tags the report lists (and DRV9001 reports).
pub const TOP_TAGS: usize = 10;

/// Observed pool figures tied to a finding through its tags.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evidence {
    /// NonPaged counters summed over the observed tags.
    pub nonpaged: PoolCounters,
    /// Paged counters summed over the observed tags.
    pub paged: PoolCounters,
    /// The finding's tags that the pool figures hold, in the finding's order.
    pub observed: Vec<u32>,
    /// Share of all pool bytes in use, 0.0–1.0.
    pub share: f64,
}

impl Evidence {
    /// Bytes in use in both pools.
    pub fn bytes(&self) -> u64 {
        self.nonpaged.bytes.saturating_add(self.paged.bytes)
    }
    /// Outstanding allocations in both pools.
    pub fn live(&self) -> u64 {
        self.nonpaged.live().saturating_add(self.paged.live())
    }
}

/// One row of the "top pool consumers" table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Consumer {
    /// The tag.
    pub tag: u32,
    /// NonPaged counters.
    pub nonpaged: PoolCounters,
    /// Paged counters.
    pub paged: PoolCounters,
    /// Share of all pool bytes in use, 0.0–1.0.
    pub share: f64,
    /// Artifacts of the images the tag is attributed to, in report order.
    pub artifacts: Vec<usize>,
    /// Their labels (`name.sys`, `name.sys (memory-only)`), without repeats.
    pub drivers: Vec<String>,
    /// More than one driver uses the tag.
    pub ambiguous: bool,
    /// Owner from pooltag.txt, or the kernel's own tags, when known (`nt!mm - …`).
    pub owner: Option<String>,
}

/// The pool usage of a run, joined with the drivers' tag inventories.
#[derive(Debug, Clone)]
pub struct Attribution {
    /// The merged pool figures.
    pub usage: PoolSnapshot,
    /// Bytes in use over all tags and both pools.
    pub total: u64,
    /// The largest tags, largest first, with their drivers.
    pub consumers: Vec<Consumer>,
    by_tag: HashMap<u32, TagUsage>,
    /// Allocation tags per artifact.
    tags_of: HashMap<usize, Vec<u32>>,
}

impl Attribution {
    /// Joins `usage` with the images' inventories; `label` names an image's artifact.
    pub fn new(
        usage: PoolSnapshot,
        images: &[ImageSummary],
        label: impl Fn(usize) -> String,
        pooltag: Option<&PoolTagDb>,
    ) -> Attribution {
        let total = pool_in_use_total(&usage);
        let by_tag: HashMap<u32, TagUsage> = usage.tags.iter().map(|t| (t.tag, *t)).collect();
        let mut tags_of: HashMap<usize, Vec<u32>> = HashMap::new();
        let mut drivers_of: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for img in images {
            for t in img.tags.iter().filter(|t| t.allocates) {
                tags_of.entry(img.artifact).or_default().push(t.tag);
                drivers_of.entry(t.tag).or_default().push(img.artifact);
            }
        }
        let consumers = top_consumers(&usage, TOP_TAGS)
            .into_iter()
            .map(|c| {
                let mut artifacts = drivers_of.get(&c.tag).cloned().unwrap_or_default();
                artifacts.sort();
                artifacts.dedup();
                let mut drivers: Vec<String> = artifacts.iter().map(|&a| label(a)).collect();
                drivers.dedup();
                let u = by_tag.get(&c.tag).copied();
                Consumer {
                    tag: c.tag,
                    nonpaged: u.map_or(PoolCounters::default(), |u| u.nonpaged),
                    paged: u.map_or(PoolCounters::default(), |u| u.paged),
                    share: share(c.total_bytes(), total),
                    ambiguous: drivers.len() > 1,
                    artifacts,
                    drivers,
                    owner: owner_label(c.tag, pooltag),
                }
            })
            .collect();
        Attribution {
            usage,
            total,
            consumers,
            by_tag,
            tags_of,
        }
    }

    /// The figures a finding is tied to: those of `tags`, or — for a driver-level finding
    /// without tags of its own — of every allocation tag of its `artifact`. `None` when the
    /// pool figures hold none of them.
    pub fn evidence(&self, tags: &[u32], driver_level: bool, artifact: usize) -> Option<Evidence> {
        let tags: &[u32] = if tags.is_empty() && driver_level {
            self.tags_of.get(&artifact).map_or(&[], Vec::as_slice)
        } else {
            tags
        };
        let mut e = Evidence::default();
        for t in tags {
            if let Some(u) = self.by_tag.get(t) {
                e.nonpaged.add(&u.nonpaged);
                e.paged.add(&u.paged);
                e.observed.push(*t);
            }
        }
        if e.observed.is_empty() {
            return None;
        }
        e.share = share(e.bytes(), self.total);
        Some(e)
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
