//! Native checks: rule logic a declarative matcher cannot express. Each returns hits only;
//! id, level and wording come from the rule's TOML file, which names its check here.
//!
//! Adding a check is one function and one row of [`IMAGE_CHECKS`] or [`REPORT_CHECKS`]; a rule
//! file naming a check that is in neither table fails to load.

use std::collections::BTreeSet;

use super::gating;
use super::hit::{
    describe_site, Anchor, CheckContext, Hit, Level, PackageContext, ReportContext, ReportRule,
};
use crate::callsite::{CallSite, Provenance};
use crate::pe::Machine;
use crate::pool::apis::{ApiKind, Role};
use crate::pool::tag_display;
use crate::util::group;

/// A check over one driver.
pub(super) type ImageCheck = fn(&CheckContext<'_>) -> Vec<Hit>;

/// Image checks by the name rule files give them.
const IMAGE_CHECKS: &[(&str, ImageCheck)] = &[
    ("invalid-pool-tag", invalid_pool_tag),
    ("tag-collision", tag_collision),
    ("free-tag-never-allocated", free_tag_never_allocated),
    ("executable-pool-request", executable_pool_request),
    ("section-not-page-aligned", section_not_page_aligned),
    ("iat-in-executable-section", iat_in_executable_section),
    ("known-vulnerable-driver", gating::known_vulnerable),
    ("known-malicious-driver", gating::known_malicious),
    ("blocked-by-policy", gating::blocked_by_policy),
    ("unsigned-driver", gating::unsigned),
    ("test-signed-driver", gating::test_signed),
    ("signature-digest-mismatch", gating::digest_mismatch),
    (
        "catalog-does-not-cover-driver",
        gating::catalog_does_not_cover,
    ),
    (
        "signer-expired-without-timestamp",
        gating::expired_without_timestamp,
    ),
    ("attestation-signed-driver", gating::attestation_signed),
];

/// Report-level checks by name.
const REPORT_CHECKS: &[(&str, &dyn ReportRule)] = &[("pool-consumer", &PoolConsumer)];

/// A check over one INF of a package.
pub(super) type PackageCheck = fn(&PackageContext<'_>) -> Vec<Hit>;

/// Package-level checks by name.
const PACKAGE_CHECKS: &[(&str, PackageCheck)] = &[
    ("inf-problem", gating::inf_problem),
    (
        "package-file-not-in-catalog",
        gating::package_file_not_in_catalog,
    ),
];

/// A native check, resolved from its name when the rule loads.
#[derive(Clone, Copy)]
pub(super) enum Native {
    /// Runs per driver.
    Image(ImageCheck),
    /// Runs once over the report.
    Report(&'static dyn ReportRule),
    /// Runs once per INF of a package.
    Package(PackageCheck),
}

impl std::fmt::Debug for Native {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Native::Image(_) => "Native::Image",
            Native::Report(_) => "Native::Report",
            Native::Package(_) => "Native::Package",
        })
    }
}

/// The check a rule file's `check = "…"` names.
pub(super) fn resolve(name: &str) -> Option<Native> {
    IMAGE_CHECKS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| Native::Image(*c))
        .or_else(|| {
            REPORT_CHECKS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, c)| Native::Report(*c))
        })
        .or_else(|| {
            PACKAGE_CHECKS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, c)| Native::Package(*c))
        })
}

/// Every check name, for the error that lists them.
pub(super) fn names() -> impl Iterator<Item = &'static str> {
    IMAGE_CHECKS
        .iter()
        .map(|(n, _)| *n)
        .chain(REPORT_CHECKS.iter().map(|(n, _)| *n))
        .chain(PACKAGE_CHECKS.iter().map(|(n, _)| *n))
}

fn allocates(site: &CallSite) -> bool {
    matches!(site.spec().kind, ApiKind::Allocate | ApiKind::LookasideInit)
}

fn site_hit(ctx: &CheckContext<'_>, i: usize, extra: &str) -> Hit {
    let site = &ctx.driver.sites[i];
    let mut hit = Hit::new(
        Anchor::CallSite(i),
        format!("{}{extra}", describe_site(&ctx.driver.image, site)),
    );
    hit.tags = site.possible_tags();
    hit
}

/// DRV1004: tag 0 is an error; a tag with a byte outside 0x20–0x7E is a warning
/// (ExAllocatePoolWithTag documentation; BAD_POOL_CALLER 0x9B for tag 0).
fn invalid_pool_tag(ctx: &CheckContext<'_>) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, site) in ctx.driver.sites.iter().enumerate() {
        if !allocates(site) {
            continue;
        }
        let Some(tag) = site.arg(Role::Tag).and_then(|v| v.constant()) else {
            continue;
        };
        let tag = tag as u32;
        let level = if tag == 0 {
            Level::Error
        } else if tag.to_le_bytes().iter().any(|b| !(0x20..=0x7e).contains(b)) {
            Level::Warning
        } else {
            continue;
        };
        let mut hit = site_hit(ctx, i, "");
        hit.level = Some(level);
        hits.push(hit);
    }
    hits
}

/// DRV1005: a tag that the supplied pooltag.txt gives to a different binary: one hit per
/// colliding tag of the driver (the fact is the tag, not each call), anchored at its first
/// call site; every site's RVA is in the `callSites` property and the count in the message.
fn tag_collision(ctx: &CheckContext<'_>) -> Vec<Hit> {
    let Some(db) = ctx.pooltag else {
        return Vec::new();
    };
    let me = ctx.driver.name.to_ascii_lowercase();
    let stem = me.rsplit_once('.').map_or(me.as_str(), |(s, _)| s);
    // Tag → (owner, the sites using it in address order), in order of first use.
    let mut by_tag: Vec<(u32, &String, Vec<usize>)> = Vec::new();
    for (i, site) in ctx.driver.sites.iter().enumerate() {
        if !allocates(site) || site.spec().implied_tag.is_some() {
            continue;
        }
        let Some(tag) = site.arg(Role::Tag).and_then(|v| v.constant()) else {
            continue;
        };
        let tag = tag as u32;
        let Some(owner) = db.get(&tag) else {
            continue;
        };
        let o = owner.to_ascii_lowercase();
        if o.contains(stem) || o.contains("<unknown>") {
            continue;
        }
        match by_tag.iter_mut().find(|(t, _, _)| *t == tag) {
            Some((_, _, sites)) => sites.push(i),
            None => by_tag.push((tag, owner, vec![i])),
        }
    }
    by_tag
        .into_iter()
        .map(|(tag, owner, sites)| {
            let others = match sites.len() {
                1 => String::new(),
                n => format!(" (and {} more call sites with it)", n - 1),
            };
            let mut hit = site_hit(
                ctx,
                sites[0],
                &format!(
                    "{others}; pooltag.txt lists '{}' for {owner}",
                    tag_display(tag)
                ),
            );
            let rvas: Vec<serde_json::Value> = sites
                .iter()
                .map(|&i| format!("0x{:x}", ctx.driver.sites[i].report_rva()).into())
                .collect();
            hit.properties.insert("callSites".into(), rvas.into());
            hit
        })
        .collect()
}

/// DRV1006: a constant nonzero tag freed but never allocated with a constant in the image.
/// An allocation whose tag is not a constant could be the one freed, which is why this is only
/// a note.
fn free_tag_never_allocated(ctx: &CheckContext<'_>) -> Vec<Hit> {
    let sites = &ctx.driver.sites;
    // Every tag an allocation may record: constants, the implied `None` of untagged
    // allocators, each value of a tag read at run time, and each member of a set of tags.
    let allocated: BTreeSet<u32> = sites
        .iter()
        .filter(|s| allocates(s))
        .flat_map(|s| s.possible_tags())
        .collect();
    // Allocations whose tag is not known (nor one of a run-time global's known values) could
    // be the missing ones: say how many. A wrapper's own site does not count when its callers'
    // sites carry the values.
    let resolved_wrappers: BTreeSet<u32> = sites
        .iter()
        .filter(|s| s.via.is_some())
        .map(|s| s.rva)
        .collect();
    // Only APIs that take a tag (directly, or through a context type's registration).
    let takes_tag = |s: &&CallSite| {
        s.spec()
            .params
            .iter()
            .any(|p| matches!(p.role, Role::Tag | Role::ContextType))
    };
    let unknown = sites
        .iter()
        .filter(|s| allocates(s) && !s.tag_known())
        .filter(takes_tag)
        .filter(|s| s.via.is_some() || !resolved_wrappers.contains(&s.rva))
        .count();
    let extra = match unknown {
        0 => String::new(),
        1 => ", while 1 allocation site passes a tag that could not be recovered".to_string(),
        n => format!(", while {n} allocation sites pass a tag that could not be recovered"),
    };
    let mut hits = Vec::new();
    for (i, s) in sites.iter().enumerate() {
        if s.spec().kind != ApiKind::Free {
            continue;
        }
        let Some(tag) = s.arg(Role::Tag).and_then(|v| v.constant()) else {
            continue;
        };
        if tag != 0 && !allocated.contains(&(tag as u32)) {
            hits.push(site_hit(ctx, i, &extra));
        }
    }
    hits
}

/// Whether a constant `POOL_TYPE` is executable non-paged pool: an even base type (non-paged;
/// session bit 0x20 allowed) without `POOL_NX_ALLOCATION` 0x200 (`pool-apis-and-rules.md` §3).
pub fn pool_type_is_executable(t: u64) -> bool {
    t & 1 == 0 && t & 0x200 == 0
}

/// DRV2001: executable pool requested with a constant. A type read from a writable global is
/// never reported here (DRV2005 covers it).
fn executable_pool_request(ctx: &CheckContext<'_>) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, site) in ctx.driver.sites.iter().enumerate() {
        if !allocates(site) {
            continue;
        }
        let constant = |role| {
            site.arg(role)
                .filter(|v| v.how != Provenance::Runtime)
                .and_then(|v| v.constant())
        };
        let executable = match site.api {
            // POOL_FLAG_NON_PAGED_EXECUTE.
            "ExAllocatePool2" | "ExAllocatePool3" => {
                constant(Role::PoolFlags).is_some_and(|f| f & 0x80 != 0)
            }
            // Only the non-paged list is executable without POOL_NX_ALLOCATION in its flags.
            "ExInitializeNPagedLookasideList" => {
                constant(Role::LookasideFlags).is_some_and(|f| f & 0x200 == 0)
            }
            "ExInitializeLookasideListEx" => {
                constant(Role::PoolType).is_some_and(pool_type_is_executable)
                    && constant(Role::LookasideFlags).is_some_and(|f| f & 0x200 == 0)
            }
            _ => match constant(Role::PoolType) {
                // PagedPool (1) is executable on x86 only; odd types are paged elsewhere.
                Some(t) => pool_type_is_executable(t),
                None => false,
            },
        };
        if executable {
            hits.push(site_hit(ctx, i, ""));
        }
    }
    hits
}

/// DRV3002: SectionAlignment below the page size, or a section whose RVA is not page aligned.
fn section_not_page_aligned(ctx: &CheckContext<'_>) -> Vec<Hit> {
    const PAGE: u32 = 0x1000;
    let image = &ctx.driver.image;
    if image.section_alignment < PAGE {
        let at = image.sections.first().map_or(0, |s| s.header_offset);
        let size_of_optional: u32 = if image.machine == Machine::X86 {
            224
        } else {
            240
        };
        // SectionAlignment is 32 bytes into the optional header in both PE32 and PE32+.
        let off = at.saturating_sub(size_of_optional) + 32;
        return vec![Hit::new(
            Anchor::Header(u64::from(off), 4),
            format!(
                "has SectionAlignment 0x{:x}, smaller than the 0x1000-byte page",
                image.section_alignment
            ),
        )];
    }
    image
        .sections
        .iter()
        .enumerate()
        .filter(|(_, s)| s.rva % PAGE != 0)
        .map(|(i, s)| {
            Hit::new(
                Anchor::Section(i),
                format!(
                    "section `{}` starts at RVA 0x{:x}, not on a page boundary",
                    s.name, s.rva
                ),
            )
        })
        .collect()
}

/// DRV3003: an import's IAT slot lies in an executable section (reported once per section).
fn iat_in_executable_section(ctx: &CheckContext<'_>) -> Vec<Hit> {
    let image = &ctx.driver.image;
    let mut seen = BTreeSet::new();
    let mut hits = Vec::new();
    for (i, imp) in image.imports.iter().enumerate() {
        if imp.delay {
            continue;
        }
        let Some(s) = image.section_of(imp.iat_rva) else {
            continue;
        };
        if s.is_executable() && seen.insert(s.rva) {
            hits.push(Hit::new(
                Anchor::Import(i),
                format!(
                    "has its import address table (slot of {} at RVA 0x{:x}) in executable section `{}`",
                    imp.display(),
                    imp.iat_rva,
                    s.name
                ),
            ));
        }
    }
    hits
}

/// Share of all pool bytes in use above which DRV9001 is a warning rather than a note.
pub const WARNING_SHARE: f64 = 0.10;

/// DRV9001: each of the largest tags of the observed pool usage, with the drivers it is
/// attributed to; a warning above [`WARNING_SHARE`] of the pool in use.
struct PoolConsumer;

impl ReportRule for PoolConsumer {
    fn check(&self, ctx: &ReportContext<'_>) -> Vec<Hit> {
        let mut hits = Vec::new();
        for c in &ctx.attribution.consumers {
            if c.nonpaged.bytes + c.paged.bytes == 0 {
                continue;
            }
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
            let what = format!(
                "tag '{}' holds {} bytes of NonPagedPool and {} bytes of PagedPool ({} live allocations, {:.1}% of pool in use); {who}{owner}",
                tag_display(c.tag),
                group(c.nonpaged.bytes),
                group(c.paged.bytes),
                group(c.nonpaged.live() + c.paged.live()),
                100.0 * c.share,
            );
            // Placed on the first attributed driver; an unattributed tag on the evidence itself.
            let artifact = c
                .artifacts
                .first()
                .copied()
                .unwrap_or(ctx.evidence_artifact);
            let mut hit = Hit::new(
                Anchor::PoolTag {
                    tag: c.tag,
                    artifact,
                },
                what,
            );
            hit.tags = vec![c.tag];
            if c.share > WARNING_SHARE {
                hit.level = Some(Level::Warning);
            }
            let p = &mut hit.properties;
            p.insert("tag".into(), tag_display(c.tag).into());
            p.insert("tagValue".into(), c.tag.into());
            p.insert("drivers".into(), c.drivers.clone().into());
            p.insert("ambiguous".into(), c.ambiguous.into());
            if let Some(o) = &c.owner {
                p.insert("owner".into(), o.clone().into());
            }
            hits.push(hit);
        }
        hits
    }
}
