//! The image model: every fact about one driver image that a rule may read.
//!
//! A driver is parsed exactly once, here, into an owned [`Image`]. Rules, call-site analysis
//! results, ranking and the output writers only ever see this model, never `pelite` types, so
//! an image carved from a crash dump (loaded layout, possibly with holes) and a `.sys` file on
//! disk (file layout) are indistinguishable to everything downstream.
//!
//! Layout facts follow the PE/COFF specification ("PE Format", Microsoft Learn): section
//! headers, data directories 1 (import), 2 (exception), 4 (security), 6 (debug), 10 (load
//! config), 12 (IAT) and 13 (delay import).

use std::fmt;

use serde::Serialize;

use thiserror::Error;

/// `IMAGE_SCN_MEM_EXECUTE`.
pub const SCN_MEM_EXECUTE: u32 = 0x2000_0000;
/// `IMAGE_SCN_MEM_WRITE`.
pub const SCN_MEM_WRITE: u32 = 0x8000_0000;
/// `IMAGE_SCN_MEM_DISCARDABLE`: the section (typically `INIT`) is freed after `DriverEntry`.
pub const SCN_MEM_DISCARDABLE: u32 = 0x0200_0000;
/// `IMAGE_SCN_CNT_CODE`.
pub const SCN_CNT_CODE: u32 = 0x0000_0020;
/// `IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY`.
pub const DLLCHAR_FORCE_INTEGRITY: u16 = 0x0080;
/// `IMAGE_DLLCHARACTERISTICS_GUARD_CF`.
pub const DLLCHAR_GUARD_CF: u16 = 0x4000;

/// Longest DLL name an import descriptor may give: a module is found by its file name, and a
/// file name component is at most 255 characters on NTFS and FAT (Microsoft Learn, "Naming
/// Files, Paths, and Namespaces").
const MAX_DLL_NAME: usize = 255;
/// Longest imported function name: MSVC truncates decorated names at 4,096 characters
/// (compiler warning C4503), and every exported name a driver can import comes from a linker.
const MAX_IMPORT_NAME: usize = 4096;
/// Imports read from all descriptors of one image together. The largest real drivers import a
/// few thousand functions; a hostile image can point a thousand descriptors at one long name
/// table, and each entry becomes an `Import`.
const MAX_IMPORTS: usize = 65536;

/// Why a string the import directory points at could not be read.
enum NameFault {
    /// Its RVA is not backed by the image.
    Outside,
    /// No NUL within the bound.
    Unterminated,
}

/// The processor an image is built for (`IMAGE_FILE_HEADER.Machine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Machine {
    /// `IMAGE_FILE_MACHINE_I386` (0x14c).
    X86,
    /// `IMAGE_FILE_MACHINE_AMD64` (0x8664).
    X64,
    /// `IMAGE_FILE_MACHINE_ARM64` (0xaa64).
    Arm64,
    /// Anything else; parsed, but no code analysis is attempted.
    Other(u16),
}

impl Machine {
    fn from_raw(raw: u16) -> Machine {
        match raw {
            0x14c => Machine::X86,
            0x8664 => Machine::X64,
            0xaa64 => Machine::Arm64,
            other => Machine::Other(other),
        }
    }

    /// `IMAGE_FILE_HEADER.Machine` as stored.
    pub fn raw(self) -> u16 {
        match self {
            Machine::X86 => 0x14c,
            Machine::X64 => 0x8664,
            Machine::Arm64 => 0xaa64,
            Machine::Other(m) => m,
        }
    }

    /// Size of a pointer (and of an IAT slot) in bytes.
    pub fn pointer_size(self) -> u32 {
        match self {
            Machine::X86 => 4,
            _ => 8,
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Machine::X86 => f.write_str("x86"),
            Machine::X64 => f.write_str("x64"),
            Machine::Arm64 => f.write_str("arm64"),
            Machine::Other(m) => write!(f, "machine 0x{m:04x}"),
        }
    }
}

/// How the bytes of an image are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Layout {
    /// As stored on disk: sections at their `PointerToRawData`.
    File,
    /// As mapped by the loader: sections at their RVA (images carved from crash dumps).
    Loaded,
}

/// One section header, with where the header itself sits in the file (for SARIF regions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Section {
    /// Section name, trailing NULs removed.
    pub name: String,
    /// `VirtualAddress` (RVA).
    pub rva: u32,
    /// `VirtualSize`.
    pub virtual_size: u32,
    /// `PointerToRawData`.
    pub raw_offset: u32,
    /// `SizeOfRawData`.
    pub raw_size: u32,
    /// `Characteristics`.
    pub characteristics: u32,
    /// Byte offset of this 40-byte section header from the start of the image.
    pub header_offset: u32,
}

impl Section {
    /// Whether the section is mapped executable.
    pub fn is_executable(&self) -> bool {
        self.characteristics & SCN_MEM_EXECUTE != 0
    }
    /// Whether the section is mapped writable.
    pub fn is_writable(&self) -> bool {
        self.characteristics & SCN_MEM_WRITE != 0
    }
    /// Whether the loader frees the section after initialisation (`INIT`).
    pub fn is_discardable(&self) -> bool {
        self.characteristics & SCN_MEM_DISCARDABLE != 0
    }
    /// The extent of the section in memory: the larger of its virtual and raw size, as the
    /// loader maps it.
    pub fn mapped_size(&self) -> u32 {
        if self.virtual_size == 0 {
            self.raw_size
        } else {
            self.virtual_size
        }
    }
    /// Whether `rva` falls inside the section's mapped extent.
    pub fn contains(&self, rva: u32) -> bool {
        rva >= self.rva && rva - self.rva < self.mapped_size()
    }
}

/// How the name of an import was learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ImportOrigin {
    /// From the image's own import (or delay-import) directory.
    Directory,
    /// From a carved image's IAT: the slot's resolved address matched an export of a loaded
    /// module (the directory was discarded with `INIT`).
    ExportMatch,
}

/// One imported function and its IAT slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Import {
    /// The DLL name as written in the image (`ntoskrnl.exe`, `HAL.dll`, …).
    pub dll: String,
    /// Import by name.
    pub name: Option<String>,
    /// Import by ordinal (when no name is given).
    pub ordinal: Option<u16>,
    /// RVA of the IAT slot the loader fills with the function's address.
    pub iat_rva: u32,
    /// Whether this comes from the delay-import directory.
    pub delay: bool,
    /// Where the name came from.
    pub origin: ImportOrigin,
}

impl Import {
    /// `dll!name` or `dll!#ordinal`, for messages.
    pub fn display(&self) -> String {
        match (&self.name, self.ordinal) {
            (Some(n), _) => format!("{}!{}", self.dll, n),
            (None, Some(o)) => format!("{}!#{}", self.dll, o),
            (None, None) => format!("{}!?", self.dll),
        }
    }
}

/// One exported function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Export {
    /// Export name, if exported by name.
    pub name: Option<String>,
    /// Biased ordinal.
    pub ordinal: u16,
    /// RVA of the function (or of the forwarder string).
    pub rva: u32,
}

/// The CodeView record of the debug directory (`RSDS`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodeView {
    /// PDB path as recorded by the linker.
    pub pdb_path: String,
    /// PDB GUID in the registry form `XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX`.
    pub guid: String,
    /// PDB age.
    pub age: u32,
    /// The GUID's 16 bytes as stored.
    #[serde(skip)]
    pub guid_bytes: [u8; 16],
}

/// A function's extent from the exception directory (`.pdata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct FunctionRange {
    /// RVA of the first instruction.
    pub begin: u32,
    /// RVA one past the last instruction.
    pub end: u32,
}

/// Every fact drvaudit knows about one image. Built once by [`Image::parse`].
#[derive(Debug, Clone, Serialize)]
pub struct Image {
    /// Target processor.
    pub machine: Machine,
    /// Layout of the bytes this model was parsed from.
    pub layout: Layout,
    /// Length in bytes of the parsed buffer.
    pub len: u64,
    /// Lower-case hex SHA-256 of the parsed buffer.
    pub sha256: String,
    /// `OptionalHeader.ImageBase` (the preferred base; carved images keep the header value).
    pub image_base: u64,
    /// `SizeOfImage`.
    pub size_of_image: u32,
    /// `AddressOfEntryPoint` (RVA).
    pub entry_point: u32,
    /// `Subsystem` (1 = native, as drivers are).
    pub subsystem: u16,
    /// `FileHeader.Characteristics`.
    pub characteristics: u16,
    /// `DllCharacteristics`.
    pub dll_characteristics: u16,
    /// `FileHeader.TimeDateStamp`.
    pub timestamp: u32,
    /// `OptionalHeader.CheckSum`.
    pub checksum: u32,
    /// `SectionAlignment`.
    pub section_alignment: u32,
    /// `FileAlignment`.
    pub file_alignment: u32,
    /// Section table, in header order.
    pub sections: Vec<Section>,
    /// Imports (regular and delay), in directory order.
    pub imports: Vec<Import>,
    /// Exports, by ordinal.
    pub exports: Vec<Export>,
    /// Indices into `exports`, sorted by RVA (then index), for [`Image::export_name_at`].
    pub(crate) exports_by_rva: Vec<u32>,
    /// The debug directory's CodeView record, if any.
    pub codeview: Option<CodeView>,
    /// Whether a security directory (Authenticode signature) is present.
    pub signed: bool,
    /// `IMAGE_LOAD_CONFIG_DIRECTORY.GuardFlags`, when the load config reaches that field.
    pub guard_flags: Option<u32>,
    /// Function extents from `.pdata` (x64 and ARM64), sorted by start.
    pub functions: Vec<FunctionRange>,
    /// Ranges (RVA, length) of a carved image that could not be read from the dump.
    pub holes: Vec<(u32, u32)>,
    /// Malformed structures that parsing worked around, for notices (what, where, why).
    pub anomalies: Vec<String>,
}

/// Why an image could not be modelled.
#[derive(Debug, Error)]
pub enum ImageError {
    /// pelite refused the headers: no PE signature, truncated or inconsistent headers.
    #[error("not a PE image: {}", explain(*.0))]
    Headers(#[source] pelite::Error),
    /// The headers parse but break a rule pelite relies on without checking (see
    /// [`reject_misaligned_section_table`]).
    #[error("not a PE image: {0}")]
    Inconsistent(String),
}

impl Image {
    /// Parses a PE image in the given layout. Only the headers and the directories listed in the
    /// module documentation are read; code is left to call-site analysis.
    pub fn parse(bytes: &[u8], layout: Layout) -> Result<Image, ImageError> {
        reject_misaligned_section_table(bytes)?;
        if layout == Layout::File {
            reject_misaligned_raw_data(bytes)?;
        }
        let copy;
        let headers = match aligned_for_pelite(bytes) {
            Some(c) => {
                copy = c;
                copy.bytes()
            }
            None => bytes,
        };
        let wrap = match layout {
            Layout::File => pelite::PeFile::from_bytes(headers).map(Parsed::from_file),
            Layout::Loaded => pelite::PeView::from_bytes(headers).map(Parsed::from_view),
        }
        .map_err(ImageError::Headers)?;
        let mut image = match wrap {
            Parsed::File32(pe) => extract32(pe, layout),
            Parsed::File64(pe) => extract64(pe, layout),
            Parsed::View32(pe) => extract32(pe, layout),
            Parsed::View64(pe) => extract64(pe, layout),
        }?;
        image.len = bytes.len() as u64;
        image.sha256 = crate::sha256_hex(bytes);
        image.read_imports(bytes);
        image.codeview = image.read_codeview(bytes);
        image.functions = image.read_pdata(bytes);
        image.guard_flags = image.read_guard_flags(bytes);
        // Drivers are kilobytes to a few MiB; ntoskrnl is ~16 MiB. Past 256 MiB the header
        // is damaged or hostile (a loader would refuse to map it).
        if image.size_of_image > 0x1000_0000 {
            image.anomaly(format!(
                "SizeOfImage 0x{:x} is implausible for a driver (over 256 MiB)",
                image.size_of_image
            ));
        }
        Ok(image)
    }

    /// The section containing `rva`, if any.
    pub fn section_of(&self, rva: u32) -> Option<&Section> {
        self.sections.iter().find(|s| s.contains(rva))
    }

    /// Byte offset of `rva` within the buffer this model was parsed from.
    /// For the file layout the RVA must fall into a section's raw data (or the headers).
    pub fn offset_of(&self, rva: u32) -> Option<u64> {
        match self.layout {
            Layout::Loaded => (u64::from(rva) < self.len).then_some(u64::from(rva)),
            Layout::File => {
                let headers_end = self
                    .sections
                    .iter()
                    .map(|s| s.raw_offset)
                    .filter(|&o| o != 0)
                    .min()
                    .unwrap_or(self.len as u32);
                if rva < headers_end {
                    return Some(u64::from(rva));
                }
                let s = self.section_of(rva)?;
                let delta = rva - s.rva;
                (delta < s.raw_size).then(|| u64::from(s.raw_offset) + u64::from(delta))
            }
        }
    }

    /// The bytes from `rva` to the end of its section (or of the buffer), if mapped.
    pub fn bytes_at<'a>(&self, data: &'a [u8], rva: u32) -> Option<&'a [u8]> {
        let start = usize::try_from(self.offset_of(rva)?).ok()?;
        let end = match self.layout {
            Layout::Loaded => match self.section_of(rva) {
                Some(s) => (s.rva as usize).saturating_add(s.mapped_size() as usize),
                None => data.len(),
            },
            Layout::File => match self.section_of(rva) {
                Some(s) => (s.raw_offset as usize).saturating_add(s.raw_size as usize),
                None => data.len(),
            },
        };
        data.get(start..end.min(data.len()))
    }

    /// Reads a little-endian u32 at `rva`.
    pub fn read_u32(&self, data: &[u8], rva: u32) -> Option<u32> {
        let b = self.bytes_at(data, rva)?.get(..4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a little-endian u64 at `rva`.
    pub fn read_u64(&self, data: &[u8], rva: u32) -> Option<u64> {
        let b = self.bytes_at(data, rva)?.get(..8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }

    /// The import whose IAT slot is at `rva`.
    pub fn import_at(&self, iat_rva: u32) -> Option<&Import> {
        self.imports.iter().find(|i| i.iat_rva == iat_rva)
    }

    /// The `.pdata` function containing `rva`.
    pub fn function_of(&self, rva: u32) -> Option<FunctionRange> {
        let i = self.functions.partition_point(|f| f.begin <= rva);
        let f = *self.functions.get(i.checked_sub(1)?)?;
        (rva < f.end).then_some(f)
    }

    /// Name of the export at `rva`, if a function starts there.
    pub fn export_name_at(&self, rva: u32) -> Option<&str> {
        // The first export (in ordinal order) at `rva`: `exports_by_rva` is sorted by RVA,
        // then by position, so one binary search per finding, not a walk of every export.
        let i = self
            .exports_by_rva
            .partition_point(|&k| self.exports[k as usize].rva < rva);
        let e = &self.exports[*self.exports_by_rva.get(i)? as usize];
        (e.rva == rva).then_some(e.name.as_deref())?
    }

    /// RVA range of the data directory `index`, if present and non-empty.
    fn directory(&self, data: &[u8], index: usize) -> Option<(u32, u32)> {
        // The optional header's data directories start at a fixed offset that depends on the
        // magic (PE32: 96, PE32+: 112 bytes into the optional header).
        let opt = e_lfanew(data)? + 24;
        let magic = u16::from_le_bytes(data.get(opt..opt + 2)?.try_into().ok()?);
        let dirs = opt + if magic == 0x20b { 112 } else { 96 };
        let count_at = dirs - 4;
        let count = u32::from_le_bytes(data.get(count_at..count_at + 4)?.try_into().ok()?);
        if index as u32 >= count.min(16) {
            return None;
        }
        let d = dirs + index * 8;
        let rva = u32::from_le_bytes(data.get(d..d + 4)?.try_into().ok()?);
        let size = u32::from_le_bytes(data.get(d + 4..d + 8)?.try_into().ok()?);
        // A damaged Size can run the directory past the 4 GiB address space: only the part
        // that can exist is read, so no offset computed inside it overflows.
        let size = size.min(u32::MAX - rva);
        (rva != 0 && size != 0).then_some((rva, size))
    }

    /// The NUL-terminated string at `rva`, read no further than `max` bytes. Unbounded, a
    /// damaged name runs to the end of its section: one such name per thunk of a hostile
    /// image made the import walk copy hundreds of megabytes (a pe_file fuzz find).
    fn c_string(&self, data: &[u8], rva: u32, max: usize) -> Result<String, NameFault> {
        let b = self.bytes_at(data, rva).ok_or(NameFault::Outside)?;
        let b = &b[..b.len().min(max)];
        let end = b
            .iter()
            .position(|&c| c == 0)
            .ok_or(NameFault::Unterminated)?;
        Ok(crate::printable_text(
            String::from_utf8_lossy(&b[..end]).into_owned(),
        ))
    }

    /// Regular imports (directory 1, `IMAGE_IMPORT_DESCRIPTOR`, 20 bytes each) and delay imports
    /// (directory 13, `IMAGE_DELAYLOAD_DESCRIPTOR`, 32 bytes each). Read by hand rather than
    /// with pelite because pelite rejects import directories that are not 4-byte aligned, and
    /// lld-link writes such images, which Windows loads without complaint. Like the loader,
    /// the walk runs to the null descriptor rather than trusting the directory's Size; every
    /// bound that stops it early is recorded as an anomaly.
    fn read_imports(&mut self, data: &[u8]) {
        const MAX_DESCRIPTORS: u32 = 1024;
        let mut found = Vec::new();
        if let Some((dir, _)) = self.directory(data, 1) {
            if self.offset_of(dir).is_none() {
                self.anomaly(format!(
                    "import directory at RVA 0x{dir:x} lies outside the image"
                ));
            }
            for i in 0..=MAX_DESCRIPTORS {
                if i == MAX_DESCRIPTORS {
                    self.anomaly(format!(
                        "import directory: no null descriptor within {MAX_DESCRIPTORS} entries; stopped"
                    ));
                    break;
                }
                let d = dir.saturating_add(i * 20);
                let (Some(int), Some(name_rva), Some(iat)) = (
                    self.read_u32(data, d),
                    self.read_u32(data, d.saturating_add(12)),
                    self.read_u32(data, d.saturating_add(16)),
                ) else {
                    if i > 0 {
                        self.anomaly(format!(
                            "import descriptor #{i} at RVA 0x{d:x} runs past the image"
                        ));
                    }
                    break;
                };
                if name_rva == 0 && iat == 0 {
                    break;
                }
                // Without an INT (OriginalFirstThunk 0, old Borland-style images) the IAT
                // still holds the name RVAs on disk.
                let names = if int != 0 { int } else { iat };
                self.read_thunks(data, name_rva, names, iat, false, &mut found);
            }
        }
        if let Some((dir, _)) = self.directory(data, 13) {
            for i in 0..256u32 {
                let d = dir.saturating_add(i * 32);
                let (Some(attrs), Some(name_rva), Some(iat), Some(int)) = (
                    self.read_u32(data, d),
                    self.read_u32(data, d.saturating_add(4)),
                    self.read_u32(data, d.saturating_add(12)),
                    self.read_u32(data, d.saturating_add(16)),
                ) else {
                    self.anomaly(format!(
                        "delay-import descriptor #{i} at RVA 0x{d:x} runs past the image"
                    ));
                    break;
                };
                // Only RVA-based descriptors (Attributes bit 0), as every modern linker writes.
                if name_rva == 0 || attrs & 1 == 0 {
                    break;
                }
                self.read_thunks(data, name_rva, int, iat, true, &mut found);
            }
        }
        self.imports = found;
    }

    /// Walks one descriptor's name table (INT) in step with its IAT.
    fn read_thunks(
        &mut self,
        data: &[u8],
        name_rva: u32,
        int: u32,
        iat: u32,
        delay: bool,
        out: &mut Vec<Import>,
    ) {
        const MAX_THUNKS: u32 = 16384;
        let ptr = self.machine.pointer_size();
        let dll = match self.c_string(data, name_rva, MAX_DLL_NAME) {
            Ok(d) => d,
            Err(NameFault::Outside) => {
                self.anomaly(format!(
                    "import descriptor names its DLL at RVA 0x{name_rva:x}, outside the image"
                ));
                "?".into()
            }
            Err(NameFault::Unterminated) => {
                self.anomaly(format!(
                    "import descriptor names its DLL at RVA 0x{name_rva:x}, which has no \
                     terminating NUL within {MAX_DLL_NAME} bytes"
                ));
                "?".into()
            }
        };
        if self.offset_of(int).is_none() {
            self.anomaly(format!(
                "imports of {dll}: name table at RVA 0x{int:x} lies outside the image"
            ));
            return;
        }
        let (mut unterminated, mut outside) = (0usize, 0usize);
        for n in 0..=MAX_THUNKS {
            if n == MAX_THUNKS {
                self.anomaly(format!(
                    "imports of {dll}: no terminating entry within {MAX_THUNKS}; stopped"
                ));
                break;
            }
            if out.len() == MAX_IMPORTS {
                self.anomaly(format!(
                    "more than {MAX_IMPORTS} imports in all descriptors; the rest were not read"
                ));
                break;
            }
            let at = int.saturating_add(n * ptr);
            let entry = if ptr == 8 {
                self.read_u64(data, at)
            } else {
                self.read_u32(data, at).map(u64::from)
            };
            let Some(entry) = entry.filter(|&e| e != 0) else {
                break;
            };
            let by_ordinal = entry >> (ptr * 8 - 1) != 0;
            let (name, ordinal) = if by_ordinal {
                (None, Some(entry as u16))
            } else {
                match self.c_string(data, (entry as u32).wrapping_add(2), MAX_IMPORT_NAME) {
                    Ok(name) => (Some(name), None),
                    Err(NameFault::Unterminated) => {
                        unterminated += 1;
                        (None, None)
                    }
                    Err(NameFault::Outside) => {
                        outside += 1;
                        (None, None)
                    }
                }
            };
            out.push(Import {
                dll: dll.clone(),
                name,
                ordinal,
                iat_rva: iat.saturating_add(n * ptr),
                delay,
                origin: ImportOrigin::Directory,
            });
        }
        if unterminated > 0 {
            self.anomaly(format!(
                "imports of {dll}: {unterminated} names have no terminating NUL within \
                 {MAX_IMPORT_NAME} bytes; kept without a name"
            ));
        }
        if outside > 0 {
            self.anomaly(format!(
                "imports of {dll}: {outside} names lie outside the image; kept without a name"
            ));
        }
    }

    /// Records something malformed that parsing worked around (reported as a notice).
    fn anomaly(&mut self, what: String) {
        if !self.anomalies.contains(&what) {
            self.anomalies.push(what);
        }
    }

    /// `GuardFlags` of the load config directory (directory 10): at 0x90 in the 64-bit layout
    /// and 0x58 in the 32-bit one, present only when the directory's own `Size` reaches it.
    fn read_guard_flags(&self, data: &[u8]) -> Option<u32> {
        let (dir, _) = self.directory(data, 10)?;
        let at = if self.machine.pointer_size() == 8 {
            0x90
        } else {
            0x58
        };
        let size = self.read_u32(data, dir)?;
        (size >= at + 4).then(|| self.read_u32(data, dir + at))?
    }

    /// The first CodeView `RSDS` record of the debug directory (directory 6; entries of 28 bytes,
    /// type 2 = CodeView; `RSDS`, GUID, age, NUL-terminated path).
    fn read_codeview(&self, data: &[u8]) -> Option<CodeView> {
        let (dir, size) = self.directory(data, 6)?;
        for i in 0..(size / 28).min(64) {
            let e = dir + i * 28;
            if self.read_u32(data, e + 12)? != 2 {
                continue;
            }
            let len = self.read_u32(data, e + 16)? as usize;
            let rva = self.read_u32(data, e + 20)?;
            let raw = self.read_u32(data, e + 24)? as usize;
            let rec = match self.layout {
                Layout::File => data.get(raw..raw.checked_add(len)?)?,
                Layout::Loaded => self.bytes_at(data, rva)?.get(..len)?,
            };
            if rec.len() < 24 || &rec[..4] != b"RSDS" {
                continue;
            }
            let g = &rec[4..20];
            let guid = format!(
                "{:08X}-{:04X}-{:04X}-{}-{}",
                u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
                u16::from_le_bytes([g[4], g[5]]),
                u16::from_le_bytes([g[6], g[7]]),
                hex::encode_upper(&g[8..10]),
                hex::encode_upper(&g[10..16])
            );
            let age = u32::from_le_bytes([rec[20], rec[21], rec[22], rec[23]]);
            let path = &rec[24..];
            let end = path.iter().position(|&c| c == 0).unwrap_or(path.len());
            let mut guid_bytes = [0u8; 16];
            guid_bytes.copy_from_slice(g);
            return Some(CodeView {
                pdb_path: crate::printable_text(String::from_utf8_lossy(&path[..end]).into_owned()),
                guid,
                age,
                guid_bytes,
            });
        }
        None
    }

    /// Function extents from the exception directory (directory 3). x64 `RUNTIME_FUNCTION` is
    /// 12 bytes (begin, end, unwind); ARM64 entries are 8 bytes (begin, then either an unwind
    /// RVA or packed data whose bits 2..13 are the function length in 4-byte units; "ARM64
    /// exception handling", Microsoft Learn). x86 images have no such table.
    fn read_pdata(&self, data: &[u8]) -> Vec<FunctionRange> {
        let Some((dir, size)) = self.directory(data, 3) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        match self.machine {
            Machine::X64 => {
                for i in 0..size / 12 {
                    let e = dir + i * 12;
                    match (self.read_u32(data, e), self.read_u32(data, e + 4)) {
                        (Some(b), Some(end)) if b < end => {
                            out.push(FunctionRange { begin: b, end })
                        }
                        (Some(_), Some(_)) => continue,
                        _ => break,
                    }
                }
            }
            Machine::Arm64 => {
                for i in 0..size / 8 {
                    let e = dir + i * 8;
                    let (Some(begin), Some(word)) =
                        (self.read_u32(data, e), self.read_u32(data, e + 4))
                    else {
                        break;
                    };
                    let len = if word & 3 != 0 {
                        ((word >> 2) & 0x7ff) * 4
                    } else {
                        // Unpacked: the first word of the .xdata record holds the length in
                        // its low 18 bits, in 4-byte units.
                        self.read_u32(data, word).map_or(0, |x| (x & 0x3ffff) * 4)
                    };
                    if len > 0 {
                        out.push(FunctionRange {
                            begin,
                            end: begin.saturating_add(len),
                        });
                    }
                }
            }
            _ => {}
        }
        out.sort();
        out.dedup_by_key(|f| f.begin);
        out
    }
}

/// pelite reads the NT headers in place, through a reference to a structure with 64-bit fields
/// (`ImageBase`, …), yet checks only the loader's 4-byte alignment of `e_lfanew`: a PE32+ whose
/// headers start at 4 mod 8 — legal, if rare (linkers use 8-byte offsets) — would be read
/// through a misaligned reference, which is undefined behaviour and aborts a debug build. Such
/// an image (or one in a buffer not 4-byte aligned) is given to pelite as a copy placed so that
/// both hold; `None` when the bytes can be used as they are.
fn aligned_for_pelite(bytes: &[u8]) -> Option<AlignedCopy> {
    let lfanew = e_lfanew(bytes)?;
    let at = bytes.as_ptr() as usize;
    let misaligned = at % 4 != 0 || (lfanew % 4 == 0 && (at + lfanew) % 8 != 0);
    misaligned.then(|| AlignedCopy::new(bytes, lfanew))
}

/// pelite also reads the section table in place, at the end of the optional header, without
/// checking that `SizeOfOptionalHeader` keeps it 4-byte aligned as its fields need. Linkers
/// write 0xE0 (PE32) or 0xF0 (PE32+); a size that is not a multiple of 4 only comes from
/// damage, and such a file is refused here rather than read through a misaligned reference.
fn reject_misaligned_section_table(bytes: &[u8]) -> Result<(), ImageError> {
    let Some(s) = e_lfanew(bytes)
        .and_then(|pe| pe.checked_add(20))
        .and_then(|at| bytes.get(at..at + 2))
    else {
        return Ok(());
    };
    let size = u16::from_le_bytes([s[0], s[1]]);
    if size % 4 != 0 {
        return Err(ImageError::Inconsistent(format!(
            "SizeOfOptionalHeader 0x{size:x} is not a multiple of 4: the section table after it \
             would be misaligned (linkers write 0xE0 or 0xF0)"
        )));
    }
    Ok(())
}

/// pelite (0.10.0, `slice_file` in `pe64/pe.rs` and its PE32 twin) checks the alignment a
/// structure needs at the image's start plus its *RVA*, then reads it at the start plus its
/// *file offset*, `PointerToRawData + (RVA − VirtualAddress)`. The two agree modulo 8 only when
/// each section's `VirtualAddress − PointerToRawData` is a multiple of 8; otherwise an export,
/// import or load-config directory in that section is read through a misaligned reference —
/// undefined behaviour, and an abort in a build with debug assertions (found by the `cab` and
/// `pe_file` fuzz targets; testdata/regress/pe_file/). Linkers align both to at least 512 bytes
/// (`FileAlignment`), so only a damaged or crafted file is refused here. No upstream report
/// was found in CasualX/pelite's issues.
fn reject_misaligned_raw_data(bytes: &[u8]) -> Result<(), ImageError> {
    let Some(pe) = e_lfanew(bytes) else {
        return Ok(());
    };
    let field = |at: usize, n: usize| bytes.get(at..at.checked_add(n)?);
    let (Some(count), Some(opt)) = (
        field(pe.saturating_add(6), 2),
        field(pe.saturating_add(20), 2),
    ) else {
        return Ok(());
    };
    let count = usize::from(u16::from_le_bytes([count[0], count[1]]));
    let table = pe + 24 + usize::from(u16::from_le_bytes([opt[0], opt[1]]));
    for i in 0..count {
        // A section table cut short is pelite's to refuse.
        let Some(h) = field(table + 40 * i, 40) else {
            break;
        };
        let u32_at = |o: usize| u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
        let (va, raw_size, raw) = (u32_at(12), u32_at(16), u32_at(20));
        if raw_size != 0 && va.wrapping_sub(raw) % 8 != 0 {
            return Err(ImageError::Inconsistent(format!(
                "section {} has VirtualAddress 0x{va:x} and PointerToRawData 0x{raw:x}, which \
                 differ by a number not a multiple of 8: its structures would be read \
                 misaligned (linkers align both to at least 0x200)",
                i + 1
            )));
        }
    }
    Ok(())
}

/// `IMAGE_DOS_HEADER.e_lfanew`: the file offset of the NT headers.
fn e_lfanew(bytes: &[u8]) -> Option<usize> {
    let b = bytes.get(0x3c..0x40)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

/// A copy of an image whose start is 4-byte aligned and whose NT headers are 8-byte aligned.
struct AlignedCopy {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedCopy {
    fn new(bytes: &[u8], lfanew: usize) -> AlignedCopy {
        let mut buf = vec![0u8; bytes.len() + 8];
        // The buffer never moves again: pick the offset that puts `start + lfanew` on 8.
        let base = buf.as_ptr() as usize;
        let start = (0..8)
            .find(|o| (base + o) % 4 == 0 && (base + o + lfanew) % 8 == 0)
            .unwrap_or(0);
        buf[start..start + bytes.len()].copy_from_slice(bytes);
        AlignedCopy {
            buf,
            start,
            len: bytes.len(),
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
}

/// pelite's errors name a category, not the structure; say what it means for a PE image.
fn explain(e: pelite::Error) -> String {
    let what = match e {
        pelite::Error::BadMagic => "no MZ/PE signature",
        pelite::Error::Bounds => {
            "the headers or section table run past the end of the file (truncated?)"
        }
        pelite::Error::Insanity => {
            "the headers are inconsistent (absurd NumberOfSections, SizeOfHeaders or alignment)"
        }
        pelite::Error::Misaligned => "a header is misaligned",
        pelite::Error::PeMagic => "unknown optional header magic",
        _ => "the headers cannot be read",
    };
    format!("{what} (pelite: {e})")
}

/// The four shapes pelite can hand back; collapsed into one `Image` by the extract functions.
enum Parsed<'a> {
    File32(pelite::pe32::PeFile<'a>),
    File64(pelite::pe64::PeFile<'a>),
    View32(pelite::pe32::PeView<'a>),
    View64(pelite::pe64::PeView<'a>),
}

impl<'a> Parsed<'a> {
    fn from_file(w: pelite::PeFile<'a>) -> Self {
        match w {
            pelite::Wrap::T32(p) => Parsed::File32(p),
            pelite::Wrap::T64(p) => Parsed::File64(p),
        }
    }
    fn from_view(w: pelite::PeView<'a>) -> Self {
        match w {
            pelite::Wrap::T32(p) => Parsed::View32(p),
            pelite::Wrap::T64(p) => Parsed::View64(p),
        }
    }
}

/// pelite's PE32 and PE32+ APIs are two copies of the same code with different types, so the
/// extraction is written once as a macro and instantiated for each.
macro_rules! extractor {
    ($name:ident, $module:ident) => {
        fn $name<'a, P: pelite::$module::Pe<'a>>(
            pe: P,
            layout: Layout,
        ) -> Result<Image, ImageError> {
            let fh = pe.file_header();
            let oh = pe.optional_header();
            let nt_offset = pe.dos_header().e_lfanew as u32;
            let first_section = nt_offset + 24 + u32::from(fh.SizeOfOptionalHeader);
            let sections = pe
                .section_headers()
                .iter()
                .enumerate()
                .map(|(i, s)| Section {
                    name: crate::printable_text(
                        String::from_utf8_lossy(&s.Name)
                            .trim_end_matches('\0')
                            .to_string(),
                    ),
                    rva: s.VirtualAddress,
                    virtual_size: s.VirtualSize,
                    raw_offset: s.PointerToRawData,
                    raw_size: s.SizeOfRawData,
                    characteristics: s.Characteristics,
                    header_offset: first_section + 40 * i as u32,
                })
                .collect();
            let mut exports = Vec::new();
            if let Ok(by) = pe.exports().and_then(|e| e.by()) {
                let base = pe.exports().map(|e| e.ordinal_base()).unwrap_or(1);
                let names = by.names();
                let functions = by.functions();
                // The first name naming each function, found in one pass: searching the name
                // table per function is quadratic in a hostile directory's counts (a pe_loaded
                // fuzz find spent 2.4 s there).
                let mut name_of: Vec<Option<usize>> = vec![None; functions.len()];
                for (k, &ni) in by.name_indices().iter().enumerate() {
                    if let Some(slot @ None) = name_of.get_mut(usize::from(ni)) {
                        *slot = Some(k);
                    }
                }
                for (i, &rva) in functions.iter().enumerate() {
                    if rva == 0 {
                        continue;
                    }
                    let name = name_of[i]
                        .and_then(|k| names.get(k))
                        .and_then(|&n| pe.derva_c_str(n).ok())
                        .map(|s| crate::printable_text(s.to_string()));
                    exports.push(Export {
                        name,
                        ordinal: base.wrapping_add(i as u16),
                        rva,
                    });
                }
            }
            let dd = pe.data_directory();
            let signed = dd
                .get(pelite::image::IMAGE_DIRECTORY_ENTRY_SECURITY)
                .is_some_and(|d| d.VirtualAddress != 0 && d.Size != 0);
            Ok(Image {
                machine: Machine::from_raw(fh.Machine),
                layout,
                len: 0,
                sha256: String::new(),
                image_base: oh.ImageBase as u64,
                size_of_image: oh.SizeOfImage,
                entry_point: oh.AddressOfEntryPoint,
                subsystem: oh.Subsystem,
                characteristics: fh.Characteristics,
                dll_characteristics: oh.DllCharacteristics,
                timestamp: fh.TimeDateStamp,
                checksum: oh.CheckSum,
                section_alignment: oh.SectionAlignment,
                file_alignment: oh.FileAlignment,
                sections,
                imports: Vec::new(),
                exports_by_rva: {
                    let mut by: Vec<u32> = (0..exports.len() as u32).collect();
                    by.sort_by_key(|&k| (exports[k as usize].rva, k));
                    by
                },
                exports,
                codeview: None,
                signed,
                guard_flags: None,
                functions: Vec::new(),
                holes: Vec::new(),
                anomalies: Vec::new(),
            })
        }
    };
}

extractor!(extract32, pe32);
extractor!(extract64, pe64);
