//! Reading input files: small files into a reused buffer, large ones through a memory map.
//!
//! This is the crate's one place that maps files (crash dumps and large drivers), so the one
//! `unsafe` call and its justification live here.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Files at least this large are memory-mapped; smaller ones are read into memory.
///
/// Measured on the benchmark tree (2,400 drivers of 66 KB on average, warm cache, 2 cores):
/// touching every page of every file — hashing does — took 46-48 ms through mappings and
/// 16-17 ms through `read`, because each mapping pays page faults and each `munmap` a TLB
/// shootdown on the other cores. A mapping pays off when copying the file would cost more than
/// that: large files, and crash dumps, of which only a few pages are read.
pub const MAP_AT_LEAST: u64 = 16 << 20;

/// Why a file could not be read: what was being done, and the OS error.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// `open` failed (missing, permission denied, …).
    #[error("cannot open: {0}")]
    Open(#[source] std::io::Error),
    /// Its metadata could not be read.
    #[error("cannot read metadata: {0}")]
    Metadata(#[source] std::io::Error),
    /// Mapping it into memory failed.
    #[error("cannot map into memory: {0}")]
    Map(#[source] std::io::Error),
    /// Reading it failed part-way.
    #[error("cannot read: {0}")]
    Read(#[source] std::io::Error),
}

/// The bytes of one input file, read or mapped.
pub enum FileBytes {
    /// Read into a buffer (returned to the thread's pool when dropped).
    Read(Vec<u8>),
    /// Mapped read-only.
    Mapped(memmap2::Mmap),
}

thread_local! {
    /// Each worker's read buffer, handed from file to file: allocating a fresh buffer per file
    /// had the allocator return and re-fault the same pages for every driver (a tenth of the
    /// benchmark's time once freed memory is returned promptly, see `tune_allocator` in main).
    static READ_BUFFER: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

impl Drop for FileBytes {
    fn drop(&mut self) {
        if let FileBytes::Read(v) = self {
            READ_BUFFER.set(std::mem::take(v));
        }
    }
}

impl std::ops::Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Read(v) => v,
            FileBytes::Mapped(m) => m,
        }
    }
}

/// Reads a small file, maps a large one (see [`MAP_AT_LEAST`]); an empty file is empty bytes
/// (it cannot be mapped).
pub fn load_file(path: &Path) -> Result<FileBytes, FileError> {
    let mut file = File::open(path).map_err(FileError::Open)?;
    let len = file.metadata().map_err(FileError::Metadata)?.len();
    if len >= MAP_AT_LEAST {
        return map_readonly(&file)
            .map(FileBytes::Mapped)
            .map_err(FileError::Map);
    }
    // `take(len)`: one `read` of the size just learnt, without the size probes (`fstat`,
    // `lseek`) `read_to_end` on a `File` makes again.
    let mut bytes = READ_BUFFER.take();
    bytes.clear();
    bytes.reserve(len as usize);
    (&mut file)
        .take(len)
        .read_to_end(&mut bytes)
        .map_err(FileError::Read)?;
    Ok(FileBytes::Read(bytes))
}

/// Maps `file` read-only.
///
/// SAFETY: the map is read-only and private to this process; drvaudit never writes the file.
/// Another process truncating or rewriting a file during the scan could fault or change the
/// bytes, a risk every mmap-based reader (ripgrep, crash-dump tools) accepts for the speed of
/// not copying inputs; every read goes through bounds-checked slices of the map.
#[allow(unsafe_code)]
pub fn map_readonly(file: &File) -> std::io::Result<memmap2::Mmap> {
    unsafe { memmap2::Mmap::map(file) }
}
