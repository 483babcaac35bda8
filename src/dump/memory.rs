//! The memory of one dump: its bytes (a read-only file mapping or a buffer), the parsed header,
//! the PFN → file-offset map and the page walker, plus the notices and budget events met while
//! reading. Reads are bounded: every translation is one page walk of the dump's budget
//! (`budget::walk_limit`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use memmap2::Mmap;

use super::budget::{self, BudgetExceeded, Limit, Walks};
use super::bytes::{u32_at, u64_at, unset};
use super::error::{DumpError, DumpNotice, NoticeKind};
use super::facts::Coverage;
use super::header::{self, Arch, DumpSummary};
use super::paging::{self, Miss, Paging, PhysRead};
use super::physical::{self, PhysMap, PAGE};
use super::triage::Triage;

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

/// The bytes, header, physical map and page walker of one dump, with the notices and budget
/// events met while reading it. Everything above it (KDBG, modules, images, pool tables) reads
/// memory through it.
pub(crate) struct Memory {
    pub(super) path: PathBuf,
    data: Source,
    pub(super) summary: DumpSummary,
    pub(super) coverage: Coverage,
    pub(super) phys: PhysMap,
    pub(super) paging: Paging,
    pub(super) triage: Option<Triage>,
    notices: Mutex<Vec<DumpNotice>>,
    budget_events: Mutex<Vec<BudgetExceeded>>,
    pub(super) walks: Walks,
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

impl Memory {
    /// Maps a file and parses its header and physical-memory map.
    pub(crate) fn open(path: &Path) -> Result<Memory, DumpError> {
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
        Memory::parse(path.to_path_buf(), Source::Mapped(map))
    }

    /// Parses a dump held in a buffer, exactly as [`Memory::open`] parses a file.
    pub(crate) fn from_bytes(path: PathBuf, bytes: Vec<u8>) -> Result<Memory, DumpError> {
        Memory::parse(path, Source::Owned(bytes))
    }

    fn parse(path: PathBuf, data: Source) -> Result<Memory, DumpError> {
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
            required_dump_space: (required != 0 && !unset(required)).then_some(required),
            pages_described: described,
            pages_held: phys.page_count(),
            triage_size: triage.as_ref().map(|t| t.size_of_dump),
            truncated: cut,
        };
        let paging = Paging::new(summary.arch, summary.directory_table_base);
        let walks = Walks::new(budget::walk_limit(phys.page_count()));
        Ok(Memory {
            path,
            data,
            summary,
            coverage,
            phys,
            paging,
            triage,
            notices: Mutex::new(
                notes
                    .into_iter()
                    .map(|(kind, message)| DumpNotice { kind, message })
                    .collect(),
            ),
            budget_events: Mutex::new(Vec::new()),
            walks,
        })
    }

    /// Header values.
    pub(crate) fn summary(&self) -> &DumpSummary {
        &self.summary
    }

    /// How much of the memory the headers describe the file holds.
    pub(crate) fn coverage(&self) -> &Coverage {
        &self.coverage
    }

    /// The path the dump was opened from (or the name given to [`Dump::from_bytes`]).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// True for triage (small memory) dumps.
    pub(crate) fn is_triage(&self) -> bool {
        self.triage.is_some()
    }

    /// Number of physical pages the file holds.
    pub(crate) fn physical_pages(&self) -> u64 {
        self.phys.page_count()
    }

    /// Anomalies met so far (holes, clipped descriptors, guards tripped), in order, as text.
    pub(crate) fn notices(&self) -> Vec<String> {
        self.notice_records()
            .into_iter()
            .map(|n| n.message)
            .collect()
    }

    /// Anomalies met so far, with their kind.
    pub(crate) fn notice_records(&self) -> Vec<DumpNotice> {
        self.notices.lock().map(|n| n.clone()).unwrap_or_default()
    }

    /// Every budget reached so far, in order (each is also a [`NoticeKind::Budget`] notice).
    pub(crate) fn budget_events(&self) -> Vec<BudgetExceeded> {
        self.budget_events
            .lock()
            .map(|n| n.clone())
            .unwrap_or_default()
    }

    /// Page-table walks done so far, and the dump's limit.
    pub(crate) fn page_walks(&self) -> (u64, u64) {
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
    pub(crate) fn translate(&self, va: u64) -> Result<u64, Miss> {
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
    pub(crate) fn read_virt(&self, va: u64, buf: &mut [u8]) -> Result<(), Miss> {
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

impl PhysRead for Memory {
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
