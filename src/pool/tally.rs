//! Ranking findings by the pool their tag holds: pure functions over [`PoolSnapshot`]s.
//!
//! * [`merge_sources`] combines the snapshots of several sources describing **the same
//!   machine** (a crash dump's tracker table, a `!poolused` paste of that dump, a PoolMon log
//!   taken before it): they are views of one pool, so they are never summed. For each tag the
//!   first source (in the order given) that reports it wins, whole (NonPaged and Paged
//!   together, so the two pools of a tag always come from one observation). The caller puts
//!   the most authoritative source first, normally the dump.
//! * [`pool_in_use_total`] is NonPaged + Paged bytes over all tags; [`share`] a tag's part of it.
//!   A finding's rank is built from its share (`pipeline::rank_findings`).
//! * [`top_consumers`] lists tags by NonPaged + Paged bytes, largest first.

use std::collections::HashSet;

use crate::pool::{tag_display, PoolSnapshot, TagUsage};

/// Merges snapshots of one machine: first source wins per tag (see the module docs).
/// `source` of the result lists the inputs joined by `; `.
pub fn merge_sources(snapshots: &[PoolSnapshot]) -> PoolSnapshot {
    let mut seen = HashSet::new();
    let mut tags: Vec<TagUsage> = Vec::new();
    for snapshot in snapshots {
        for usage in &snapshot.tags {
            if seen.insert(usage.tag) {
                tags.push(*usage);
            }
        }
    }
    tags.sort_by_key(|t| tag_display(t.tag));
    PoolSnapshot {
        source: snapshots
            .iter()
            .map(|s| s.source.as_str())
            .collect::<Vec<_>>()
            .join("; "),
        tags,
    }
}

/// Bytes in use in NonPagedPool and PagedPool together, over every tag (saturating).
pub fn pool_in_use_total(snapshot: &PoolSnapshot) -> u64 {
    snapshot.tags.iter().fold(0u64, |sum, t| {
        sum.saturating_add(t.nonpaged.bytes)
            .saturating_add(t.paged.bytes)
    })
}

/// `bytes / total` in 0.0–1.0; 0.0 when `total` is 0, 1.0 if `bytes` exceeds `total` (figures
/// from different sources can disagree slightly).
pub fn share(bytes: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        (bytes as f64 / total as f64).min(1.0)
    }
}

/// One line of the top-consumers list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopConsumer {
    /// The tag.
    pub tag: u32,
    /// NonPagedPool bytes in use.
    pub nonpaged_bytes: u64,
    /// PagedPool bytes in use.
    pub paged_bytes: u64,
    /// Outstanding allocations in both pools.
    pub live_allocs: u64,
}

impl TopConsumer {
    /// NonPaged + Paged bytes, the sort key.
    pub fn total_bytes(&self) -> u64 {
        self.nonpaged_bytes.saturating_add(self.paged_bytes)
    }
}

/// Tags holding pool, largest NonPaged + Paged bytes first (ties by displayed tag, so the
/// order is stable); tags holding no bytes are left out. `limit` = 0 means no limit.
pub fn top_consumers(snapshot: &PoolSnapshot, limit: usize) -> Vec<TopConsumer> {
    let mut list: Vec<TopConsumer> = snapshot
        .tags
        .iter()
        .map(|t| TopConsumer {
            tag: t.tag,
            nonpaged_bytes: t.nonpaged.bytes,
            paged_bytes: t.paged.bytes,
            live_allocs: t.nonpaged.live().saturating_add(t.paged.live()),
        })
        .filter(|c| c.total_bytes() > 0)
        .collect();
    list.sort_by(|a, b| {
        b.total_bytes()
            .cmp(&a.total_bytes())
            .then_with(|| tag_display(a.tag).cmp(&tag_display(b.tag)))
    });
    if limit > 0 {
        list.truncate(limit);
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{PoolCounters, TAG_MMCM, TAG_NONE};

    fn usage(tag: u32, np: u64, p: u64, live: u64) -> TagUsage {
        TagUsage {
            tag,
            nonpaged: PoolCounters {
                allocs: live,
                frees: 0,
                bytes: np,
            },
            paged: PoolCounters {
                allocs: 0,
                frees: 0,
                bytes: p,
            },
        }
    }

    fn snap(source: &str, tags: Vec<TagUsage>) -> PoolSnapshot {
        PoolSnapshot {
            source: source.to_string(),
            tags,
        }
    }

    #[test]
    fn first_source_wins_per_tag() {
        let dump = snap("dump", vec![usage(TAG_NONE, 100, 0, 1)]);
        let log = snap(
            "log",
            vec![usage(TAG_NONE, 999, 5, 9), usage(TAG_MMCM, 50, 0, 2)],
        );
        let merged = merge_sources(&[dump, log]);
        assert_eq!(merged.source, "dump; log");
        assert_eq!(merged.tags.len(), 2);
        let none = merged.tags.iter().find(|t| t.tag == TAG_NONE).unwrap();
        assert_eq!((none.nonpaged.bytes, none.paged.bytes), (100, 0));
        assert_eq!(pool_in_use_total(&merged), 150);
    }

    #[test]
    fn share_is_a_fraction_of_the_pool_in_use_capped_at_one() {
        assert_eq!(share(0, 0), 0.0);
        assert_eq!(share(1, 4), 0.25);
        assert_eq!(share(8, 4), 1.0);
    }

    #[test]
    fn top_consumers_sorted_by_both_pools() {
        let s = snap(
            "x",
            vec![
                usage(TAG_MMCM, 10, 0, 1),
                usage(TAG_NONE, 5, 20, 3),
                usage(0x2020_6F49, 10, 0, 7),
                usage(0x4141_4141, 0, 0, 4),
            ],
        );
        let top = top_consumers(&s, 0);
        let tags: Vec<String> = top.iter().map(|c| tag_display(c.tag)).collect();
        assert_eq!(tags, ["None", "Io  ", "MmCm"]);
        assert_eq!(top[0].live_allocs, 3);
        assert_eq!(top_consumers(&s, 1).len(), 1);
    }
}
