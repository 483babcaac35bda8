//! A driver's identity facts, computed the first time a rule or an output asks for them and
//! then kept for the image: its signatures and their class (through its package's catalog
//! when it has no embedded one), its version resource, and the hashes blocklists identify
//! drivers by.
//!
//! Each fact costs a pass over the image or more (an Authenticode digest is a hash of most of
//! the file; a blocklist subject three flat and three Authenticode hashes and two page hashes),
//! so nothing is computed for an image no rule asks about: a scan without `--blocklist` never
//! computes MD5s, and an image carved from a dump has no certificate table (the loader does not
//! map it), so it has no signature facts at all.

use std::cell::OnceCell;

use crate::authenticode::{self, Classification, DigestAlgorithm, PeVerdict, SignatureClass};
use crate::blocklist::{
    Blocklist, CertFacts, HashNeeds, SignatureFacts, Strength, Subject, TbsHashes,
};
use crate::identity::{self, ImportName, VersionInfo};
use crate::inf::Arch;
use crate::packageinfo::{lists_pe, PackageInfo};
use crate::pe::{Image, ImportOrigin, Layout};

/// The identity facts of one image, each computed once, when first asked for.
pub struct Facts<'a> {
    bytes: &'a [u8],
    image: &'a Image,
    /// The driver's file name (what its package's INFs copy).
    name: &'a str,
    /// The package it came in, whose catalogs may sign it.
    package: Option<&'a PackageInfo>,
    /// The hashes the run's blocklists can match on.
    needs: HashNeeds,
    signature: OnceCell<Option<PeVerdict>>,
    effective: OnceCell<Option<(Classification, Option<String>)>>,
    hashes: OnceCell<Option<Hashes>>,
    version: OnceCell<Option<VersionInfo>>,
    subject: OnceCell<Subject>,
}

/// The file's hashes, computed in one pass the first time one is needed: the Authenticode
/// digests of every algorithm anything of this run will ask for (its signatures', its
/// catalog's, the blocklists'), without the padding too when the file needs some, and the flat
/// hashes the blocklists need.
struct Hashes {
    authenticode: Vec<(DigestAlgorithm, Vec<u8>)>,
    unpadded: Option<Vec<Vec<u8>>>,
    flat: Vec<(DigestAlgorithm, Vec<u8>)>,
}

/// What `drvaudit identify` shows of a driver: its version resource, its signature as Windows
/// would verify it, its Authenticode SHA-256 and the blocklist entries that name it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub original_filename: Option<String>,
    /// The fixed FileVersion (`a.b.c.d`), else the StringFileInfo one.
    pub file_version: Option<String>,
    pub company: Option<String>,
    pub product: Option<String>,
    pub description: Option<String>,
    /// The signature class (`whql`, `attestation`, `test-signed`, `unsigned`, …); `None` for a
    /// carved image.
    pub signature: Option<&'static str>,
    /// Why that class, in one sentence.
    pub signature_reason: Option<String>,
    pub signer: Option<String>,
    pub issuer: Option<String>,
    /// The catalog that signs it, for a driver signed through its package's catalog.
    pub catalog: Option<String>,
    /// The deciding signature's timestamp (UTC date).
    pub timestamp: Option<String>,
    /// Lower-case hex; `None` for a carved image.
    pub authenticode_sha256: Option<String>,
    pub blocklist: Vec<IdentityMatch>,
}

/// A blocklist entry that names the driver.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityMatch {
    pub list: String,
    pub entry: String,
    /// `vulnerable`, `malicious` or `blocked`.
    pub category: String,
}

impl<'a> Facts<'a> {
    /// Facts of `image`, whose bytes (in its layout) are `bytes`, named `name` (its file name)
    /// and part of `package` when it came in one; `needs` are the hashes the run's blocklists
    /// match on.
    pub fn new(
        bytes: &'a [u8],
        image: &'a Image,
        name: &'a str,
        package: Option<&'a PackageInfo>,
        needs: HashNeeds,
    ) -> Facts<'a> {
        Facts {
            bytes,
            image,
            name,
            package,
            needs,
            signature: OnceCell::new(),
            effective: OnceCell::new(),
            hashes: OnceCell::new(),
            version: OnceCell::new(),
            subject: OnceCell::new(),
        }
    }

    /// The package the driver came in.
    pub fn package(&self) -> Option<&'a PackageInfo> {
        self.package
    }

    /// The class Windows would verify the driver by: its embedded signature's, else the class
    /// of a catalog of its package that lists it (Windows verifies such a driver through the
    /// catalog); `None` for a carved image. With the catalog that decided it, when one did.
    pub fn effective_class(&self) -> Option<&(Classification, Option<String>)> {
        self.effective
            .get_or_init(|| {
                let verdict = self.signature()?;
                let embedded = &verdict.classification;
                if embedded.class != SignatureClass::Unsigned {
                    return Some((embedded.clone(), None));
                }
                match self.covering_catalog() {
                    Some((class, path)) => Some((class, Some(path))),
                    None => Some((embedded.clone(), None)),
                }
            })
            .as_ref()
    }

    /// The class and path of a catalog of the driver's package that lists its Authenticode
    /// digest.
    fn covering_catalog(&self) -> Option<(Classification, String)> {
        let package = self.package?;
        let arch = Arch::from_machine(self.image.machine.raw())?;
        package.coverage(self.name, arch).into_iter().find_map(|c| {
            let file = c.catalog?;
            let cat = file.catalog.as_ref().ok()?;
            lists_pe(cat, |alg| self.authenticode(alg))
                .then(|| (cat.classification(), file.path.clone()))
        })
    }

    /// The class [`Facts::effective_class`] decided, if a rule already asked for it (nothing
    /// is read or hashed for this).
    pub fn known_class(&self) -> Option<&'static str> {
        self.effective.get()?.as_ref().map(|(c, _)| c.class.name())
    }

    /// Whether the bytes are the file (signatures, flat and Authenticode hashes are facts of
    /// the file; a carved image has none of them).
    pub fn is_file(&self) -> bool {
        self.image.layout == Layout::File
    }

    /// The embedded signatures and their class; `None` for a carved image, or when the bytes
    /// are not a PE image the signature reader accepts. The digests the signatures claim are
    /// computed with the file's other hashes, in one pass.
    pub fn signature(&self) -> Option<&PeVerdict> {
        self.signature
            .get_or_init(|| {
                if !self.is_file() {
                    return None;
                }
                authenticode::inspect_pe_with(self.bytes, |_, algs| {
                    algs.iter()
                        .map(|&a| self.digest_with(a, algs).unwrap_or_default())
                        .collect()
                })
                .ok()
            })
            .as_ref()
    }

    /// The Authenticode digest with `alg`, from the one pass over the file (planned with
    /// `extra` when it has not run yet), else on its own for an algorithm nothing planned.
    fn digest_with(&self, alg: DigestAlgorithm, extra: &[DigestAlgorithm]) -> Option<Vec<u8>> {
        let hashes = self.hashes.get_or_init(|| self.hash_once(extra)).as_ref()?;
        match hashes.authenticode.iter().find(|(a, _)| *a == alg) {
            Some((_, d)) => Some(d.clone()),
            None => authenticode::pe::authenticode_digest(self.bytes, alg).ok(),
        }
    }

    /// The one pass: `extra` (the signatures' algorithms, or the one asked for); for a driver
    /// in a package, the algorithms its catalogs list members by; what the blocklists need.
    fn hash_once(&self, extra: &[DigestAlgorithm]) -> Option<Hashes> {
        let layout = authenticode::pe::layout(self.bytes).ok()?;
        let n = self.needs;
        let mut auth = extra.to_vec();
        // A package's catalogs list their members with one algorithm each (SHA-1 in older
        // catalogs, SHA-256 in newer ones): only those are planned, not both.
        if let Some(p) = self.package {
            auth.extend(p.catalog_algorithms());
        }
        if n.any {
            auth.push(DigestAlgorithm::Sha256);
        }
        if n.authenticode_sha1 {
            auth.push(DigestAlgorithm::Sha1);
        }
        if n.authenticode_md5 {
            auth.push(DigestAlgorithm::Md5);
        }
        auth.sort_unstable();
        auth.dedup();
        let mut flat = Vec::new();
        if n.flat_md5 {
            flat.push(DigestAlgorithm::Md5);
        }
        if n.flat_sha1 {
            flat.push(DigestAlgorithm::Sha1);
        }
        let h = authenticode::pe::file_hashes(self.bytes, &layout, &auth, &flat);
        Some(Hashes {
            authenticode: auth.iter().copied().zip(h.authenticode).collect(),
            unpadded: h.unpadded,
            flat: flat.iter().copied().zip(h.flat).collect(),
        })
    }

    /// Why the embedded signature could not be read, when a rule asked for it and it could
    /// not (a certificate table outside the file, a PKCS#7 blob that does not parse).
    pub fn unreadable_signature(&self) -> Option<String> {
        let verdict = self.signature.get()?.as_ref()?;
        verdict.error.as_ref().map(|e| e.to_string())
    }

    /// The version resource, when the image has one that can be read.
    pub fn version(&self) -> Option<&VersionInfo> {
        self.version
            .get_or_init(|| {
                let layout = match self.image.layout {
                    Layout::File => identity::Layout::File,
                    Layout::Loaded => identity::Layout::Loaded,
                };
                identity::version_info(self.bytes, layout).ok().flatten()
            })
            .as_ref()
    }

    /// The Authenticode digest of the file with `alg` (what catalogs list a driver by, as
    /// Windows computes it), from the one pass over the file.
    pub fn authenticode(&self, alg: DigestAlgorithm) -> Option<Vec<u8>> {
        if !self.is_file() {
            return None;
        }
        // The signatures first: their algorithms join the one pass.
        let _ = self.signature();
        self.digest_with(alg, &[alg])
    }

    /// Damage met in the version resource after its readable part, when it was read.
    pub fn version_problems(&self) -> &[String] {
        match self.version.get() {
            Some(Some(v)) => &v.problems,
            _ => &[],
        }
    }

    /// What `drvaudit identify` shows, matched against `blocklists`.
    pub fn identity(&self, blocklists: &[Blocklist]) -> Identity {
        let mut id = Identity::default();
        if let Some(v) = self.version() {
            id.original_filename = v.original_filename().map(str::to_string);
            id.file_version = v
                .file_version()
                .map(|a| format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]))
                .or_else(|| v.file_version_string().map(str::to_string));
            id.company = v.company_name().map(str::to_string);
            id.product = v.product_name().map(str::to_string);
            id.description = v.file_description().map(str::to_string);
        }
        if let Some((c, catalog)) = self.effective_class() {
            id.signature = Some(c.class.name());
            id.signature_reason = Some(c.reason.clone());
            id.signer = c.signer.clone();
            id.issuer = c.issuer.clone();
            id.catalog = catalog.clone();
            id.timestamp = c.timestamp.map(crate::util::utc_date);
        }
        id.authenticode_sha256 = self.authenticode(DigestAlgorithm::Sha256).map(hex::encode);
        if !blocklists.is_empty() {
            let subject = self.subject();
            for list in blocklists {
                for m in list.matches(subject) {
                    if m.strength != Strength::Identity {
                        continue;
                    }
                    let hit = IdentityMatch {
                        list: m.list.clone(),
                        entry: m.entry_id.clone(),
                        category: m.category.name().to_string(),
                    };
                    if !id.blocklist.contains(&hit) {
                        id.blocklist.push(hit);
                    }
                }
            }
        }
        id
    }

    /// Everything a blocklist matches a driver on.
    pub fn subject(&self) -> &Subject {
        self.subject.get_or_init(|| self.make_subject())
    }

    fn make_subject(&self) -> Subject {
        let mut s = Subject::default();
        if self.is_file() {
            // The flat SHA-256 is the model's; the rest come from the one pass.
            s.flat_sha256 = Some(self.image.sha256.clone());
            let _ = self.signature();
            let _ = self.digest_with(DigestAlgorithm::Sha256, &[DigestAlgorithm::Sha256]);
            if let Some(Some(h)) = self.hashes.get() {
                let hex_of = |list: &[(DigestAlgorithm, Vec<u8>)], alg| {
                    list.iter()
                        .find(|(a, _)| *a == alg)
                        .map(|(_, d)| hex::encode(d))
                };
                s.flat_md5 = hex_of(&h.flat, DigestAlgorithm::Md5);
                s.flat_sha1 = hex_of(&h.flat, DigestAlgorithm::Sha1);
                s.authenticode_md5 = hex_of(&h.authenticode, DigestAlgorithm::Md5);
                s.authenticode_sha1 = hex_of(&h.authenticode, DigestAlgorithm::Sha1);
                s.authenticode_sha256 = hex_of(&h.authenticode, DigestAlgorithm::Sha256);
                // Without the padding, by the same algorithms (MD5, SHA-1, SHA-256 when the
                // pass had them).
                if let Some(u) = &h.unpadded {
                    let of = |alg| {
                        h.authenticode
                            .iter()
                            .position(|(a, _)| *a == alg)
                            .map(|i| hex::encode(&u[i]))
                            .unwrap_or_default()
                    };
                    s.authenticode_unpadded = Some([
                        of(DigestAlgorithm::Md5),
                        of(DigestAlgorithm::Sha1),
                        of(DigestAlgorithm::Sha256),
                    ]);
                }
            }
            if self.needs.pages {
                let page = [DigestAlgorithm::Sha1, DigestAlgorithm::Sha256];
                if let Ok(p) = authenticode::pe::first_page_hashes(self.bytes, &page) {
                    s.page_sha1 = Some(hex::encode(&p[0]));
                    s.page_sha256 = Some(hex::encode(&p[1]));
                }
            }
        }
        if let Some(v) = self.version() {
            s.original_filename = v.original_filename().map(str::to_string);
            s.internal_name = v.internal_name().map(str::to_string);
            s.file_description = v.file_description().map(str::to_string);
            s.product_name = v.product_name().map(str::to_string);
            s.file_version = v.file_version();
        }
        // The import directory's imports only, in its order, as pefile sees them: names a
        // carved image's IAT was matched to are not what the file's imphash hashes.
        let imports: Vec<_> = self
            .image
            .imports
            .iter()
            .filter(|i| !i.delay && i.origin == ImportOrigin::Directory)
            .filter_map(|i| {
                let name = match (&i.name, i.ordinal) {
                    (Some(n), _) => ImportName::Name(n),
                    (None, Some(o)) => ImportName::Ordinal(o),
                    (None, None) => return None,
                };
                Some((i.dll.as_str(), name))
            })
            .collect();
        s.imphash = identity::imphash(imports);
        if let Some(sigs) = self.signature().and_then(|v| v.signatures.as_ref()) {
            s.signatures = sigs
                .signatures
                .iter()
                .map(|sig| SignatureFacts {
                    chain: sig
                        .chain_certs()
                        .map(|c| CertFacts {
                            common_name: c.subject.common_name().map(str::to_string),
                            tbs: TbsHashes {
                                md5: Some(hex::encode(c.tbs_hash_with(DigestAlgorithm::Md5))),
                                sha1: Some(hex::encode(c.tbs_hash_with(DigestAlgorithm::Sha1))),
                                sha256: Some(hex::encode(c.tbs_hash_with(DigestAlgorithm::Sha256))),
                                sha384: Some(hex::encode(c.tbs_hash_with(DigestAlgorithm::Sha384))),
                                sha512: Some(hex::encode(c.tbs_hash_with(DigestAlgorithm::Sha512))),
                            },
                        })
                        .collect(),
                    opus_program_name: sig.signer.program_name.clone(),
                    leaf_ekus: sig
                        .signer_cert()
                        .map(|c| c.ekus.clone())
                        .unwrap_or_default(),
                })
                .collect();
        }
        s
    }
}
