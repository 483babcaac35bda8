//! SiPolicy XML (App Control for Business / WDAC, namespace `urn:schemas-microsoft-com:sipolicy`)
//! as a driver deny list: Microsoft's recommended driver block rules and deny policies such as
//! LOLDrivers' `DenyPolicy.xml`.
//!
//! What applies to a driver (Microsoft Learn "Select the types of rules to create", "Guidance on
//! creating deny policies"; checked against both real policies):
//! - Only the kernel-mode signing scenario, `SigningScenario Value="131"`: its `DeniedSigners`
//!   and the `Deny` rules its `FileRulesRef` lists. LOLDrivers' DenyPolicy.xml puts half of its
//!   hash rules in scenario 12 (user mode) only; those never block a driver.
//! - `Deny Hash=…`: an Authenticode SHA-1/SHA-256 or a first-page SHA-1/SHA-256 (the "Hash Page"
//!   rules), and sometimes a flat file hash (CI falls back to it for files that do not follow
//!   the Authenticode layout; Microsoft's list has such rules). The hash is compared with every
//!   subject hash of the same length and the match says which one it was.
//! - `Deny` with `FileName` (and `InternalName`, `FileDescription`, `ProductName` when a policy
//!   uses another `-SpecificFileNameLevel`) compares with the version resource, case-insensitively,
//!   `FileName` meaning OriginalFilename. Versions compare the fixed file version: both minimum
//!   and maximum → `min <= v <= max`; minimum only (on a deny) → `v <= min`; maximum only →
//!   `v >= max`. A file without a fixed version counts as 0.0.0.0.
//! - `Signer`: `CertRoot Type="TBS"` is the TBS hash of a certificate of the signer's chain
//!   (usually the issuing CA: the "PcaCertificate"/"Publisher" levels), `CertPublisher` the
//!   leaf's subject CN, `CertOemID` the signature's SpcSpOpusInfo program name (WHQL
//!   "WHQLPublisher" rules), `CertEKU` EKUs of the leaf; `FileAttribRef`s limit the signer to
//!   files matching one of those `FileAttrib` rules (the "FilePublisher" level).
//! - `Allow` rules (the allow-all rules of a deny-only policy) and user-mode-only attributes
//!   (`FilePath`, `PackageFamilyName`) never deny a driver.
//!
//! Constraints this module cannot evaluate (`CertRoot Type="Wellknown"`, `CertIssuer`) are
//! listed in [`SiPolicy::notes`] and the signer is not matched, so the caller can report the
//! list as partly evaluated rather than silently weaker.

use std::collections::HashMap;
use std::path::Path;

use roxmltree::{Document, Node, ParsingOptions};

use super::model::{
    cves_in, parse_hash, parse_version, read_capped, BlocklistError, Category, HashKind, HashNeeds,
    ListKind, Match, MatchRule, Strength, Subject,
};

const NS: &str = "urn:schemas-microsoft-com:sipolicy";
/// XML nodes accepted in one policy (Microsoft's list has about 20,000).
const MAX_NODES: u32 = 5_000_000;

/// What a file rule is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Allow,
    Deny,
    FileAttrib,
}

/// A version-resource attribute a rule names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attribute {
    /// `FileName`: the OriginalFilename string.
    FileName,
    InternalName,
    FileDescription,
    ProductName,
    /// User-mode only (packaged apps, paths): never matches a driver.
    PackageFamilyName,
    FilePath,
}

impl Attribute {
    fn xml_name(self) -> &'static str {
        match self {
            Attribute::FileName => "FileName",
            Attribute::InternalName => "InternalName",
            Attribute::FileDescription => "FileDescription",
            Attribute::ProductName => "ProductName",
            Attribute::PackageFamilyName => "PackageFamilyName",
            Attribute::FilePath => "FilePath",
        }
    }
    const ALL: [Attribute; 6] = [
        Attribute::FileName,
        Attribute::InternalName,
        Attribute::FileDescription,
        Attribute::ProductName,
        Attribute::PackageFamilyName,
        Attribute::FilePath,
    ];
    fn of(self, s: &Subject) -> Option<&str> {
        match self {
            Attribute::FileName => s.original_filename.as_deref(),
            Attribute::InternalName => s.internal_name.as_deref(),
            Attribute::FileDescription => s.file_description.as_deref(),
            Attribute::ProductName => s.product_name.as_deref(),
            Attribute::PackageFamilyName | Attribute::FilePath => None,
        }
    }
}

/// One `Allow`, `Deny` or `FileAttrib` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRule {
    pub id: String,
    pub kind: RuleKind,
    pub friendly_name: Option<String>,
    /// `Hash` (upper-case hex as written, and its bytes).
    pub hash: Option<(String, Vec<u8>)>,
    /// Attribute values as written (`FileName="gdrv.sys"`).
    pub attributes: Vec<(Attribute, String)>,
    pub minimum: Option<[u16; 4]>,
    pub maximum: Option<[u16; 4]>,
    pub line: usize,
}

impl FileRule {
    /// Whether the subject's attributes and version satisfy this rule (used as a deny rule or
    /// a signer's file constraint). A rule without attributes matches nothing here.
    fn attributes_match(&self, s: &Subject) -> bool {
        if self.attributes.is_empty() {
            return false;
        }
        let all = self.attributes.iter().all(|(a, v)| {
            a.of(s)
                .is_some_and(|have| have.to_lowercase() == v.to_lowercase())
        });
        all && version_in_range(self.minimum, self.maximum, s.file_version.unwrap_or([0; 4]))
    }
}

/// The deny-rule version semantics (module docs).
fn version_in_range(min: Option<[u16; 4]>, max: Option<[u16; 4]>, v: [u16; 4]) -> bool {
    match (min, max) {
        (Some(lo), Some(hi)) => lo <= v && v <= hi,
        (Some(lo), None) => v <= lo,
        (None, Some(hi)) => v >= hi,
        (None, None) => true,
    }
}

/// One `Signer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub id: String,
    pub name: Option<String>,
    /// `CertRoot Type="TBS"` value (as written) and bytes; `None` for another type.
    pub cert_root: Option<(String, Vec<u8>)>,
    pub publisher: Option<String>,
    pub oem_id: Option<String>,
    /// EKU OIDs (dotted) required of the leaf.
    pub ekus: Vec<String>,
    /// Indexes into [`SiPolicy::rules`] of its `FileAttribRef`s.
    pub file_attribs: Vec<usize>,
    /// Constraints not evaluated (the signer is then never matched).
    pub unsupported: Vec<String>,
    pub line: usize,
}

/// A loaded policy.
#[derive(Debug, Default)]
pub struct SiPolicy {
    pub version: Option<String>,
    pub rules: Vec<FileRule>,
    pub signers: Vec<Signer>,
    /// Indexes into `signers` denied in scenario 131.
    pub kernel_denied_signers: Vec<usize>,
    /// Indexes into `rules` referenced from scenario 131.
    pub kernel_file_rules: Vec<usize>,
    /// What the matcher cannot evaluate, for a notice.
    pub notes: Vec<String>,
    by_hash: HashMap<Vec<u8>, Vec<usize>>,
    by_attribute: HashMap<(Attribute, String), Vec<usize>>,
    by_tbs: HashMap<Vec<u8>, Vec<usize>>,
}

/// Byte offsets where lines start, to turn node positions into 1-based lines in O(log n)
/// (roxmltree's `text_pos_at` rescans the text from its start on every call).
struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Self {
        Lines(
            std::iter::once(0)
                .chain(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1))
                .collect(),
        )
    }
    fn of(&self, n: Node) -> usize {
        self.0.partition_point(|&s| s <= n.range().start)
    }
}

/// The policy text: UTF-8 (optionally with a BOM) or UTF-16LE with a BOM, as PowerShell writes.
fn decode(path: &Path, bytes: &[u8]) -> Result<String, BlocklistError> {
    let bad = |why: &str| BlocklistError::Entry {
        path: path.to_owned(),
        at: "1".into(),
        why: why.into(),
    };
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        if rest.len() % 2 != 0 {
            return Err(bad("UTF-16 text with an odd number of bytes"));
        }
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        return String::from_utf16(&units).map_err(|_| bad("invalid UTF-16"));
    }
    let b = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    std::str::from_utf8(b)
        .map(str::to_owned)
        .map_err(|_| bad("not UTF-8 or UTF-16LE text"))
}

/// Decodes a SiPolicy `EKU Value` (`01` + length + OID content bytes, hex) to a dotted OID.
fn eku_oid(value: &str) -> Option<String> {
    let b = hex::decode(value.trim()).ok()?;
    let (&len, body) = b.get(1..)?.split_first()?;
    if b[0] != 1 || body.len() != len as usize || body.is_empty() {
        return None;
    }
    let mut parts = vec![(body[0] / 40) as u64, (body[0] % 40) as u64];
    let mut acc = 0u64;
    for &x in &body[1..] {
        acc = acc.checked_mul(128)? | (x & 0x7f) as u64;
        if x & 0x80 == 0 {
            parts.push(acc);
            acc = 0;
        }
    }
    Some(
        parts
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."),
    )
}

impl SiPolicy {
    pub fn load(path: &Path) -> Result<Self, BlocklistError> {
        let bytes = read_capped(path)?;
        Self::from_bytes(path, &bytes)
    }

    /// A policy file already in memory (UTF-8 or UTF-16, as [`Self::load`] reads it); `path`
    /// names it in errors.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self, BlocklistError> {
        let text = decode(path, bytes)?;
        Self::parse(path, &text)
    }

    /// Parses policy text (`path` only names it in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Self, BlocklistError> {
        let opts = ParsingOptions {
            allow_dtd: false,
            nodes_limit: MAX_NODES,
            ..ParsingOptions::default()
        };
        let doc =
            Document::parse_with_options(text, opts).map_err(|source| BlocklistError::Xml {
                path: path.to_owned(),
                source,
            })?;
        let lines = Lines::new(text);
        let line_of = |_: &Document, n: Node| lines.of(n);
        let err = |n: Node, why: String| BlocklistError::Entry {
            path: path.to_owned(),
            at: lines.of(n).to_string(),
            why,
        };
        let root = doc.root_element();
        if !root.has_tag_name((NS, "SiPolicy")) {
            return Err(err(
                root,
                format!(
                    "root element is {:?}, not SiPolicy in {NS}",
                    root.tag_name().name()
                ),
            ));
        }
        fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
            n.children().find(|c| c.has_tag_name((NS, name)))
        }
        let mut p = SiPolicy {
            version: child(root, "VersionEx")
                .and_then(|v| v.text())
                .map(|t| t.trim().to_string()),
            ..SiPolicy::default()
        };
        let mut rule_ids: HashMap<String, usize> = HashMap::new();
        if let Some(fr) = child(root, "FileRules") {
            for r in fr.children().filter(|c| c.is_element()) {
                let kind = match r.tag_name().name() {
                    "Allow" => RuleKind::Allow,
                    "Deny" => RuleKind::Deny,
                    "FileAttrib" => RuleKind::FileAttrib,
                    other => {
                        p.notes.push(format!(
                            "line {}: file rule <{other}> is not evaluated",
                            line_of(&doc, r)
                        ));
                        continue;
                    }
                };
                let id = r
                    .attribute("ID")
                    .ok_or_else(|| err(r, "file rule without ID".into()))?
                    .to_string();
                let hash = match r.attribute("Hash") {
                    Some(h) => Some((
                        h.to_string(),
                        parse_hash(h, &[32, 40, 64, 96, 128])
                            .map_err(|why| err(r, format!("{id}: {why}")))?,
                    )),
                    None => None,
                };
                let version = |a: &str| -> Result<Option<[u16; 4]>, BlocklistError> {
                    match r.attribute(a) {
                        None => Ok(None),
                        Some(v) => parse_version(v).map(Some).ok_or_else(|| {
                            err(r, format!("{id}: {a} {v:?} is not a 4-part version"))
                        }),
                    }
                };
                let attributes: Vec<(Attribute, String)> = Attribute::ALL
                    .iter()
                    .filter_map(|&a| r.attribute(a.xml_name()).map(|v| (a, v.to_string())))
                    .collect();
                let rule = FileRule {
                    friendly_name: r.attribute("FriendlyName").map(str::to_string),
                    hash,
                    minimum: version("MinimumFileVersion")?,
                    maximum: version("MaximumFileVersion")?,
                    attributes,
                    kind,
                    line: line_of(&doc, r),
                    id: id.clone(),
                };
                if rule_ids.insert(id.clone(), p.rules.len()).is_some() {
                    return Err(err(r, format!("file rule ID {id} is defined twice")));
                }
                p.rules.push(rule);
            }
        }
        let mut ekus: HashMap<String, String> = HashMap::new();
        if let Some(e) = child(root, "EKUs") {
            for k in e.children().filter(|c| c.has_tag_name((NS, "EKU"))) {
                let id = k.attribute("ID").unwrap_or_default().to_string();
                match k.attribute("Value").and_then(eku_oid) {
                    Some(oid) => {
                        ekus.insert(id, oid);
                    }
                    None => return Err(err(k, format!("EKU {id}: Value is not an encoded OID"))),
                }
            }
        }
        let mut signer_ids: HashMap<String, usize> = HashMap::new();
        if let Some(ss) = child(root, "Signers") {
            for s in ss.children().filter(|c| c.has_tag_name((NS, "Signer"))) {
                let id = s
                    .attribute("ID")
                    .ok_or_else(|| err(s, "Signer without ID".into()))?
                    .to_string();
                let mut signer = Signer {
                    id: id.clone(),
                    name: s.attribute("Name").map(str::to_string),
                    cert_root: None,
                    publisher: None,
                    oem_id: None,
                    ekus: Vec::new(),
                    file_attribs: Vec::new(),
                    unsupported: Vec::new(),
                    line: line_of(&doc, s),
                };
                for c in s.children().filter(|c| c.is_element()) {
                    let value = c.attribute("Value");
                    match c.tag_name().name() {
                        "CertRoot" => match (c.attribute("Type"), value) {
                            (Some(t), Some(v)) if t.eq_ignore_ascii_case("TBS") => {
                                let b = parse_hash(v, &[32, 40, 64, 96, 128])
                                    .map_err(|why| err(c, format!("{id}: CertRoot: {why}")))?;
                                signer.cert_root = Some((v.to_string(), b));
                            }
                            (t, _) => signer.unsupported.push(format!("CertRoot Type={t:?}")),
                        },
                        "CertPublisher" => signer.publisher = value.map(str::to_string),
                        "CertOemID" => signer.oem_id = value.map(str::to_string),
                        "CertEKU" => {
                            let r = c.attribute("ID").unwrap_or_default();
                            let oid = ekus.get(r).ok_or_else(|| {
                                err(c, format!("{id}: CertEKU {r} is not defined in EKUs"))
                            })?;
                            signer.ekus.push(oid.clone());
                        }
                        "FileAttribRef" => {
                            let r = c.attribute("RuleID").unwrap_or_default();
                            match rule_ids.get(r) {
                                Some(&i) if p.rules[i].kind == RuleKind::FileAttrib => {
                                    signer.file_attribs.push(i)
                                }
                                Some(_) => {
                                    return Err(err(
                                        c,
                                        format!("{id}: FileAttribRef {r} is not a FileAttrib"),
                                    ))
                                }
                                None => {
                                    return Err(err(
                                        c,
                                        format!("{id}: FileAttribRef {r} is not defined"),
                                    ))
                                }
                            }
                        }
                        other => signer.unsupported.push(other.to_string()),
                    }
                }
                if signer.cert_root.is_none() && signer.unsupported.is_empty() {
                    return Err(err(s, format!("Signer {id} has no CertRoot")));
                }
                if signer_ids.insert(id.clone(), p.signers.len()).is_some() {
                    return Err(err(s, format!("Signer ID {id} is defined twice")));
                }
                p.signers.push(signer);
            }
        }
        let mut kernel = false;
        if let Some(sc) = child(root, "SigningScenarios") {
            for s in sc
                .children()
                .filter(|c| c.has_tag_name((NS, "SigningScenario")))
            {
                if s.attribute("Value") != Some("131") {
                    continue;
                }
                kernel = true;
                for d in s.descendants() {
                    if d.has_tag_name((NS, "DeniedSigner")) {
                        let r = d.attribute("SignerId").unwrap_or_default();
                        let &i = signer_ids
                            .get(r)
                            .ok_or_else(|| err(d, format!("DeniedSigner {r} is not defined")))?;
                        p.kernel_denied_signers.push(i);
                    } else if d.has_tag_name((NS, "FileRuleRef")) {
                        let r = d.attribute("RuleID").unwrap_or_default();
                        let &i = rule_ids
                            .get(r)
                            .ok_or_else(|| err(d, format!("FileRuleRef {r} is not defined")))?;
                        p.kernel_file_rules.push(i);
                    }
                }
            }
        }
        if !kernel {
            p.notes.push("the policy has no kernel-mode signing scenario (131): nothing in it applies to drivers".into());
        }
        p.kernel_denied_signers.sort_unstable();
        p.kernel_denied_signers.dedup();
        p.kernel_file_rules.sort_unstable();
        p.kernel_file_rules.dedup();
        p.index();
        Ok(p)
    }

    fn index(&mut self) {
        for &i in &self.kernel_file_rules {
            let r = &self.rules[i];
            if r.kind != RuleKind::Deny {
                continue;
            }
            if let Some((_, b)) = &r.hash {
                self.by_hash.entry(b.clone()).or_default().push(i);
            } else if let Some((a, v)) = r.attributes.first() {
                self.by_attribute
                    .entry((*a, v.to_lowercase()))
                    .or_default()
                    .push(i);
            } else {
                self.notes.push(format!(
                    "line {}: Deny {} has neither a hash nor a file attribute",
                    r.line, r.id
                ));
            }
        }
        for &i in &self.kernel_denied_signers {
            let s = &self.signers[i];
            if !s.unsupported.is_empty() {
                self.notes.push(format!(
                    "line {}: denied signer {} uses {} and is not evaluated",
                    s.line,
                    s.id,
                    s.unsupported.join(", ")
                ));
                continue;
            }
            if let Some((_, b)) = &s.cert_root {
                self.by_tbs.entry(b.clone()).or_default().push(i);
            }
        }
    }

    fn make(
        &self,
        list: &str,
        entry_id: &str,
        name: Option<&str>,
        extra_name: Option<&str>,
        line: usize,
        rule: MatchRule,
    ) -> Match {
        let mut cves = name.map(cves_in).unwrap_or_default();
        for c in extra_name.map(cves_in).unwrap_or_default() {
            if !cves.contains(&c) {
                cves.push(c);
            }
        }
        Match {
            list: list.to_string(),
            list_kind: ListKind::SiPolicy,
            entry_id: entry_id.to_string(),
            sample: None,
            name: name.map(str::to_string),
            cves,
            category: Category::Blocked,
            strength: Strength::Identity,
            rule,
            location: format!("{list}:{line}"),
        }
    }

    /// The hashes besides the SHA-256s that a rule can match through: SHA-1 when a rule holds
    /// a 20-byte hash (policies list SHA-1 and SHA-256 in rules of their own, so neither
    /// stands for the other), and the first-page hashes.
    pub(super) fn needs(&self) -> HashNeeds {
        let sha1 = self.by_hash.keys().any(|h| h.len() == 20);
        HashNeeds {
            flat_sha1: sha1,
            authenticode_sha1: sha1,
            pages: !self.by_hash.is_empty(),
            ..HashNeeds::default()
        }
    }

    pub(super) fn matches(&self, s: &Subject, list: &str) -> Vec<Match> {
        let mut out = Vec::new();
        for (input, bytes) in s.hashes() {
            if matches!(input, HashKind::FlatMd5 | HashKind::AuthenticodeMd5) {
                continue; // CI computes no MD5
            }
            for &i in self.by_hash.get(&bytes).into_iter().flatten() {
                let r = &self.rules[i];
                out.push(self.make(
                    list,
                    &r.id,
                    r.friendly_name.as_deref(),
                    None,
                    r.line,
                    MatchRule::Hash {
                        field: "Hash".into(),
                        input,
                    },
                ));
            }
        }
        for a in Attribute::ALL {
            let Some(v) = a.of(s) else { continue };
            for &i in self
                .by_attribute
                .get(&(a, v.to_lowercase()))
                .into_iter()
                .flatten()
            {
                let r = &self.rules[i];
                if r.attributes_match(s) {
                    out.push(self.make(
                        list,
                        &r.id,
                        r.friendly_name.as_deref(),
                        None,
                        r.line,
                        file_attrib_rule(r),
                    ));
                }
            }
        }
        for (si, sig) in s.signatures.iter().enumerate() {
            let leaf_cn = sig.chain.first().and_then(|c| c.common_name.as_deref());
            for (ci, cert) in sig.chain.iter().enumerate() {
                for h in cert.tbs.all() {
                    let Ok(b) = hex::decode(h) else { continue };
                    for &i in self.by_tbs.get(&b).into_iter().flatten() {
                        let signer = &self.signers[i];
                        if signer
                            .publisher
                            .as_deref()
                            .is_some_and(|p| Some(p) != leaf_cn)
                        {
                            continue;
                        }
                        if signer
                            .oem_id
                            .as_deref()
                            .is_some_and(|o| Some(o) != sig.opus_program_name.as_deref())
                        {
                            continue;
                        }
                        if !signer.ekus.iter().all(|e| sig.leaf_ekus.contains(e)) {
                            continue;
                        }
                        let rule = |file_attrib: Option<String>| MatchRule::Signer {
                            cert_root: signer
                                .cert_root
                                .as_ref()
                                .map(|c| c.0.clone())
                                .unwrap_or_default(),
                            publisher: signer.publisher.clone(),
                            oem_id: signer.oem_id.clone(),
                            file_attrib,
                            signature_index: si,
                            cert_index: ci,
                        };
                        if signer.file_attribs.is_empty() {
                            out.push(self.make(
                                list,
                                &signer.id,
                                signer.name.as_deref(),
                                None,
                                signer.line,
                                rule(None),
                            ));
                        } else {
                            for &fa in &signer.file_attribs {
                                let r = &self.rules[fa];
                                if r.attributes_match(s) {
                                    out.push(self.make(
                                        list,
                                        &signer.id,
                                        signer.name.as_deref(),
                                        r.friendly_name.as_deref(),
                                        signer.line,
                                        rule(Some(r.id.clone())),
                                    ));
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

fn file_attrib_rule(r: &FileRule) -> MatchRule {
    let (a, v) = &r.attributes[0];
    MatchRule::FileAttrib {
        attribute: a.xml_name().to_string(),
        value: v.clone(),
        minimum: r.minimum,
        maximum: r.maximum,
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;

    const TBS_CA: &str = "4843A82ED3B1F2BFBEE9671960E1940C942F688D";

    fn policy(body: &str) -> Result<SiPolicy, BlocklistError> {
        SiPolicy::parse(Path::new("p.xml"), &format!("<?xml version=\"1.0\"?>\n<SiPolicy xmlns=\"urn:schemas-microsoft-com:sipolicy\">\n{body}\n</SiPolicy>"))
    }

    fn sample() -> SiPolicy {
        policy(&format!(
            r#"<VersionEx>10.0.1.0</VersionEx>
<EKUs><EKU ID="ID_EKU_WHQL" Value="010A2B0601040182370A0305" /></EKUs>
<FileRules>
  <Allow ID="ID_ALLOW_ALL" FileName="*" />
  <Deny ID="ID_DENY_A_SHA256" FriendlyName="a.sys Hash Sha256" Hash="{a256}" />
  <Deny ID="ID_DENY_A_PAGE" FriendlyName="a.sys Hash Page Sha1" Hash="{p1}" />
  <Deny ID="ID_DENY_USER_ONLY" FriendlyName="user mode" Hash="{u256}" />
  <Deny ID="ID_DENY_AMP" FriendlyName="System Mechanic CVE-2018-5701" FileName="amp.sys" MinimumFileVersion="0.0.0.0" MaximumFileVersion="5.4.11.1" />
  <Deny ID="ID_DENY_OLD" FileName="old.sys" MinimumFileVersion="2.0.0.0" />
  <FileAttrib ID="ID_FA_GDRV" FriendlyName="gdrv" FileName="gdrv.sys" MinimumFileVersion="0.0.0.0" MaximumFileVersion="65535.65535.65535.65535" />
  <FileAttrib ID="ID_FA_PROD" ProductName="Zam" MinimumFileVersion="1.0.0.0" />
</FileRules>
<Signers>
  <Signer ID="ID_SIGNER_VS" Name="VeriSign Class 3 Code Signing 2010 CA">
    <CertRoot Type="TBS" Value="{TBS_CA}" />
    <FileAttribRef RuleID="ID_FA_GDRV" />
    <FileAttribRef RuleID="ID_FA_PROD" />
  </Signer>
  <Signer ID="ID_SIGNER_PUB" Name="CA">
    <CertRoot Type="TBS" Value="{root2}" />
    <CertPublisher Value="CAPCOM Co.,Ltd." />
  </Signer>
  <Signer ID="ID_SIGNER_OEM" Name="Third Party Component CA">
    <CertRoot Type="TBS" Value="{root2}" />
    <CertOemID Value="Cheat Engine" />
    <CertEKU ID="ID_EKU_WHQL" />
  </Signer>
  <Signer ID="ID_SIGNER_WK" Name="wk"><CertRoot Type="Wellknown" Value="06" /></Signer>
  <Signer ID="ID_SIGNER_USER" Name="user"><CertRoot Type="TBS" Value="{root3}" /></Signer>
</Signers>
<SigningScenarios>
  <SigningScenario Value="131" ID="K">
    <ProductSigners>
      <DeniedSigners>
        <DeniedSigner SignerId="ID_SIGNER_VS" /><DeniedSigner SignerId="ID_SIGNER_PUB" />
        <DeniedSigner SignerId="ID_SIGNER_OEM" /><DeniedSigner SignerId="ID_SIGNER_WK" />
      </DeniedSigners>
      <FileRulesRef>
        <FileRuleRef RuleID="ID_ALLOW_ALL" /><FileRuleRef RuleID="ID_DENY_A_SHA256" />
        <FileRuleRef RuleID="ID_DENY_A_PAGE" /><FileRuleRef RuleID="ID_DENY_AMP" />
        <FileRuleRef RuleID="ID_DENY_OLD" /><FileRuleRef RuleID="ID_DENY_A_PAGE" />
      </FileRulesRef>
    </ProductSigners>
  </SigningScenario>
  <SigningScenario Value="12" ID="U">
    <ProductSigners>
      <DeniedSigners><DeniedSigner SignerId="ID_SIGNER_USER" /></DeniedSigners>
      <FileRulesRef><FileRuleRef RuleID="ID_DENY_USER_ONLY" /></FileRulesRef>
    </ProductSigners>
  </SigningScenario>
</SigningScenarios>"#,
            a256 = "A".repeat(64),
            p1 = "B".repeat(40),
            u256 = "C".repeat(64),
            root2 = "D".repeat(64),
            root3 = "E".repeat(40),
        ))
        .unwrap()
    }

    fn chain(cns: &[(&str, &str)]) -> Vec<CertFacts> {
        cns.iter()
            .map(|(cn, tbs)| CertFacts {
                common_name: Some(cn.to_string()),
                tbs: TbsHashes {
                    sha1: (tbs.len() == 40).then(|| tbs.to_string()),
                    sha256: (tbs.len() == 64).then(|| tbs.to_string()),
                    ..TbsHashes::default()
                },
            })
            .collect()
    }

    fn ids(p: &SiPolicy, s: &Subject) -> Vec<String> {
        let mut v: Vec<String> = p
            .matches(s, "p.xml")
            .iter()
            .map(|m| match &m.rule {
                MatchRule::Hash { input, .. } => format!("{}:{}", m.entry_id, input.as_str()),
                MatchRule::FileAttrib { .. } => format!("{}:fileattrib", m.entry_id),
                MatchRule::Signer { file_attrib, .. } => match file_attrib {
                    Some(f) => format!("{}+{f}:signer", m.entry_id),
                    None => format!("{}:signer", m.entry_id),
                },
                MatchRule::Imphash => unreachable!(),
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }

    #[test]
    fn structure_and_notes() {
        let p = sample();
        assert_eq!(p.version.as_deref(), Some("10.0.1.0"));
        assert_eq!(p.rules.len(), 8);
        assert_eq!(p.kernel_file_rules.len(), 5, "duplicate refs collapse");
        assert_eq!(p.kernel_denied_signers.len(), 4);
        assert_eq!(p.signers[2].ekus, vec!["1.3.6.1.4.1.311.10.3.5"]);
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("ID_SIGNER_WK") && n.contains("Wellknown")),
            "{:?}",
            p.notes
        );
        assert_eq!(p.rules[4].line, 10);
    }

    #[test]
    fn every_rule_form() {
        let p = sample();
        // Hash rules: Authenticode and page hashes; the user-mode-only rule never applies.
        let s = Subject {
            authenticode_sha256: Some("a".repeat(64)),
            page_sha1: Some("b".repeat(40)),
            flat_sha256: Some("c".repeat(64)),
            ..Subject::default()
        };
        assert_eq!(
            ids(&p, &s),
            vec!["ID_DENY_A_PAGE:page-sha1", "ID_DENY_A_SHA256:auth-sha256"]
        );
        // FileName + range, case-insensitive; outside the range no match; no version = 0.0.0.0.
        let mut s = Subject {
            original_filename: Some("AMP.SYS".into()),
            file_version: Some([5, 4, 11, 1]),
            ..Subject::default()
        };
        assert_eq!(ids(&p, &s), vec!["ID_DENY_AMP:fileattrib"]);
        let m = &p.matches(&s, "p.xml")[0];
        assert_eq!(m.cves, vec!["CVE-2018-5701"]);
        assert_eq!(
            (m.category, m.location.as_str()),
            (Category::Blocked, "p.xml:10")
        );
        s.file_version = Some([5, 4, 11, 2]);
        assert!(ids(&p, &s).is_empty());
        s.file_version = None;
        assert_eq!(ids(&p, &s), vec!["ID_DENY_AMP:fileattrib"]);
        // Minimum only on a deny: versions at or below it.
        let mut s = Subject {
            original_filename: Some("old.sys".into()),
            file_version: Some([2, 0, 0, 0]),
            ..Subject::default()
        };
        assert_eq!(ids(&p, &s), vec!["ID_DENY_OLD:fileattrib"]);
        s.file_version = Some([2, 0, 0, 1]);
        assert!(ids(&p, &s).is_empty());
        // Signer + FileAttribRef: the chain's CA TBS and the file's name; another name: none.
        let sig = SignatureFacts {
            chain: chain(&[
                ("Giga-Byte", &"1".repeat(40)),
                ("VeriSign", &TBS_CA.to_lowercase()),
            ]),
            ..SignatureFacts::default()
        };
        let mut s = Subject {
            original_filename: Some("gdrv.sys".into()),
            signatures: vec![sig.clone()],
            ..Subject::default()
        };
        assert_eq!(ids(&p, &s), vec!["ID_SIGNER_VS+ID_FA_GDRV:signer"]);
        s.original_filename = Some("other.sys".into());
        assert!(ids(&p, &s).is_empty());
        // ProductName attribute with Minimum only.
        s.product_name = Some("ZAM".into());
        s.file_version = Some([0, 9, 0, 0]);
        assert_eq!(ids(&p, &s), vec!["ID_SIGNER_VS+ID_FA_PROD:signer"]);
        // Signer + CertPublisher: the leaf CN must equal it.
        let sig = SignatureFacts {
            chain: chain(&[
                ("CAPCOM Co.,Ltd.", &"2".repeat(40)),
                ("Symantec", &"d".repeat(64)),
            ]),
            ..SignatureFacts::default()
        };
        let mut s = Subject {
            signatures: vec![sig],
            ..Subject::default()
        };
        assert_eq!(ids(&p, &s), vec!["ID_SIGNER_PUB:signer"]);
        s.signatures[0].chain[0].common_name = Some("Someone else".into());
        assert!(ids(&p, &s).is_empty());
        // CertOemID (opus program name) and CertEKU, on the nested signature.
        let whql = SignatureFacts {
            chain: chain(&[
                (
                    "Microsoft Windows Hardware Compatibility Publisher",
                    &"3".repeat(40),
                ),
                (
                    "Microsoft Windows Third Party Component CA 2014",
                    &"d".repeat(64),
                ),
            ]),
            opus_program_name: Some("Cheat Engine".into()),
            leaf_ekus: vec!["1.3.6.1.4.1.311.10.3.5".into()],
        };
        let mut s = Subject {
            signatures: vec![SignatureFacts::default(), whql],
            ..Subject::default()
        };
        assert_eq!(ids(&p, &s), vec!["ID_SIGNER_OEM:signer"]);
        match &p.matches(&s, "p.xml")[0].rule {
            MatchRule::Signer {
                signature_index,
                cert_index,
                ..
            } => assert_eq!((*signature_index, *cert_index), (1, 1)),
            r => panic!("{r:?}"),
        }
        s.signatures[1].leaf_ekus.clear();
        assert!(ids(&p, &s).is_empty());
        // A signer only denied in user mode never matches a driver.
        let s = Subject {
            signatures: vec![SignatureFacts {
                chain: chain(&[("x", &"e".repeat(40))]),
                ..SignatureFacts::default()
            }],
            ..Subject::default()
        };
        assert!(ids(&p, &s).is_empty());
    }

    #[test]
    fn malformed_policies_are_errors_with_lines() {
        let e = policy("<FileRules>\n<Deny ID=\"X\" Hash=\"ABC\" />\n</FileRules>")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("p.xml:4: X: hash \"ABC\" has 3 hex digits"),
            "{e}"
        );
        let e = policy(
            "<FileRules><Deny ID=\"X\" FileName=\"a\" MaximumFileVersion=\"1.2\" /></FileRules>",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("MaximumFileVersion \"1.2\" is not a 4-part version"),
            "{e}"
        );
        let e = policy("<SigningScenarios><SigningScenario Value=\"131\"><ProductSigners><DeniedSigners><DeniedSigner SignerId=\"NOPE\"/></DeniedSigners></ProductSigners></SigningScenario></SigningScenarios>").unwrap_err().to_string();
        assert!(e.contains("DeniedSigner NOPE is not defined"), "{e}");
        let e = policy(
            "<FileRules><Deny ID=\"X\" Hash=\"{}\"/><Deny ID=\"X\" Hash=\"{}\"/></FileRules>"
                .replace("{}", &"A".repeat(40))
                .as_str(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("defined twice"), "{e}");
        assert!(matches!(
            SiPolicy::parse(Path::new("p.xml"), "<SiPolicy><unclosed></SiPolicy>"),
            Err(BlocklistError::Xml { .. })
        ));
        assert!(SiPolicy::parse(
            Path::new("p.xml"),
            "<Other xmlns=\"urn:schemas-microsoft-com:sipolicy\"/>"
        )
        .unwrap_err()
        .to_string()
        .contains("not SiPolicy"));
        // A DTD (entity expansion) is refused outright.
        let bomb = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;\">]><SiPolicy xmlns=\"urn:schemas-microsoft-com:sipolicy\">&lol2;</SiPolicy>";
        assert!(matches!(
            SiPolicy::parse(Path::new("p.xml"), bomb),
            Err(BlocklistError::Xml { .. })
        ));
        // UTF-16LE with a BOM decodes.
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("u16.xml");
        let text = "<SiPolicy xmlns=\"urn:schemas-microsoft-com:sipolicy\"><VersionEx>1.0.0.0</VersionEx></SiPolicy>";
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        std::fs::write(&f, bytes).unwrap();
        let l = load(&f).unwrap();
        assert_eq!(l.sipolicy().unwrap().version.as_deref(), Some("1.0.0.0"));
        assert!(l.sipolicy().unwrap().notes[0].contains("no kernel-mode signing scenario"));
    }
}
