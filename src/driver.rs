//! Per-driver facts: everything known about one driver image once it has been analysed.
//!
//! A [`Driver`] is the PE facts of its image ([`crate::pe::Image`]), the pool call sites of its
//! code ([`crate::callsite`]), what of a carved image the dump did not hold, and how the driver
//! is named and identified. Rules read a `Driver` and nothing else; the pipeline builds one per
//! image, file or carved, and drops it (and the image bytes) as soon as its rules have run,
//! keeping only its [`ImageSummary`].

use std::collections::BTreeMap;

use serde::Serialize;

use crate::callsite::CallSite;
use crate::pe::{Image, Machine};
use crate::pool::apis::{self, ApiKind};

/// One analysed driver image.
#[derive(Debug, Clone)]
pub struct Driver {
    /// The PE facts.
    pub image: Image,
    /// Pool-API call sites found in its code (none when call-site analysis is off).
    pub sites: Vec<CallSite>,
    /// Ranges (RVA, length) of a carved image that the dump did not hold (zero-filled).
    pub holes: Vec<(u32, u32)>,
    /// Short name (`untagged.sys`, `{GUID}.sys`), for logical locations (`untagged.sys!f`).
    pub name: String,
    /// The path messages name the driver by: as given (`drivers/untagged.sys`), a package
    /// member after its package (`pkg.cab:drivers/amd64/x.sys`), a carved image after its dump
    /// (`MEMORY.DMP>x.sys@0x82000000`).
    pub display: String,
    /// What names the driver in fingerprints ([`stable_identity`]).
    pub identity: String,
    /// A carved image that no scanned file matches by name and PE key.
    pub memory_only: bool,
}

impl Driver {
    /// The symbol-server key (`TimeDateStamp` then `SizeOfImage`, `XXXXXXXXxxxx`): the same
    /// image on disk and carved from memory share it, whereas their bytes never hash alike.
    pub fn pe_key(&self) -> String {
        pe_key(&self.image)
    }

    /// The driver as messages name it: its display path, with "(memory-only)" for a carved
    /// image no scanned file matches.
    pub fn label(&self) -> String {
        if self.memory_only {
            format!("{} (memory-only)", self.display)
        } else {
            self.display.clone()
        }
    }

    /// What is kept of the driver once its rules have run: its tag inventory and identity.
    pub fn summary(&self, artifact: usize) -> ImageSummary {
        ImageSummary {
            artifact,
            pe_key: self.pe_key(),
            sha256: self.image.sha256.clone(),
            machine: self.image.machine,
            call_sites: self.sites.len(),
            tags: self.tag_inventory(),
            anomalies: self.image.anomalies.clone(),
            identity: None,
            signature: None,
        }
    }

    /// Every tag the driver's call sites use; for an untagged or contiguous-memory API it
    /// imports but whose calls the code analysis did not find, that API's implied tag.
    pub fn tag_inventory(&self) -> Vec<TagUse> {
        let mut tags: BTreeMap<u32, TagUse> = BTreeMap::new();
        let mut note = |tag: u32, api: &'static str, allocates: bool, site: bool, runtime: bool| {
            let e = tags.entry(tag).or_insert(TagUse {
                tag,
                apis: Vec::new(),
                sites: 0,
                allocates: false,
                runtime: false,
            });
            if !e.apis.contains(&api) {
                e.apis.push(api);
            }
            e.sites += usize::from(site);
            e.allocates |= allocates;
            e.runtime |= runtime;
        };
        for s in &self.sites {
            let runtime = s.tag_at_run_time();
            for tag in s.possible_tags() {
                note(tag, s.api, s.spec().kind != ApiKind::Free, true, runtime);
            }
        }
        for imp in &self.image.imports {
            let Some(spec) = imp
                .name
                .as_deref()
                .and_then(|n| apis::for_import(&imp.dll, n))
            else {
                continue;
            };
            if let Some(tag) = spec.implied_tag {
                if !self.sites.iter().any(|s| s.api == spec.name) {
                    note(tag, spec.name, true, false, false);
                }
            }
        }
        tags.into_values().collect()
    }
}

/// The driver's identity in fingerprints: the name its build gave it — the PDB named in its
/// CodeView record, without folders and extension, lower-cased — with the machine (an x86 and
/// an x64 build are different drivers). That name survives copying, renaming, packaging,
/// carving from a dump and rebuilding. A driver that names itself nowhere is identified by the
/// SHA-256 of its bytes instead: a copy, a rename or a package keeps its fingerprints, a
/// rebuild does not. (A carved image hashes unlike its file, so it then has its own.)
pub fn stable_identity(image: &Image) -> String {
    let from_pdb = image.codeview.as_ref().and_then(|cv| {
        let base = cv.pdb_path.rsplit(['\\', '/']).next()?;
        let stem = base.rsplit_once('.').map_or(base, |(s, _)| s);
        (!stem.is_empty()).then(|| stem.to_ascii_lowercase())
    });
    match from_pdb {
        Some(name) => format!("pdb:{name}|{}", image.machine),
        None => format!("sha256:{}", image.sha256),
    }
}

/// The symbol-server key of an image (see [`Driver::pe_key`]).
pub fn pe_key(image: &Image) -> String {
    format!("{:08X}{:x}", image.timestamp, image.size_of_image)
}

/// Pool tags used by one image, from its call sites (or, failing those, its imports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagUse {
    /// The tag (u32 as the kernel stores it).
    pub tag: u32,
    /// APIs that allocate, free or initialise a lookaside list with it.
    pub apis: Vec<&'static str>,
    /// Number of call sites.
    pub sites: usize,
    /// Whether any site allocates (as opposed to only freeing).
    pub allocates: bool,
    /// Whether some site reads it at run time from a writable global, as one of the values the
    /// global can hold ([`crate::callsite::CallSite::tag_values`]).
    pub runtime: bool,
}

/// Per-image facts kept after analysis for inventories and attribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageSummary {
    /// Index of the image's artifact in the report.
    pub artifact: usize,
    /// Processor.
    pub machine: Machine,
    /// Lower-case hex SHA-256 of the image bytes.
    pub sha256: String,
    /// Number of pool call sites found.
    pub call_sites: usize,
    /// The symbol-server key ([`Driver::pe_key`]).
    pub pe_key: String,
    /// Tags used, sorted by tag.
    pub tags: Vec<TagUse>,
    /// Malformed structures parsing worked around (each also becomes a notice).
    pub anomalies: Vec<String>,
    /// Its identity (`drvaudit identify`), when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<Box<crate::facts::Identity>>,
    /// The signature class (`whql`, `unsigned`, …) when a rule had it decided during the scan
    /// (the text report's driver heading); never computed for the report alone.
    #[serde(skip)]
    pub signature: Option<&'static str>,
}
