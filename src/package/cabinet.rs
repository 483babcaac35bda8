//! The directory of a cabinet, read by drvaudit itself so that the `cab` crate is only ever
//! given cabinets it can read without panicking, and so that members can be located and
//! bounded before anything is decompressed.
//!
//! Layout (Microsoft, [MS-CAB] "Cabinet File Format", sections 2.1–2.4): a `CFHEADER`
//! (signature `MSCF`, sizes, the offset of the first `CFFILE`, version, folder and file
//! counts, flags, optional reserve sizes and the names of the previous and next cabinets),
//! then `cFolders` `CFFOLDER` entries (offset of the folder's first `CFDATA` block, number of
//! blocks, compression type, reserve), then at `coffFiles` `cFiles` `CFFILE` entries (size,
//! offset in the folder's uncompressed data, folder index, date, time, attributes, a
//! NUL-terminated name). Each folder's `CFDATA` blocks follow one another: a checksum, the
//! compressed and uncompressed sizes (16 bits each), a reserve, then the compressed bytes.
//!
//! The fields are read in the same order, with the same limits, as `cab` 0.6.0 reads them
//! (`Cabinet::new`), so that a cabinet this module accepts is one the crate accepts too; what
//! this module adds is the walk of every folder's `CFDATA` chain, which the crate does lazily
//! while decompressing (and panics on, see [`check_member`]).

use std::collections::BTreeMap;

/// `MSCF`, little-endian.
const SIGNATURE: u32 = 0x4643_534d;
/// The crate refuses versions above 1.3.
const VERSION: (u8, u8) = (1, 3);
const FLAG_PREV_CABINET: u16 = 0x1;
const FLAG_NEXT_CABINET: u16 = 0x2;
const FLAG_RESERVE_PRESENT: u16 = 0x4;
/// The crate's limit on the names in the header and in `CFFILE` entries.
const MAX_STRING: usize = 255;

/// One `CFFOLDER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Folder {
    /// File offset of its first `CFDATA` block.
    pub(crate) first_block: u32,
    /// `cCFData`.
    pub(crate) blocks: u16,
    /// `typeCompress`, low four bits: 0 none, 1 MSZIP, 2 Quantum, 3 LZX.
    pub(crate) compression: u16,
}

/// One `CFFILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct File {
    /// The name as stored (backslashes), decoded as the crate decodes it.
    pub(crate) name: String,
    /// Index into the folders.
    pub(crate) folder: u16,
    /// Offset of the file in its folder's uncompressed data.
    pub(crate) offset: u32,
    /// Uncompressed size.
    pub(crate) size: u32,
}

/// The directory of a cabinet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Directory {
    pub(crate) folders: Vec<Folder>,
    pub(crate) files: Vec<File>,
    /// `cbCFData`: reserve bytes in every `CFDATA` header.
    pub(crate) data_reserve: u8,
}

/// What the walk of a folder's data blocks found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FolderData {
    /// Sum of the blocks' `cbUncomp`.
    pub(crate) uncompressed: u64,
    /// `cCFData`.
    pub(crate) blocks: u16,
}

/// Why a cabinet's structure cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CabError {
    #[error(
        "cabinet directory: {what} at offset {offset:#x} runs past the end of the {len}-byte file"
    )]
    Truncated {
        what: &'static str,
        offset: usize,
        len: usize,
    },
    #[error("cabinet directory: {0}")]
    Invalid(String),
}

/// A little-endian reader over the cabinet's bytes that fails instead of running off the end.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CabError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(CabError::Truncated {
                what,
                offset: self.at,
                len: self.bytes.len(),
            });
        };
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, CabError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, CabError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, CabError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// A NUL-terminated string of at most [`MAX_STRING`] bytes (the crate's rule).
    fn string(&mut self, what: &'static str) -> Result<String, CabError> {
        let start = self.at;
        let rest = &self.bytes[start.min(self.bytes.len())..];
        let Some(nul) = rest.iter().take(MAX_STRING + 1).position(|&b| b == 0) else {
            if rest.len() <= MAX_STRING {
                return Err(CabError::Truncated {
                    what,
                    offset: start,
                    len: self.bytes.len(),
                });
            }
            return Err(CabError::Invalid(format!(
                "{what} at offset {start:#x} is longer than {MAX_STRING} bytes"
            )));
        };
        self.at = start + nul + 1;
        Ok(String::from_utf8_lossy(&rest[..nul]).into_owned())
    }
}

/// Reads the header, folders and files of a cabinet.
pub(crate) fn read_directory(bytes: &[u8]) -> Result<Directory, CabError> {
    let mut c = Cursor { bytes, at: 0 };
    if c.u32("signature")? != SIGNATURE {
        return Err(CabError::Invalid("no MSCF signature".into()));
    }
    c.take(4, "CFHEADER")?; // reserved1
    c.u32("cbCabinet")?;
    c.take(4, "CFHEADER")?; // reserved2
    let coff_files = c.u32("coffFiles")?;
    c.take(4, "CFHEADER")?; // reserved3
    let minor = c.u8("version")?;
    let major = c.u8("version")?;
    if (major, minor) > VERSION {
        return Err(CabError::Invalid(format!(
            "version {major}.{minor} (at most {}.{} is supported)",
            VERSION.0, VERSION.1
        )));
    }
    let folders_n = c.u16("cFolders")?;
    let files_n = c.u16("cFiles")?;
    let flags = c.u16("flags")?;
    c.take(4, "CFHEADER")?; // setID, iCabinet
    let (mut header_reserve, mut folder_reserve, mut data_reserve) = (0u16, 0u8, 0u8);
    if flags & FLAG_RESERVE_PRESENT != 0 {
        header_reserve = c.u16("cbCFHeader")?;
        folder_reserve = c.u8("cbCFFolder")?;
        data_reserve = c.u8("cbCFData")?;
    }
    c.take(usize::from(header_reserve), "abReserve")?;
    for (flag, what) in [
        (FLAG_PREV_CABINET, "previous cabinet name"),
        (FLAG_NEXT_CABINET, "next cabinet name"),
    ] {
        if flags & flag != 0 {
            c.string(what)?;
            c.string(what)?; // the disk name
        }
    }
    let mut folders = Vec::with_capacity(usize::from(folders_n));
    for _ in 0..folders_n {
        let first_block = c.u32("CFFOLDER")?;
        let blocks = c.u16("CFFOLDER")?;
        let compression = c.u16("CFFOLDER")? & 0x000f;
        c.take(usize::from(folder_reserve), "CFFOLDER reserve")?;
        folders.push(Folder {
            first_block,
            blocks,
            compression,
        });
    }
    c.at = coff_files as usize;
    let mut files = Vec::with_capacity(usize::from(files_n));
    for _ in 0..files_n {
        let size = c.u32("CFFILE")?;
        let offset = c.u32("CFFILE")?;
        let folder = c.u16("CFFILE")?;
        c.take(6, "CFFILE")?; // date, time, attributes
        let name = c.string("CFFILE name")?;
        if usize::from(folder) >= folders.len() {
            // Also the special indices of files continued from another cabinet (0xFFFD..).
            return Err(CabError::Invalid(format!(
                "file `{name}` names folder {folder}, but the cabinet has {}",
                folders.len()
            )));
        }
        files.push(File {
            name,
            folder,
            offset,
            size,
        });
    }
    Ok(Directory {
        folders,
        files,
        data_reserve,
    })
}

/// Walks folders' `CFDATA` chains, each once, and refuses chains that overlap one another:
/// distinct blocks occupy distinct bytes, so all walks together visit at most one block per
/// eight bytes of the file, whatever the folders claim.
#[derive(Debug, Default)]
pub(crate) struct BlockWalker {
    /// Byte ranges of the blocks walked so far, start → end.
    taken: BTreeMap<usize, usize>,
    /// Folders already walked.
    done: BTreeMap<u16, Result<FolderData, CabError>>,
}

impl BlockWalker {
    /// The data of folder `index` of `dir`, walked the first time it is asked for.
    pub(crate) fn folder(
        &mut self,
        bytes: &[u8],
        dir: &Directory,
        index: u16,
    ) -> Result<FolderData, CabError> {
        if let Some(r) = self.done.get(&index) {
            return r.clone();
        }
        let r = self.walk(bytes, dir, index);
        self.done.insert(index, r.clone());
        r
    }

    fn walk(&mut self, bytes: &[u8], dir: &Directory, index: u16) -> Result<FolderData, CabError> {
        let folder = &dir.folders[usize::from(index)];
        let mut c = Cursor {
            bytes,
            at: folder.first_block as usize,
        };
        let mut uncompressed = 0u64;
        for block in 0..folder.blocks {
            let start = c.at;
            c.take(4, "CFDATA header")?;
            let compressed = c.u16("CFDATA header")?;
            let size = c.u16("CFDATA header")?;
            c.take(usize::from(dir.data_reserve), "CFDATA reserve")?;
            c.take(usize::from(compressed), "CFDATA data")?;
            // Uncompressed blocks are handed over as stored; the crate counts them by
            // `cbUncomp`, and a block whose two sizes differ makes its reader index past the
            // block's end (cab 0.6.0, folder.rs `Read for FolderReader`).
            if folder.compression == 0 && compressed != size {
                return Err(CabError::Invalid(format!(
                    "folder {index}, data block {block} at offset {start:#x}: stored block of \
                     {compressed} bytes claims {size} uncompressed"
                )));
            }
            let end = c.at;
            let before = self.taken.range(..end).next_back();
            if before.is_some_and(|(_, &e)| e > start) {
                return Err(CabError::Invalid(format!(
                    "folder {index}, data block {block} at offset {start:#x} overlaps a data \
                     block of another folder (hostile structure)"
                )));
            }
            self.taken.insert(start, end);
            uncompressed += u64::from(size);
        }
        Ok(FolderData {
            uncompressed,
            blocks: folder.blocks,
        })
    }
}

/// Whether the cab crate can read `file` without panicking, given its folder's data.
///
/// cab 0.6.0 indexes its list of data blocks without a bound while seeking to a file's start
/// (folder.rs:134, `seek_to_uncompressed_offset`): a folder with no data blocks, or a file
/// that starts past the end of its folder's data, panics with an index out of bounds. This is
/// mdsteele/rust-cab issue 41, fixed by pull request 42, which is in no release yet; the check
/// here makes such a file a malformed member instead. A file that ends past its folder's data
/// would come out short, which is reported the same way.
pub(crate) fn check_member(file: &File, data: FolderData) -> Result<(), String> {
    let end = u64::from(file.offset) + u64::from(file.size);
    if end > data.uncompressed {
        return Err(format!(
            "malformed member: its data (offset {:#x}, {} bytes) lies past the end of its \
             folder's {} bytes of uncompressed data ({} data block{})",
            file.offset,
            file.size,
            data.uncompressed,
            data.blocks,
            if data.blocks == 1 { "" } else { "s" }
        ));
    }
    Ok(())
}
