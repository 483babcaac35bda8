//! DWARF in PE images (mingw-w64 gcc and clang `-g`) and separate files named by
//! `.gnu_debuglink`.
//!
//! Format: the DWARF 4/5 sections (`.debug_info`, `.debug_abbrev`, `.debug_line`,
//! `.debug_str`, `.debug_ranges`/`.debug_rnglists`, …; DWARF 5 standard, chapters 6–7) sit in
//! PE sections whose names are longer than 8 bytes, so the section header holds `/<offset>` into
//! the COFF string table (PE/COFF specification, "Section Table", Name field); `object` resolves
//! them. Addresses in the DWARF are virtual addresses (image base + RVA). `.gnu_debuglink`
//! holds a file name, NUL, padding to 4 bytes, and the CRC-32 (IEEE, as zlib's) of the separate
//! file, which carries the same sections and addresses (GDB manual, "Debugging Information in
//! Separate Files").
//!
//! Bounding: images and separate files are capped in size; before `addr2line` parses a unit,
//! `check_die_depth` walks every unit's DIE tree iteratively and refuses nesting deeper than
//! [`MAX_DIE_DEPTH`]: addr2line 0.25 parses nested `DW_TAG_inlined_subroutine` entries by
//! recursion (`Function::parse_children`), so a hostile tree could otherwise exhaust the stack,
//! which no `catch_unwind` can contain. Lookups also run under `catch_unwind` (addr2line has
//! `unwrap`s on paths it believes unreachable, e.g. gimli-rs/addr2line#363).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use gimli;
use object::{Object, ObjectSection};

use super::error::{contained, DebugInfoError};
use super::location::{source_location, FunctionInfo, RawFrame, SourceLocation};

/// Largest image or separate debug file read for DWARF.
pub const MAX_DWARF_FILE_BYTES: u64 = 512 << 20;
/// Deepest DIE nesting accepted (real compilers stay far below: tens of levels).
pub const MAX_DIE_DEPTH: isize = 256;

type Reader = gimli::EndianArcSlice<gimli::LittleEndian>;

/// Facts about an image's own debug sections.
pub(crate) struct ImageDwarfFacts {
    pub(crate) has_dwarf: bool,
    pub(crate) debuglink: Option<(String, u32)>,
}

/// Whether the image carries DWARF, and its `.gnu_debuglink` (file name, CRC-32).
pub(crate) fn facts(file: &object::File<'_>) -> ImageDwarfFacts {
    let has_dwarf = file
        .section_by_name(".debug_info")
        .is_some_and(|s| s.size() > 0);
    let debuglink = file
        .section_by_name(".gnu_debuglink")
        .and_then(|s| s.data().ok())
        .and_then(parse_debuglink);
    ImageDwarfFacts {
        has_dwarf,
        debuglink,
    }
}

/// `.gnu_debuglink` contents: the file name up to NUL, padding to a multiple of 4, CRC-32 LE.
fn parse_debuglink(data: &[u8]) -> Option<(String, u32)> {
    let nul = data.iter().position(|&b| b == 0)?;
    let name = std::str::from_utf8(&data[..nul]).ok()?.to_string();
    let crc_at = (nul + 1).div_ceil(4) * 4;
    let crc = data.get(crc_at..crc_at + 4)?;
    Some((name, u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]])))
}

/// CRC-32 of a separate debug file, as `.gnu_debuglink` records it.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Reads a file for DWARF, refusing one over the limit before reading it.
pub(crate) fn read_capped(path: &Path, what: &'static str) -> Result<Vec<u8>, DebugInfoError> {
    let io = |source| DebugInfoError::Io {
        what,
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    // A FIFO would block the read, a device such as /dev/zero read without end (its length
    // is 0): only a regular file is read.
    if !meta.is_file() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let len = meta.len();
    if len > MAX_DWARF_FILE_BYTES {
        return Err(DebugInfoError::TooLarge {
            what,
            path: path.to_path_buf(),
            size: len,
            limit: MAX_DWARF_FILE_BYTES,
        });
    }
    std::fs::read(path).map_err(io)
}

/// Walks every unit's DIEs without recursion and refuses trees nested deeper than
/// [`MAX_DIE_DEPTH`] (see the module documentation).
fn check_die_depth(dwarf: &gimli::Dwarf<Reader>, path: &Path) -> Result<(), DebugInfoError> {
    let err = |what, source| DebugInfoError::Dwarf {
        what,
        path: path.to_path_buf(),
        source,
    };
    let mut units = dwarf.units();
    while let Some(header) = units.next().map_err(|e| err("unit headers", e))? {
        let unit = dwarf.unit(header).map_err(|e| err("a unit", e))?;
        let mut entries = unit
            .entries_raw(None)
            .map_err(|e| err("a unit's entries", e))?;
        while !entries.is_empty() {
            let depth = entries.next_depth();
            if depth > MAX_DIE_DEPTH {
                return Err(DebugInfoError::BadDwarf {
                    path: path.to_path_buf(),
                    why: format!("entries nested {depth} deep, over the limit of {MAX_DIE_DEPTH}"),
                });
            }
            if let Some(abbrev) = entries
                .read_abbreviation()
                .map_err(|e| err("an entry", e))?
            {
                entries
                    .skip_attributes(abbrev.attributes())
                    .map_err(|e| err("an entry's attributes", e))?;
            }
        }
    }
    Ok(())
}

/// Address lookup in DWARF.
pub(crate) struct DwarfSymbols {
    ctx: addr2line::Context<Reader>,
    image_base: u64,
    path: PathBuf,
    poisoned: AtomicBool,
}

impl DwarfSymbols {
    /// From the DWARF sections of the PE file `bytes` (the image itself or a separate file).
    pub(crate) fn from_pe(bytes: &[u8], path: &Path) -> Result<DwarfSymbols, DebugInfoError> {
        let file = object::File::parse(bytes).map_err(|source| DebugInfoError::Object {
            what: "headers",
            path: path.to_path_buf(),
            source,
        })?;
        let image_base = file.relative_address_base();
        let load = |id: gimli::SectionId| -> Result<Reader, gimli::Error> {
            let data: Arc<[u8]> = match file.section_by_name(id.name()).map(|s| s.data()) {
                Some(Ok(d)) => Arc::from(d),
                // object reports a section whose file range lies outside the file: treat it as
                // absent here; units that need it then fail with a gimli error.
                _ => Arc::from(&[][..]),
            };
            Ok(gimli::EndianArcSlice::new(data, gimli::LittleEndian))
        };
        let err = |what, source| DebugInfoError::Dwarf {
            what,
            path: path.to_path_buf(),
            source,
        };
        let dwarf = gimli::Dwarf::load(load).map_err(|e| err("sections", e))?;
        check_die_depth(&dwarf, path)?;
        let ctx = contained(path, "DWARF", "indexing its units", || {
            addr2line::Context::from_dwarf(dwarf).map_err(|e| err("unit index", e))
        })?;
        Ok(DwarfSymbols {
            ctx,
            image_base,
            path: path.to_path_buf(),
            poisoned: AtomicBool::new(false),
        })
    }

    fn guarded<T>(
        &self,
        what: &'static str,
        f: impl FnOnce() -> Result<T, gimli::Error>,
    ) -> Result<T, DebugInfoError> {
        let failed = || DebugInfoError::ReaderFailed {
            reader: "DWARF",
            what,
            path: self.path.clone(),
        };
        if self.poisoned.load(Ordering::Relaxed) {
            return Err(failed());
        }
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(r) => r.map_err(|source| DebugInfoError::Dwarf {
                what,
                path: self.path.clone(),
                source,
            }),
            Err(_) => {
                self.poisoned.store(true, Ordering::Relaxed);
                Err(failed())
            }
        }
    }

    pub(crate) fn locate(&self, rva: u32) -> Result<Option<SourceLocation>, DebugInfoError> {
        // A hostile header can put the image base where base + RVA overflows: no line there.
        let Some(probe) = self.image_base.checked_add(u64::from(rva)) else {
            return Ok(None);
        };
        let frames = self.guarded("looking up an address", || {
            let unit = self.ctx.find_dwarf_and_unit(probe).skip_all_loads();
            let mut iter = self.ctx.find_frames(probe).skip_all_loads()?;
            let mut out = Vec::new();
            while let Some(f) = iter.next()? {
                let function = frame_name(&f, unit.as_ref());
                let (file, line, column) = match f.location {
                    Some(l) => (
                        l.file.map(str::to_string),
                        l.line,
                        l.column.filter(|&c| c > 0),
                    ),
                    None => (None, None, None),
                };
                out.push(RawFrame {
                    function,
                    file,
                    line,
                    column,
                });
                if out.len() > MAX_DIE_DEPTH as usize {
                    break;
                }
            }
            Ok(out)
        })?;
        Ok(source_location(frames))
    }

    pub(crate) fn function(&self, rva: u32) -> Result<Option<FunctionInfo>, DebugInfoError> {
        // The outermost frame is the subprogram that owns the code.
        Ok(self.locate(rva)?.and_then(|loc| {
            loc.function.map(|name| FunctionInfo {
                name,
                start_rva: None,
                end_rva: None,
            })
        }))
    }
}

/// The name to show for a frame. For C units, the `DW_AT_name` the source declares (gcc
/// records the x86 stdcall-decorated symbol `InlinedUnload@4` as `DW_AT_linkage_name`, which
/// addr2line prefers); otherwise addr2line's name, demangled.
fn frame_name(
    f: &addr2line::Frame<'_, Reader>,
    unit: Option<&gimli::UnitRef<'_, Reader>>,
) -> Option<String> {
    let fallback = f
        .function
        .as_ref()
        .and_then(|n| n.demangle().ok())
        .map(|n| n.into_owned());
    let is_c = f
        .function
        .as_ref()
        .and_then(|n| n.language)
        .is_some_and(|l| {
            matches!(
                l,
                gimli::DW_LANG_C
                    | gimli::DW_LANG_C89
                    | gimli::DW_LANG_C99
                    | gimli::DW_LANG_C11
                    | gimli::DW_LANG_C17
            )
        });
    if !is_c {
        return fallback;
    }
    let (unit, mut offset) = (unit?, f.dw_die_offset?);
    // DW_AT_name, following abstract_origin/specification inside the unit (bounded).
    for _ in 0..8 {
        let entry = unit.entry(offset).ok()?;
        if let Some(v) = entry.attr_value(gimli::DW_AT_name).ok().flatten() {
            return unit
                .attr_string(v)
                .ok()
                .and_then(|s| {
                    gimli::Reader::to_string_lossy(&s)
                        .ok()
                        .map(|c| c.into_owned())
                })
                .or(fallback);
        }
        match entry
            .attr_value(gimli::DW_AT_abstract_origin)
            .ok()
            .flatten()
            .or_else(|| entry.attr_value(gimli::DW_AT_specification).ok().flatten())
        {
            Some(gimli::AttributeValue::UnitRef(o)) => offset = o,
            _ => break,
        }
    }
    fallback
}
