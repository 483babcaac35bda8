//! A driver package as the checks see it: a folder, `.zip` or `.cab` holding at least one INF,
//! with the catalogs its INFs name and the names of every file it holds.
//!
//! Built once per package (a folder's is shared by every driver in it) from bytes the pipeline
//! reads: the INFs parsed ([`crate::inf`]), the catalogs they name parsed
//! ([`crate::authenticode::Catalog`]), and the package's file list. Checks then ask which
//! catalog covers a driver, and whether a file's hash is in it.

use std::collections::BTreeMap;

use crate::authenticode::{Catalog, DigestAlgorithm};
use crate::inf::{Arch, Inf};

/// Largest INF or catalog read from a package: real INFs are kilobytes, WHQL catalogs of
/// large packages a few MiB.
pub const MAX_PACKAGE_FILE: u64 = 64 << 20;

/// One INF of a package.
pub struct InfFile {
    /// Its path inside the package (`/`-separated; `x.inf` for a folder's).
    pub path: String,
    /// Its flat hashes (catalogs list an INF by them), lower-case hex.
    pub sha1: String,
    /// SHA-256, lower-case hex.
    pub sha256: String,
    /// The parsed INF, or why it could not be read or was refused.
    pub inf: Result<Inf, String>,
}

/// One catalog a package holds.
pub struct CatalogFile {
    /// Its path inside the package.
    pub path: String,
    /// The parsed catalog, or why it cannot be read.
    pub catalog: Result<Catalog, String>,
}

/// A driver package.
pub struct PackageInfo {
    /// The package as reports name it (the folder, or the archive's display path).
    pub display: String,
    /// Every file's path inside the package, `/`-separated, in order.
    pub files: Vec<String>,
    /// Its INFs.
    pub infs: Vec<InfFile>,
    /// Its catalogs, by lower-case path.
    pub catalogs: BTreeMap<String, CatalogFile>,
    /// The INF architectures of its drivers (from their PE headers), for the checks that
    /// depend on the architecture.
    pub arches: Vec<Arch>,
}

/// What covers a driver: the INF that copies it and the catalog that INF names for its
/// architecture.
pub struct Coverage<'a> {
    /// The INF.
    pub inf: &'a InfFile,
    /// The catalog's name as the INF writes it.
    pub catalog_name: String,
    /// The catalog, when the package holds it.
    pub catalog: Option<&'a CatalogFile>,
}

impl PackageInfo {
    /// The catalog named `name` (as an INF writes it: a file name in the INF's folder).
    pub fn catalog(&self, inf: &InfFile, name: &str) -> Option<&CatalogFile> {
        let dir = inf.path.rsplit_once('/').map_or("", |(d, _)| d);
        let path = if dir.is_empty() {
            name.to_string()
        } else {
            format!("{dir}/{name}")
        };
        self.catalogs.get(&path.to_ascii_lowercase())
    }

    /// The Authenticode algorithms the package's readable catalogs list members by: what a
    /// driver of the package is hashed with to be looked up in them.
    pub fn catalog_algorithms(&self) -> Vec<DigestAlgorithm> {
        let mut out: Vec<DigestAlgorithm> = Vec::new();
        for c in self.catalogs.values() {
            if let Ok(cat) = &c.catalog {
                for a in member_algorithms(cat) {
                    if !out.contains(&a) {
                        out.push(a);
                    }
                }
            }
        }
        out
    }

    /// The INFs that copy the file `name` (a driver's file name) for `arch`, with the catalog
    /// each names for it.
    pub fn coverage(&self, name: &str, arch: Arch) -> Vec<Coverage<'_>> {
        let mut out = Vec::new();
        for f in &self.infs {
            let Ok(inf) = &f.inf else { continue };
            let copies = inf.copied_files(arch).iter().any(|c| {
                c.source.eq_ignore_ascii_case(name) || c.destination.eq_ignore_ascii_case(name)
            });
            if !copies {
                continue;
            }
            let Some(cat) = inf.catalog_file(arch) else {
                out.push(Coverage {
                    inf: f,
                    catalog_name: String::new(),
                    catalog: None,
                });
                continue;
            };
            out.push(Coverage {
                inf: f,
                catalog: self.catalog(f, &cat.file),
                catalog_name: cat.file,
            });
        }
        out
    }
}

/// Whether `catalog` lists a PE file by one of its Authenticode digests (`digest(alg)` computes
/// them on demand: SHA-1 first, as most catalogs use it, then SHA-256).
pub fn lists_pe(catalog: &Catalog, digest: impl Fn(DigestAlgorithm) -> Option<Vec<u8>>) -> bool {
    // A digest no member could equal is not computed: a catalog of SHA-256 members never
    // lists a SHA-1 digest (a member matches by its hash, or by a tag of the hash's length or
    // its hex), and an Authenticode pass over the file costs as much as the rest of its checks.
    member_algorithms(catalog)
        .into_iter()
        .filter_map(digest)
        .any(|d| catalog.find(&d).is_some())
}

/// The Authenticode algorithms a member of `catalog` could be listed by (SHA-1 first): a
/// member matches by its hash, or by a tag of the hash's length or its hex.
pub fn member_algorithms(catalog: &Catalog) -> Vec<DigestAlgorithm> {
    let (mut sha1, mut sha256) = (false, false);
    for m in &catalog.members {
        for len in [
            m.digest().map(|(_, d)| d.len()),
            Some(m.tag.len()),
            Some(m.tag_text.len() / 2),
        ]
        .into_iter()
        .flatten()
        {
            sha1 |= len == 20;
            sha256 |= len == 32;
        }
        if sha1 && sha256 {
            break;
        }
    }
    let mut out = Vec::new();
    if sha1 {
        out.push(DigestAlgorithm::Sha1);
    }
    if sha256 {
        out.push(DigestAlgorithm::Sha256);
    }
    out
}

/// Whether `catalog` lists a file by its flat SHA-1 or SHA-256 (hex).
pub fn lists_flat(catalog: &Catalog, sha1: &str, sha256: &str) -> bool {
    [sha1, sha256]
        .iter()
        .filter_map(|h| hex::decode(h).ok())
        .any(|d| catalog.find(&d).is_some())
}
