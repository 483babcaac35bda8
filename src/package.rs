//! Driver packages: `.zip` and `.cab` archives opened in memory, their drivers (`.sys`), INFs
//! and catalogs (`.cat`) extracted, and every member named.
//!
//! The zip and cab crates do the format work; this module only picks members and bounds what
//! a hostile archive can make drvaudit allocate.

use std::io::{Cursor, Read};

/// A `.sys`, `.inf` or `.cat` member of a package.
#[derive(Debug)]
pub struct Member {
    /// Path inside the package, forward slashes.
    pub path: String,
    /// Decompressed bytes.
    pub bytes: Vec<u8>,
}

/// Largest member drvaudit will decompress: far above any real driver, far below a zip bomb.
const MAX_MEMBER: u64 = 256 << 20;

/// The members drvaudit reads: drivers, and the INFs and catalogs that make a package.
fn is_driver(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.ends_with(".sys") || n.ends_with(".inf") || n.ends_with(".cat")
}

/// Every file's path in a zip archive (forward slashes), for the INF's "file missing from the
/// package" check; empty when the archive cannot be read (its members' errors say why).
pub fn zip_names(bytes: &[u8]) -> Vec<String> {
    let Ok(archive) = zip::ZipArchive::new(Cursor::new(bytes)) else {
        return Vec::new();
    };
    archive
        .file_names()
        .filter(|n| !n.ends_with('/'))
        .map(|n| n.replace('\\', "/"))
        .collect()
}

/// Every file's path in a cabinet (forward slashes).
pub fn cab_names(bytes: &[u8]) -> Vec<String> {
    let Ok(cabinet) = cab::Cabinet::new(Cursor::new(bytes)) else {
        return Vec::new();
    };
    cabinet
        .folder_entries()
        .flat_map(|f| {
            f.file_entries()
                .map(|e| e.name().replace('\\', "/"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Members plus per-member problems (a member that cannot be read does not lose the others).
pub type Members = (Vec<Member>, Vec<String>);

/// Why a package could not be opened at all.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The zip crate rejected the archive's directory.
    #[error("not a readable zip archive: {0}")]
    Zip(#[source] zip::result::ZipError),
    /// The cab crate rejected the cabinet's header or folders.
    #[error("not a readable cabinet: {0}")]
    Cab(#[source] std::io::Error),
}

fn read_bounded(mut r: impl Read, name: &str, problems: &mut Vec<String>) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    match r.by_ref().take(MAX_MEMBER + 1).read_to_end(&mut bytes) {
        Ok(_) if bytes.len() as u64 > MAX_MEMBER => {
            problems.push(format!("{name}: larger than {MAX_MEMBER} bytes; skipped"));
            None
        }
        Ok(_) => Some(bytes),
        Err(e) => {
            problems.push(format!("{name}: cannot decompress: {e}"));
            None
        }
    }
}

/// The `.sys` members of a zip archive, in archive order.
pub fn zip_members(bytes: &[u8]) -> Result<Members, PackageError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(PackageError::Zip)?;
    let mut members = Vec::new();
    let mut problems = Vec::new();
    for i in 0..archive.len() {
        let file = match archive.by_index(i) {
            Ok(f) => f,
            Err(e) => {
                problems.push(format!("member #{i}: {e}"));
                continue;
            }
        };
        let path = file.name().replace('\\', "/");
        if !file.is_file() || !is_driver(&path) {
            continue;
        }
        if let Some(bytes) = read_bounded(file, &path, &mut problems) {
            members.push(Member { path, bytes });
        }
    }
    Ok((members, problems))
}

/// The `.sys` members of a cabinet, in folder and file order.
pub fn cab_members(bytes: &[u8]) -> Result<Members, PackageError> {
    let mut cabinet = cab::Cabinet::new(Cursor::new(bytes)).map_err(PackageError::Cab)?;
    let names: Vec<String> = cabinet
        .folder_entries()
        .flat_map(|f| {
            f.file_entries()
                .map(|e| e.name().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|n| is_driver(n))
        .collect();
    let mut members = Vec::new();
    let mut problems = Vec::new();
    for name in names {
        let reader = match cabinet.read_file(&name) {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("{name}: cannot decompress: {e}"));
                continue;
            }
        };
        if let Some(bytes) = read_bounded(reader, &name, &mut problems) {
            members.push(Member {
                path: name.replace('\\', "/"),
                bytes,
            });
        }
    }
    Ok((members, problems))
}
