//! Who a driver is, independent of its signature: the version resource and the imphash (its
//! flat file hashes come from the one hash pass, `authenticode::pe::file_hashes`). These are the identities blocklists are written against (LOLDrivers lists
//! MD5/SHA-1/SHA-256 and imphash; WDAC `FileAttrib` rules compare `OriginalFilename` and the
//! file version) and the facts `identify` prints for humans.
//!
//! - [`version`]: `RT_VERSION` → `VS_VERSIONINFO` (fixed file/product version and the
//!   StringFileInfo strings), from an image in file layout or in loaded layout (an image carved
//!   from a crash dump). Parsed by hand with every offset bounds-checked; see that module for
//!   the format sources.
//! - [`imphash`]: the import hash exactly as pefile's `get_imphash()` computes it.
//!
//! The module depends only on std and `util` (its MD5), so the image model can call it on the
//! bytes it already holds.

mod imphash;
mod ordinals;
pub mod version;

pub use imphash::{imphash, ImportName};
pub use version::{version_info, FixedFileInfo, Layout, StringTable, VersionError, VersionInfo};
