//! Native checks: rule logic a declarative matcher cannot express. Each returns hits only;
//! id, level and wording come from the rule's TOML file.

use std::collections::BTreeSet;

use super::{describe_site, Anchor, Hit, ImageContext};
use crate::callsite::{CallSite, Provenance};
use crate::finding::Level;
use crate::pe::Machine;
use crate::pool::apis::{ApiKind, Role};
use crate::pool::tag_display;

/// Names accepted in `kind = "native"` rule files.
pub const NAMES: &[&str] = &[
    "invalid-pool-tag",
    "tag-collision",
    "free-tag-never-allocated",
    "executable-pool-request",
    "section-not-page-aligned",
    "iat-in-executable-section",
    "pool-consumer",
];

/// Whether `name` is a known check.
pub fn exists(name: &str) -> bool {
    NAMES.contains(&name)
}

/// Runs the named check over one image.
pub fn run(name: &str, ctx: &ImageContext<'_>) -> Vec<Hit> {
    match name {
        "invalid-pool-tag" => invalid_pool_tag(ctx),
        "tag-collision" => tag_collision(ctx),
        "free-tag-never-allocated" => free_tag_never_allocated(ctx),
        "executable-pool-request" => executable_pool_request(ctx),
        "section-not-page-aligned" => section_not_page_aligned(ctx),
        "iat-in-executable-section" => iat_in_executable_section(ctx),
        // Report-level: produced by ranking from observed pool usage, not per image.
        _ => Vec::new(),
    }
}

fn allocates(site: &CallSite) -> bool {
    matches!(site.spec().kind, ApiKind::Allocate | ApiKind::LookasideInit)
}

fn site_hit(ctx: &ImageContext<'_>, i: usize, extra: &str) -> Hit {
    let site = &ctx.sites[i];
    Hit {
        anchor: Anchor::CallSite(i),
        what: format!("{}{extra}", describe_site(ctx.image, site)),
        level: None,
        tags: site.possible_tags(),
    }
}

/// DRV1004: tag 0 is an error; a tag with a byte outside 0x20–0x7E is a warning
/// (ExAllocatePoolWithTag documentation; BAD_POOL_CALLER 0x9B for tag 0).
fn invalid_pool_tag(ctx: &ImageContext<'_>) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, site) in ctx.sites.iter().enumerate() {
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

/// DRV1005: a tag that the supplied pooltag.txt gives to a different binary.
fn tag_collision(ctx: &ImageContext<'_>) -> Vec<Hit> {
    let Some(db) = ctx.pooltag else {
        return Vec::new();
    };
    let me = ctx.name.to_ascii_lowercase();
    let stem = me.rsplit_once('.').map_or(me.as_str(), |(s, _)| s);
    let mut hits = Vec::new();
    for (i, site) in ctx.sites.iter().enumerate() {
        if !allocates(site) || site.spec().implied_tag.is_some() {
            continue;
        }
        let Some(tag) = site.arg(Role::Tag).and_then(|v| v.constant()) else {
            continue;
        };
        let Some(owner) = db.get(&(tag as u32)) else {
            continue;
        };
        let o = owner.to_ascii_lowercase();
        if o.contains(stem) || o.contains("<unknown>") {
            continue;
        }
        hits.push(site_hit(
            ctx,
            i,
            &format!(
                "; pooltag.txt assigns '{}' to {owner}",
                tag_display(tag as u32)
            ),
        ));
    }
    hits
}

/// DRV1006: a constant nonzero tag freed but never allocated with a constant in the image.
/// An allocation whose tag is not a constant could be the one freed, which is why this is only
/// a note.
fn free_tag_never_allocated(ctx: &ImageContext<'_>) -> Vec<Hit> {
    let sites = &ctx.sites;
    // Every tag an allocation may record: constants, the implied `None` of untagged
    // allocators, and each value of a tag read at run time.
    let allocated: BTreeSet<u32> = sites
        .iter()
        .filter(|s| allocates(s))
        .flat_map(|s| s.possible_tags())
        .collect();
    // Allocations whose tag is unknown could be the missing ones: say how many. A wrapper's own
    // site does not count when its callers' sites carry the values.
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
        .filter(|s| allocates(s) && s.possible_tags().is_empty())
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
fn executable_pool_request(ctx: &ImageContext<'_>) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, site) in ctx.sites.iter().enumerate() {
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
fn section_not_page_aligned(ctx: &ImageContext<'_>) -> Vec<Hit> {
    const PAGE: u32 = 0x1000;
    let image = ctx.image;
    if image.section_alignment < PAGE {
        let at = image.sections.first().map_or(0, |s| s.header_offset);
        let size_of_optional: u32 = if image.machine == Machine::X86 {
            224
        } else {
            240
        };
        // SectionAlignment is 32 bytes into the optional header in both PE32 and PE32+.
        let off = at.saturating_sub(size_of_optional) + 32;
        return vec![Hit {
            anchor: Anchor::Header(u64::from(off), 4),
            what: format!(
                "has SectionAlignment 0x{:x}, smaller than the 0x1000-byte page",
                image.section_alignment
            ),
            level: None,
            tags: Vec::new(),
        }];
    }
    image
        .sections
        .iter()
        .enumerate()
        .filter(|(_, s)| s.rva % PAGE != 0)
        .map(|(i, s)| Hit {
            anchor: Anchor::Section(i),
            what: format!(
                "section `{}` starts at RVA 0x{:x}, not on a page boundary",
                s.name, s.rva
            ),
            level: None,
            tags: Vec::new(),
        })
        .collect()
}

/// DRV3003: an import's IAT slot lies in an executable section (reported once per section).
fn iat_in_executable_section(ctx: &ImageContext<'_>) -> Vec<Hit> {
    let image = ctx.image;
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
            hits.push(Hit {
                anchor: Anchor::Import(i),
                what: format!(
                    "has its import address table (slot of {} at RVA 0x{:x}) in executable section `{}`",
                    imp.display(),
                    imp.iat_rva,
                    s.name
                ),
                level: None,
                tags: Vec::new(),
            });
        }
    }
    hits
}
