//! Windows kernel crash-dump reader: headers, physical memory, page walks, KDBG, the loaded
//! module list, image carving, import recovery and the pool tag table.
//!
//! This reader is hand-written on purpose. The Rust crate kdmp-parser covers only 64-bit x64
//! full/bitmap dumps — no 32-bit, PAE, triage or ARM64 paging — which is why this is
//! hand-written. Layouts come from `crash-dumps.md` (the team reference); each file cites the
//! section it implements.
//!
//! Shape: [`Dump::open`] maps the file (memmap2, so only the pages actually read are touched);
//! [`Dump::from_bytes`] reads a dump held in memory (fuzzing, archives). Either parses the
//! header and builds the PFN → file-offset map, which is all small metadata. Everything else is
//! read on demand through [`Dump::read_virt`]; the module list and the pool tables are read once
//! and kept. Missing memory is normal in crash dumps (discarded INIT sections, paged-out code,
//! pages the writer skipped): reads report a [`Miss`], carving turns misses into holes, and
//! anomalies are collected as typed [`DumpNotice`]s rather than failing the whole dump.
//!
//! Bounded work: every limit is in `budget.rs` with its reason. A limit reached is a
//! [`BudgetExceeded`] (in [`Dump::budget_events`] and as a notice), never a hang.
//!
//! The reader renders no text beyond one-line descriptions of its values: every fact is a field
//! of [`DumpSummary`], [`Coverage`], [`LoadedModule`], [`PoolTables`] or [`DumpReport`].
//!
//! Layout (one way, lowest first): `bytes`, `hex`, `budget` → `facts`, `header`, `paging`,
//! `physical`, `pe`, `error`, `triage` → `memory` (the bytes, header, physical map, walker,
//! notices) → `kdbg`, `modules`, `carve` → `imports` → `images`, `pooltrack` → `report` (the
//! report's types and text) → this facade, which ties them into [`Dump`]. No part uses the
//! facade.

mod budget;
mod bytes;
mod carve;
mod error;
mod facts;
mod header;
mod hex;
mod images;
mod imports;
mod kdbg;
mod memory;
mod modules;
mod paging;
mod pe;
mod physical;
mod pooltrack;
mod report;
mod triage;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use budget::{BudgetExceeded, Limit};
pub use carve::CarvedImage;
pub use error::{DumpError, DumpNotice, NoticeKind, PoolTableError};
pub use facts::{Acquisition, Coverage, DumpTime, UpTime};
pub use header::{Arch, DumpSummary};
pub use images::{CarvePlan, ModuleImages};
pub use imports::{recover_imports, ExportMap, ImportSource, RecoveredImport};
pub use kdbg::{decode_words, Kdbg};
pub use modules::LoadedModule;
pub use paging::Miss;
pub use pooltrack::{AnomalyKind, EntryAnomaly, PoolKind, PoolTables, SizeSource, TableInfo};
pub use report::{render_text, DumpReport, HeaderReport, PoolRow};

use memory::Memory;

/// An open crash dump. Owns the file mapping (or buffer); cheap to query repeatedly.
pub struct Dump {
    mem: Memory,
    kdbg: Option<Kdbg>,
    modules: OnceLock<Result<Vec<LoadedModule>, DumpError>>,
    pool: OnceLock<Result<PoolTables, PoolTableError>>,
}

impl Dump {
    /// Opens a dump: maps it, parses the header and the physical-memory map, and locates KDBG.
    ///
    /// # Errors
    /// `Io` when the file cannot be opened or mapped; `Format` when the signature, machine type
    /// or type-specific header is not understood. A file cut short after its header opens, with
    /// [`Coverage::truncated`] set and a notice that physical memory is missing.
    pub fn open(path: &Path) -> Result<Dump, DumpError> {
        Ok(Dump::over(Memory::open(path)?))
    }

    /// Reads a dump held in memory, exactly as [`Dump::open`] reads a file; `name` stands for
    /// the path in every message.
    ///
    /// # Errors
    /// `Format` as for [`Dump::open`].
    pub fn from_bytes(name: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Dump, DumpError> {
        Ok(Dump::over(Memory::from_bytes(name.into(), bytes)?))
    }

    fn over(mem: Memory) -> Dump {
        let kdbg = kdbg::locate(&mem);
        Dump {
            mem,
            kdbg,
            modules: OnceLock::new(),
            pool: OnceLock::new(),
        }
    }

    /// Header values.
    pub fn summary(&self) -> &DumpSummary {
        self.mem.summary()
    }

    /// How much of the memory the headers describe the file holds.
    pub fn coverage(&self) -> &Coverage {
        self.mem.coverage()
    }

    /// The path the dump was opened from (or the name given to [`Dump::from_bytes`]).
    pub fn path(&self) -> &Path {
        self.mem.path()
    }

    /// The KDDEBUGGER_DATA64 block, when it was found and decoded.
    pub fn kdbg(&self) -> Option<&Kdbg> {
        self.kdbg.as_ref()
    }

    /// True for triage (small memory) dumps.
    pub fn is_triage(&self) -> bool {
        self.mem.is_triage()
    }

    /// Number of physical pages the file holds.
    pub fn physical_pages(&self) -> u64 {
        self.mem.physical_pages()
    }

    /// Anomalies met so far (holes, clipped descriptors, guards tripped), in order, as text.
    pub fn notices(&self) -> Vec<String> {
        self.mem.notices()
    }

    /// Anomalies met so far, with their kind.
    pub fn notice_records(&self) -> Vec<DumpNotice> {
        self.mem.notice_records()
    }

    /// Every budget reached so far, in order (each is also a [`NoticeKind::Budget`] notice).
    pub fn budget_events(&self) -> Vec<BudgetExceeded> {
        self.mem.budget_events()
    }

    /// Page-table walks done so far, and the dump's limit.
    pub fn page_walks(&self) -> (u64, u64) {
        self.mem.page_walks()
    }

    /// Translates a virtual address (not meaningful for triage dumps). Each call is one
    /// page-table walk of the dump's budget.
    pub fn translate(&self, va: u64) -> Result<u64, Miss> {
        self.mem.translate(va)
    }

    /// Reads virtual memory strictly: the whole buffer or the first miss.
    pub fn read_virt(&self, va: u64, buf: &mut [u8]) -> Result<(), Miss> {
        self.mem.read_virt(va, buf)
    }

    /// The loaded modules: PsLoadedModuleList for memory dumps, the driver list for triage.
    /// Walked once; later calls return the same list.
    ///
    /// # Errors
    /// `Unavailable` without physical memory; `Unreadable` when the list head cannot be read.
    /// A walk that stops early (cycle, bad link, count budget) returns what it read plus a notice.
    pub fn modules(&self) -> Result<Vec<LoadedModule>, DumpError> {
        self.modules
            .get_or_init(|| {
                modules::list(
                    &self.mem,
                    self.kdbg.as_ref().map(|k| k.ps_loaded_module_list),
                )
            })
            .clone()
    }

    /// Carves a module's image in loaded layout; missing pages are zero-filled holes. Each call
    /// carves again: a pipeline that audits every module uses [`Dump::images`], which carves each
    /// one once within the dump's budgets.
    pub fn carve(&self, m: &LoadedModule) -> CarvedImage {
        carve::carve(&self.mem, m)
    }

    /// Plans the carving of `modules` (each distinct image once, within the dump's budgets) and
    /// builds the export map from their export directories; see [`ModuleImages`].
    pub fn images<'d>(&'d self, modules: &[LoadedModule]) -> ModuleImages<'d> {
        ModuleImages::new(&self.mem, modules)
    }

    /// Carves every module, in parallel (rayon), keeping the module order.
    pub fn carve_all(&self, modules: &[LoadedModule]) -> Vec<(LoadedModule, CarvedImage)> {
        use rayon::prelude::*;
        modules
            .par_iter()
            .map(|m| (m.clone(), self.carve(m)))
            .collect()
    }

    fn pool_read(&self) -> &Result<PoolTables, PoolTableError> {
        self.pool.get_or_init(|| {
            let modules = self.modules().ok();
            pooltrack::read(&self.mem, self.kdbg.as_ref(), modules.as_deref())
        })
    }

    /// The pool tracker tables: per-tag totals over the global and per-processor tables, how the
    /// table was found and sized, and every inconsistent entry. Read once.
    ///
    /// # Errors
    /// `Unavailable` when this kind of dump cannot hold the table (triage, header only);
    /// `PoolTable` saying why the table could not be found, sized or read.
    pub fn pool_tables(&self) -> Result<PoolTables, DumpError> {
        self.pool_read().clone().map_err(|source| match source {
            PoolTableError::Triage | PoolTableError::NoMemory => self
                .mem
                .unavailable("the pool tracker table", source.to_string()),
            source => DumpError::PoolTable {
                path: self.path().to_path_buf(),
                source,
            },
        })
    }

    /// Per-tag pool usage from the pool tracker tables ([`Dump::pool_tables`]'s totals).
    ///
    /// # Errors
    /// As [`Dump::pool_tables`].
    pub fn pool_usage(&self) -> Result<crate::pool::PoolSnapshot, DumpError> {
        self.pool_tables().map(|t| t.snapshot)
    }
}

/// Builds the report of `drvaudit dump`; never fails (what cannot be read is explained in the
/// fields).
pub fn report(dump: &Dump) -> DumpReport {
    let k = dump.kdbg();
    let (modules, modules_error) = match dump.modules() {
        Ok(m) => (m, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let (tables, pool_error) = match dump.pool_read() {
        Ok(t) => (Some(t.clone()), None),
        Err(e) => (None, Some(e.clone())),
    };
    let pool_source = match (&tables, dump.pool_tables()) {
        (Some(t), _) => t.snapshot.source.clone(),
        (None, Err(e)) => e.to_string(),
        (None, Ok(t)) => t.snapshot.source,
    };
    report::build(report::Parts {
        path: dump.path().display().to_string(),
        summary: dump.summary().clone(),
        directory_table_base_masked: dump.mem.paging.root(),
        kdbg: k,
        physical_pages: dump.physical_pages(),
        coverage: dump.coverage().clone(),
        modules,
        modules_error,
        pool_tables: tables,
        pool_source,
        pool_error,
        budget: dump.budget_events(),
        page_walks: dump.page_walks(),
        notices: dump.notice_records(),
    })
}
