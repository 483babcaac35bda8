//! What every list shares: the matcher's input ([`Subject`]) and output ([`Match`]), the
//! error type, the size caps, and the field readers both loaders use.

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

impl Category {
    /// Lower-case name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Category::Vulnerable => "vulnerable",
            Category::Malicious => "malicious",
            Category::Blocked => "blocked",
        }
    }
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

    /// What the hash is of, for a message.
    pub fn describe(self) -> &'static str {
        match self {
            HashKind::FlatMd5 => "MD5 of the whole file",
            HashKind::FlatSha1 => "SHA-1 of the whole file",
            HashKind::FlatSha256 => "SHA-256 of the whole file",
            HashKind::AuthenticodeMd5 => "Authenticode MD5",
            HashKind::AuthenticodeSha1 => "Authenticode SHA-1",
            HashKind::AuthenticodeSha256 => "Authenticode SHA-256",
            HashKind::PageSha1 => "first-page hash SHA-1",
            HashKind::PageSha256 => "first-page hash SHA-256",
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
    pub(super) fn all(&self) -> impl Iterator<Item = &str> {
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
    /// For a file whose Authenticode-hashed data does not end on 8 bytes (an unsigned file of
    /// odd length): its Authenticode MD5, SHA-1 and SHA-256 without the zero padding Windows
    /// hashes after it. Windows (and so SiPolicy hash rules) pads; VirusTotal and the tools
    /// LOLDrivers' hashes come from do not; an Authenticode hash rule matches either.
    pub authenticode_unpadded: Option<[String; 3]>,
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
        .chain(self.authenticode_unpadded.iter().flat_map(|u| {
            [
                HashKind::AuthenticodeMd5,
                HashKind::AuthenticodeSha1,
                HashKind::AuthenticodeSha256,
            ]
            .into_iter()
            .zip(u.iter())
            .filter(|(_, h)| !h.is_empty())
            .filter_map(|(k, h)| Some((k, hex::decode(h).ok()?)))
        }))
        .collect()
    }
}

/// Which of a driver's hashes the loaded lists can match on besides its flat and Authenticode
/// SHA-256, which are always given: each costs a pass of a hash over the file, so a hash
/// is computed only when some entry could match through it alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HashNeeds {
    /// Some list is loaded (or `identify` runs): the Authenticode SHA-256 is needed.
    pub any: bool,
    pub flat_md5: bool,
    pub flat_sha1: bool,
    pub authenticode_md5: bool,
    pub authenticode_sha1: bool,
    /// First-page hashes (SiPolicy `Hash Page` rules; one 4 KiB page, cheap).
    pub pages: bool,
}

impl HashNeeds {
    /// What either needs.
    pub fn union(self, o: HashNeeds) -> HashNeeds {
        HashNeeds {
            any: self.any || o.any,
            flat_md5: self.flat_md5 || o.flat_md5,
            flat_sha1: self.flat_sha1 || o.flat_sha1,
            authenticode_md5: self.authenticode_md5 || o.authenticode_md5,
            authenticode_sha1: self.authenticode_sha1 || o.authenticode_sha1,
            pages: self.pages || o.pages,
        }
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
