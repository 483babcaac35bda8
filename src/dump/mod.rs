//! Windows kernel crash-dump reader: headers, physical memory, page walks, KDBG, the loaded
//! module list, image carving, import recovery and the pool tag table.
//!
//! This reader is hand-written on purpose. The Rust crate kdmp-parser covers only 64-bit x64
//! full/bitmap dumps — no 32-bit, PAE, triage or ARM64 paging — which is why this is
//! hand-written. Layouts come from `crash-dumps.md` (the team reference); each file cites the
//! section it implements.
//!
//! Shape: [`Dump::open`] maps the file (memmap2, so only the pages actually read are touched),
//! parses the header and builds the PFN → file-offset map, which is all small metadata.
//! Everything else is read on demand through [`Dump::read_virt`]. Missing memory is normal in
//! crash dumps (discarded INIT sections, paged-out code, pages the writer skipped): reads report
//! a [`Miss`], carving turns misses into holes, and anomalies are collected as notices rather
//! than failing the whole dump.

mod bytes;
mod carve;
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
use std::sync::Mutex;

use memmap2::Mmap;

pub use carve::CarvedImage;
pub use header::{Arch, DumpSummary};
pub use imports::{recover_imports, ExportMap, ImportSource, RecoveredImport};
pub use kdbg::{decode_words, Kdbg};
pub use modules::LoadedModule;
pub use paging::Miss;
pub use report::{render_text, report, DumpReport, HeaderReport, PoolRow};

use bytes::{u32_at, u64_at};
use paging::{Paging, PhysRead};
use physical::{PhysMap, PAGE};
use triage::Triage;

/// A failure to read a dump, or a part of one. Every variant carries the dump's path and says
/// what was being read, where, and why it failed.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// The file could not be opened or mapped.
    #[error("{path}: cannot open dump: {source}")]
    Io {
        /// The dump file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
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
    /// The dump type does not carry what was asked for (pool tables in a triage dump …).
    #[error("{path}: {what} is not available: {why}")]
    Unavailable {
        /// The dump file.
        path: PathBuf,
        /// What was asked for.
        what: String,
        /// Why this dump cannot provide it.
        why: String,
    },
}

/// An open crash dump. Owns the file mapping; cheap to query repeatedly.
pub struct Dump {
    path: PathBuf,
    map: Mmap,
    summary: DumpSummary,
    phys: PhysMap,
    paging: Paging,
    triage: Option<Triage>,
    kdbg: Option<Kdbg>,
    notices: Mutex<Vec<String>>,
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
    /// a notice that physical memory is missing.
    pub fn open(path: &Path) -> Result<Dump, DumpError> {
        let io = |source| DumpError::Io {
            path: path.to_path_buf(),
            source,
        };
        let format = |why: String| DumpError::Format {
            path: path.to_path_buf(),
            why,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < 8 {
            return Err(format(format!(
                "file is {len} bytes, shorter than a dump signature"
            )));
        }
        let map = map_file(&file).map_err(io)?;
        let header = header::parse(&map).map_err(format)?;
        let summary = header.summary;
        let mut notes = Vec::new();
        let data: &[u8] = &map;
        let hs = summary.header_size;
        if (data.len() as u64) < hs {
            notes.push(format!(
                "file is {:#x} bytes, shorter than its {hs:#x}-byte header",
                data.len()
            ));
        }
        let mut triage = None;
        let phys = match summary.dump_type {
            1 => match &header.runs {
                Some(runs) => physical::from_runs(runs, hs, len, &mut notes),
                None => {
                    return Err(format(
                        "DumpType 1 but the run descriptor holds the PAGE fill".into(),
                    ))
                }
            },
            2 if !summary.is_64bit_header => {
                physical::from_summary32(data, &mut notes).map_err(format)?
            }
            // The x64 SUMMARY_DUMP64 layout is unverified (§1.4.2); read it as the same fields
            // with the bitmap at 0x2028 and say so.
            2 => {
                notes.push(
                    "64-bit summary dump: SUMMARY_DUMP64 layout is unverified (§1.4.2)".into(),
                );
                summary64(data, &mut notes).map_err(format)?
            }
            // A damaged or 32-bit triage header still leaves the main header readable.
            4 => {
                match Triage::parse(data, &summary) {
                    Ok(t) => triage = Some(t),
                    Err(why) => notes.push(format!(
                        "triage dump without a usable TRIAGE_DUMP header: {why}"
                    )),
                }
                PhysMap::None
            }
            5 | 6 => physical::from_bitmap_dump(data, hs as usize, &mut notes).map_err(format)?,
            8..=0xA if summary.is_64bit_header => {
                physical::from_rdmp(data, summary.dump_type, &mut notes).map_err(format)?
            }
            3 => PhysMap::None,
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
        if triage.is_none() && phys.page_count() == 0 {
            notes
                .push("the file holds no physical memory: only header values are available".into());
        }
        if summary.is_64bit_header
            && summary.ps_loaded_module_list != 0
            && !paging::canonical48(summary.ps_loaded_module_list)
        {
            notes.push(format!(
                "PsLoadedModuleList {:#x} is not 48-bit canonical: five-level paging (LA57) is not supported",
                summary.ps_loaded_module_list
            ));
        }
        let paging = Paging::new(summary.arch, summary.directory_table_base);
        let mut dump = Dump {
            path: path.to_path_buf(),
            map,
            summary,
            phys,
            paging,
            triage,
            kdbg: None,
            notices: Mutex::new(notes),
        };
        dump.kdbg = kdbg::locate(&dump);
        Ok(dump)
    }

    /// Header values.
    pub fn summary(&self) -> &DumpSummary {
        &self.summary
    }

    /// The path the dump was opened from.
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

    /// Anomalies met so far (holes, clipped descriptors, guards tripped), in order.
    pub fn notices(&self) -> Vec<String> {
        self.notices.lock().map(|n| n.clone()).unwrap_or_default()
    }

    pub(crate) fn notice(&self, msg: String) {
        if let Ok(mut n) = self.notices.lock() {
            if !n.contains(&msg) {
                n.push(msg);
            }
        }
    }

    pub(crate) fn data(&self) -> &[u8] {
        &self.map
    }

    pub(crate) fn pointer_size(&self) -> usize {
        self.summary.arch.pointer_size()
    }

    /// The 4 KB page at physical address `pa` (page aligned), if the file holds it.
    pub(crate) fn phys_page(&self, pa: u64) -> Option<&[u8]> {
        let off = self.phys.offset(&self.map, pa / PAGE)? as usize;
        self.map.get(off..off + PAGE as usize)
    }

    /// Translates a virtual address (not meaningful for triage dumps).
    pub fn translate(&self, va: u64) -> Result<u64, Miss> {
        if self.phys.page_count() == 0 {
            return Err(Miss::NoMemory);
        }
        self.paging.translate(self, va)
    }

    /// Reads virtual memory strictly: the whole buffer or the first miss.
    pub fn read_virt(&self, va: u64, buf: &mut [u8]) -> Result<(), Miss> {
        if let Some(t) = &self.triage {
            return t.read(&self.map, va, buf);
        }
        let mut done = 0usize;
        while done < buf.len() {
            let cur = va.wrapping_add(done as u64);
            let in_page = (PAGE - (cur & (PAGE - 1))) as usize;
            let n = in_page.min(buf.len() - done);
            let pa = self.translate(cur)?;
            let page = self
                .phys_page(pa & !(PAGE - 1))
                .ok_or(Miss::NotInDump { pa })?;
            let o = (pa & (PAGE - 1)) as usize;
            buf[done..done + n].copy_from_slice(&page[o..o + n]);
            done += n;
        }
        Ok(())
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
fn summary64(data: &[u8], notes: &mut Vec<String>) -> Result<PhysMap, String> {
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
    ///
    /// # Errors
    /// `Unavailable` without physical memory; `Unreadable` when the list head cannot be read.
    /// A walk that stops early (cycle, bad link, count guard) returns what it read plus a notice.
    pub fn modules(&self) -> Result<Vec<LoadedModule>, DumpError> {
        modules::list(self)
    }

    /// Carves a module's image in loaded layout; missing pages are zero-filled holes.
    pub fn carve(&self, m: &LoadedModule) -> CarvedImage {
        carve::carve(self, m)
    }

    /// Carves every module, in parallel (rayon), keeping the module order.
    pub fn carve_all(&self, modules: &[LoadedModule]) -> Vec<(LoadedModule, CarvedImage)> {
        use rayon::prelude::*;
        modules
            .par_iter()
            .map(|m| (m.clone(), self.carve(m)))
            .collect()
    }

    /// Per-tag pool usage from the pool tracker tables.
    ///
    /// # Errors
    /// `Unavailable` for triage and header-only dumps or without KDBG; `Unreadable` when the
    /// table pointer or the table cannot be read.
    pub fn pool_usage(&self) -> Result<crate::pool::PoolSnapshot, DumpError> {
        pooltrack::usage(self)
    }
}
