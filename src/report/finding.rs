//! A finding: a rule's hit placed in the report, with its location resolved.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::attribution::Evidence;
use crate::callsite::CallSite;
use crate::driver::Driver;
use crate::pool::tag_display;
use crate::rules::{function_name, Anchor, Hit, Level, Rule};
use crate::util::group;

/// A logical location: the function, section or import a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Logical {
    /// Short name (`DriverEntry`, `sub_1400011a0`, `.text`, `ExAllocatePool`).
    pub name: String,
    /// Qualified name (`untagged.sys!sub_1400011a0`, `ntoskrnl.exe!ExAllocatePool`).
    pub fully_qualified: String,
    /// SARIF logical location kind (`function`, `section`, `module`, `resource`).
    pub kind: &'static str,
    /// Start and end RVA of the function, when known (from `.pdata`).
    pub bounds: Option<(u32, u32)>,
}

/// Which kind of place a finding is anchored at (its rule's [`Anchor`], without the indices).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnchorKind {
    /// An import's IAT slot.
    Import,
    /// A section header.
    Section,
    /// A call site.
    CallSite,
    /// A header field.
    Header,
    /// A pool tag as a whole (report-level rules).
    PoolTag,
    /// The driver as a whole (its signature, a blocklist entry).
    Driver,
    /// A line of a package's INF (package-level rules).
    InfLine,
}

/// Where a hit was found: in one driver, or over the whole report (report-level rules, whose
/// anchors carry their artifact).
pub enum Place<'a> {
    /// A hit of an image rule on `driver`, whose artifact is `artifact`.
    Driver {
        /// The driver the rule ran on.
        driver: &'a Driver,
        /// Its artifact index.
        artifact: usize,
    },
    /// A hit of a report-level rule.
    Report,
    /// A hit of a package-level rule on an INF.
    Package {
        /// The INF's artifact index.
        artifact: usize,
        /// The INF as messages name it (`pkg.zip:x.inf`).
        display: &'a str,
        /// What names the package in fingerprints: the INF's SHA-256.
        identity: &'a str,
    },
}

/// Only [`Finding::from_hit`] can make a finding.
#[derive(Debug, Clone, PartialEq)]
struct Sealed;

/// One result of one rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Stable rule id (`DRV1001`).
    pub rule_id: String,
    /// Level after any per-hit adjustment.
    pub level: Level,
    /// Who the finding is about, as the message opens (`untagged.sys`,
    /// `{GUID}.sys (memory-only)`); `None` for report-level findings about a pool tag.
    pub subject: Option<String>,
    /// What the rule found ("calls ExAllocatePool at RVA 0x1040 in sub_1000 (…)").
    pub what: String,
    /// Index into the report's artifacts.
    pub artifact: usize,
    /// RVA of the instruction, import slot or section the finding is about.
    pub rva: Option<u32>,
    /// Byte offset and length within the artifact.
    pub region: Option<(u64, u64)>,
    /// 1-based line within a text artifact (an INF).
    pub line: Option<u32>,
    /// Logical location.
    pub logical: Option<Logical>,
    /// What kind of place the finding is anchored at.
    pub anchor: AnchorKind,
    /// Extra facts for SARIF `properties` (import, section, tag owner, …).
    pub properties: BTreeMap<String, serde_json::Value>,
    /// Pool tags the finding is tied to (for ranking by observed usage).
    pub tags: Vec<u32>,
    /// The call site a call-site finding is about; its facts (api, tag, pool type, how each
    /// was recovered) become SARIF properties when the log is written.
    pub site: Option<CallSite>,
    /// About the driver as a whole (an import, a section, a header flag) rather than one call
    /// site: ranked by the sum over all of the driver's allocation tags.
    pub driver_level: bool,
    /// Observed pool figures for those tags, when any source was supplied.
    pub evidence: Option<Evidence>,
    /// 0–100 by share of pool in use; only findings with evidence are ranked.
    pub rank: Option<f64>,
    /// Stable identity of the finding (see [`assign_fingerprints`]): the same finding of the
    /// same driver gives the same value wherever the file lies, whatever it is called, and
    /// across a rebuild that moves its code.
    pub fingerprint: String,
    /// What the fingerprint hashes, before the occurrence index: driver identity and the
    /// finding's location key.
    #[serde(skip)]
    key: String,
    /// The reason a `[[suppress]]` entry accepts this finding: it then stays in the SARIF log
    /// but leaves the exit code and the text report.
    pub suppression: Option<String>,
    /// The finding against a baseline, when one was given.
    pub baseline: Option<super::baseline::BaselineState>,
    /// Where it is in the driver's source, when its debug information was found.
    pub source: Option<super::source::Source>,
    #[serde(skip)]
    sealed: Sealed,
}

impl Finding {
    /// The finding `rule` makes of `hit`, found at `place`.
    ///
    /// # Panics
    /// When an image anchor comes with [`Place::Report`], or a report anchor with a driver: a
    /// rule bug the rule tests catch.
    pub fn from_hit(rule: &Rule, hit: Hit, place: Place<'_>) -> Finding {
        let mut properties = hit.properties;
        let (artifact, subject, identity, located) = match place {
            Place::Driver { driver, artifact } => {
                if driver.memory_only {
                    properties.insert("memoryOnly".into(), true.into());
                }
                let located = locate_in_driver(&hit.anchor, driver, &mut properties);
                (
                    artifact,
                    Some(driver.label()),
                    driver.identity.as_str(),
                    located,
                )
            }
            Place::Package {
                artifact,
                display,
                identity,
            } => match &hit.anchor {
                Anchor::InfLine { line, key } => (
                    artifact,
                    Some(display.to_string()),
                    identity,
                    Located {
                        rva: None,
                        region: None,
                        line: (*line > 0).then_some(*line as u32),
                        logical: None,
                        key: key.clone(),
                        site: None,
                    },
                ),
                other => panic!("package-level hit anchored at {other:?}"),
            },
            Place::Report => match hit.anchor {
                Anchor::PoolTag { tag, artifact } => (
                    artifact,
                    None,
                    "pool",
                    Located {
                        rva: None,
                        region: Some((0, 0)),
                        logical: Some(Logical {
                            name: tag_display(tag),
                            fully_qualified: format!("pool tag '{}'", tag_display(tag)),
                            kind: "resource",
                            bounds: None,
                        }),
                        key: format!("tag:{tag:08x}"),
                        site: None,
                        line: None,
                    },
                ),
                other => panic!("report-level hit anchored at {other:?}"),
            },
        };
        let anchor = match hit.anchor {
            Anchor::Import(_) => AnchorKind::Import,
            Anchor::Section(_) => AnchorKind::Section,
            Anchor::CallSite(_) => AnchorKind::CallSite,
            Anchor::Header(..) => AnchorKind::Header,
            Anchor::PoolTag { .. } => AnchorKind::PoolTag,
            Anchor::Driver { .. } => AnchorKind::Driver,
            Anchor::InfLine { .. } => AnchorKind::InfLine,
        };
        Finding {
            rule_id: rule.id.clone(),
            level: hit.level.unwrap_or(rule.level),
            subject,
            what: hit.what,
            artifact,
            rva: located.rva,
            region: located.region,
            line: located.line,
            logical: located.logical,
            anchor,
            properties,
            tags: hit.tags,
            driver_level: !matches!(
                anchor,
                AnchorKind::CallSite | AnchorKind::PoolTag | AnchorKind::InfLine
            ),
            site: located.site,
            evidence: None,
            rank: None,
            fingerprint: fingerprint(&rule.id, &format!("{identity}\0{}", located.key), 0),
            key: format!("{identity}\0{}", located.key),
            suppression: None,
            baseline: None,
            source: None,
            sealed: Sealed,
        }
    }

    /// Gives the finding its source location, and the function's real name where the binary
    /// knew none (`sub_<rva>` in the message and the logical location).
    pub fn set_source(&mut self, source: super::source::Source) {
        if let (Some(name), Some(l)) = (&source.function, self.logical.as_mut()) {
            if l.kind == "function" && l.name.starts_with("sub_") {
                let placeholder = l.name.clone();
                self.what = self.what.replace(&placeholder, name);
                l.fully_qualified = l.fully_qualified.replace(&placeholder, name);
                l.name = name.clone();
            }
        }
        self.source = Some(source);
    }

    /// The full message: who, what, the rule's reason (`why`), and for a finding tied to
    /// observed pool usage, what the pool figures say.
    pub fn message(&self, why: &str) -> String {
        let mut m = match &self.subject {
            Some(s) => format!("{s} {}: {why}", self.what),
            None => format!("{}: {why}", self.what),
        };
        if let Some(e) = self
            .evidence
            .as_ref()
            .filter(|_| self.anchor != AnchorKind::PoolTag)
        {
            m.push_str(&format!(
                "; observed: {} holds {} bytes of NonPagedPool and {} bytes of PagedPool ({} live allocations, {:.1}% of pool in use)",
                e.observed
                    .iter()
                    .map(|&t| format!("tag '{}'", tag_display(t)))
                    .collect::<Vec<_>>()
                    .join(" + "),
                group(e.nonpaged.bytes),
                group(e.paged.bytes),
                group(e.live()),
                100.0 * e.share
            ));
        }
        m
    }
}

/// A hit's location in its driver.
struct Located {
    rva: Option<u32>,
    region: Option<(u64, u64)>,
    logical: Option<Logical>,
    /// What, within the driver, the fingerprint identifies.
    key: String,
    site: Option<CallSite>,
    line: Option<u32>,
}

fn locate_in_driver(
    anchor: &Anchor,
    driver: &Driver,
    properties: &mut BTreeMap<String, serde_json::Value>,
) -> Located {
    let image = &driver.image;
    let (rva, region, logical, key) = match anchor {
        Anchor::Import(i) => {
            let imp = &image.imports[*i];
            let len = u64::from(image.machine.pointer_size());
            properties.insert("import".into(), imp.display().into());
            (
                Some(imp.iat_rva),
                image.offset_of(imp.iat_rva).map(|o| (o, len)),
                Some(Logical {
                    name: imp.name.clone().unwrap_or_default(),
                    fully_qualified: imp.display(),
                    kind: "function",
                    bounds: None,
                }),
                format!("import:{}", imp.display().to_ascii_lowercase()),
            )
        }
        Anchor::Section(i) => {
            let s = &image.sections[*i];
            properties.insert("section".into(), s.name.clone().into());
            properties.insert(
                "characteristics".into(),
                format!("0x{:08x}", s.characteristics).into(),
            );
            (
                Some(s.rva),
                Some((u64::from(s.header_offset), 40)),
                Some(Logical {
                    name: s.name.clone(),
                    fully_qualified: format!("{}!{}", driver.name, s.name),
                    kind: "section",
                    bounds: None,
                }),
                format!("section:{}", s.name),
            )
        }
        Anchor::CallSite(i) => {
            let site = &driver.sites[*i];
            let at = site.report_rva();
            // Bounds only from `.pdata`: a heuristic function's start has no known end (it
            // was given as an empty range, start = end).
            let bounds = site.function.and_then(|f| {
                image
                    .function_of(f)
                    .filter(|r| r.begin == f)
                    .map(|r| (f, r.end))
            });
            // A wrapper-resolved site is reported in the caller, whose function is known only
            // from `.pdata`; without it the logical location is left out rather than naming
            // the wrapper.
            let logical = match site.via {
                None => Some((site.function, bounds)),
                Some(_) => image
                    .function_of(at)
                    .map(|r| (Some(r.begin), Some((r.begin, r.end)))),
            }
            .map(|(start, bounds)| {
                let fname = function_name(image, start);
                Logical {
                    fully_qualified: format!("{}!{}", driver.name, fname),
                    name: fname,
                    kind: "function",
                    bounds,
                }
            });
            let key = site_key(site, logical.as_ref());
            (Some(at), image.offset_of(at).map(|o| (o, 1)), logical, key)
        }
        Anchor::Header(off, len) => (
            None,
            Some((*off, *len)),
            Some(Logical {
                name: driver.name.to_string(),
                fully_qualified: driver.name.to_string(),
                kind: "module",
                bounds: None,
            }),
            format!("header:{off:x}"),
        ),
        Anchor::Driver { key } => (
            None,
            Some((0, 0)),
            Some(Logical {
                name: driver.name.to_string(),
                fully_qualified: driver.name.to_string(),
                kind: "module",
                bounds: None,
            }),
            format!("driver:{key}"),
        ),
        Anchor::PoolTag { .. } | Anchor::InfLine { .. } => {
            panic!("{anchor:?} is not an anchor inside a driver")
        }
    };
    let site = match anchor {
        Anchor::CallSite(i) => Some(driver.sites[*i].clone()),
        _ => None,
    };
    Located {
        rva,
        region,
        logical,
        key,
        site,
        line: None,
    }
}

/// What identifies a call site across rebuilds: the API, the tags it may record, its pool
/// type or flags, and the enclosing function when it has a real name (an export, the entry
/// point); never an address, which an unrelated change moves.
fn site_key(site: &CallSite, logical: Option<&Logical>) -> String {
    use crate::pool::apis::Role;
    let tags: Vec<String> = site
        .possible_tags()
        .iter()
        .map(|t| format!("{t:08x}"))
        .collect();
    let kind = [Role::PoolType, Role::PoolFlags, Role::LookasideFlags]
        .into_iter()
        .find_map(|r| site.arg(r).and_then(|v| v.constant()))
        .map_or_else(|| "?".to_string(), |v| format!("{v:x}"));
    let function = logical
        .map(|l| l.name.as_str())
        .filter(|n| !n.starts_with("sub_") && *n != "unknown function")
        .unwrap_or("?");
    format!(
        "site:{}:tags={}:type={kind}:fn={function}",
        site.api,
        tags.join(",")
    )
}

/// Gives each finding its fingerprint: rule, location key and an occurrence index, hashed. The
/// index numbers the findings of one rule that share a key, in address order, so that two
/// calls alike in one function stay apart while each keeps its value when code elsewhere
/// changes. Call once per driver (or per report for report-level findings), after every
/// finding of it is made.
pub fn assign_fingerprints(findings: &mut [Finding]) {
    let mut order: Vec<usize> = (0..findings.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&findings[a], &findings[b]);
        (&x.rule_id, &x.key, x.rva, x.region).cmp(&(&y.rule_id, &y.key, y.rva, y.region))
    });
    let mut index = 0;
    for (n, &i) in order.iter().enumerate() {
        let same_as_previous = n > 0 && {
            let p = &findings[order[n - 1]];
            p.rule_id == findings[i].rule_id && p.key == findings[i].key
        };
        index = if same_as_previous { index + 1 } else { 0 };
        let f = &mut findings[i];
        f.fingerprint = fingerprint(&f.rule_id, &f.key, index);
    }
}

/// The hash: rule, key and occurrence. Paths, names of files and addresses never enter it.
fn fingerprint(rule: &str, key: &str, index: usize) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(rule.as_bytes());
    h.update(b"\0");
    h.update(key.as_bytes());
    h.update(b"\0");
    h.update(index.to_le_bytes());
    hex::encode(&h.finalize()[..16])
}
