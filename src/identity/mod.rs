//! Who a driver is, independent of its signature: the version resource, the imphash and the
//! flat file hashes. These are the identities blocklists are written against (LOLDrivers lists
//! MD5/SHA-1/SHA-256 and imphash; WDAC `FileAttrib` rules compare `OriginalFilename` and the
//! file version) and the facts `identify` prints for humans.
//!
//! - [`version`]: `RT_VERSION` → `VS_VERSIONINFO` (fixed file/product version and the
//!   StringFileInfo strings), from an image in file layout or in loaded layout (an image carved
//!   from a crash dump). Parsed by hand with every offset bounds-checked; see that module for
//!   the format sources.
//! - [`imphash`]: the import hash exactly as pefile's `get_imphash()` computes it.
//! - [`flat_hashes`]: MD5, SHA-1 and SHA-256 of the file's bytes, in one pass.
//!
//! The module depends only on std and hashing crates, so the image model can call it on the
//! bytes it already holds.

mod hashes;
mod imphash;
mod ordinals;
pub mod version;

pub use hashes::{flat_hashes, FlatHashes};
pub use imphash::{imphash, ImportName};
pub use version::{version_info, FixedFileInfo, Layout, StringTable, VersionError, VersionInfo};
