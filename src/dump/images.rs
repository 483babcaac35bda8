//! The plan that carves every module of a dump once within its budgets, and the export map of
//! them all (crash-dumps.md §6).
//!
//! Invariants of [`ModuleImages`]: each distinct image (base, SizeOfImage) is carved at most
//! once; a module repeating another's base and size, or overlapping another's range, is listed
//! with the module it collides with and not carved; the bytes planned for carving never exceed
//! the dump's carving budget nor the page walks it has left, so the plan, not the thread
//! schedule, decides which modules are carved; an image whose pages alias a few physical pages
//! is refused, not handed on.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::Serialize;

use super::budget::{self, BudgetExceeded, Limit, MAX_CARVED_TOTAL, MAX_IMAGE};
use super::carve::{carve_checked, CarvedImage};
use super::error::NoticeKind;
use super::imports::{ExportMap, RecoveredImport};
use super::memory::Memory;
use super::modules::LoadedModule;

const PAGE: u32 = 0x1000;

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
/// Built by `Dump::images`: the plan (one [`CarvePlan`] per module) and the [`ExportMap`] are
/// made up front, the export map from each module's PE header and export directory only (a few
/// pages, not the image). The images are carved on demand by [`ModuleImages::carve`] or
/// [`ModuleImages::par_map`], so that no more than one image per thread is held at a time.
pub struct ModuleImages<'d> {
    dump: &'d Memory,
    modules: Vec<LoadedModule>,
    plan: Vec<CarvePlan>,
    exports: ExportMap,
}

impl<'d> ModuleImages<'d> {
    pub(crate) fn new(dump: &'d Memory, modules: &[LoadedModule]) -> ModuleImages<'d> {
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
fn collisions(dump: &Memory, modules: &[LoadedModule]) -> Vec<CarvePlan> {
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
            NoticeKind::Budget,
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
            NoticeKind::Malformed,
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
