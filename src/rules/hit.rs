//! What rules see and what they return: the context of an image or report-level rule, and
//! the [`Hit`] — where, what, and adjustments — that the report layer makes a finding of.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::attribution::Attribution;
use crate::callsite::{ArgDetail, CallSite, Provenance};
use crate::driver::Driver;
use crate::pe::Image;
use crate::pool::apis::Role;

/// Severity of a finding, ordered from least to most severe. Also the `--fail-on` threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Informational.
    Note,
    /// A problem worth fixing.
    Warning,
    /// A problem that fails the gate by default.
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Note => "note",
            Level::Warning => "warning",
            Level::Error => "error",
        })
    }
}

/// Where a hit is: the report layer turns this into RVA, byte region and logical location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// An import's IAT slot (index into the image's imports).
    Import(usize),
    /// A section header (index into the image's sections).
    Section(usize),
    /// A call site (index into [`Driver::sites`]).
    CallSite(usize),
    /// A header field at a byte offset, with its length.
    Header(u64, u64),
    /// A pool tag as a whole (report-level rules), anchored at the artifact of the first driver
    /// it is attributed to, or at the pool evidence when no driver uses it.
    PoolTag {
        /// The tag.
        tag: u32,
        /// The artifact the result is placed on.
        artifact: usize,
    },
    /// The driver as a whole (its signature, a blocklist entry), with what identifies the
    /// finding within the driver (`list:entry`), since it has no address.
    Driver {
        /// The finding's key within the driver.
        key: String,
    },
    /// A line of a package's INF (package-level rules), with a key identifying the finding.
    InfLine {
        /// 1-based line; 0 when the problem has no line (an absent section).
        line: usize,
        /// The finding's key within the INF.
        key: String,
    },
}

/// What a matcher or native check found: where, what, and optional adjustments.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Where.
    pub anchor: Anchor,
    /// What, as the middle of the message ("calls ExAllocatePool at 0x1040 …").
    pub what: String,
    /// Level override (DRV1004: tag 0 is an error, a non-printable tag a warning).
    pub level: Option<Level>,
    /// Pool tags the hit concerns.
    pub tags: Vec<u32>,
    /// Extra facts for SARIF `properties` (report-level rules: the tag's drivers, owner).
    pub properties: BTreeMap<String, serde_json::Value>,
}

impl Hit {
    /// A hit with no level override, tags or extra properties.
    pub fn new(anchor: Anchor, what: String) -> Hit {
        Hit {
            anchor,
            what,
            level: None,
            tags: Vec::new(),
            properties: BTreeMap::new(),
        }
    }
}

/// What image rules see: one driver, and the run's settings that rules read.
pub struct CheckContext<'a> {
    /// The driver.
    pub driver: &'a Driver,
    /// `tag → owning binary` from `--pooltag`, when given.
    pub pooltag: Option<&'a HashMap<u32, String>>,
    /// The driver's identity facts, computed when a rule first asks.
    pub facts: &'a crate::facts::Facts<'a>,
    /// The blocklists given (`--blocklist`).
    pub blocklists: &'a [crate::blocklist::Blocklist],
    /// The package the driver came in, when it came in one (a folder or archive with an INF).
    pub package: Option<&'a crate::packageinfo::PackageInfo>,
    /// When the scan runs (seconds since 1970), for certificates judged without a timestamp.
    pub now: i64,
}

/// What package-level rules see: one INF of a package.
pub struct PackageContext<'a> {
    /// The package.
    pub package: &'a crate::packageinfo::PackageInfo,
    /// The INF.
    pub inf: &'a crate::packageinfo::InfFile,
}

/// What report-level rules see: the run's pool usage attributed to its drivers.
pub struct ReportContext<'a> {
    /// Pool figures joined with the drivers' tag inventories.
    pub attribution: &'a Attribution,
    /// The artifact of the pool evidence (a dump or `--pool` export), where a result about a
    /// tag no driver uses is placed.
    pub evidence_artifact: usize,
}

/// A rule over the whole run rather than one image (DRV9001). Registered by name in
/// [`checks`], like image checks.
pub trait ReportRule: Sync {
    /// The hits of this rule over the run.
    fn check(&self, ctx: &ReportContext<'_>) -> Vec<Hit>;
}

/// "calls ExAllocatePool at 0x1040 in sub_1000 (pool type 0x0, size 0x40)". A value that is
/// one of several constants is shown as the set, an address as the global it names, and a tag
/// read at run time as set at run time with the values it can hold (never its initial zero).
pub fn describe_site(image: &Image, site: &CallSite) -> String {
    let mut parts = Vec::new();
    for (role, v) in &site.args {
        let Some(label) = role.label() else {
            continue;
        };
        let show = |x: u64| match role {
            Role::Tag => format!("'{}'", crate::pool::tag_display(x as u32)),
            _ => format!("0x{x:x}"),
        };
        let list = |xs: &mut dyn Iterator<Item = u64>| xs.map(show).collect::<Vec<_>>().join(", ");
        let text = match (site.detail(*role), v.value) {
            (Some(ArgDetail::OneOf(xs)), _) => format!("one of {}", list(&mut xs.iter().copied())),
            (Some(ArgDetail::AddressOf { global, holds }), _) => match holds {
                Some(h) => format!(
                    "the address of the global at RVA 0x{global:x} (holding {})",
                    show(*h)
                ),
                None => format!("the address of the global at RVA 0x{global:x}"),
            },
            (_, Some(x)) if v.how == Provenance::Runtime && *role == Role::Tag => {
                let values = &site.tag_values;
                let initial = x as u32;
                match values.as_slice() {
                    [t] if *t == initial => format!(
                        "{} at run time, from a global the code never changes",
                        show(x)
                    ),
                    [_, _, ..] if values.contains(&initial) => {
                        format!(
                            "{} at run time, one of {}",
                            show(x),
                            list(&mut values.iter().map(|&t| u64::from(t)))
                        )
                    }
                    [] if initial != 0 => format!("{} at run time", show(x)),
                    [] => "set at run time".into(),
                    [t] => format!("set at run time to {}", show(u64::from(*t))),
                    _ => format!(
                        "set at run time, one of {}",
                        list(&mut values.iter().map(|&t| u64::from(t)))
                    ),
                }
            }
            (_, Some(x)) if v.how == Provenance::Runtime => format!("{} at run time", show(x)),
            (_, Some(x)) => show(x),
            (_, None) => "unknown".into(),
        };
        parts.push(format!("{label} {text}"));
    }
    let args = if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    };
    let func = function_name(image, site.function);
    match site.via {
        // The values were recovered at the wrapper's caller, which is where the finding is.
        Some(caller) => format!(
            "calls {} through wrapper {} from RVA 0x{:x}{}",
            site.api, func, caller, args
        ),
        None => format!(
            "calls {} at RVA 0x{:x} in {}{}",
            site.api, site.rva, func, args
        ),
    }
}

/// Export name or `sub_<rva>` of a function start.
pub fn function_name(image: &Image, start: Option<u32>) -> String {
    match start {
        Some(s) => image
            .export_name_at(s)
            .map(str::to_string)
            .or_else(|| (s == image.entry_point).then(|| "entry point".to_string()))
            .unwrap_or_else(|| format!("sub_{s:x}")),
        None => "unknown function".into(),
    }
}
