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
//! Bounded work: every limit is in [`budget`](self::budget) with its reason. A limit reached is a
//! [`BudgetExceeded`] (in [`Dump::budget_events`] and as a notice), never a hang.
//!
//! The reader renders no text beyond one-line descriptions of its values: every fact is a field
//! of [`DumpSummary`], [`Coverage`], [`LoadedModule`], [`PoolTables`] or [`DumpReport`].

mod budget;
mod bytes;
mod carve;
mod facts;
mod header;
mod imports;
mod kdbg;
mod modules;
mod paging;
mod pe;
mod physical;
mod pooltrack;
mod report;
mod triage;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use memmap2::Mmap;
use serde::Serialize;

pub use budget::{BudgetExceeded, Limit};
pub use carve::{CarvePlan, CarvedImage, ModuleImages};
pub use facts::{Acquisition, Coverage, DumpTime, UpTime};
pub use header::{Arch, DumpSummary};
pub use imports::{recover_imports, ExportMap, ImportSource, RecoveredImport};
pub use kdbg::{decode_words, Kdbg};
pub use modules::LoadedModule;
pub use paging::Miss;
pub use pooltrack::{
    AnomalyKind, EntryAnomaly, PoolKind, PoolTableError, PoolTables, SizeSource, TableInfo,
};
pub use report::{render_text, report, DumpReport, HeaderReport, PoolRow};

use budget::Walks;
use bytes::{u32_at, u64_at};
use paging::{Paging, PhysRead};
use physical::{PhysMap, PAGE};
use triage::Triage;

/// A failure to read a dump, or a part of one. Every variant carries the dump's path and says
/// what was being read, where, and why it failed. Cloneable, so that the module list and the
/// pool tables can be read once and their outcome handed to every caller.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DumpError {
    /// The file could not be opened or mapped.
    #[error("{path}: cannot open dump: {source}")]
    Io {
        /// The dump file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The header or a type-specific header is not a dump this reader understands.
    #[error("{path}: not a readable crash dump: {why}")]
    Format {
        /// The dump file.
        path: PathBuf,
        /// What was wrong, with the offset.
        why: String,
    },
    /// A kernel structure could not be read from the dump's memory.
    #[error("{path}: cannot read {what} at {va:#x}: {why}")]
    Unreadable {
        /// The dump file.
        path: PathBuf,
        /// Which structure.
        what: String,
        /// Its virtual address.
        va: u64,
        /// Why (the page-walk miss, or the sanity check that failed).
        why: String,
    },
    /// The dump type does not carry what was asked for (the module list of a header-only file …).
    #[error("{path}: {what} is not available: {why}")]
    Unavailable {
        /// The dump file.
        path: PathBuf,
        /// What was asked for.
        what: String,
        /// Why this dump cannot provide it.
        why: String,
    },
    /// The pool tracker table could not be found, sized or read.
    #[error("{path}: the pool tracker table cannot be read: {source}")]
    PoolTable {
        /// The dump file.
        path: PathBuf,
        /// Why.
        #[source]
        source: PoolTableError,
    },
    /// A budget stopped the operation (the notice names the limit and the figure).
    #[error(transparent)]
    Budget(#[from] BudgetExceeded),
}

/// What kind of anomaly a notice reports, so that outputs and exit codes can tell missing
/// evidence from damage or from a refused hostile structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoticeKind {
    /// Memory or data the headers describe is not in the file (truncated, header-only, holes).
    Missing,
    /// A structure is damaged or inconsistent.
    Malformed,
    /// A format or mode this reader does not support.
    Unsupported,
    /// A result is partial (tables not found, counts the reader cannot include).
    Partial,
    /// A budget was reached or a hostile structure refused (aliasing, overlapping modules).
    Budget,
}

/// One anomaly met while reading a dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DumpNotice {
    /// What kind of anomaly.
    pub kind: NoticeKind,
    /// What, where and why, in words.
    pub message: String,
}

/// The bytes of a dump: a read-only mapping of a file, or a buffer.
enum Source {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Source {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Source::Mapped(m) => m,
            Source::Owned(v) => v,
        }
    }
}

/// An open crash dump. Owns the file mapping (or buffer); cheap to query repeatedly.
pub struct Dump {
    path: PathBuf,
    data: Source,
    summary: DumpSummary,
    coverage: Coverage,
    phys: PhysMap,
    paging: Paging,
    triage: Option<Triage>,
    kdbg: Option<Kdbg>,
    notices: Mutex<Vec<DumpNotice>>,
    budget_events: Mutex<Vec<BudgetExceeded>>,
    walks: Walks,
    modules: OnceLock<Result<Vec<LoadedModule>, DumpError>>,
    pool: OnceLock<Result<PoolTables, DumpError>>,
}

/// The one unsafe call in the crate.
#[allow(unsafe_code)]
fn map_file(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: the mapping is read-only and private to this process. Another process truncating
    // or rewriting the dump while it is open could change or invalidate the mapped bytes; crash
    // dumps are written once and then only read, which is the same assumption every dump tool
    // makes. All reads go through bounds-checked slices of the mapping.
    unsafe { Mmap::map(file) }
}

impl Dump {
    /// Opens a dump: maps it, parses the header and the physical-memory map, and locates KDBG.
    ///
    /// # Errors
    /// `Io` when the file cannot be opened or mapped; `Format` when the signature, machine type
    /// or type-specific header is not understood. A file cut short after its header opens, with
    /// [`Coverage::truncated`] set and a notice that physical memory is missing.
    pub fn open(path: &Path) -> Result<Dump, DumpError> {
        let io = |source| DumpError::Io {
            path: path.to_path_buf(),
            source: Arc::new(source),
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < 8 {
            return Err(DumpError::Format {
                path: path.to_path_buf(),
                why: format!("file is {len} bytes, shorter than a dump signature"),
            });
        }
        let map = map_file(&file).map_err(io)?;
        Dump::parse(path.to_path_buf(), Source::Mapped(map))
    }

    /// Reads a dump held in memory, exactly as [`Dump::open`] reads a file; `name` stands for
    /// the path in every message.
    ///
    /// # Errors
    /// `Format` as for [`Dump::open`].
    pub fn from_bytes(name: impl Into<PathBuf>, bytes: Vec<u8>) -> Result<Dump, DumpError> {
        Dump::parse(name.into(), Source::Owned(bytes))
    }

    fn parse(path: PathBuf, data: Source) -> Result<Dump, DumpError> {
        let format = |why: String| DumpError::Format {
            path: path.clone(),
            why,
        };
        let header = header::parse(&data).map_err(format)?;
        let summary = header.summary;
        let mut notes: Vec<(NoticeKind, String)> = Vec::new();
        let mut texts = Vec::new();
        let len = data.len() as u64;
        let hs = summary.header_size;
        let mut cut = false;
        if len < hs {
            cut = true;
            notes.push((
                NoticeKind::Missing,
                format!("file is {len:#x} bytes, shorter than its {hs:#x}-byte header"),
            ));
        }
        let mut triage = None;
        // (map, pages described, descriptor runs past the file)
        let built = match summary.dump_type {
            1 => match &header.runs {
                Some(runs) => Some(physical::from_runs(runs, hs, len, &mut texts)),
                None => {
                    return Err(format(
                        "DumpType 1 but the run descriptor holds the PAGE fill".into(),
                    ))
                }
            },
            2 if !summary.is_64bit_header => {
                Some(physical::from_summary32(&data, &mut texts).map_err(format)?)
            }
            // The x64 SUMMARY_DUMP64 layout is unverified (crash-dumps.md §1.4.2); read it as
            // the same fields with the bitmap at 0x2028 and say so.
            2 => {
                notes.push((
                    NoticeKind::Unsupported,
                    "64-bit summary dump: the SUMMARY_DUMP64 layout has not been verified on a real file; read as the 32-bit fields with the bitmap at 0x2028".into(),
                ));
                Some(summary64(&data, &mut texts).map_err(format)?)
            }
            // A damaged or 32-bit triage header still leaves the main header readable.
            4 => {
                match Triage::parse(&data, &summary, &mut texts) {
                    Ok(t) => triage = Some(t),
                    Err(why) => notes.push((
                        NoticeKind::Malformed,
                        format!("triage dump without a usable TRIAGE_DUMP header: {why}"),
                    )),
                }
                None
            }
            5 | 6 => {
                Some(physical::from_bitmap_dump(&data, hs as usize, &mut texts).map_err(format)?)
            }
            8..=0xA if summary.is_64bit_header => {
                Some(physical::from_rdmp(&data, summary.dump_type, &mut texts).map_err(format)?)
            }
            3 => None,
            other => {
                return Err(format(format!(
                    "DumpType {other:#x} at {:#x} has no known memory layout",
                    if summary.is_64bit_header {
                        0xF98
                    } else {
                        0xF88
                    }
                )))
            }
        };
        // The physical-map builders only report what the file lacks or contradicts.
        notes.extend(texts.drain(..).map(|t| (NoticeKind::Missing, t)));
        let (phys, described) = match built {
            Some(b) => {
                cut |= b.cut;
                (b.map, Some(b.described))
            }
            None => (PhysMap::None, None),
        };
        if let Some(t) = &triage {
            cut |= len < t.size_of_dump || t.blocks_past_end > 0;
        }
        if triage.is_none() && phys.page_count() == 0 {
            notes.push((
                NoticeKind::Missing,
                "the file holds no physical memory: only header values are available".into(),
            ));
        }
        if summary.is_64bit_header
            && summary.ps_loaded_module_list != 0
            && !paging::canonical48(summary.ps_loaded_module_list)
        {
            notes.push((NoticeKind::Unsupported, format!(
                "PsLoadedModuleList {:#x} is not 48-bit canonical: five-level paging (LA57) is not supported",
                summary.ps_loaded_module_list
            )));
        }
        let required = summary.required_dump_space;
        let coverage = Coverage {
            file_len: len,
            required_dump_space: (required != 0 && !header::unset(required)).then_some(required),
            pages_described: described,
            pages_held: phys.page_count(),
            triage_size: triage.as_ref().map(|t| t.size_of_dump),
            truncated: cut,
        };
        let paging = Paging::new(summary.arch, summary.directory_table_base);
        let walks = Walks::new(budget::walk_limit(phys.page_count()));
        let mut dump = Dump {
            path,
            data,
            summary,
            coverage,
            phys,
            paging,
            triage,
            kdbg: None,
            notices: Mutex::new(
                notes
                    .into_iter()
                    .map(|(kind, message)| DumpNotice { kind, message })
                    .collect(),
            ),
            budget_events: Mutex::new(Vec::new()),
            walks,
            modules: OnceLock::new(),
            pool: OnceLock::new(),
        };
        dump.kdbg = kdbg::locate(&dump);
        Ok(dump)
    }

    /// Header values.
    pub fn summary(&self) -> &DumpSummary {
        &self.summary
    }

    /// How much of the memory the headers describe the file holds.
    pub fn coverage(&self) -> &Coverage {
        &self.coverage
    }

    /// The path the dump was opened from (or the name given to [`Dump::from_bytes`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The KDDEBUGGER_DATA64 block, when it was found and decoded.
    pub fn kdbg(&self) -> Option<&Kdbg> {
        self.kdbg.as_ref()
    }

    /// True for triage (small memory) dumps.
    pub fn is_triage(&self) -> bool {
        self.triage.is_some()
    }

    /// Number of physical pages the file holds.
    pub fn physical_pages(&self) -> u64 {
        self.phys.page_count()
    }

    /// Anomalies met so far (holes, clipped descriptors, guards tripped), in order, as text.
    pub fn notices(&self) -> Vec<String> {
        self.notice_records()
            .into_iter()
            .map(|n| n.message)
            .collect()
    }

    /// Anomalies met so far, with their kind.
    pub fn notice_records(&self) -> Vec<DumpNotice> {
        self.notices.lock().map(|n| n.clone()).unwrap_or_default()
    }

    /// Every budget reached so far, in order (each is also a [`NoticeKind::Budget`] notice).
    pub fn budget_events(&self) -> Vec<BudgetExceeded> {
        self.budget_events
            .lock()
            .map(|n| n.clone())
            .unwrap_or_default()
    }

    /// Page-table walks done so far, and the dump's limit.
    pub fn page_walks(&self) -> (u64, u64) {
        (self.walks.used(), self.walks.limit())
    }

    pub(crate) fn notice(&self, kind: NoticeKind, message: String) {
        if let Ok(mut n) = self.notices.lock() {
            if !n.iter().any(|o| o.message == message) {
                n.push(DumpNotice { kind, message });
            }
        }
    }

    /// Records a budget reached (once per limit and activity) and returns it.
    pub(crate) fn over_budget(
        &self,
        kind: Limit,
        what: impl Into<String>,
        limit: u64,
        figure: u64,
    ) -> BudgetExceeded {
        let e = BudgetExceeded {
            input: self.path.display().to_string(),
            kind,
            what: what.into(),
            limit,
            figure,
        };
        if let Ok(mut list) = self.budget_events.lock() {
            if !list.iter().any(|o| o.kind == e.kind && o.what == e.what) {
                list.push(e.clone());
            }
        }
        self.notice(NoticeKind::Budget, e.to_string());
        e
    }

    pub(crate) fn data(&self) -> &[u8] {
        &self.data
    }

    pub(crate) fn pointer_size(&self) -> usize {
        self.summary.arch.pointer_size()
    }

    /// The 4 KB page at physical address `pa` (page aligned), if the file holds it.
    pub(crate) fn phys_page(&self, pa: u64) -> Option<&[u8]> {
        let off = self.phys.offset(&self.data, pa / PAGE)? as usize;
        self.data.get(off..off + PAGE as usize)
    }

    /// Translates a virtual address (not meaningful for triage dumps). Each call is one
    /// page-table walk of the dump's budget.
    pub fn translate(&self, va: u64) -> Result<u64, Miss> {
        if self.phys.page_count() == 0 {
            return Err(Miss::NoMemory);
        }
        if let Err(first) = self.walks.take() {
            if first {
                self.over_budget(
                    Limit::PageWalks,
                    "reading virtual memory",
                    self.walks.limit(),
                    self.walks.limit().saturating_add(1),
                );
            }
            return Err(Miss::WalkBudget);
        }
        self.paging.translate(self, va)
    }

    /// Reads virtual memory strictly: the whole buffer or the first miss.
    pub fn read_virt(&self, va: u64, buf: &mut [u8]) -> Result<(), Miss> {
        let mut done = 0usize;
        while done < buf.len() {
            let cur = va.wrapping_add(done as u64);
            let in_page = (PAGE - (cur & (PAGE - 1))) as usize;
            let n = in_page.min(buf.len() - done);
            self.read_in_page(cur, &mut buf[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    /// Reads bytes that lie within one virtual page; returns the page frame they came from
    /// (`None` for triage data blocks, which have no physical address).
    pub(crate) fn read_in_page(&self, va: u64, buf: &mut [u8]) -> Result<Option<u64>, Miss> {
        if let Some(t) = &self.triage {
            return t.read(&self.data, va, buf).map(|_| None);
        }
        let pa = self.translate(va)?;
        let page = self
            .phys_page(pa & !(PAGE - 1))
            .ok_or(Miss::NotInDump { pa })?;
        let o = (pa & (PAGE - 1)) as usize;
        let n = buf.len().min(page.len() - o);
        buf[..n].copy_from_slice(&page[o..o + n]);
        Ok(Some(pa / PAGE))
    }

    /// Reads one pointer-sized value.
    pub(crate) fn read_ptr(&self, va: u64) -> Result<u64, Miss> {
        let mut b = [0u8; 8];
        let n = self.pointer_size();
        self.read_virt(va, &mut b[..n])?;
        Ok(u64::from_le_bytes(b))
    }

    /// A pointer is worth following only if it is a kernel address of this architecture and
    /// suitably aligned; everything read from memory is checked with this first.
    pub(crate) fn plausible_kernel_ptr(&self, p: u64, align: u64) -> bool {
        if p % align != 0 {
            return false;
        }
        match self.summary.arch {
            Arch::X86 | Arch::X86Pae => (0x8000_0000..=0xFFFF_FFFF).contains(&p),
            Arch::X64 | Arch::Arm64 => p >= 0xFFFF_8000_0000_0000,
        }
    }

    pub(crate) fn unreadable(
        &self,
        what: impl Into<String>,
        va: u64,
        why: impl ToString,
    ) -> DumpError {
        DumpError::Unreadable {
            path: self.path.clone(),
            what: what.into(),
            va,
            why: why.to_string(),
        }
    }

    pub(crate) fn unavailable(&self, what: impl Into<String>, why: impl Into<String>) -> DumpError {
        DumpError::Unavailable {
            path: self.path.clone(),
            what: what.into(),
            why: why.into(),
        }
    }
}

impl PhysRead for Dump {
    fn phys_u64(&self, pa: u64) -> Option<u64> {
        let page = self.phys_page(pa & !(PAGE - 1))?;
        u64_at(page, (pa & (PAGE - 1)) as usize)
    }
    fn phys_u32(&self, pa: u64) -> Option<u32> {
        let page = self.phys_page(pa & !(PAGE - 1))?;
        u32_at(page, (pa & (PAGE - 1)) as usize)
    }
}

/// SUMMARY_DUMP64 at 0x2000: the 32-bit fields of §1.4.2 with the bitmap at 0x2028.
fn summary64(data: &[u8], notes: &mut Vec<String>) -> Result<physical::Built, String> {
    let at = 0x2000;
    let sig = data
        .get(at..at + 8)
        .ok_or("file ends before the summary header at 0x2000")?;
    if sig != b"SDMPDUMP" {
        return Err(format!(
            "summary header at 0x2000 has signature {sig:02x?}, expected SDMP + DUMP"
        ));
    }
    let header_size = u32_at(data, at + 0xC).ok_or("summary header cut short")?;
    let bits = u32_at(data, at + 0x10).ok_or("summary header cut short")?;
    Ok(physical::from_bitmap(
        data,
        at + 0x28,
        u64::from(bits),
        u64::from(header_size),
        notes,
    ))
}

impl Dump {
    /// The loaded modules: PsLoadedModuleList for memory dumps, the driver list for triage.
    /// Walked once; later calls return the same list.
    ///
    /// # Errors
    /// `Unavailable` without physical memory; `Unreadable` when the list head cannot be read.
    /// A walk that stops early (cycle, bad link, count budget) returns what it read plus a notice.
    pub fn modules(&self) -> Result<Vec<LoadedModule>, DumpError> {
        self.modules.get_or_init(|| modules::list(self)).clone()
    }

    /// Carves a module's image in loaded layout; missing pages are zero-filled holes. Each call
    /// carves again: a pipeline that audits every module uses [`Dump::images`], which carves each
    /// one once within the dump's budgets.
    pub fn carve(&self, m: &LoadedModule) -> CarvedImage {
        carve::carve(self, m)
    }

    /// Plans the carving of `modules` (each distinct image once, within the dump's budgets) and
    /// builds the export map from their export directories; see [`ModuleImages`].
    pub fn images<'d>(&'d self, modules: &[LoadedModule]) -> ModuleImages<'d> {
        ModuleImages::new(self, modules)
    }

    /// Carves every module, in parallel (rayon), keeping the module order.
    pub fn carve_all(&self, modules: &[LoadedModule]) -> Vec<(LoadedModule, CarvedImage)> {
        use rayon::prelude::*;
        modules
            .par_iter()
            .map(|m| (m.clone(), self.carve(m)))
            .collect()
    }

    /// The pool tracker tables: per-tag totals over the global and per-processor tables, how the
    /// table was found and sized, and every inconsistent entry. Read once.
    ///
    /// # Errors
    /// `PoolTable` saying why the table could not be found, sized or read.
    pub fn pool_tables(&self) -> Result<PoolTables, DumpError> {
        self.pool
            .get_or_init(|| {
                pooltrack::read(self).map_err(|source| DumpError::PoolTable {
                    path: self.path.clone(),
                    source,
                })
            })
            .clone()
    }

    /// Per-tag pool usage from the pool tracker tables ([`Dump::pool_tables`]'s totals).
    ///
    /// # Errors
    /// As [`Dump::pool_tables`].
    pub fn pool_usage(&self) -> Result<crate::pool::PoolSnapshot, DumpError> {
        self.pool_tables().map(|t| t.snapshot)
    }
}
