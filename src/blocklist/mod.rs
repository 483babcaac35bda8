//! Known vulnerable and malicious driver lists, and a matcher over a driver's identities.
//!
//! Lists (see `../shared/reference/package-gating.md` §4 for the formats):
//! - LOLDrivers (github.com/magicsword-io/LOLDrivers): the `yaml/` folder (one file per driver,
//!   schema `bin/spec/drivers.spec.json`), its `drivers.json` (the same objects in one array) or
//!   `drivers.csv` (one row per driver, sample hashes joined with `", "`) — [`loldrivers`];
//! - SiPolicy XML (`urn:schemas-microsoft-com:sipolicy`): Microsoft's recommended driver block
//!   rules and WDAC deny policies such as LOLDrivers' `DenyPolicy.xml` — [`sipolicy`].
//!
//! [`load`] picks the loader from the path. A list that cannot be read is a typed
//! [`BlocklistError`] naming the file, the line or entry, and why; the caller reports it as an
//! incomplete input, since a gate that silently loses its blocklist would pass what it should
//! stop.
//!
//! [`Blocklist::matches`] takes a plain [`Subject`] (hashes, version resource facts, signer
//! chains) so it depends on no image or signature type; every hash lookup is a hash-map probe.
//! A LOLDrivers `SHA256` (or `MD5`/`SHA1`) field is compared with both the flat and the
//! Authenticode hash of the same algorithm, because some entries hold Authenticode hashes copied
//! from Microsoft's list (LOLDrivers PR #274); the match says which one it was.

pub mod loldrivers;
mod model;
mod prune;
pub mod sipolicy;
mod yaml;

use std::path::Path;

pub use model::{
    BlocklistError, Category, CertFacts, HashKind, HashNeeds, ListKind, Match, MatchRule,
    SignatureFacts, Strength, Subject, TbsHashes, MAX_FILE_BYTES, MAX_FOLDER_BYTES,
    MAX_FOLDER_FILES,
};

/// A loaded list.
#[derive(Debug)]
pub struct Blocklist {
    /// The path as given.
    pub source: String,
    pub kind: ListKind,
    content: Content,
}

#[derive(Debug)]
enum Content {
    Lol(loldrivers::LolDrivers),
    Policy(sipolicy::SiPolicy),
}

impl Blocklist {
    /// The LOLDrivers data, for a LOLDrivers list.
    pub fn loldrivers(&self) -> Option<&loldrivers::LolDrivers> {
        match &self.content {
            Content::Lol(l) => Some(l),
            Content::Policy(_) => None,
        }
    }
    /// The policy, for a SiPolicy list.
    pub fn sipolicy(&self) -> Option<&sipolicy::SiPolicy> {
        match &self.content {
            Content::Policy(p) => Some(p),
            Content::Lol(_) => None,
        }
    }
    /// The hashes besides the SHA-256s that an entry of this list can match through alone.
    pub fn needs(&self) -> HashNeeds {
        let n = match &self.content {
            Content::Lol(l) => l.needs(),
            Content::Policy(p) => p.needs(),
        };
        HashNeeds { any: true, ..n }
    }

    /// Every entry of this list that `subject` matches, sorted.
    pub fn matches(&self, subject: &Subject) -> Vec<Match> {
        let mut out = match &self.content {
            Content::Lol(l) => l.matches(subject, &self.source, self.kind),
            Content::Policy(p) => p.matches(subject, &self.source),
        };
        out.sort();
        out.dedup();
        out
    }
}

/// Loads the list at `path`: a directory is a LOLDrivers folder (its `yaml/` subfolder when it
/// has one, else its `*.yaml`/`*.yml` files), `*.json` is LOLDrivers' drivers.json, `*.csv` its
/// drivers.csv, `*.xml` a SiPolicy.
pub fn load(path: &Path) -> Result<Blocklist, BlocklistError> {
    load_with(path, loldrivers::LoadOptions::default())
}

/// [`load`] with LOLDrivers load options (certificates).
pub fn load_with(path: &Path, opts: loldrivers::LoadOptions) -> Result<Blocklist, BlocklistError> {
    let source = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| BlocklistError::Io {
        path: path.to_owned(),
        source,
    })?;
    if meta.is_dir() {
        let l = loldrivers::LolDrivers::load_folder_with(path, opts)?;
        return Ok(Blocklist {
            source,
            kind: ListKind::LolDriversYaml,
            content: Content::Lol(l),
        });
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let (kind, content) = match ext.as_str() {
        "json" => (
            ListKind::LolDriversJson,
            Content::Lol(loldrivers::LolDrivers::load_json(path, opts)?),
        ),
        "csv" => (
            ListKind::LolDriversCsv,
            Content::Lol(loldrivers::LolDrivers::load_csv(path)?),
        ),
        "xml" => (
            ListKind::SiPolicy,
            Content::Policy(sipolicy::SiPolicy::load(path)?),
        ),
        "yaml" | "yml" => (
            ListKind::LolDriversYaml,
            Content::Lol(loldrivers::LolDrivers::load_yaml_files(
                &[path.to_owned()],
                opts,
            )?),
        ),
        _ => {
            return Err(BlocklistError::UnknownKind {
                path: path.to_owned(),
                why: "expected a LOLDrivers folder, .yaml, .json or .csv, or a SiPolicy .xml"
                    .into(),
            })
        }
    };
    Ok(Blocklist {
        source,
        kind,
        content,
    })
}

/// A list already in memory, of the given kind (a LOLDrivers YAML file is one driver's),
/// parsed exactly as [`load_with`] parses a file; `path` names it in errors and as the source.
pub fn from_bytes(
    path: &Path,
    kind: ListKind,
    bytes: &[u8],
    opts: loldrivers::LoadOptions,
) -> Result<Blocklist, BlocklistError> {
    let content = match kind {
        ListKind::LolDriversYaml => {
            Content::Lol(loldrivers::LolDrivers::from_yaml(path, bytes, opts)?)
        }
        ListKind::LolDriversJson => {
            Content::Lol(loldrivers::LolDrivers::from_json(path, bytes, opts)?)
        }
        ListKind::LolDriversCsv => Content::Lol(loldrivers::LolDrivers::from_csv(path, bytes)?),
        ListKind::SiPolicy => Content::Policy(sipolicy::SiPolicy::from_bytes(path, bytes)?),
    };
    Ok(Blocklist {
        source: path.display().to_string(),
        kind,
        content,
    })
}

#[cfg(test)]
mod tests {
    use super::model::{cves_in, parse_hash, parse_version};
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(parse_version("10.0.19041.1"), Some([10, 0, 19041, 1]));
        assert_eq!(parse_version("65535.65535.65535.65535"), Some([65535; 4]));
        assert_eq!(parse_version("1.2.3"), None);
        assert_eq!(parse_version("1.2.3.65536"), None);
        assert_eq!(parse_version("1.2.3.4.5"), None);
        assert!(parse_hash("ab", &[2]).is_ok());
        assert!(parse_hash("zz", &[2]).unwrap_err().contains("not hex"));
        assert!(parse_hash("abc", &[2, 4]).unwrap_err().contains("2 or 4"));
        assert_eq!(
            cves_in("System Mechanic cve-2018-5701; CVE-2018-5701, CVE-2019-16098 CVE-12"),
            vec!["CVE-2018-5701", "CVE-2019-16098"]
        );
    }

    #[test]
    fn oversized_and_unknown_lists_are_refused_before_reading() {
        let t = tempfile::tempdir().unwrap();
        let big = t.path().join("huge.xml");
        // Sparse: the size is refused from the metadata, nothing is read.
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_FILE_BYTES + 1)
            .unwrap();
        let e = load(&big).unwrap_err();
        assert!(
            matches!(e, BlocklistError::TooLarge { size, .. } if size == MAX_FILE_BYTES + 1),
            "{e}"
        );
        let other = t.path().join("list.txt");
        std::fs::write(&other, "x").unwrap();
        assert!(matches!(
            load(&other),
            Err(BlocklistError::UnknownKind { .. })
        ));
        assert!(matches!(
            load(&t.path().join("absent.xml")),
            Err(BlocklistError::Io { .. })
        ));
    }
}
