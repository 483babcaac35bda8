//! Finding the debug file of an image: the PDB its CodeView (RSDS) record names, or the file a
//! `.gnu_debuglink` section names.
//!
//! Where a PDB is looked for, in order (ci-and-ide.md §4; Microsoft Learn, "Symbol path for
//! Windows debuggers" and "SymStore"):
//! 1. beside the image: the record's file name, then the image's own stem + `.pdb`;
//! 2. the record's full path, when it is absolute on this machine and not a network (UNC) path;
//! 3. every `--symbols DIR`, then every local folder of `_NT_SYMBOL_PATH`, each for both names:
//!    plain (`DIR/name.pdb`) and in the symbol-store layout
//!    (`DIR/name.pdb/<GUID without dashes><age in hex>/name.pdb`). `srv*`, `cache*` and
//!    `symsrv*` entries are stores (only the store layout); plain entries get both layouts.
//!
//! The network is never used: `http(s)://` parts and UNC (`\\server\share`) folders of a symbol
//! path are skipped, and said so in the report. A PDB is used only when its GUID and age equal
//! the record's; the age compared is the DBI stream's, which the linker writes to match the
//! image (the information stream's age may be bumped by later tools), or the information
//! stream's when the DBI has none. Every file looked at is kept in a [`SearchReport`] with the
//! reason it was not used, so a miss is one line saying what was looked for, where, and why.

use std::fmt;
use std::path::{Path, PathBuf};

use super::error::shown;

/// A GUID in the order it is printed (`{95435CEC-4AB1-04C5-E86B-FBEA4416C4A3}`): Data1, Data2
/// and Data3 big-endian, then Data4.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// From the 16 bytes as a CodeView record stores them (Data1..3 little-endian).
    pub fn from_codeview_bytes(b: [u8; 16]) -> Guid {
        let mut g = b;
        g[..4].reverse();
        g[4..6].reverse();
        g[6..8].reverse();
        Guid(g)
    }

    /// The symbol-store directory name for this GUID and `age`: 32 upper-case hex digits
    /// without dashes, then the age in upper-case hex without leading zeros.
    pub fn store_key(&self, age: u32) -> String {
        let mut s = String::with_capacity(40);
        for b in self.0 {
            s.push_str(&format!("{b:02X}"));
        }
        s.push_str(&format!("{age:X}"));
        s
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = |r: std::ops::Range<usize>| {
            self.0[r]
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<String>()
        };
        write!(
            f,
            "{{{}-{}-{}-{}-{}}}",
            h(0..4),
            h(4..6),
            h(6..8),
            h(8..10),
            h(10..16)
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What an image's CodeView (RSDS) record says about its PDB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeViewRef {
    /// The PDB path as recorded (often an absolute build path, or just a file name).
    pub pdb_path: String,
    pub guid: Guid,
    pub age: u32,
}

impl CodeViewRef {
    /// The record's file name: the part after the last `\` or `/`.
    pub fn file_name(&self) -> &str {
        self.pdb_path
            .rsplit(['\\', '/'])
            .next()
            .unwrap_or(&self.pdb_path)
    }
}

/// Where to look besides the image's own folder.
#[derive(Debug, Clone, Default)]
pub struct SymbolSearch {
    /// `--symbols DIR` (and the config's), in order: plain folders or symbol stores.
    pub symbol_dirs: Vec<PathBuf>,
    /// The value of `_NT_SYMBOL_PATH`, if any (only its local folders are used).
    pub nt_symbol_path: Option<String>,
}

impl SymbolSearch {
    /// `symbol_dirs` plus `_NT_SYMBOL_PATH` from the environment.
    pub fn with_environment(symbol_dirs: Vec<PathBuf>) -> SymbolSearch {
        SymbolSearch {
            symbol_dirs,
            nt_symbol_path: std::env::var("_NT_SYMBOL_PATH").ok(),
        }
    }
}

/// How a folder lays out debug files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `DIR/name.pdb` and the store layout `DIR/name.pdb/<key>/name.pdb`.
    PlainOrStore,
    /// Only the store layout (a `srv*`/`cache*`/`symsrv*` downstream store).
    Store,
}

/// One local folder of a symbol path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolFolder {
    pub dir: PathBuf,
    pub layout: Layout,
}

/// `_NT_SYMBOL_PATH` parsed: its local folders, and the parts skipped because they are on the
/// network (or name a default cache folder this tool does not guess).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SymbolPath {
    pub folders: Vec<SymbolFolder>,
    pub skipped: Vec<String>,
}

/// Whether a symbol-path part is remote: a URL or a UNC path.
fn is_remote(part: &str) -> bool {
    part.contains("://") || part.starts_with("\\\\") || part.starts_with("//")
}

/// Parses a symbol path (`;`-separated): `srv*LOCAL*…`/`SRV*…`, `cache*LOCAL`,
/// `symsrv*symsrv.dll*LOCAL*…`, plain folders. For each `*` entry, its local folders are the
/// store components that are not remote; the upstream (usually `https://…`) is never used.
pub fn parse_symbol_path(value: &str) -> SymbolPath {
    let mut out = SymbolPath::default();
    for entry in value.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let parts: Vec<&str> = entry.split('*').collect();
        let head = parts[0].to_ascii_lowercase();
        let stores: &[&str] = match head.as_str() {
            "srv" | "cache" if parts.len() > 1 => &parts[1..],
            "symsrv" if parts.len() > 2 => &parts[2..],
            "srv" | "cache" | "symsrv" => {
                out.skipped.push(format!("{entry} (no local folder named)"));
                continue;
            }
            _ => {
                if parts.len() > 1 {
                    out.skipped
                        .push(format!("{entry} (not a srv*, cache* or symsrv* entry)"));
                } else if is_remote(entry) {
                    out.skipped.push(format!("{entry} (network)"));
                } else {
                    out.folders.push(SymbolFolder {
                        dir: PathBuf::from(entry),
                        layout: Layout::PlainOrStore,
                    });
                }
                continue;
            }
        };
        for store in stores {
            if store.is_empty() {
                out.skipped.push(format!(
                    "{entry}: an empty store (the debugger's default cache folder)"
                ));
            } else if is_remote(store) {
                out.skipped.push(format!("{store} (network)"));
            } else {
                out.folders.push(SymbolFolder {
                    dir: PathBuf::from(store),
                    layout: Layout::Store,
                });
            }
        }
    }
    out
}

/// Where a candidate file came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The image's own folder.
    BesideImage,
    /// The path recorded in the CodeView record.
    Recorded,
    /// A `--symbols` folder (plain layout).
    SymbolDir,
    /// A `--symbols` folder in the symbol-store layout.
    SymbolStore,
    /// A local folder of `_NT_SYMBOL_PATH` (plain layout).
    NtSymbolPath,
    /// A local store of `_NT_SYMBOL_PATH`.
    NtSymbolStore,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Place::BesideImage => "beside the driver",
            Place::Recorded => "recorded path",
            Place::SymbolDir => "--symbols",
            Place::SymbolStore => "--symbols store",
            Place::NtSymbolPath => "_NT_SYMBOL_PATH",
            Place::NtSymbolStore => "_NT_SYMBOL_PATH store",
        })
    }
}

/// Why a candidate was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// No such file.
    Absent,
    /// A PDB of another build.
    GuidDiffers { found: Guid },
    /// The same build's PDB at another age.
    AgeDiffers { found: u32 },
    /// A separate DWARF file whose CRC-32 is not the one `.gnu_debuglink` records.
    CrcDiffers { found: u32 },
    /// Present but not readable as the expected kind of file (the reason, one line).
    Unreadable(String),
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Absent => f.write_str("absent"),
            Mismatch::GuidDiffers { found } => write!(f, "GUID differs (the file has {found})"),
            Mismatch::AgeDiffers { found } => write!(f, "age differs (the file has {found})"),
            Mismatch::CrcDiffers { found } => {
                write!(f, "CRC-32 differs (the file has {found:08x})")
            }
            Mismatch::Unreadable(why) => write!(f, "unreadable: {why}"),
        }
    }
}

/// One file looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub path: PathBuf,
    pub place: Place,
    pub mismatch: Mismatch,
}

/// What was wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    Pdb(CodeViewRef),
    DebugLink { file_name: String, crc: u32 },
}

/// A search that found nothing usable: what was wanted, every file looked at and why it did
/// not match, and the symbol-path parts skipped. Its `Display` is one line, for a note-level
/// notification per driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchReport {
    /// The image the debug file was for.
    pub image: String,
    pub wanted: Wanted,
    pub attempts: Vec<Attempt>,
    pub skipped: Vec<String>,
}

impl fmt::Display for SearchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.wanted {
            Wanted::Pdb(cv) => write!(
                f,
                "no matching PDB for {}: wanted {} with GUID {} age {}",
                crate::util::printable_text(self.image.clone()),
                crate::util::printable_text(cv.pdb_path.clone()),
                cv.guid,
                cv.age
            )?,
            Wanted::DebugLink { file_name, crc } => write!(
                f,
                "no matching debug file for {}: wanted {} (.gnu_debuglink, CRC-32 {crc:08x})",
                crate::util::printable_text(self.image.clone()),
                crate::util::printable_text(file_name.clone())
            )?,
        }
        // Files that exist come first, each with its reason; then the absent ones together.
        let mut first = true;
        for a in self
            .attempts
            .iter()
            .filter(|a| a.mismatch != Mismatch::Absent)
        {
            write!(
                f,
                "{} {} ({}): {}",
                if first { ";" } else { "," },
                shown(&a.path),
                a.place,
                a.mismatch
            )?;
            first = false;
        }
        let absent: Vec<&Attempt> = self
            .attempts
            .iter()
            .filter(|a| a.mismatch == Mismatch::Absent)
            .collect();
        if !absent.is_empty() {
            write!(f, "; absent:")?;
            for (k, a) in absent.iter().enumerate() {
                write!(
                    f,
                    "{} {} ({})",
                    if k == 0 { "" } else { "," },
                    shown(&a.path),
                    a.place
                )?;
            }
        }
        if self.attempts.is_empty() {
            write!(f, "; nowhere to look")?;
        }
        for s in &self.skipped {
            write!(f, "; skipped {}", crate::util::printable_text(s.clone()))?;
        }
        Ok(())
    }
}

/// The candidate paths for a debug file named `names` (in order, duplicates removed), with the
/// store key for the store layout (`None`: no store layout, as for `.gnu_debuglink` files).
pub(crate) fn candidates(
    image_path: Option<&Path>,
    names: &[String],
    recorded: Option<&str>,
    store_key: Option<&str>,
    search: &SymbolSearch,
    skipped: &mut Vec<String>,
) -> Vec<(PathBuf, Place)> {
    let mut out: Vec<(PathBuf, Place)> = Vec::new();
    let push = |p: PathBuf, place: Place, out: &mut Vec<(PathBuf, Place)>| {
        if !out.iter().any(|(q, _)| *q == p) {
            out.push((p, place));
        }
    };
    let valid_names: Vec<&String> = names.iter().filter(|n| is_plain_file_name(n)).collect();
    if let Some(dir) = image_path.and_then(Path::parent) {
        for n in &valid_names {
            push(dir.join(n), Place::BesideImage, &mut out);
        }
    }
    if let Some(rec) = recorded {
        // Only a path absolute on this machine: on Linux `C:\x\y.pdb` would be a relative file
        // name with backslashes, resolved against the working directory.
        let p = Path::new(rec);
        if is_remote(rec) {
            skipped.push(format!("{rec} (network)"));
        } else if p.is_absolute() && !(cfg!(not(windows)) && rec.contains('\\')) {
            push(p.to_path_buf(), Place::Recorded, &mut out);
        }
    }
    let nt = search
        .nt_symbol_path
        .as_deref()
        .map(parse_symbol_path)
        .unwrap_or_default();
    skipped.extend(nt.skipped);
    let folders = search
        .symbol_dirs
        .iter()
        .map(|d| {
            (
                d.clone(),
                Layout::PlainOrStore,
                Place::SymbolDir,
                Place::SymbolStore,
            )
        })
        .chain(
            nt.folders
                .into_iter()
                .map(|f| (f.dir, f.layout, Place::NtSymbolPath, Place::NtSymbolStore)),
        );
    for (dir, layout, plain, store) in folders {
        for n in &valid_names {
            if layout == Layout::PlainOrStore {
                push(dir.join(n), plain.clone(), &mut out);
            }
            if let Some(key) = store_key {
                push(dir.join(n).join(key).join(n), store.clone(), &mut out);
            }
        }
    }
    out
}

/// A name usable as one path component: not empty, no separators, not `.`/`..`, no NUL. A
/// hostile record could otherwise point the search anywhere (`..\..\x`).
fn is_plain_file_name(n: &str) -> bool {
    !n.is_empty() && n != "." && n != ".." && !n.contains(['/', '\\', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srv_cache_symsrv_and_plain_entries() {
        let p = parse_symbol_path(
            r"srv*C:\Symbols*https://msdl.microsoft.com/download/symbols;cache*D:\Cache;symsrv*symsrv.dll*E:\Store*https://x.example/s; F:\Plain ;\\server\share;SRV*https://only.example",
        );
        assert_eq!(
            p.folders,
            vec![
                SymbolFolder {
                    dir: r"C:\Symbols".into(),
                    layout: Layout::Store
                },
                SymbolFolder {
                    dir: r"D:\Cache".into(),
                    layout: Layout::Store
                },
                SymbolFolder {
                    dir: r"E:\Store".into(),
                    layout: Layout::Store
                },
                SymbolFolder {
                    dir: r"F:\Plain".into(),
                    layout: Layout::PlainOrStore
                },
            ]
        );
        assert_eq!(
            p.skipped,
            vec![
                "https://msdl.microsoft.com/download/symbols (network)".to_string(),
                "https://x.example/s (network)".into(),
                r"\\server\share (network)".into(),
                "https://only.example (network)".into(),
            ]
        );
    }

    #[test]
    fn srv_with_several_local_stores_and_an_empty_default_cache() {
        let p = parse_symbol_path("srv*/a*/b*https://h.example;srv**https://h.example;cache*");
        assert_eq!(
            p.folders.iter().map(|f| f.dir.clone()).collect::<Vec<_>>(),
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert_eq!(p.skipped.len(), 4, "{:?}", p.skipped);
    }

    #[test]
    fn guid_display_and_store_key() {
        // systeminformer-amd64.sys: llvm-readobj shows PDBGUID bytes EC 5C 43 95 B1 4A C5 04 E8 6B …,
        // llvm-pdbutil the GUID {95435CEC-4AB1-04C5-E86B-FBEA4416C4A3}.
        let g = Guid::from_codeview_bytes([
            0xEC, 0x5C, 0x43, 0x95, 0xB1, 0x4A, 0xC5, 0x04, 0xE8, 0x6B, 0xFB, 0xEA, 0x44, 0x16,
            0xC4, 0xA3,
        ]);
        assert_eq!(g.to_string(), "{95435CEC-4AB1-04C5-E86B-FBEA4416C4A3}");
        assert_eq!(g.store_key(1), "95435CEC4AB104C5E86BFBEA4416C4A31");
        assert_eq!(g.store_key(0x1a), "95435CEC4AB104C5E86BFBEA4416C4A31A");
    }

    #[test]
    fn candidate_order_and_layouts() {
        let cv = CodeViewRef {
            pdb_path: r"C:\build\Release64\SystemInformer.pdb".into(),
            guid: Guid([0x11; 16]),
            age: 2,
        };
        let search = SymbolSearch {
            symbol_dirs: vec!["/syms".into()],
            nt_symbol_path: Some("srv*/cache*https://x.example;/plain".into()),
        };
        let mut skipped = Vec::new();
        let key = cv.guid.store_key(cv.age);
        let names = vec![cv.file_name().to_string(), "systeminformer.pdb".to_string()];
        let c = candidates(
            Some(Path::new("/drv/systeminformer.sys")),
            &names,
            Some(&cv.pdb_path),
            Some(&key),
            &search,
            &mut skipped,
        );
        let k = "11111111111111111111111111111111".to_string() + "2";
        let want: Vec<(PathBuf, Place)> = vec![
            ("/drv/SystemInformer.pdb".into(), Place::BesideImage),
            ("/drv/systeminformer.pdb".into(), Place::BesideImage),
            ("/syms/SystemInformer.pdb".into(), Place::SymbolDir),
            (
                format!("/syms/SystemInformer.pdb/{k}/SystemInformer.pdb").into(),
                Place::SymbolStore,
            ),
            ("/syms/systeminformer.pdb".into(), Place::SymbolDir),
            (
                format!("/syms/systeminformer.pdb/{k}/systeminformer.pdb").into(),
                Place::SymbolStore,
            ),
            (
                format!("/cache/SystemInformer.pdb/{k}/SystemInformer.pdb").into(),
                Place::NtSymbolStore,
            ),
            (
                format!("/cache/systeminformer.pdb/{k}/systeminformer.pdb").into(),
                Place::NtSymbolStore,
            ),
            ("/plain/SystemInformer.pdb".into(), Place::NtSymbolPath),
            (
                format!("/plain/SystemInformer.pdb/{k}/SystemInformer.pdb").into(),
                Place::NtSymbolStore,
            ),
            ("/plain/systeminformer.pdb".into(), Place::NtSymbolPath),
            (
                format!("/plain/systeminformer.pdb/{k}/systeminformer.pdb").into(),
                Place::NtSymbolStore,
            ),
        ];
        assert_eq!(c, want);
        assert_eq!(skipped, vec!["https://x.example (network)".to_string()]);
    }

    #[test]
    fn hostile_record_names_do_not_escape() {
        let mut skipped = Vec::new();
        let c = candidates(
            Some(Path::new("/drv/a.sys")),
            &["..".into(), "x/../../y.pdb".into(), String::new()],
            Some(r"\\evil\share\a.pdb"),
            Some("K"),
            &SymbolSearch::default(),
            &mut skipped,
        );
        assert!(c.is_empty(), "{c:?}");
        assert_eq!(skipped, vec![r"\\evil\share\a.pdb (network)".to_string()]);
    }
}
