//! PDB files: container checks, GUID/age matching, and address lookup.
//!
//! Format: the MSF 7.00 container (a superblock, a stream directory, fixed-size blocks), the PDB
//! information stream (stream 1: version, signature, age, GUID) and the DBI stream (stream 3,
//! whose header carries the age the linker wrote to the image) — LLVM's "The MSF File Format",
//! "The PDB Info Stream", "The DBI Stream". Line tables (C13 `DEBUG_S_LINES`), procedure symbols
//! (`S_GPROC32`/`S_LPROC32`), public symbols (`S_PUB32`) and inline sites (`S_INLINESITE` with
//! binary annotations, `DEBUG_S_INLINEELINES`) are read by `pdb-addr2line` over `pdb2`.
//!
//! Bounding: the file size is capped ([`MAX_PDB_BYTES`]); before `pdb2` reads anything,
//! `check_msf` verifies the superblock, that the file holds every block the superblock
//! declares (so a truncated PDB is refused with that reason), that the directory and every
//! stream's block list point inside the file, and that no stream is larger than the file: a
//! hostile directory cannot make the reader allocate more than the file's size per stream.
//! Before the PDB is indexed, `check_c13_lines` walks every module's line blocks as `pdb2`
//! does and refuses the ones `pdb2` would split past their end.
//! Calls into `pdb2`/`pdb-addr2line` run under `catch_unwind` as a last line of defence: they
//! assert on some malformed inputs (pdb2 `LineInfo::set_end` `debug_assert!`, reached through
//! pdb-addr2line: mstange/samply#677; `TypeFormatter` `unwrap`s on array types without
//! dimensions). A contained panic becomes [`DebugInfoError::ReaderFailed`] and the symbolizer
//! refuses further lookups.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use pdb_addr2line::pdb;

use super::error::{contained, DebugInfoError};
use super::locate::{CodeViewRef, Guid, Mismatch};
use super::location::{source_location, FunctionInfo, RawFrame, SourceLocation};
use crate::util::le::u32_at;

/// Largest PDB accepted (the kernel's own PDBs are tens of MiB).
pub const MAX_PDB_BYTES: u64 = 2 << 30;

const MSF_MAGIC: &[u8; 32] = b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0";

/// Checks the MSF container of `file` (of `len` bytes) before the PDB reader sees it.
pub(crate) fn check_msf(file: &mut File, len: u64, path: &Path) -> Result<(), DebugInfoError> {
    let bad = |why: String| DebugInfoError::BadMsf {
        path: path.to_path_buf(),
        why,
    };
    let io = |source| DebugInfoError::Io {
        what: "PDB",
        path: path.to_path_buf(),
        source,
    };
    if len < 56 {
        return Err(bad(format!(
            "{len} bytes, shorter than the 56-byte MSF superblock"
        )));
    }
    let mut sb = [0u8; 56];
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.read_exact(&mut sb).map_err(io)?;
    if &sb[..32] != MSF_MAGIC {
        return Err(bad("no MSF 7.00 signature (not a PDB 7.0 file)".into()));
    }
    let u = |o: usize| u32::from_le_bytes([sb[o], sb[o + 1], sb[o + 2], sb[o + 3]]);
    let (block_size, num_blocks, dir_bytes, map_addr) = (u(32), u(40), u(44), u(52));
    if !matches!(block_size, 512 | 1024 | 2048 | 4096 | 8192 | 16384 | 32768) {
        return Err(bad(format!(
            "block size {block_size} is not a power of two from 512 to 32768"
        )));
    }
    let bs = u64::from(block_size);
    let declared = u64::from(num_blocks) * bs;
    if declared > len {
        return Err(bad(format!(
            "truncated: the superblock declares {num_blocks} blocks of {block_size} bytes ({declared} bytes), the file has {len}"
        )));
    }
    let read_block_list =
        |file: &mut File, offset: u64, count: u64| -> Result<Vec<u32>, DebugInfoError> {
            let mut raw = vec![0u8; (count * 4) as usize];
            file.seek(SeekFrom::Start(offset)).map_err(io)?;
            file.read_exact(&mut raw).map_err(io)?;
            Ok(raw
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
    let dir_blocks = u64::from(dir_bytes).div_ceil(bs);
    if u64::from(dir_bytes) > declared || dir_blocks * 4 > bs || map_addr >= num_blocks {
        return Err(bad(format!(
            "stream directory of {dir_bytes} bytes listed at block {map_addr} does not fit the file"
        )));
    }
    let dir_list = read_block_list(file, u64::from(map_addr) * bs, dir_blocks)?;
    let mut dir = Vec::with_capacity(dir_bytes as usize);
    for b in dir_list {
        if b >= num_blocks {
            return Err(bad(format!(
                "stream directory block {b} is past the last block {num_blocks}"
            )));
        }
        let mut blk = vec![0u8; block_size as usize];
        file.seek(SeekFrom::Start(u64::from(b) * bs)).map_err(io)?;
        file.read_exact(&mut blk).map_err(io)?;
        dir.extend_from_slice(&blk);
    }
    dir.truncate(dir_bytes as usize);
    let word = |i: usize| -> Option<u32> {
        dir.get(i * 4..i * 4 + 4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    };
    let streams = word(0).ok_or_else(|| bad("empty stream directory".into()))? as usize;
    if 1 + streams > dir.len() / 4 {
        return Err(bad(format!(
            "stream directory lists {streams} streams but has room for fewer"
        )));
    }
    let mut next = 1 + streams;
    // The PDB information stream's blocks, read below for its named-stream map.
    let mut info_blocks = Vec::new();
    for s in 0..streams {
        let size = word(1 + s).unwrap_or(0);
        if size == u32::MAX {
            continue;
        }
        if u64::from(size) > declared {
            return Err(bad(format!(
                "stream {s} claims {size} bytes, more than the whole file"
            )));
        }
        for _ in 0..u64::from(size).div_ceil(bs) {
            let b = word(next)
                .ok_or_else(|| bad(format!("stream {s}'s block list runs past the directory")))?;
            if b >= num_blocks {
                return Err(bad(format!(
                    "stream {s} uses block {b}, past the last block {num_blocks}"
                )));
            }
            if s == 1 {
                info_blocks.push(b);
            }
            next += 1;
        }
    }
    if let Some(size) = word(2).filter(|&n| streams > 1 && n != u32::MAX) {
        let mut info = Vec::with_capacity(size as usize);
        for b in info_blocks {
            let mut blk = vec![0u8; block_size as usize];
            file.seek(SeekFrom::Start(u64::from(b) * bs)).map_err(io)?;
            file.read_exact(&mut blk).map_err(io)?;
            info.extend_from_slice(&blk);
        }
        info.truncate(size as usize);
        check_named_streams(&info).map_err(bad)?;
    }
    Ok(())
}

/// Checks the named-stream map of the PDB information stream (`info`, stream 1): every name's
/// offset must lie inside the map's name buffer. pdb2 0.10.2 slices the buffer at the offset
/// unchecked (`PDBInformation::stream_names`, src/pdbi.rs:140) and panics on one past its end;
/// pdb-addr2line reaches it through `PDB::string_table` (the `/names` stream), so it is
/// refused here, before the reader runs. Layout (LLVM, "The PDB Info Stream"): a 28-byte header
/// (version, signature, age, GUID), the buffer's size and bytes, then a hash table — size,
/// capacity, the present and deleted bit vectors (a word count, then the words) — and one
/// (name offset, stream index) pair per present entry. A stream too short for the map is left
/// to the reader, which reports it as an error.
fn check_named_streams(info: &[u8]) -> Result<(), String> {
    let Some(names_size) = u32_at(info, 28) else {
        return Ok(());
    };
    let check = || -> Option<Result<(), String>> {
        let mut at = 32usize.checked_add(names_size as usize)?;
        let mut word = || -> Option<u32> {
            let w = u32_at(info, at)?;
            at += 4;
            Some(w)
        };
        let count = word()?;
        let _capacity = word()?;
        for _ in 0..2 {
            let words = word()?;
            for _ in 0..words {
                word()?;
            }
        }
        for i in 0..count {
            let offset = word()?;
            let _stream = word()?;
            if offset > names_size {
                return Some(Err(format!(
                    "named stream {i} of the information stream names offset {offset}, past its {names_size}-byte name buffer"
                )));
            }
        }
        Some(Ok(()))
    };
    check().unwrap_or(Ok(()))
}

/// Checks the C13 line tables of every module before pdb2 reads them, as pdb2 0.10.2 reads
/// them, and refuses the PDB where pdb2 would panic: it slices the module stream at
/// `symbols_size + c13_lines_size` unchecked (`ModuleInfo::lines_data`, src/modi/mod.rs:53), and
/// in a `DEBUG_S_LINES` block it subtracts the 12-byte block header from the block size
/// unchecked and splits the block's bytes at its line count × 8, then × 4 for columns, without
/// checking that the block holds them (`DebugLinesBlockIterator::next`, src/modi/c13.rs:559–565;
/// found by the pdb fuzz target, `testdata/regress/pdb/crash-61c50981…`).
///
/// Layout (LLVM, "The Module Information Stream" and "CodeView Debug Subsections"; pdb2 reads
/// it the same way): a module with no C11 lines has `c13_lines_size` bytes of subsections right
/// after its `symbols_size` bytes of symbols — kind u32, length u32, then the payload (pdb2 does
/// not pad); kind 0xF2 is a lines subsection: offset u32, section u16, flags u16 (bit 0: column
/// entries present), code size u32, then blocks of file u32, line count u32, block size u32
/// (the 12 header bytes included), 8 bytes per line and 4 per column. Where pdb2 would stop
/// with an error the check stops too (that is a reported error, not a panic): a subsection it
/// cannot read ends the module's walk, a block it cannot read ends only its subsection's (pdb2
/// reads the subsection list up front and each subsection's blocks when a lookup reaches it;
/// the second fuzz find, `crash-e16949a8…`, hid its bad block behind an unreadable one).
fn check_c13_lines(pdb: &mut pdb::PDB<'static, File>, path: &Path) -> Result<(), DebugInfoError> {
    let pdb_err = |what, source| DebugInfoError::Pdb {
        what,
        path: path.to_path_buf(),
        source,
    };
    let bad = |why: String| DebugInfoError::BadMsf {
        path: path.to_path_buf(),
        why,
    };
    let dbi = pdb
        .debug_information()
        .map_err(|e| pdb_err("DBI stream", e))?;
    use pdb::FallibleIterator;
    let mut modules = dbi
        .modules()
        .map_err(|e| pdb_err("module list", e))?
        .enumerate();
    while let Some((index, module)) = modules.next().map_err(|e| pdb_err("module list", e))? {
        let info = module.info();
        let at = || {
            let name = crate::util::printable_text(module.module_name().into_owned());
            format!("module {index} ({name})")
        };
        if info.lines_size > 0 || info.stream.is_none() {
            continue; // C11 lines (pdb2 does not read them) or no module stream
        }
        let Some(stream) = pdb
            .raw_stream(info.stream)
            .map_err(|e| pdb_err("module stream", e))?
        else {
            continue;
        };
        let bytes = stream.as_slice();
        let (symbols, c13) = (info.symbols_size as usize, info.c13_lines_size as usize);
        let Some(lines) = symbols
            .checked_add(c13)
            .and_then(|end| bytes.get(symbols..end))
        else {
            return Err(bad(format!(
                "{}: its symbols ({symbols} bytes) and C13 line tables ({c13} bytes) run past its {}-byte stream",
                at(),
                bytes.len()
            )));
        };
        if let Some(why) = bad_lines_block(lines) {
            return Err(bad(format!("{}: {why}", at())));
        }
    }
    Ok(())
}

/// The first `DEBUG_S_LINES` block in a module's C13 subsections (`c13`) that pdb2 would split
/// past its end, described; `None` when there is none (see [`check_c13_lines`]). pdb2 reads the
/// subsection list when it opens a module's line program (an error there is the module's
/// error) but each subsection's blocks only when a lookup reaches it, so a block it cannot read
/// ends that subsection's walk, not the module's.
fn bad_lines_block(c13: &[u8]) -> Option<String> {
    const LINES: u32 = 0xF2;
    const IGNORE: u32 = 0x8000_0000;
    let mut at = 0usize;
    while at < c13.len() {
        let kind = u32_at(c13, at)?;
        let len = u32_at(c13, at + 4)? as usize;
        let payload_at = at + 8;
        let payload = c13.get(payload_at..payload_at.checked_add(len)?)?;
        at = payload_at + len;
        if kind == IGNORE {
            continue;
        }
        if !(0xF1..=0xFD).contains(&kind) {
            return None; // pdb2 refuses the module's line program here
        }
        if kind != LINES || payload.len() < 12 {
            continue; // a short lines header is an error in pdb2
        }
        let columns = u16::from_le_bytes([payload[6], payload[7]]) & 1 != 0;
        if let Some((b, why)) = bad_block_in(&payload[12..], columns) {
            return Some(format!(
                "a line block at C13 offset {} declares {why}",
                payload_at + 12 + b
            ));
        }
    }
    None
}

/// The first block of a lines subsection's `blocks` that pdb2 would split past its end: its
/// offset in `blocks` and what it declares. The walk ends, as pdb2's does, at a block it cannot
/// read (a short header, or a size past the subsection's end).
fn bad_block_in(blocks: &[u8], columns: bool) -> Option<(usize, String)> {
    let mut b = 0usize;
    while b < blocks.len() {
        let lines = u64::from(u32_at(blocks, b + 4)?);
        let size = u64::from(u32_at(blocks, b + 8)?);
        let Some(data) = size.checked_sub(12) else {
            return Some((b, format!("{size} bytes, fewer than its 12-byte header")));
        };
        if data > (blocks.len() - b - 12) as u64 {
            return None;
        }
        let needed = lines * if columns { 12 } else { 8 };
        if needed > data {
            let with = if columns { " with columns" } else { "" };
            return Some((
                b,
                format!("{lines} lines{with} ({needed} bytes) in {data} bytes"),
            ));
        }
        b += 12 + data as usize;
    }
    None
}

/// An opened PDB whose identity has been read.
pub(crate) struct OpenedPdb {
    pdb: pdb::PDB<'static, File>,
    pub(crate) guid: Guid,
    pub(crate) age: u32,
}

/// Opens `path` as a PDB and reads its GUID and age. `Err` carries the mismatch to report
/// (`Absent`, `Unreadable`) for the search.
pub(crate) fn open_pdb(path: &Path) -> Result<OpenedPdb, Mismatch> {
    // What the path is, before opening it: the image names the path (its CodeView record), and
    // opening a FIFO blocks until a writer comes (a hostile driver naming `/run/initctl` hung
    // the scan; tests/it/hostile_paths.rs).
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        // `DIR/name.pdb` is a folder in the symbol-store layout: no PDB at the plain path.
        Ok(m) if m.is_dir() => return Err(Mismatch::Absent),
        Ok(_) => return Err(Mismatch::Unreadable("not a regular file".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Mismatch::Absent),
        Err(e) => return Err(Mismatch::Unreadable(e.to_string())),
    }
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Mismatch::Absent),
        Err(e) => return Err(Mismatch::Unreadable(e.to_string())),
    };
    // Checked again on what was opened: the path may have changed in between.
    let len = match file.metadata() {
        Ok(m) if m.is_file() => m.len(),
        Ok(m) if m.is_dir() => return Err(Mismatch::Absent),
        Ok(_) => return Err(Mismatch::Unreadable("not a regular file".into())),
        Err(e) => return Err(Mismatch::Unreadable(e.to_string())),
    };
    if len > MAX_PDB_BYTES {
        return Err(Mismatch::Unreadable(format!(
            "{len} bytes, over the {MAX_PDB_BYTES}-byte limit"
        )));
    }
    let why = |e: DebugInfoError| match e {
        DebugInfoError::BadMsf { why, .. } => Mismatch::Unreadable(why),
        other => Mismatch::Unreadable(other.to_string()),
    };
    check_msf(&mut file, len, path).map_err(why)?;
    contained(path, "PDB", "reading its identity", || {
        let pdb_err = |what, source| DebugInfoError::Pdb {
            what,
            path: path.to_path_buf(),
            source,
        };
        let mut pdb = pdb::PDB::open(file).map_err(|e| pdb_err("container", e))?;
        let info = pdb
            .pdb_information()
            .map_err(|e| pdb_err("information stream", e))?;
        let dbi = pdb
            .debug_information()
            .map_err(|e| pdb_err("DBI stream", e))?;
        let guid = Guid(*info.guid.as_bytes());
        let age = dbi.age().unwrap_or(info.age);
        Ok(OpenedPdb { pdb, guid, age })
    })
    .map_err(why)
}

/// Whether an opened PDB is the one `cv` names.
pub(crate) fn matches(opened: &OpenedPdb, cv: &CodeViewRef) -> Result<(), Mismatch> {
    if opened.guid != cv.guid {
        Err(Mismatch::GuidDiffers { found: opened.guid })
    } else if opened.age != cv.age {
        Err(Mismatch::AgeDiffers { found: opened.age })
    } else {
        Ok(())
    }
}

type PdbData = pdb_addr2line::ContextPdbData<'static, 'static, File>;
type PdbContext<'a> = pdb_addr2line::Context<'a, 'static>;

self_cell::self_cell!(
    /// The PDB's streams and the lookup context that borrows them.
    struct PdbCell {
        owner: PdbData,
        #[not_covariant]
        dependent: PdbContext,
    }
);

/// Address lookup in one PDB.
pub(crate) struct PdbSymbols {
    cell: PdbCell,
    path: PathBuf,
    poisoned: AtomicBool,
}

impl PdbSymbols {
    pub(crate) fn new(opened: OpenedPdb, path: &Path) -> Result<PdbSymbols, DebugInfoError> {
        let lookup_err = |what, source| DebugInfoError::PdbLookup {
            what,
            path: path.to_path_buf(),
            source,
        };
        let cell = contained(path, "PDB", "indexing its symbols", || {
            let mut pdb = opened.pdb;
            check_c13_lines(&mut pdb, path)?;
            let data =
                PdbData::try_from_pdb(pdb).map_err(|e| lookup_err("reading its streams", e))?;
            PdbCell::try_new(data, |data| {
                // Names without argument lists: the name as the source declares it.
                let flags = pdb_addr2line::TypeFormatterFlags::default()
                    | pdb_addr2line::TypeFormatterFlags::NO_ARGUMENTS;
                data.make_context_with_formatter_flags(flags)
            })
            .map_err(|e| lookup_err("indexing procedures and publics", e))
        })?;
        Ok(PdbSymbols {
            cell,
            path: path.to_path_buf(),
            poisoned: AtomicBool::new(false),
        })
    }

    fn guarded<T>(
        &self,
        what: &'static str,
        f: impl FnOnce(&PdbContext<'_>) -> Result<T, pdb_addr2line::Error>,
    ) -> Result<T, DebugInfoError> {
        let failed = || DebugInfoError::ReaderFailed {
            reader: "PDB",
            what,
            path: self.path.clone(),
        };
        if self.poisoned.load(Ordering::Relaxed) {
            return Err(failed());
        }
        match catch_unwind(AssertUnwindSafe(|| {
            self.cell.with_dependent(|_, ctx| f(ctx))
        })) {
            Ok(r) => r.map_err(|source| DebugInfoError::PdbLookup {
                what,
                path: self.path.clone(),
                source,
            }),
            Err(_) => {
                // The context's caches may be half-updated: no further lookups.
                self.poisoned.store(true, Ordering::Relaxed);
                Err(failed())
            }
        }
    }

    pub(crate) fn locate(&self, rva: u32) -> Result<Option<SourceLocation>, DebugInfoError> {
        let frames = self.guarded("looking up an address", |ctx| {
            Ok(ctx.find_frames(rva)?.map(|ff| {
                ff.frames
                    .into_iter()
                    .map(|f| RawFrame {
                        function: f.function,
                        file: f.file.map(|c| c.into_owned()),
                        line: f.line,
                        column: None,
                    })
                    .collect::<Vec<_>>()
            }))
        })?;
        Ok(frames.and_then(source_location))
    }

    pub(crate) fn function(&self, rva: u32) -> Result<Option<FunctionInfo>, DebugInfoError> {
        let f = self.guarded("looking up a function", |ctx| ctx.find_function(rva))?;
        Ok(f.and_then(|f| {
            Some(FunctionInfo {
                name: f.name?,
                start_rva: Some(f.start_rva),
                end_rva: f.end_rva,
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lines subsection (kind 0xF2, `flags` in its header) holding `blocks`.
    fn lines_subsection(flags: u16, blocks: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend(0xF2u32.to_le_bytes());
        v.extend((12 + blocks.len() as u32).to_le_bytes());
        v.extend(0u32.to_le_bytes()); // offset
        v.extend(1u16.to_le_bytes()); // section
        v.extend(flags.to_le_bytes());
        v.extend(0x40u32.to_le_bytes()); // code size
        v.extend(blocks);
        v
    }

    /// A line block: file, line count, block size, then `data`.
    fn block(lines: u32, size: u32, data: usize) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend(0u32.to_le_bytes());
        v.extend(lines.to_le_bytes());
        v.extend(size.to_le_bytes());
        v.resize(12 + data, 0);
        v
    }

    #[test]
    fn a_line_block_holding_its_lines_passes() {
        // Two lines (16 bytes), then the same with columns (24 bytes).
        assert_eq!(
            bad_lines_block(&lines_subsection(0, &block(2, 28, 16))),
            None
        );
        assert_eq!(
            bad_lines_block(&lines_subsection(1, &block(2, 36, 24))),
            None
        );
    }

    #[test]
    fn a_line_block_claiming_more_lines_than_it_holds_is_refused() {
        assert_eq!(
            bad_lines_block(&lines_subsection(0, &block(3, 28, 16))).as_deref(),
            Some("a line block at C13 offset 20 declares 3 lines (24 bytes) in 16 bytes")
        );
        // Room for the lines but not for their columns.
        assert_eq!(
            bad_lines_block(&lines_subsection(1, &block(2, 28, 16))).as_deref(),
            Some("a line block at C13 offset 20 declares 2 lines with columns (24 bytes) in 16 bytes")
        );
        assert_eq!(
            bad_lines_block(&lines_subsection(0, &block(0, 8, 0))).as_deref(),
            Some("a line block at C13 offset 20 declares 8 bytes, fewer than its 12-byte header")
        );
    }

    #[test]
    fn where_pdb2_stops_with_an_error_the_check_stops_too() {
        // One subsection's walk ending does not end the next one's: pdb2 reads each
        // subsection's blocks when a lookup reaches it (the second fuzz find).
        let mut c13 = lines_subsection(0, &block(9, 1000, 16));
        c13.extend(lines_subsection(0, &block(3, 28, 16)));
        assert_eq!(
            bad_lines_block(&c13).as_deref(),
            Some("a line block at C13 offset 68 declares 3 lines (24 bytes) in 16 bytes")
        );
        // A block larger than the subsection: pdb2's `take` fails, no split is made.
        assert_eq!(
            bad_lines_block(&lines_subsection(0, &block(9, 1000, 16))),
            None
        );
        // An unknown subsection kind ends pdb2's walk before the bad block after it.
        let mut c13 = vec![0x10, 0, 0, 0, 0, 0, 0, 0];
        c13.extend(lines_subsection(0, &block(3, 28, 16)));
        assert_eq!(bad_lines_block(&c13), None);
        // DEBUG_S_IGNORE is skipped, and the bad block after it is found.
        let mut c13 = vec![0, 0, 0, 0x80, 4, 0, 0, 0, 1, 2, 3, 4];
        c13.extend(lines_subsection(0, &block(3, 28, 16)));
        assert!(bad_lines_block(&c13).is_some());
    }

    /// What indexing the regression file `name` (under testdata/regress/pdb) is refused with.
    fn refusal(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/regress/pdb")
            .join(name);
        let opened = open_pdb(&path).unwrap_or_else(|_| panic!("{} opens", path.display()));
        let err = PdbSymbols::new(opened, &path).err().expect("refused");
        err.to_string()
    }

    #[test]
    fn the_fuzz_finds_are_refused_before_pdb2_reads_their_lines() {
        let finds = [
            (
                "crash-61c50981acb0eba3933f0b7acdcbf413a7804ad9",
                "module 0 (/fixtures/.build/dobj/inlined_clang_x64_O2.obj): \
                 a line block at C13 offset 56 declares 11 lines (88 bytes) in 48 bytes",
            ),
            // Its first lines subsection's block runs past the subsection (pdb2 stops that
            // walk with an error); a later one splits past its end.
            (
                "crash-e16949a886a81f11d8b90784fb8b73fceaea052e",
                "module 0 (/fixtures/.build/obj/pooltest_clang_x86_O2.obj): \
                 a line block at C13 offset 524 declares 5 lines (40 bytes) in 11 bytes",
            ),
        ];
        for (name, why) in finds {
            let text = refusal(name);
            assert!(
                text.ends_with(&format!(" is not a usable PDB: {why}")),
                "{text}"
            );
        }
    }
}
