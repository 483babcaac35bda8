//! Carving: rebuilding a module's image from memory in LOADED layout (RVA == offset),
//! crash-dumps.md §6, and the plan that carves every module of a dump once within its budgets.
//!
//! The range [DllBase, DllBase + SizeOfImage) is read page by page; pages that cannot be read
//! are zero-filled and listed as holes (as Volatility's moddump does with its presence bitmap).
//! A hole in a discardable section (INIT, freed after DriverEntry) is expected and labelled so;
//! other holes (paged-out PAGE sections, pages the dump skipped) are listed as missing.
//!
//! Invariants of [`ModuleImages`]: each distinct image (base, SizeOfImage) is carved at most
//! once; a module repeating another's base and size, or overlapping another's range, is listed
//! with the module it collides with and not carved; the bytes planned for carving never exceed
//! the dump's carving budget nor the page walks it has left, so the plan, not the thread
//! schedule, decides which modules are carved; an image whose pages alias a few physical pages
//! is refused, not handed on.

use std::collections::{BTreeMap, HashSet};

use rayon::prelude::*;
use serde::Serialize;

use super::budget::{self, BudgetExceeded, Limit, MAX_CARVED_TOTAL, MAX_IMAGE};
use super::imports::{ExportMap, RecoveredImport};
use super::modules::LoadedModule;
use super::pe::{Headers, SCN_DISCARDABLE};
use super::Dump;

const PAGE: u32 = 0x1000;

/// A carved image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CarvedImage {
    /// The image in loaded layout; holes are zero.
    #[serde(skip)]
    pub bytes: Vec<u8>,
    /// Missing ranges as (rva, len), sorted and coalesced.
    pub holes: Vec<(u32, u32)>,
    /// What the holes are (section names, "discardable: expected"), and any size clipping.
    pub notes: Vec<String>,
    /// Every hole lies in a discardable section (INIT, .reloc): nothing unexpected is missing.
    pub holes_expected: bool,
}

impl CarvedImage {
    /// True when the byte at `rva` was read from the dump.
    pub fn present(&self, rva: u32) -> bool {
        (rva as usize) < self.bytes.len()
            && !self
                .holes
                .iter()
                .any(|&(r, l)| rva >= r && u64::from(rva) < u64::from(r) + u64::from(l))
    }

    /// Bytes read from the dump (the image size minus the holes).
    pub fn present_bytes(&self) -> u64 {
        let missing: u64 = self.holes.iter().map(|&(_, l)| u64::from(l)).sum();
        (self.bytes.len() as u64).saturating_sub(missing)
    }
}

/// Carves one module; an image whose pages alias is refused with the budget event.
pub(crate) fn carve_checked(dump: &Dump, m: &LoadedModule) -> Result<CarvedImage, BudgetExceeded> {
    let mut notes = Vec::new();
    let size = clip_size(dump, m, &mut notes);
    let mut bytes = vec![0u8; size as usize];
    let mut holes: Vec<(u32, u32)> = Vec::new();
    let mut add_hole = |rva: u32, len: u32| match holes.last_mut() {
        Some((r, l)) if *r + *l == rva => *l += len,
        _ => holes.push((rva, len)),
    };
    if let Some(t) = &dump.triage {
        // Triage data blocks are byte ranges, not pages: copy what they cover, the rest is holes.
        let mut at = 0u64;
        for (off, chunk) in t.covered(dump.data(), m.base, u64::from(size)) {
            if off > at {
                add_hole(at as u32, (off - at) as u32);
            }
            bytes[off as usize..off as usize + chunk.len()].copy_from_slice(chunk);
            at = off + chunk.len() as u64;
        }
        if at < u64::from(size) {
            add_hole(at as u32, size - at as u32);
        }
    } else if m.base % u64::from(PAGE) != 0 {
        notes.push(format!(
            "DllBase {:#x} is not page aligned; nothing carved",
            m.base
        ));
        if size > 0 {
            add_hole(0, size);
        }
    } else {
        let mut frames = HashSet::new();
        let mut read = 0u64;
        let mut rva = 0u32;
        while rva < size {
            let n = PAGE.min(size - rva);
            let va = m.base.wrapping_add(u64::from(rva));
            match dump.read_in_page(va, &mut bytes[rva as usize..(rva + n) as usize]) {
                Ok(frame) => {
                    read += 1;
                    frames.extend(frame);
                    if budget::aliased(read, frames.len() as u64) {
                        return Err(dump.over_budget(
                            Limit::AliasedPages,
                            format!(
                                "carving {}@{:#x}: its pages map onto {} physical page(s) for {read} virtual pages read",
                                m.name,
                                m.base,
                                frames.len()
                            ),
                            read,
                            frames.len() as u64,
                        ));
                    }
                }
                Err(_) => add_hole(rva, n),
            }
            rva += n;
        }
    }
    let holes_expected = describe_holes(&bytes, &holes, &mut notes);
    Ok(CarvedImage {
        bytes,
        holes,
        notes,
        holes_expected,
    })
}

/// [`carve_checked`], with a refused image turned into an empty one whose note says why.
pub(crate) fn carve(dump: &Dump, m: &LoadedModule) -> CarvedImage {
    carve_checked(dump, m).unwrap_or_else(|e| CarvedImage {
        notes: vec![format!("not carved: {e}")],
        ..CarvedImage::default()
    })
}

/// SizeOfImage from the loader entry is authoritative (§6) unless it is absurd; then the PE
/// header's value is used if it is sane, else the cap.
fn clip_size(dump: &Dump, m: &LoadedModule, notes: &mut Vec<String>) -> u32 {
    if m.size <= MAX_IMAGE {
        return m.size;
    }
    let mut head = vec![0u8; PAGE as usize];
    let from_header = dump
        .read_virt(m.base, &mut head)
        .ok()
        .and_then(|_| Headers::parse(&head))
        .map(|h| h.size_of_image);
    let size = match from_header {
        Some(s) if s > 0 && s <= MAX_IMAGE => s,
        _ => MAX_IMAGE,
    };
    dump.over_budget(
        Limit::ImageSize,
        format!(
            "carving {}@{:#x}: SizeOfImage clipped to {size:#x}",
            m.name, m.base
        ),
        u64::from(MAX_IMAGE),
        u64::from(m.size),
    );
    notes.push(format!(
        "{}: SizeOfImage {:#x} is absurd (over {MAX_IMAGE:#x}); carving {size:#x} bytes",
        m.name, m.size
    ));
    size
}

/// Labels each hole with the sections it falls in, using the carved header when present.
/// Returns whether every hole is an expected one (a discardable section such as INIT).
fn describe_holes(bytes: &[u8], holes: &[(u32, u32)], notes: &mut Vec<String>) -> bool {
    let headers = Headers::parse(bytes);
    let mut expected = true;
    for &(rva, len) in holes {
        let end = rva + len;
        let label = match &headers {
            None if rva == 0 => "PE header missing".to_string(),
            None => "no PE header to name the section".to_string(),
            Some(h) => {
                // One note per section piece, so a discarded INIT next to a paged-out PAGE
                // section is still labelled as expected.
                let mut any = false;
                for s in &h.sections {
                    let (lo, hi) = (
                        s.rva.max(rva),
                        s.rva.saturating_add(s.vsize.max(1)).min(end),
                    );
                    if lo >= hi {
                        continue;
                    }
                    any = true;
                    let why = if s.characteristics & SCN_DISCARDABLE != 0 {
                        "discardable, freed after load (expected)"
                    } else {
                        expected = false;
                        "not in the dump"
                    };
                    notes.push(format!("rva {lo:#x}..{hi:#x} missing ({}: {why})", s.name));
                }
                if any {
                    continue;
                }
                "outside every section".to_string()
            }
        };
        expected = false;
        notes.push(format!("rva {rva:#x}..{end:#x} missing ({label})"));
    }
    expected
}

/// What happens to one module when the dump's images are carved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "plan", rename_all = "kebab-case")]
pub enum CarvePlan {
    /// Carved once, when its turn comes; `bytes` is at most what will be allocated.
    Carve {
        /// Bytes of the image (SizeOfImage, capped at the per-image limit).
        bytes: u32,
    },
    /// Same base and SizeOfImage as module `of` (an index into the module list): that image
    /// stands for both and is carved once.
    DuplicateOf {
        /// The module whose image this repeats.
        of: usize,
    },
    /// The range overlaps module `of`'s: a damaged or hostile list. Not carved.
    Overlaps {
        /// The module it overlaps.
        of: usize,
    },
    /// There is no image to carve.
    NoImage {
        /// Why (a triage dump, SizeOfImage 0).
        why: String,
    },
    /// Not carved: the dump's carving budget is spent.
    OverBudget {
        /// The budget reached.
        budget: BudgetExceeded,
    },
}

/// The images of a dump's modules, each carved at most once, with the exports of all of them.
///
/// Built by [`Dump::images`]: the plan (one [`CarvePlan`] per module) and the [`ExportMap`] are
/// made up front, the export map from each module's PE header and export directory only (a few
/// pages, not the image). The images are carved on demand by [`ModuleImages::carve`] or
/// [`ModuleImages::par_map`], so that no more than one image per thread is held at a time.
pub struct ModuleImages<'d> {
    dump: &'d Dump,
    modules: Vec<LoadedModule>,
    plan: Vec<CarvePlan>,
    exports: ExportMap,
}

impl<'d> ModuleImages<'d> {
    pub(crate) fn new(dump: &'d Dump, modules: &[LoadedModule]) -> ModuleImages<'d> {
        let mut plan = collisions(dump, modules);
        // Exports first: they cost a few page walks per module, and the carving budget below
        // is what remains.
        let mut exports = ExportMap::default();
        for (m, p) in modules.iter().zip(&plan) {
            if matches!(p, CarvePlan::Carve { .. }) {
                exports.add_from_dump(dump, m);
            }
        }
        let walks_left = dump.walks.remaining();
        let (limit, kind) = if dump.is_triage() {
            (MAX_CARVED_TOTAL, Limit::CarvedBytes)
        } else if budget::page_bytes(walks_left) < MAX_CARVED_TOTAL {
            (budget::page_bytes(walks_left), Limit::PageWalks)
        } else {
            (MAX_CARVED_TOTAL, Limit::CarvedBytes)
        };
        let mut planned = 0u64;
        let mut first_refused: Option<BudgetExceeded> = None;
        for (i, p) in plan.iter_mut().enumerate() {
            let CarvePlan::Carve { bytes } = *p else {
                continue;
            };
            // Pages are walked whole, so a partial last page costs a full one.
            let cost = u64::from(bytes).div_ceil(u64::from(PAGE)) * u64::from(PAGE);
            if planned + cost > limit {
                let m = &modules[i];
                let e = first_refused.get_or_insert_with(|| {
                    let (l, f) = match kind {
                        Limit::PageWalks => {
                            (limit / u64::from(PAGE), (planned + cost) / u64::from(PAGE))
                        }
                        _ => (limit, planned + cost),
                    };
                    dump.over_budget(
                        kind,
                        format!(
                            "carving {}@{:#x} and the modules after it that do not fit",
                            m.name, m.base
                        ),
                        l,
                        f,
                    )
                });
                *p = CarvePlan::OverBudget { budget: e.clone() };
                continue;
            }
            planned += cost;
        }
        ModuleImages {
            dump,
            modules: modules.to_vec(),
            plan,
            exports,
        }
    }

    /// The modules, in list order.
    pub fn modules(&self) -> &[LoadedModule] {
        &self.modules
    }

    /// One plan per module, in list order.
    pub fn plan(&self) -> &[CarvePlan] {
        &self.plan
    }

    /// The exports of every distinct module, by absolute address.
    pub fn exports(&self) -> &ExportMap {
        &self.exports
    }

    /// Carves module `i` when its plan is [`CarvePlan::Carve`]; `None` otherwise (the plan says
    /// why). `Some(Err)` when the image turned out to alias (see `budget`).
    pub fn carve(&self, i: usize) -> Option<Result<CarvedImage, BudgetExceeded>> {
        match self.plan.get(i)? {
            CarvePlan::Carve { .. } => Some(carve_checked(self.dump, &self.modules[i])),
            _ => None,
        }
    }

    /// Carves every module whose plan is [`CarvePlan::Carve`] once, in parallel (rayon), names
    /// its IAT slots against the export map, and hands both to `f`; the image is dropped when
    /// `f` returns. Results come back in module order, one per carved module: `(index, Ok(f's
    /// value))`, or `(index, Err(budget))` for an image refused as aliased.
    pub fn par_map<R, F>(&self, f: F) -> Vec<(usize, Result<R, BudgetExceeded>)>
    where
        R: Send,
        F: Fn(usize, &LoadedModule, &CarvedImage, &[RecoveredImport]) -> R + Sync,
    {
        let todo: Vec<usize> = (0..self.modules.len())
            .filter(|&i| matches!(self.plan[i], CarvePlan::Carve { .. }))
            .collect();
        todo.par_iter()
            .map(|&i| {
                let m = &self.modules[i];
                let r = carve_checked(self.dump, m).map(|image| {
                    let imports = self.exports.recover(m, &image);
                    f(i, m, &image, &imports)
                });
                (i, r)
            })
            .collect()
    }
}

/// The first pass of the plan: empty images, triage dumps, and modules that repeat or overlap an
/// earlier one. Modules are taken in list order, so the first of two colliding ones is kept.
fn collisions(dump: &Dump, modules: &[LoadedModule]) -> Vec<CarvePlan> {
    // Accepted ranges by base: (end, index).
    let mut taken: BTreeMap<u64, (u64, usize)> = BTreeMap::new();
    let mut plan = Vec::with_capacity(modules.len());
    let (mut repeats, mut overlaps) = (Vec::new(), Vec::new());
    for (i, m) in modules.iter().enumerate() {
        if dump.is_triage() {
            plan.push(CarvePlan::NoImage {
                why: "a triage dump holds only some data blocks of memory, not the driver images"
                    .into(),
            });
            continue;
        }
        if m.size == 0 {
            plan.push(CarvePlan::NoImage {
                why: "SizeOfImage is 0".into(),
            });
            continue;
        }
        let end = m.base.saturating_add(u64::from(m.size));
        let before = taken.range(..=m.base).next_back().map(|(&b, &v)| (b, v));
        let after = taken.range(m.base..end).next().map(|(&b, &v)| (b, v));
        let hit = match (before, after) {
            (Some((b, (e, j))), _) if e > m.base => Some((b, e, j)),
            (_, Some((b, (e, j)))) => Some((b, e, j)),
            _ => None,
        };
        match hit {
            Some((b, e, j)) if b == m.base && e == end => {
                repeats.push(i);
                plan.push(CarvePlan::DuplicateOf { of: j });
            }
            Some((_, _, j)) => {
                overlaps.push((i, j));
                plan.push(CarvePlan::Overlaps { of: j });
            }
            None => {
                taken.insert(m.base, (end, i));
                plan.push(CarvePlan::Carve {
                    bytes: m.size.min(MAX_IMAGE),
                });
            }
        }
    }
    if let Some(&first) = repeats.first() {
        dump.notice(
            super::NoticeKind::Budget,
            format!(
                "module list: {} entries repeat the base and SizeOfImage of an earlier entry (first: #{first} {}@{:#x}); each image is carved once",
                repeats.len(),
                modules[first].name,
                modules[first].base
            ),
        );
    }
    if let Some(&(i, j)) = overlaps.first() {
        dump.notice(
            super::NoticeKind::Malformed,
            format!(
                "module list: {} entries overlap the image of an earlier entry (first: #{i} {}@{:#x} overlaps #{j} {}@{:#x}); they are not carved",
                overlaps.len(),
                modules[i].name,
                modules[i].base,
                modules[j].name,
                modules[j].base
            ),
        );
    }
    plan
}
