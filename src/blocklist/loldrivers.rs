//! LOLDrivers loaders (YAML folder, drivers.json, drivers.csv) and hash/imphash lookup.
//!
//! Schema (the repository's `bin/spec/drivers.spec.json` and the files themselves): a driver has
//! `Id`, `Category` ("vulnerable driver" or "malicious"), `CVE` (a list or a string; one file
//! spells it `CVEs`), `Tags` (file names) and `KnownVulnerableSamples[]`, each with `Filename`,
//! `MD5`/`SHA1`/`SHA256`, `Authentihash{MD5,SHA1,SHA256}` (23 samples spell these
//! `AuthentihashMD5`/`AuthentihashSHA1`/`AuthentihashSHA256`), `Imphash`, `OriginalFilename`,
//! `FileVersion`, `Publisher`, `MachineType` and `Signatures` (a list, or a mapping) whose
//! `Certificates[]` have `Subject` and `TBS{MD5,SHA1,SHA256,SHA384}`. Empty strings, `null` and
//! `-` mean "not known". A present hash that is not hex of its algorithm's length makes the
//! list malformed: a gate must not quietly lose an entry.
//!
//! drivers.csv has one row per driver and joins the values of all its samples with `", "`;
//! it does not keep samples apart (an empty value is simply left out), so its matches carry
//! no sample index.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::model::{
    parse_hash, read_capped, BlocklistError, Category, HashKind, HashNeeds, ListKind, Match,
    MatchRule, Strength, Subject, MAX_FOLDER_BYTES, MAX_FOLDER_FILES,
};
use super::yaml::{self, Node};

/// A certificate listed for a sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LolCertificate {
    pub subject: Option<String>,
    /// (algorithm name as in the file: `MD5`, `SHA1`, `SHA256`, `SHA384`; lower-case hex).
    pub tbs: Vec<(String, String)>,
}

/// One `KnownVulnerableSamples` item. Hashes are lower-case hex.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LolSample {
    /// Position in `KnownVulnerableSamples`; `None` for drivers.csv.
    pub index: Option<usize>,
    pub filename: Option<String>,
    pub md5: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub authentihash_md5: Option<String>,
    pub authentihash_sha1: Option<String>,
    pub authentihash_sha256: Option<String>,
    pub imphash: Option<String>,
    pub original_filename: Option<String>,
    pub file_version: Option<String>,
    pub publisher: Option<String>,
    pub machine_type: Option<String>,
    pub certificates: Vec<LolCertificate>,
    /// Whether the Authentihash fields were spelled `AuthentihashMD5` etc. (field names in
    /// matches follow the file).
    flat_auth_keys: bool,
}

/// One driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LolEntry {
    pub id: String,
    pub category: Category,
    pub cves: Vec<String>,
    pub tags: Vec<String>,
    /// `file:line` (YAML) or `file#entry N` / `file#row N`.
    pub location: String,
    pub samples: Vec<LolSample>,
}

/// Which field of a sample a hash came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Md5,
    Sha1,
    Sha256,
    AuthMd5,
    AuthSha1,
    AuthSha256,
}

impl Field {
    fn name(self, flat_auth_keys: bool) -> &'static str {
        match (self, flat_auth_keys) {
            (Field::Md5, _) => "MD5",
            (Field::Sha1, _) => "SHA1",
            (Field::Sha256, _) => "SHA256",
            (Field::AuthMd5, false) => "Authentihash.MD5",
            (Field::AuthSha1, false) => "Authentihash.SHA1",
            (Field::AuthSha256, false) => "Authentihash.SHA256",
            (Field::AuthMd5, true) => "AuthentihashMD5",
            (Field::AuthSha1, true) => "AuthentihashSHA1",
            (Field::AuthSha256, true) => "AuthentihashSHA256",
        }
    }
}

/// What to load beyond the matching facts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Also load each sample's `Signatures[].Certificates[]` (subject, TBS hashes). The matcher
    /// does not use them, and they double the YAML the parser reads.
    pub certificates: bool,
}

impl LoadOptions {
    fn keep(self) -> yaml::Keep {
        if self.certificates {
            keep_with_certificates
        } else {
            keep
        }
    }
}

/// A loaded LOLDrivers list with its lookup tables.
#[derive(Debug, Default)]
pub struct LolDrivers {
    pub entries: Vec<LolEntry>,
    /// Hash bytes → (entry, sample, field). The byte length tells the algorithm.
    by_hash: HashMap<Vec<u8>, Vec<(u32, u32, Field)>>,
    by_imphash: HashMap<Vec<u8>, Vec<(u32, u32)>>,
}

/// The keys the loader reads for matching; everything else (imports, sections, commands,
/// certificates, ...) is skipped without being built.
fn keep(path: &[&str], key: &str) -> bool {
    match path {
        [] => matches!(
            key,
            "Id" | "Category" | "CVE" | "CVEs" | "Tags" | "KnownVulnerableSamples"
        ),
        ["KnownVulnerableSamples"] => matches!(
            key,
            "Filename"
                | "MD5"
                | "SHA1"
                | "SHA256"
                | "Authentihash"
                | "AuthentihashMD5"
                | "AuthentihashSHA1"
                | "AuthentihashSHA256"
                | "Imphash"
                | "OriginalFilename"
                | "FileVersion"
                | "Publisher"
                | "MachineType"
        ),
        ["KnownVulnerableSamples", "Authentihash"] => true,
        _ => false,
    }
}

/// [`keep`] plus the samples' signing certificates (subject and TBS hashes): half of the kept
/// text again, so only when asked for ([`LoadOptions::certificates`]).
fn keep_with_certificates(path: &[&str], key: &str) -> bool {
    match path {
        ["KnownVulnerableSamples"] if key == "Signatures" => true,
        ["KnownVulnerableSamples", "Signatures"] => key == "Certificates",
        ["KnownVulnerableSamples", "Signatures", "Certificates"] => {
            matches!(key, "Subject" | "TBS")
        }
        ["KnownVulnerableSamples", "Signatures", "Certificates", "TBS"] => true,
        _ => keep(path, key),
    }
}

/// Where a node is, for messages: a line (YAML) or an entry (JSON).
#[derive(Clone, Copy)]
enum At {
    Yaml,
    Json(usize),
}

impl At {
    fn of(self, n: &Node) -> String {
        match self {
            At::Yaml => n.line().to_string(),
            At::Json(i) => format!("entry {i}"),
        }
    }
}

fn entry_err(path: &Path, at: String, why: impl Into<String>) -> BlocklistError {
    BlocklistError::Entry {
        path: path.to_owned(),
        at,
        why: why.into(),
    }
}

/// A scalar's text, treating empty, `-` and YAML null spellings as absent.
fn text(n: Option<&Node>) -> Option<String> {
    let s = n?.as_str()?.trim();
    if s.is_empty() || s == "-" || s == "~" || s.eq_ignore_ascii_case("null") {
        None
    } else {
        Some(s.to_string())
    }
}

/// A list of strings from a sequence or a single scalar.
fn strings(n: Option<&Node>) -> Vec<String> {
    match n {
        Some(Node::Seq(items, _)) => items.iter().filter_map(|i| text(Some(i))).collect(),
        Some(s @ Node::Scalar(..)) => text(Some(s)).into_iter().collect(),
        _ => Vec::new(),
    }
}

fn hash_field(
    path: &Path,
    at: At,
    parent: &Node,
    key: &str,
    hex_len: usize,
) -> Result<Option<String>, BlocklistError> {
    let Some(n) = parent.get(key) else {
        return Ok(None);
    };
    let Some(t) = text(Some(n)) else {
        return Ok(None);
    };
    parse_hash(&t, &[hex_len]).map_err(|why| entry_err(path, at.of(n), format!("{key}: {why}")))?;
    Ok(Some(t.to_ascii_lowercase()))
}

fn entry_from_node(
    path: &Path,
    at: At,
    root: &Node,
    location: String,
) -> Result<LolEntry, BlocklistError> {
    if !matches!(root, Node::Map(..)) {
        return Err(entry_err(
            path,
            at.of(root),
            "a driver entry is not a mapping",
        ));
    }
    let id = text(root.get("Id")).ok_or_else(|| entry_err(path, at.of(root), "no Id"))?;
    let category = match text(root.get("Category")).as_deref() {
        Some(c) if c.eq_ignore_ascii_case("vulnerable driver") => Category::Vulnerable,
        Some(c) if c.eq_ignore_ascii_case("malicious") => Category::Malicious,
        other => {
            return Err(entry_err(
                path,
                at.of(root.get("Category").unwrap_or(root)),
                format!(
                    "{id}: Category {other:?} is neither \"vulnerable driver\" nor \"malicious\""
                ),
            ))
        }
    };
    let mut cves = strings(root.get("CVE"));
    cves.extend(strings(root.get("CVEs")));
    let tags = strings(root.get("Tags"));
    let mut samples = Vec::new();
    match root.get("KnownVulnerableSamples") {
        None => {}
        Some(Node::Seq(items, _)) => {
            for (i, s) in items.iter().enumerate() {
                samples.push(sample_from_node(path, at, s, i)?);
            }
        }
        Some(other) => {
            return Err(entry_err(
                path,
                at.of(other),
                "KnownVulnerableSamples is not a list",
            ))
        }
    }
    Ok(LolEntry {
        id,
        category,
        cves,
        tags,
        location,
        samples,
    })
}

fn sample_from_node(
    path: &Path,
    at: At,
    s: &Node,
    index: usize,
) -> Result<LolSample, BlocklistError> {
    if !matches!(s, Node::Map(..)) {
        return Err(entry_err(
            path,
            at.of(s),
            format!("sample {index} is not a mapping"),
        ));
    }
    let mut out = LolSample {
        index: Some(index),
        filename: text(s.get("Filename")),
        md5: hash_field(path, at, s, "MD5", 32)?,
        sha1: hash_field(path, at, s, "SHA1", 40)?,
        sha256: hash_field(path, at, s, "SHA256", 64)?,
        imphash: hash_field(path, at, s, "Imphash", 32)?,
        original_filename: text(s.get("OriginalFilename")),
        file_version: text(s.get("FileVersion")),
        publisher: text(s.get("Publisher")),
        machine_type: text(s.get("MachineType")),
        ..LolSample::default()
    };
    match s.get("Authentihash") {
        Some(a @ Node::Map(..)) => {
            out.authentihash_md5 = hash_field(path, at, a, "MD5", 32)?;
            out.authentihash_sha1 = hash_field(path, at, a, "SHA1", 40)?;
            out.authentihash_sha256 = hash_field(path, at, a, "SHA256", 64)?;
        }
        Some(n @ (Node::Seq(..) | Node::Scalar(..))) if text(Some(n)).is_some() => {
            return Err(entry_err(path, at.of(n), "Authentihash is not a mapping"))
        }
        _ => {}
    }
    let flat = (
        hash_field(path, at, s, "AuthentihashMD5", 32)?,
        hash_field(path, at, s, "AuthentihashSHA1", 40)?,
        hash_field(path, at, s, "AuthentihashSHA256", 64)?,
    );
    if flat.0.is_some() || flat.1.is_some() || flat.2.is_some() {
        out.flat_auth_keys = true;
        out.authentihash_md5 = out.authentihash_md5.or(flat.0);
        out.authentihash_sha1 = out.authentihash_sha1.or(flat.1);
        out.authentihash_sha256 = out.authentihash_sha256.or(flat.2);
    }
    let sigs: Vec<&Node> = match s.get("Signatures") {
        Some(Node::Seq(v, _)) => v.iter().collect(),
        Some(m @ Node::Map(..)) => vec![m],
        _ => Vec::new(),
    };
    for sig in sigs {
        if let Some(Node::Seq(certs, _)) = sig.get("Certificates") {
            for c in certs {
                let mut tbs = Vec::new();
                if let Some(Node::Map(m, _)) = c.get("TBS") {
                    for (k, v) in m {
                        if let Some(t) = text(Some(v)) {
                            tbs.push((k.clone(), t.to_ascii_lowercase()));
                        }
                    }
                }
                out.certificates.push(LolCertificate {
                    subject: text(c.get("Subject")),
                    tbs,
                });
            }
        }
    }
    Ok(out)
}

/// A JSON value as a [`Node`] (keeping only what `keep` wants; no line numbers).
fn json_node(v: &serde_json::Value, path: &mut Vec<String>, keep: yaml::Keep) -> Node {
    use serde_json::Value;
    match v {
        Value::Null => Node::Scalar(String::new(), 0),
        Value::Bool(b) => Node::Scalar(b.to_string(), 0),
        Value::Number(n) => Node::Scalar(n.to_string(), 0),
        Value::String(s) => Node::Scalar(s.clone(), 0),
        Value::Array(a) => Node::Seq(a.iter().map(|i| json_node(i, path, keep)).collect(), 0),
        Value::Object(o) => {
            let mut m = Vec::new();
            for (k, val) in o {
                let p: Vec<&str> = path.iter().map(String::as_str).collect();
                if keep(&p, k) {
                    path.push(k.clone());
                    m.push((k.clone(), json_node(val, path, keep)));
                    path.pop();
                }
            }
            Node::Map(m, 0)
        }
    }
}

impl LolDrivers {
    /// Loads a LOLDrivers folder: its `yaml/` subfolder if present, else the folder's own
    /// `*.yaml`/`*.yml` files, in name order, parsed in parallel.
    pub fn load_folder(dir: &Path) -> Result<Self, BlocklistError> {
        Self::load_folder_with(dir, LoadOptions::default())
    }

    /// [`Self::load_folder`] with options.
    pub fn load_folder_with(dir: &Path, opts: LoadOptions) -> Result<Self, BlocklistError> {
        let sub = dir.join("yaml");
        let dir = if sub.is_dir() { sub } else { dir.to_owned() };
        let io = |source| BlocklistError::Io {
            path: dir.clone(),
            source,
        };
        let mut files: Vec<PathBuf> = Vec::new();
        let mut total = 0u64;
        for e in std::fs::read_dir(&dir).map_err(io)? {
            let e = e.map_err(io)?;
            let p = e.path();
            let is_yaml = p
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| x.eq_ignore_ascii_case("yaml") || x.eq_ignore_ascii_case("yml"));
            if !is_yaml {
                continue;
            }
            total += e.metadata().map(|m| m.len()).unwrap_or(0);
            files.push(p);
            if files.len() > MAX_FOLDER_FILES || total > MAX_FOLDER_BYTES {
                return Err(BlocklistError::FolderTooLarge {
                    path: dir,
                    limit: if files.len() > MAX_FOLDER_FILES {
                        MAX_FOLDER_FILES as u64
                    } else {
                        MAX_FOLDER_BYTES
                    },
                });
            }
        }
        if files.is_empty() {
            return Err(BlocklistError::UnknownKind {
                path: dir,
                why: "the folder has no .yaml files".into(),
            });
        }
        files.sort();
        Self::load_yaml_files(&files, opts)
    }

    /// Loads the given YAML files (one driver each), in parallel.
    pub fn load_yaml_files(files: &[PathBuf], opts: LoadOptions) -> Result<Self, BlocklistError> {
        let parsed: Vec<Result<Option<LolEntry>, BlocklistError>> = files
            .par_iter()
            .map(|p| Self::yaml_file(p, opts.keep()))
            .collect();
        let mut entries = Vec::with_capacity(parsed.len());
        for r in parsed {
            if let Some(e) = r? {
                entries.push(e);
            }
        }
        Ok(Self::indexed(entries))
    }

    fn yaml_file(path: &Path, keep: yaml::Keep) -> Result<Option<LolEntry>, BlocklistError> {
        let bytes = read_capped(path)?;
        Self::yaml_bytes(path, &bytes, keep)
    }

    /// One driver's YAML file already in memory (as [`Self::load_yaml_files`] reads each);
    /// `path` names it in errors.
    pub fn from_yaml(path: &Path, bytes: &[u8], opts: LoadOptions) -> Result<Self, BlocklistError> {
        let entries = Self::yaml_bytes(path, bytes, opts.keep())?
            .into_iter()
            .collect();
        Ok(Self::indexed(entries))
    }

    fn yaml_bytes(
        path: &Path,
        bytes: &[u8],
        keep: yaml::Keep,
    ) -> Result<Option<LolEntry>, BlocklistError> {
        let text = std::str::from_utf8(bytes).map_err(|e| BlocklistError::Yaml {
            path: path.to_owned(),
            line: 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count(),
            column: 0,
            message: format!("not UTF-8: {e}"),
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        // The pre-pass blanks the skipped subtrees (exactly, or not at all: see `prune`).
        let pruned = super::prune::prune(text, keep);
        let root = match &pruned {
            Some(p) => yaml::parse_mapped(&p.text, keep, Some(&p.lines)),
            None => yaml::parse(text, keep),
        }
        .map_err(|e| BlocklistError::Yaml {
            path: path.to_owned(),
            line: e.line,
            column: e.column,
            message: e.message,
        })?;
        let Some(root) = root else {
            return Err(entry_err(path, "1".into(), "empty file"));
        };
        let location = format!("{}:{}", path.display(), root.line());
        entry_from_node(path, At::Yaml, &root, location).map(Some)
    }

    /// Loads drivers.json (an array of driver objects as in the YAML files).
    pub fn load_json(path: &Path, opts: LoadOptions) -> Result<Self, BlocklistError> {
        let bytes = read_capped(path)?;
        Self::from_json(path, &bytes, opts)
    }

    /// drivers.json already in memory; `path` names it in errors.
    pub fn from_json(path: &Path, bytes: &[u8], opts: LoadOptions) -> Result<Self, BlocklistError> {
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|source| BlocklistError::Json {
                path: path.to_owned(),
                source,
            })?;
        let serde_json::Value::Array(items) = v else {
            return Err(entry_err(
                path,
                "1".into(),
                "drivers.json is not an array of drivers",
            ));
        };
        let mut entries = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let node = json_node(item, &mut Vec::new(), opts.keep());
            let location = format!("{}#entry {i}", path.display());
            entries.push(entry_from_node(path, At::Json(i), &node, location)?);
        }
        Ok(Self::indexed(entries))
    }

    /// Loads drivers.csv.
    pub fn load_csv(path: &Path) -> Result<Self, BlocklistError> {
        let bytes = read_capped(path)?;
        Self::from_csv(path, &bytes)
    }

    /// drivers.csv already in memory; `path` names it in errors.
    pub fn from_csv(path: &Path, bytes: &[u8]) -> Result<Self, BlocklistError> {
        let csv_err = |source| BlocklistError::Csv {
            path: path.to_owned(),
            source,
        };
        let mut rd = csv::ReaderBuilder::new().flexible(false).from_reader(bytes);
        let headers = rd.headers().map_err(csv_err)?.clone();
        let col = |name: &str| {
            headers
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| entry_err(path, "1".into(), format!("no {name:?} column")))
        };
        let id_c = col("Id")?;
        let cat_c = col("Category")?;
        let tags_c = col("Tags")?;
        let hash_cols = [
            (col("KnownVulnerableSamples_MD5")?, Field::Md5, 32),
            (col("KnownVulnerableSamples_SHA1")?, Field::Sha1, 40),
            (col("KnownVulnerableSamples_SHA256")?, Field::Sha256, 64),
            (
                col("KnownVulnerableSamples_Authentihash_MD5")?,
                Field::AuthMd5,
                32,
            ),
            (
                col("KnownVulnerableSamples_Authentihash_SHA1")?,
                Field::AuthSha1,
                40,
            ),
            (
                col("KnownVulnerableSamples_Authentihash_SHA256")?,
                Field::AuthSha256,
                64,
            ),
        ];
        let mut entries = Vec::new();
        for rec in rd.records() {
            let rec = rec.map_err(csv_err)?;
            let line = rec.position().map(|p| p.line()).unwrap_or(0);
            let at = format!("row at line {line}");
            let id = rec.get(id_c).unwrap_or("").trim().to_string();
            if id.is_empty() {
                return Err(entry_err(path, at, "empty Id"));
            }
            let category = match rec.get(cat_c).unwrap_or("").trim() {
                c if c.eq_ignore_ascii_case("vulnerable driver") => Category::Vulnerable,
                c if c.eq_ignore_ascii_case("malicious") => Category::Malicious,
                c => {
                    return Err(entry_err(
                        path,
                        at,
                        format!(
                        "{id}: Category {c:?} is neither \"vulnerable driver\" nor \"malicious\""
                    ),
                    ))
                }
            };
            let mut samples = Vec::new();
            for &(c, field, len) in &hash_cols {
                for v in rec.get(c).unwrap_or("").split(',') {
                    let v = v.trim();
                    if v.is_empty() || v == "-" {
                        continue;
                    }
                    parse_hash(v, &[len]).map_err(|why| {
                        entry_err(
                            path,
                            at.clone(),
                            format!("{id}: {}: {why}", headers.get(c).unwrap_or("?")),
                        )
                    })?;
                    let v = Some(v.to_ascii_lowercase());
                    let mut s = LolSample::default();
                    match field {
                        Field::Md5 => s.md5 = v,
                        Field::Sha1 => s.sha1 = v,
                        Field::Sha256 => s.sha256 = v,
                        Field::AuthMd5 => s.authentihash_md5 = v,
                        Field::AuthSha1 => s.authentihash_sha1 = v,
                        Field::AuthSha256 => s.authentihash_sha256 = v,
                    }
                    samples.push(s);
                }
            }
            let tags = rec
                .get(tags_c)
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect();
            entries.push(LolEntry {
                id,
                category,
                cves: Vec::new(),
                tags,
                location: format!("{}:{line}", path.display()),
                samples,
            });
        }
        Ok(Self::indexed(entries))
    }

    fn indexed(entries: Vec<LolEntry>) -> Self {
        let mut by_hash: HashMap<Vec<u8>, Vec<(u32, u32, Field)>> = HashMap::new();
        let mut by_imphash: HashMap<Vec<u8>, Vec<(u32, u32)>> = HashMap::new();
        for (ei, e) in entries.iter().enumerate() {
            for (si, s) in e.samples.iter().enumerate() {
                for (h, f) in [
                    (&s.md5, Field::Md5),
                    (&s.sha1, Field::Sha1),
                    (&s.sha256, Field::Sha256),
                    (&s.authentihash_md5, Field::AuthMd5),
                    (&s.authentihash_sha1, Field::AuthSha1),
                    (&s.authentihash_sha256, Field::AuthSha256),
                ] {
                    // Validated as hex when loaded.
                    if let Some(b) = h.as_deref().and_then(|h| hex::decode(h).ok()) {
                        by_hash
                            .entry(b)
                            .or_default()
                            .push((ei as u32, si as u32, f));
                    }
                }
                if let Some(b) = s.imphash.as_deref().and_then(|h| hex::decode(h).ok()) {
                    by_imphash
                        .entry(b)
                        .or_default()
                        .push((ei as u32, si as u32));
                }
            }
        }
        LolDrivers {
            entries,
            by_hash,
            by_imphash,
        }
    }

    /// Number of samples (or, for drivers.csv, hash values) loaded.
    pub fn sample_count(&self) -> usize {
        self.entries.iter().map(|e| e.samples.len()).sum()
    }

    /// The hashes besides the SHA-256s that a sample can match through alone: a sample is
    /// matched by its strongest hash of each kind (a file with the sample's MD5 has the
    /// sample's SHA-256 too), so SHA-1 is computed only when some sample lists no SHA-256 of
    /// that kind, and MD5 when some lists neither (in the 2026 snapshot: 19 samples for the
    /// flat SHA-1, 2 for the flat MD5, 6 for the Authenticode SHA-1, none for its MD5).
    pub(super) fn needs(&self) -> HashNeeds {
        let mut n = HashNeeds::default();
        let has = |h: &Option<String>| h.as_deref().is_some_and(|v| !v.is_empty());
        // Each sample by its strongest hash of each kind: SHA-256, else SHA-1, else MD5.
        for s in self.entries.iter().flat_map(|e| &e.samples) {
            if !has(&s.sha256) {
                n.flat_sha1 |= has(&s.sha1);
                n.flat_md5 |= !has(&s.sha1) && has(&s.md5);
            }
            if !has(&s.authentihash_sha256) {
                n.authenticode_sha1 |= has(&s.authentihash_sha1);
                n.authenticode_md5 |= !has(&s.authentihash_sha1) && has(&s.authentihash_md5);
            }
        }
        n
    }

    pub(super) fn matches(&self, subject: &Subject, list: &str, kind: ListKind) -> Vec<Match> {
        let mut out = Vec::new();
        let make = |ei: u32, si: u32, rule: MatchRule, strength: Strength| {
            let e = &self.entries[ei as usize];
            let s = &e.samples[si as usize];
            Match {
                list: list.to_string(),
                list_kind: kind,
                entry_id: e.id.clone(),
                sample: s.index,
                name: s.filename.clone().or_else(|| e.tags.first().cloned()),
                cves: e.cves.clone(),
                category: e.category,
                strength,
                rule,
                location: e.location.clone(),
            }
        };
        for (input, bytes) in subject.hashes() {
            if matches!(input, HashKind::PageSha1 | HashKind::PageSha256) {
                continue; // LOLDrivers lists no page hashes
            }
            for &(ei, si, field) in self.by_hash.get(&bytes).into_iter().flatten() {
                let s = &self.entries[ei as usize].samples[si as usize];
                out.push(make(
                    ei,
                    si,
                    MatchRule::Hash {
                        field: field.name(s.flat_auth_keys).to_string(),
                        input,
                    },
                    Strength::Identity,
                ));
            }
        }
        if let Some(b) = subject.imphash.as_deref().and_then(|h| hex::decode(h).ok()) {
            for &(ei, si) in self.by_imphash.get(&b).into_iter().flatten() {
                out.push(make(ei, si, MatchRule::Imphash, Strength::Similarity));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::{yaml, LoadOptions, LolDrivers};
    use std::io::Write;
    use std::path::PathBuf;

    const MD5: &str = "0123456789abcdef0123456789abcdef";
    const SHA256: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    const AUTH256: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::File::create(&p)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        p
    }

    fn yaml_entry(id: &str, extra: &str) -> String {
        format!(
            "Id: {id}\nTags:\n- a.sys\nCategory: vulnerable driver\nCVE:\n- CVE-2020-1234\nCommands:\n  Command: sc.exe create x\n    type=kernel\nKnownVulnerableSamples:\n- Filename: a.sys\n  MD5: {MD5}\n  SHA256: {SHA256}\n  Imphash: {MD5}\n  Authentihash:\n    MD5: ''\n    SHA1: '-'\n    SHA256: {AUTH256}\n  ImportedFunctions:\n  - IoCreateDevice\n  Signatures:\n  - Certificates:\n    - Subject: CN=X\n      TBS:\n        SHA1: {sha1}\n{extra}",
            sha1 = "a".repeat(40)
        )
    }

    #[test]
    fn yaml_folder_loads_and_matches_every_hash_form() {
        let t = tempfile::tempdir().unwrap();
        write(t.path(), "a.yaml", &yaml_entry("id-a", ""));
        // PR #274: an Authenticode hash in the SHA256 field, with flat-key spelling.
        write(
            t.path(),
            "b.yml",
            &format!("Id: id-b\nCategory: malicious\nTags: []\nKnownVulnerableSamples:\n- Filename: b.sys\n  SHA256: {AUTH256}\n  AuthentihashSHA256: {AUTH256}\n"),
        );
        write(t.path(), "ignored.txt", "not yaml");
        let l = load(t.path()).unwrap();
        assert_eq!(l.kind, ListKind::LolDriversYaml);
        let lol = l.loldrivers().unwrap();
        assert_eq!(lol.entries.len(), 2);
        assert_eq!(lol.entries[0].cves, vec!["CVE-2020-1234"]);
        assert_eq!(lol.entries[0].samples[0].authentihash_md5, None);
        assert!(
            lol.entries[0].samples[0].certificates.is_empty(),
            "not loaded by default"
        );
        let with =
            LolDrivers::load_folder_with(t.path(), LoadOptions { certificates: true }).unwrap();
        let c = &with.entries[0].samples[0].certificates[0];
        assert_eq!(
            (c.subject.as_deref(), c.tbs[0].0.as_str()),
            (Some("CN=X"), "SHA1")
        );
        let subject = Subject {
            flat_sha256: Some(SHA256.to_uppercase()),
            authenticode_sha256: Some(AUTH256.into()),
            flat_md5: Some(MD5.into()),
            imphash: Some(MD5.into()),
            ..Subject::default()
        };
        let got: Vec<String> = l
            .matches(&subject)
            .iter()
            .map(|m| match &m.rule {
                MatchRule::Hash { field, input } => format!(
                    "{}#{}:{field}={}",
                    m.entry_id,
                    m.sample.unwrap(),
                    input.as_str()
                ),
                MatchRule::Imphash => format!("{}#{}:imphash", m.entry_id, m.sample.unwrap()),
                r => format!("{r:?}"),
            })
            .collect();
        let mut want = vec![
            "id-a#0:MD5=flat-md5",
            "id-a#0:SHA256=flat-sha256",
            "id-a#0:Authentihash.SHA256=auth-sha256",
            "id-a#0:imphash",
            "id-b#0:SHA256=auth-sha256",
            "id-b#0:AuthentihashSHA256=auth-sha256",
        ];
        want.sort();
        let mut got_sorted = got.clone();
        got_sorted.sort();
        assert_eq!(got_sorted, want);
        let m = &l.matches(&subject)[0];
        assert!(m.location.ends_with(":1"), "{}", m.location);
        assert!(l.matches(&Subject::default()).is_empty());
    }

    #[test]
    fn malformed_yaml_lists_name_file_line_and_why() {
        let t = tempfile::tempdir().unwrap();
        let bad = yaml_entry("id-a", "").replace(SHA256, "00112233");
        let p = write(t.path(), "bad.yaml", &bad);
        let e = load(t.path()).unwrap_err().to_string();
        assert!(
            e.contains("bad.yaml:13: SHA256: hash \"00112233\" has 8 hex digits, expected 64"),
            "{e}"
        );
        write(t.path(), "bad.yaml", "Id: x\nCategory: benign\n");
        let e = load(t.path()).unwrap_err().to_string();
        assert!(e.contains("bad.yaml:2:") && e.contains("benign"), "{e}");
        write(t.path(), "bad.yaml", "Id: x\n  Category: [\n");
        assert!(matches!(
            load(&p).unwrap_err(),
            BlocklistError::Yaml { line: 2, .. }
        ));
        write(t.path(), "bad.yaml", "Category: malicious\n");
        assert!(load(t.path()).unwrap_err().to_string().contains("no Id"));
        // Billion laughs, refused at the first alias.
        let mut bomb = String::from("Id: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n");
        for (i, c) in "bcdefghi".chars().enumerate() {
            let prev = (b'a' + i as u8) as char;
            bomb.push_str(&format!(
                "{c}: &{c} [{}]\n",
                vec![format!("*{prev}"); 9].join(",")
            ));
        }
        write(t.path(), "bad.yaml", &bomb);
        let t0 = std::time::Instant::now();
        let e = load(t.path()).unwrap_err();
        assert!(t0.elapsed().as_millis() < 200);
        assert!(
            matches!(&e, BlocklistError::Yaml { line: 2, message, .. } if message.contains("aliases")),
            "{e}"
        );
        // Not UTF-8.
        std::fs::write(t.path().join("bad.yaml"), b"Id: \xff\n").unwrap();
        assert!(load(t.path())
            .unwrap_err()
            .to_string()
            .contains("not UTF-8"));
        // Empty folder.
        let t2 = tempfile::tempdir().unwrap();
        assert!(matches!(
            load(t2.path()),
            Err(BlocklistError::UnknownKind { .. })
        ));
    }

    /// The pre-pass is exact on the real data: every LOLDrivers file is pruned, and the kept
    /// tree (values and lines) is the one the YAML parser builds from the whole file.
    #[test]
    fn prune_is_exact_on_the_real_folder() {
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/data/loldrivers/yaml");
        let Ok(rd) = std::fs::read_dir(&dir) else {
            eprintln!("SKIPPED: {} is absent", dir.display());
            return;
        };
        let files: Vec<PathBuf> = rd.map(|e| e.unwrap().path()).collect();
        assert_eq!(files.len(), 661);
        let (mut bytes, mut kept) = (0, 0);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for keep in [super::keep as yaml::Keep, super::keep_with_certificates] {
                let p = super::super::prune::prune(&text, keep)
                    .unwrap_or_else(|| panic!("{} declined", f.display()));
                assert_eq!(
                    yaml::parse_mapped(&p.text, keep, Some(&p.lines)).unwrap(),
                    yaml::parse(&text, keep).unwrap(),
                    "{}",
                    f.display()
                );
                kept += p.text.len();
            }
            bytes += text.len();
        }
        eprintln!("pre-pass keeps {kept} of {bytes} bytes (with and without certificates)");
    }

    #[test]
    fn json_and_csv() {
        let t = tempfile::tempdir().unwrap();
        let j = write(
            t.path(),
            "drivers.json",
            &format!("[{{\"Id\":\"j1\",\"Category\":\"malicious\",\"CVE\":[],\"Tags\":[\"m.sys\"],\"KnownVulnerableSamples\":[{{\"Filename\":\"m.sys\",\"SHA256\":\"{SHA256}\",\"Authentihash\":{{\"SHA256\":\"{AUTH256}\"}},\"Sections\":{{\".text\":{{}}}}}}]}}]"),
        );
        let l = load(&j).unwrap();
        assert_eq!(l.kind, ListKind::LolDriversJson);
        let m = l.matches(&Subject {
            authenticode_sha256: Some(AUTH256.into()),
            ..Subject::default()
        });
        assert_eq!(m.len(), 1);
        assert_eq!(
            (m[0].entry_id.as_str(), m[0].sample, m[0].category),
            ("j1", Some(0), Category::Malicious)
        );
        assert!(m[0].location.ends_with("#entry 0"));
        write(t.path(), "drivers.json", "[{\"Id\":\"j1\",\"Category\":\"malicious\",\"KnownVulnerableSamples\":[{\"MD5\":\"xyz\"}]}]");
        assert!(load(&j).unwrap_err().to_string().contains("entry 0: MD5"));
        write(t.path(), "drivers.json", "[{\"Id\":");
        assert!(matches!(load(&j), Err(BlocklistError::Json { .. })));

        let c = write(
            t.path(),
            "drivers.csv",
            &format!("\"Id\",\"Category\",\"KnownVulnerableSamples_MD5\",\"KnownVulnerableSamples_SHA1\",\"KnownVulnerableSamples_SHA256\",\"KnownVulnerableSamples_Authentihash_MD5\",\"KnownVulnerableSamples_Authentihash_SHA1\",\"KnownVulnerableSamples_Authentihash_SHA256\",\"Tags\"\n\"c1\",\"vulnerable driver\",\"{MD5}, {}\",\"\",\"{SHA256}\",\"\",\"\",\"{AUTH256}\",\"x.sys, y.sys\"\n", "f".repeat(32)),
        );
        let l = load(&c).unwrap();
        assert_eq!(l.kind, ListKind::LolDriversCsv);
        assert_eq!(l.loldrivers().unwrap().sample_count(), 4);
        let m = l.matches(&Subject {
            flat_md5: Some("F".repeat(32)),
            ..Subject::default()
        });
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].sample, m[0].name.as_deref()), (None, Some("x.sys")));
        write(
            t.path(),
            "drivers.csv",
            "\"Id\",\"Category\"\n\"c1\",\"malicious\"\n",
        );
        assert!(load(&c)
            .unwrap_err()
            .to_string()
            .contains("no \"Tags\" column"));
    }
}
