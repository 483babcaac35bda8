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
mod prune;
pub mod sipolicy;
mod yaml;

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Largest single list file read (the real ones are at most 1.3 MiB each, 1.1 MiB for the CSV).
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// Most files read from one LOLDrivers folder (661 today).
pub const MAX_FOLDER_FILES: usize = 100_000;
/// Most bytes read from one LOLDrivers folder (19.6 MB today).
pub const MAX_FOLDER_BYTES: u64 = 1 << 30;

/// What the list says the driver is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// LOLDrivers "vulnerable driver".
    Vulnerable,
    /// LOLDrivers "malicious".
    Malicious,
    /// Denied by a SiPolicy (vulnerable or malicious: the policy does not say which).
    Blocked,
}

/// Which loader read a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListKind {
    LolDriversYaml,
    LolDriversJson,
    LolDriversCsv,
    SiPolicy,
}

/// One hash of the subject, named by what it is computed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HashKind {
    FlatMd5,
    FlatSha1,
    FlatSha256,
    AuthenticodeMd5,
    AuthenticodeSha1,
    AuthenticodeSha256,
    /// SHA-1 of the first page (headers, Authenticode-style, zero-padded to 4 KiB).
    PageSha1,
    PageSha256,
}

impl HashKind {
    /// Short name used in messages and truth files (`flat-sha256`, `auth-sha1`, `page-sha256`).
    pub fn as_str(self) -> &'static str {
        match self {
            HashKind::FlatMd5 => "flat-md5",
            HashKind::FlatSha1 => "flat-sha1",
            HashKind::FlatSha256 => "flat-sha256",
            HashKind::AuthenticodeMd5 => "auth-md5",
            HashKind::AuthenticodeSha1 => "auth-sha1",
            HashKind::AuthenticodeSha256 => "auth-sha256",
            HashKind::PageSha1 => "page-sha1",
            HashKind::PageSha256 => "page-sha256",
        }
    }
}

/// TBS hashes of one certificate (hex, any case), by algorithm; WDAC `CertRoot Type="TBS"`
/// values use the certificate's signature hash algorithm, LOLDrivers lists several.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TbsHashes {
    pub md5: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub sha384: Option<String>,
    pub sha512: Option<String>,
}

impl TbsHashes {
    fn all(&self) -> impl Iterator<Item = &str> {
        [
            &self.md5,
            &self.sha1,
            &self.sha256,
            &self.sha384,
            &self.sha512,
        ]
        .into_iter()
        .filter_map(|h| h.as_deref())
    }
}

/// One certificate of a signer's chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertFacts {
    /// Subject common name.
    pub common_name: Option<String>,
    pub tbs: TbsHashes,
}

/// One signature (the primary or a nested one) as the matcher needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignatureFacts {
    /// The signer's chain as built from the embedded certificates, leaf first.
    pub chain: Vec<CertFacts>,
    /// `SpcSpOpusInfo` program name of the signer info: WDAC `CertOemID` compares with it
    /// (WHQL-signed drivers carry the submitting vendor's name there).
    pub opus_program_name: Option<String>,
    /// EKU OIDs (dotted) of the leaf certificate, for `CertEKU` constraints.
    pub leaf_ekus: Vec<String>,
}

/// The facts of one driver the matcher compares with the lists. Hashes are hex (any case);
/// absent facts are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub flat_md5: Option<String>,
    pub flat_sha1: Option<String>,
    pub flat_sha256: Option<String>,
    pub authenticode_md5: Option<String>,
    pub authenticode_sha1: Option<String>,
    pub authenticode_sha256: Option<String>,
    pub page_sha1: Option<String>,
    pub page_sha256: Option<String>,
    /// Version resource strings.
    pub original_filename: Option<String>,
    pub internal_name: Option<String>,
    pub file_description: Option<String>,
    pub product_name: Option<String>,
    /// `VS_FIXEDFILEINFO` file version; WDAC treats a file without one as 0.0.0.0.
    pub file_version: Option<[u16; 4]>,
    pub imphash: Option<String>,
    pub signatures: Vec<SignatureFacts>,
}

impl Subject {
    /// The subject's hashes as (kind, bytes), skipping absent and non-hex ones.
    pub(crate) fn hashes(&self) -> Vec<(HashKind, Vec<u8>)> {
        [
            (HashKind::FlatMd5, &self.flat_md5),
            (HashKind::FlatSha1, &self.flat_sha1),
            (HashKind::FlatSha256, &self.flat_sha256),
            (HashKind::AuthenticodeMd5, &self.authenticode_md5),
            (HashKind::AuthenticodeSha1, &self.authenticode_sha1),
            (HashKind::AuthenticodeSha256, &self.authenticode_sha256),
            (HashKind::PageSha1, &self.page_sha1),
            (HashKind::PageSha256, &self.page_sha256),
        ]
        .into_iter()
        .filter_map(|(k, h)| Some((k, hex::decode(h.as_deref()?).ok()?)))
        .collect()
    }
}

/// Whether a match identifies the driver or only resembles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strength {
    /// A hash, a file-attribute rule or a signer rule: the list means this file.
    Identity,
    /// Same imphash as a listed sample: the same import table, often a rebuild or a sibling
    /// (and, for tiny drivers, sometimes an unrelated one); a hint, not a verdict.
    Similarity,
}

/// Which rule of the list matched.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(tag = "form", rename_all = "kebab-case")]
pub enum MatchRule {
    /// A hash field of the entry (`SHA256`, `Authentihash.SHA1`, SiPolicy `Hash`) equals the
    /// subject's hash of kind `input`.
    Hash { field: String, input: HashKind },
    /// LOLDrivers `Imphash`.
    Imphash,
    /// A SiPolicy Deny rule on version-resource attributes (`FileName` = OriginalFilename, ...)
    /// with its version range.
    FileAttrib {
        attribute: String,
        value: String,
        minimum: Option<[u16; 4]>,
        maximum: Option<[u16; 4]>,
    },
    /// A SiPolicy denied signer: certificate `cert_index` (0 = leaf) of signature
    /// `signature_index` has TBS hash `cert_root`, with the publisher / OEM ID constraints and,
    /// when the signer limits itself to files, the `FileAttrib` rule that matched.
    Signer {
        cert_root: String,
        publisher: Option<String>,
        oem_id: Option<String>,
        file_attrib: Option<String>,
        signature_index: usize,
        cert_index: usize,
    },
}

/// One match of a subject against one list entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Match {
    /// The list file (or folder) as given to [`load`].
    pub list: String,
    pub list_kind: ListKind,
    /// LOLDrivers `Id`; SiPolicy rule `ID` (Deny rules) or `SignerId`.
    pub entry_id: String,
    /// LOLDrivers `KnownVulnerableSamples` index (absent for drivers.csv, which does not keep
    /// samples apart).
    pub sample: Option<usize>,
    /// LOLDrivers sample file name or first tag; SiPolicy `FriendlyName` (signer `Name`).
    pub name: Option<String>,
    pub cves: Vec<String>,
    pub category: Category,
    pub strength: Strength,
    pub rule: MatchRule,
    /// Where the entry is: `file:line` (YAML, XML) or `file#entry` (JSON, CSV).
    pub location: String,
}

/// A blocklist could not be loaded.
#[derive(Debug, Error)]
pub enum BlocklistError {
    #[error("{path}: cannot read blocklist: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {size} bytes is over the {limit}-byte limit for a blocklist file")]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("{path}: the folder holds more than {limit} files or bytes of YAML")]
    FolderTooLarge { path: PathBuf, limit: u64 },
    #[error("{path}: not a blocklist this tool reads: {why}")]
    UnknownKind { path: PathBuf, why: String },
    #[error("{path}:{line}:{column}: malformed YAML: {message}")]
    Yaml {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: malformed JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: malformed CSV: {source}")]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("{path}: malformed XML: {source}")]
    Xml {
        path: PathBuf,
        #[source]
        source: roxmltree::Error,
    },
    /// A well-formed file whose content breaks the list's schema.
    #[error("{path}:{at}: {why}")]
    Entry {
        path: PathBuf,
        /// Line (`12`) or entry (`entry 3`, `row 7`).
        at: String,
        why: String,
    },
}

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

/// Reads a list file, refusing one over [`MAX_FILE_BYTES`] before reading it.
pub(crate) fn read_capped(path: &Path) -> Result<Vec<u8>, BlocklistError> {
    use std::io::Read;
    let io = |source| BlocklistError::Io {
        path: path.to_owned(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    if size > MAX_FILE_BYTES {
        return Err(BlocklistError::TooLarge {
            path: path.to_owned(),
            size,
            limit: MAX_FILE_BYTES,
        });
    }
    let mut buf = Vec::with_capacity(size as usize);
    // `take` also bounds a file that grows while it is read.
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(io)?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(BlocklistError::TooLarge {
            path: path.to_owned(),
            size: buf.len() as u64,
            limit: MAX_FILE_BYTES,
        });
    }
    Ok(buf)
}

/// Parses a dotted 4-part version (`1.2.3.4`, each part 0..=65535).
pub(crate) fn parse_version(s: &str) -> Option<[u16; 4]> {
    let mut out = [0u16; 4];
    let mut parts = s.trim().split('.');
    for slot in &mut out {
        *slot = parts.next()?.trim().parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Decodes a hash of one of the lengths `lens` (hex digits), or explains why not.
pub(crate) fn parse_hash(s: &str, lens: &[usize]) -> Result<Vec<u8>, String> {
    let t = s.trim();
    if !lens.contains(&t.len()) {
        return Err(format!(
            "hash {t:?} has {} hex digits, expected {}",
            t.len(),
            lens.iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(" or ")
        ));
    }
    hex::decode(t).map_err(|e| format!("hash {t:?} is not hex: {e}"))
}

/// CVE identifiers (`CVE-2019-16098`) in free text, upper-cased, in order, without repeats.
pub(crate) fn cves_in(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let up = text.to_ascii_uppercase();
    let b = up.as_bytes();
    let mut i = 0;
    while let Some(p) = up[i..].find("CVE-") {
        let start = i + p;
        let mut j = start + 4;
        let y = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j - y == 4 && j < b.len() && b[j] == b'-' {
            let n = j + 1;
            let mut k = n;
            while k < b.len() && b[k].is_ascii_digit() {
                k += 1;
            }
            if k - n >= 4 {
                let id = up[start..k].to_string();
                if !out.contains(&id) {
                    out.push(id);
                }
                i = k;
                continue;
            }
        }
        i = start + 4;
    }
    out
}

#[cfg(test)]
mod tests {
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
