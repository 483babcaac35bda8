//! Driver packages in the scan: a folder or archive that holds an INF. Its INFs and the
//! catalogs they name are read and parsed once per package — a folder's are shared by every
//! driver in it through [`FolderPackages`] — and its INFs become inputs of their own, checked by
//! the package-level rules.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::authenticode::Catalog;
use crate::inf::{Arch, Inf};
use crate::packageinfo::{CatalogFile, InfFile, PackageInfo, MAX_PACKAGE_FILE};

/// Builds a package's facts from its file list and a reader of its files' bytes (which says
/// why when it cannot read one: the INF or catalog is then kept with that reason, never
/// dropped, so that the checks and the notices can say so).
pub(crate) fn build(
    display: String,
    files: Vec<String>,
    arches: Vec<Arch>,
    read: impl Fn(&str) -> Result<Vec<u8>, String>,
) -> Option<PackageInfo> {
    let infs: Vec<InfFile> = files
        .iter()
        .filter(|f| f.to_ascii_lowercase().ends_with(".inf"))
        .map(|path| match read(path) {
            Ok(bytes) => {
                use crate::authenticode::DigestAlgorithm::{Sha1, Sha256};
                let flat = crate::authenticode::pe::flat_digests(&bytes, &[Sha1, Sha256]);
                InfFile {
                    path: path.clone(),
                    sha1: hex::encode(&flat[0]),
                    sha256: hex::encode(&flat[1]),
                    inf: Inf::parse(&bytes).map_err(|e| e.to_string()),
                }
            }
            Err(why) => InfFile {
                path: path.clone(),
                sha1: String::new(),
                sha256: String::new(),
                inf: Err(why),
            },
        })
        .collect();
    if infs.is_empty() {
        return None;
    }
    let mut catalogs = BTreeMap::new();
    for path in files
        .iter()
        .filter(|f| f.to_ascii_lowercase().ends_with(".cat"))
    {
        let catalog =
            read(path).and_then(|bytes| Catalog::parse(&bytes).map_err(|e| e.to_string()));
        catalogs.insert(
            path.to_ascii_lowercase(),
            CatalogFile {
                path: path.clone(),
                catalog,
            },
        );
    }
    Some(PackageInfo {
        display,
        files,
        infs,
        catalogs,
        arches,
    })
}

/// The INF architecture of a PE image, from its header (`None` when it is not one).
pub(crate) fn arch_of(bytes: &[u8]) -> Option<Arch> {
    let pe = u32::from_le_bytes(bytes.get(0x3c..0x40)?.try_into().ok()?) as usize;
    let m = bytes.get(pe + 4..pe + 6)?;
    Arch::from_machine(u16::from_le_bytes([m[0], m[1]]))
}

/// Reads a package file whole, refusing one over [`MAX_PACKAGE_FILE`].
fn read_small(path: &Path) -> Result<Vec<u8>, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("cannot read: {e}"))?
        .len();
    if len > MAX_PACKAGE_FILE {
        return Err(format!(
            "{len} bytes, more than the {} MiB an INF or catalog may have",
            MAX_PACKAGE_FILE >> 20
        ));
    }
    std::fs::read(path).map_err(|e| format!("cannot read: {e}"))
}

/// A folder's package, built once: `None` when the folder holds no INF.
type PackageCell = OnceLock<Option<Arc<PackageInfo>>>;

/// The folder packages of a scan, each built the first time one of its files is audited.
///
/// Only the most recent [`KEPT`] are kept: the walk audits a folder's files close together,
/// and a DriverStore has thousands of package folders whose parsed INFs and catalogs would
/// otherwise all stay in memory to the end of the scan. A folder met again after its package
/// was dropped has it built again (the same facts, read again).
#[derive(Default)]
pub(crate) struct FolderPackages {
    cells: Mutex<Kept>,
}

/// The kept packages, and the order they were first asked for (oldest first).
#[derive(Default)]
struct Kept {
    by_dir: HashMap<PathBuf, Arc<PackageCell>>,
    order: std::collections::VecDeque<PathBuf>,
}

/// How many folder packages are kept at once.
const KEPT: usize = 256;

impl FolderPackages {
    /// The package of the folder `dir` (shown as `display`), or `None` when it holds no INF.
    pub(crate) fn of(&self, dir: &Path, display: &str) -> Option<Arc<PackageInfo>> {
        let cell = {
            let mut kept = self.cells.lock().unwrap_or_else(|p| p.into_inner());
            match kept.by_dir.get(dir) {
                Some(c) => c.clone(),
                None => {
                    let c = Arc::new(PackageCell::new());
                    kept.by_dir.insert(dir.to_path_buf(), c.clone());
                    kept.order.push_back(dir.to_path_buf());
                    if kept.order.len() > KEPT {
                        if let Some(old) = kept.order.pop_front() {
                            kept.by_dir.remove(&old);
                        }
                    }
                    c
                }
            }
        };
        // Built outside the map's lock: another folder's package is not kept waiting.
        cell.get_or_init(|| Self::build(dir, display).map(Arc::new))
            .clone()
    }

    fn build(dir: &Path, display: &str) -> Option<PackageInfo> {
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if !files
            .iter()
            .any(|f| f.to_ascii_lowercase().ends_with(".inf"))
        {
            return None;
        }
        files.sort();
        let mut arches: Vec<Arch> = files
            .iter()
            .filter(|f| f.to_ascii_lowercase().ends_with(".sys"))
            .filter_map(|f| {
                let mut head = vec![0u8; 4096];
                let mut file = std::fs::File::open(dir.join(f)).ok()?;
                let n = std::io::Read::read(&mut file, &mut head).ok()?;
                arch_of(&head[..n])
            })
            .collect();
        arches.sort_by_key(|a| a.name());
        arches.dedup();
        build(display.to_string(), files, arches, |name| {
            read_small(&dir.join(name))
        })
    }
}
