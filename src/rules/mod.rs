//! Rules as data: one TOML file per rule in `rules/`, embedded at build time.
//!
//! A rule file owns everything a user or a SARIF viewer sees (id, name, descriptions, help,
//! default level) and, for most rules, the match itself as one of a closed set of declarative
//! matchers. Logic that does not fit a matcher is a native check in [`checks`], still declared
//! by its TOML file (`kind = "native"`) and resolved to its function when the rules load (an
//! unknown name is a load error), so a rule can never misstate its own metadata.
//!
//! Rules only say *what* they found and *where* ([`Hit`]): the report layer turns a rule and
//! its hit into a finding, with the rule's id, level and reason. Two scopes:
//! - image rules read one [`Driver`] at a time ([`RuleSet::check_driver`]);
//! - report-level rules ([`ReportRule`], DRV9001) read what is only known once every input is
//!   analysed: the pool usage attributed to the drivers ([`RuleSet::check_report`]).

mod checks;
pub mod explain;
mod gating;
mod hit;

pub use hit::{
    describe_site, function_name, Anchor, CheckContext, Hit, Level, PackageContext, ReportContext,
    ReportRule,
};

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::callsite::Provenance;
use crate::pe::Image;
use crate::pool::apis::{ApiKind, Role};

include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));

/// File names of the built-in rules (for the registry-completeness test).
pub fn builtin_files() -> impl Iterator<Item = &'static str> {
    BUILTIN.iter().map(|(f, _)| *f)
}

/// One rule, as declared in its TOML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable id, the SARIF `ruleId` (`DRV1001`); never reused.
    pub id: String,
    /// Kebab-case name of the hazard (`untagged-pool-allocation`).
    pub name: String,
    /// Default level.
    pub level: Level,
    /// Whether the rule runs by default.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// One-line summary (SARIF `shortDescription`).
    pub short: String,
    /// Full description (SARIF `fullDescription`).
    pub full: String,
    /// The reason, appended to every message ("…: <why>").
    pub why: String,
    /// Help in Markdown (SARIF `help.markdown`).
    pub help: String,
    /// Documentation anchor.
    pub help_uri: Option<String>,
    /// Kinds of problem (`security`, `correctness`, `maintainability`): SARIF rule `tags`.
    #[serde(default)]
    pub tags: Vec<RuleTag>,
    /// How often a result is a true problem (SARIF / GitHub `precision`).
    pub precision: Option<Precision>,
    /// CVSS-like 0.0–10.0 score for security rules: GitHub code scanning shows results of rules
    /// with one as security alerts (critical ≥ 9.0, high ≥ 7.0, medium ≥ 4.0, low).
    pub security_severity: Option<f64>,
    /// The match.
    #[serde(rename = "match")]
    pub matcher: Matcher,
    /// For `kind = "native"`: the check the name resolved to when the rule loaded.
    #[serde(skip)]
    native: Option<checks::Native>,
}

fn default_true() -> bool {
    true
}

/// A kind of problem a rule reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleTag {
    /// A hazard an attacker can use, or that weakens a security boundary.
    Security,
    /// A bug: the driver does not do what it means to, or crashes the system.
    Correctness,
    /// Makes the driver harder to diagnose or keep working (deprecated APIs, shared tags).
    Maintainability,
}

impl RuleTag {
    /// The tag as SARIF writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleTag::Security => "security",
            RuleTag::Correctness => "correctness",
            RuleTag::Maintainability => "maintainability",
        }
    }
}

/// How often a rule's results are true problems (SARIF `precision`, as GitHub reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    /// Essentially never wrong (a fact read from the image).
    VeryHigh,
    /// Rarely wrong.
    High,
    /// Sometimes wrong.
    Medium,
    /// Often wrong.
    Low,
}

impl Precision {
    /// The value as SARIF writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::VeryHigh => "very-high",
            Precision::High => "high",
            Precision::Medium => "medium",
            Precision::Low => "low",
        }
    }
}

/// The fields a rule file may change of a rule that already exists (`--rules DIR` with only
/// `id = "DRV1002"` and `enabled = false`, say): every field but `id` optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleOverride {
    id: String,
    name: Option<String>,
    level: Option<Level>,
    enabled: Option<bool>,
    short: Option<String>,
    full: Option<String>,
    why: Option<String>,
    help: Option<String>,
    help_uri: Option<String>,
    tags: Option<Vec<RuleTag>>,
    precision: Option<Precision>,
    security_severity: Option<f64>,
    #[serde(rename = "match")]
    matcher: Option<Matcher>,
}

/// Which rules run: `select` (all default-enabled rules when absent), plus `extend_select`,
/// minus `ignore`. Each entry is a rule id, a rule name, an id prefix (`DRV1`) or `ALL`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// The rules to run instead of the default ones.
    pub select: Option<Vec<String>>,
    /// Rules to run besides.
    pub extend_select: Vec<String>,
    /// Rules not to run.
    pub ignore: Vec<String>,
}

/// The closed set of declarative matchers.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Matcher {
    /// The image imports any of `functions` (optionally only from `dlls`). With
    /// `per_call_site`, each call site of those functions is reported, and the import itself
    /// only when no call site is found.
    Imports {
        /// Function names.
        functions: Vec<String>,
        /// Module names (case-insensitive); empty means any.
        #[serde(default)]
        dlls: Vec<String>,
        /// Report call sites rather than the import.
        #[serde(default)]
        per_call_site: bool,
    },
    /// A section has all of `all` flags.
    SectionFlags {
        /// `execute`, `write`, `read`, `discardable`, `code`.
        all: Vec<SectionFlag>,
    },
    /// `DllCharacteristics` lacks the given bits (on the given machines, or all).
    HeaderFlags {
        /// Bits that must be set; the rule fires when any is missing.
        missing_dll_characteristics: u16,
        /// Machines the rule applies to (`x86`, `x64`, `arm64`); empty means all.
        #[serde(default)]
        machines: Vec<String>,
    },
    /// Call sites of the given API kinds whose recovered values match every given condition.
    CallSite {
        /// `allocate`, `free`, `lookaside-init`; empty means all.
        #[serde(default)]
        api_kinds: Vec<ApiKindName>,
        /// The constant tag is one of these.
        #[serde(default)]
        tags: Vec<u32>,
        /// The constant pool type, base and session bits only (`type & 0x27`), is one of these.
        #[serde(default)]
        pool_types: Vec<u64>,
        /// The pool type was obtained this way.
        #[serde(default)]
        pool_type_how: Option<Provenance>,
    },
    /// Logic in Rust: the named check in [`checks`].
    Native {
        /// Check name.
        check: String,
    },
}

/// Section flag names usable in rule files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SectionFlag {
    /// `IMAGE_SCN_MEM_EXECUTE`.
    Execute,
    /// `IMAGE_SCN_MEM_WRITE`.
    Write,
    /// `IMAGE_SCN_MEM_READ`.
    Read,
    /// `IMAGE_SCN_MEM_DISCARDABLE`.
    Discardable,
    /// `IMAGE_SCN_CNT_CODE`.
    Code,
}

impl SectionFlag {
    fn bit(self) -> u32 {
        match self {
            SectionFlag::Execute => crate::pe::SCN_MEM_EXECUTE,
            SectionFlag::Write => crate::pe::SCN_MEM_WRITE,
            SectionFlag::Read => 0x4000_0000,
            SectionFlag::Discardable => crate::pe::SCN_MEM_DISCARDABLE,
            SectionFlag::Code => crate::pe::SCN_CNT_CODE,
        }
    }
}

/// API kind names usable in rule files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApiKindName {
    /// [`ApiKind::Allocate`].
    Allocate,
    /// [`ApiKind::Free`].
    Free,
    /// [`ApiKind::LookasideInit`].
    LookasideInit,
}

impl ApiKindName {
    fn matches(self, k: ApiKind) -> bool {
        matches!(
            (self, k),
            (ApiKindName::Allocate, ApiKind::Allocate)
                | (ApiKindName::Free, ApiKind::Free)
                | (ApiKindName::LookasideInit, ApiKind::LookasideInit)
        )
    }
}

/// Why rules could not be loaded. Built-in rule errors are tool bugs; user rule errors name
/// the file and carry the TOML error with its line and column.
#[derive(Debug, Error)]
pub enum RuleError {
    /// A rule file could not be read.
    #[error("{path}: cannot read rule file: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A rule file is not valid.
    #[error("{path}: invalid rule: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A selection or override names no rule.
    #[error("unknown rule `{key}`: not a rule id, name or id prefix; `drvaudit rules` lists them")]
    Selector {
        /// The selector.
        key: String,
    },
}

/// The loaded rules, sorted by id.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// The built-in rules.
    pub fn builtin() -> Result<RuleSet, RuleError> {
        let mut rules = Vec::new();
        for (file, text) in BUILTIN {
            rules.push(parse_rule(Path::new("rules").join(file).as_path(), text)?);
        }
        let mut set = RuleSet { rules };
        set.sort_and_check()?;
        Ok(set)
    }

    /// Adds user rules from every `*.toml` in `dir` (`--rules DIR`).
    pub fn add_dir(&mut self, dir: &Path) -> Result<(), RuleError> {
        let entries = std::fs::read_dir(dir).map_err(|source| RuleError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|source| RuleError::Read {
                path: path.clone(),
                source,
            })?;
            self.add_file(&path, &text)?;
        }
        self.sort_and_check()
    }

    /// Adds one user rule file's text as [`RuleSet::add_dir`] adds each file it finds; `path`
    /// names it in errors and decides the file-name checks.
    pub fn add_text(&mut self, path: &Path, text: &str) -> Result<(), RuleError> {
        self.add_file(path, text)?;
        self.sort_and_check()
    }

    /// Adds one user rule file: a whole rule, or — when its `id` is a rule already loaded —
    /// only the fields it changes.
    fn add_file(&mut self, path: &Path, text: &str) -> Result<(), RuleError> {
        let invalid = |message: String| RuleError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let id = toml::from_str::<toml::Table>(text)
            .map_err(|e| invalid(e.to_string()))?
            .get("id")
            .and_then(|v| v.as_str().map(str::to_string))
            .ok_or_else(|| invalid("missing field `id`".into()))?;
        let Some(existing) = self.rules.iter_mut().find(|r| r.id == id) else {
            let rule = parse_rule(path, text)?;
            self.rules.push(rule);
            return Ok(());
        };
        let o: RuleOverride = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let name = o.name.clone().unwrap_or_else(|| existing.name.clone());
        if stem != o.id && stem != format!("{}-{name}", o.id) {
            return Err(invalid(format!(
                "file name must be `{}.toml` or `{}-{name}.toml`",
                o.id, o.id
            )));
        }
        let mut rule = existing.clone();
        rule.name = name;
        macro_rules! set {
            ($($field:ident),*) => { $(if let Some(v) = o.$field { rule.$field = v; })* };
        }
        set!(level, enabled, short, full, why, help, tags);
        rule.help_uri = o.help_uri.or(rule.help_uri);
        rule.precision = o.precision.or(rule.precision);
        rule.security_severity = o.security_severity.or(rule.security_severity);
        if let Some(m) = o.matcher {
            rule.matcher = m;
            rule.native = resolve_native(path, &rule.matcher)?;
        }
        check_rule(path, &rule)?;
        *existing = rule;
        Ok(())
    }

    /// Applies a selection: which rules run. An entry that names no rule is an error.
    pub fn select(&mut self, selection: &Selection) -> Result<(), RuleError> {
        let all: Vec<&String> = selection
            .select
            .iter()
            .flatten()
            .chain(&selection.extend_select)
            .chain(&selection.ignore)
            .collect();
        for key in all {
            if !self.rules.iter().any(|r| r.is_selected_by(key)) {
                return Err(RuleError::Selector { key: key.clone() });
            }
        }
        for r in &mut self.rules {
            if let Some(select) = &selection.select {
                r.enabled = select.iter().any(|k| r.is_selected_by(k));
            }
            if selection.extend_select.iter().any(|k| r.is_selected_by(k)) {
                r.enabled = true;
            }
            if selection.ignore.iter().any(|k| r.is_selected_by(k)) {
                r.enabled = false;
            }
        }
        Ok(())
    }

    /// Sets rule `key`'s level and whether it runs by default (configuration overrides).
    pub fn set(
        &mut self,
        key: &str,
        level: Option<Level>,
        enabled: Option<bool>,
    ) -> Result<(), RuleError> {
        let rule = self
            .rules
            .iter_mut()
            .find(|r| r.id.eq_ignore_ascii_case(key) || r.name == key)
            .ok_or_else(|| RuleError::Selector {
                key: key.to_string(),
            })?;
        if let Some(l) = level {
            rule.level = l;
        }
        if let Some(e) = enabled {
            rule.enabled = e;
        }
        Ok(())
    }

    fn sort_and_check(&mut self) -> Result<(), RuleError> {
        self.rules.sort_by(|a, b| a.id.cmp(&b.id));
        for pair in self.rules.windows(2) {
            if pair[0].name == pair[1].name {
                return Err(RuleError::Invalid {
                    path: PathBuf::from(&pair[1].id),
                    message: format!("name `{}` is used by {} too", pair[1].name, pair[0].id),
                });
            }
        }
        Ok(())
    }

    /// All rules, sorted by id.
    pub fn all(&self) -> &[Rule] {
        &self.rules
    }

    /// The rules that run, sorted by id (the log's `tool.driver.rules`).
    pub fn enabled(&self) -> Vec<Rule> {
        self.rules.iter().filter(|r| r.enabled).cloned().collect()
    }

    /// The set with no rule (`drvaudit identify` audits identities, not rules).
    pub fn none() -> RuleSet {
        RuleSet { rules: Vec::new() }
    }

    /// The set holding only the rule `key` (id or name), enabled whatever its default: for
    /// running one rule alone, as its tests do. `None` when there is no such rule.
    pub fn only(&self, key: &str) -> Option<RuleSet> {
        let mut rule = self.get(key)?.clone();
        rule.enabled = true;
        Some(RuleSet { rules: vec![rule] })
    }

    /// A rule by id (case-insensitive) or name.
    pub fn get(&self, key: &str) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|r| r.id.eq_ignore_ascii_case(key) || r.name == key)
    }

    /// Runs every enabled image rule over one driver: each hit with the rule that made it.
    pub fn check_driver<'r>(&'r self, ctx: &CheckContext<'_>) -> Vec<(&'r Rule, Hit)> {
        let mut out = Vec::new();
        for rule in self.rules.iter().filter(|r| r.enabled) {
            for hit in match_rule(rule, ctx) {
                out.push((rule, hit));
            }
        }
        out
    }

    /// Runs every enabled report-level rule over what the whole run observed.
    pub fn check_report<'r>(&'r self, ctx: &ReportContext<'_>) -> Vec<(&'r Rule, Hit)> {
        let mut out = Vec::new();
        for rule in self.rules.iter().filter(|r| r.enabled) {
            if let Some(checks::Native::Report(check)) = rule.native {
                out.extend(check.check(ctx).into_iter().map(|h| (rule, h)));
            }
        }
        out
    }

    /// Runs every enabled package-level rule over one INF of a package.
    pub fn check_package<'r>(&'r self, ctx: &PackageContext<'_>) -> Vec<(&'r Rule, Hit)> {
        let mut out = Vec::new();
        for rule in self.rules.iter().filter(|r| r.enabled) {
            if let Some(checks::Native::Package(check)) = rule.native {
                out.extend(check(ctx).into_iter().map(|h| (rule, h)));
            }
        }
        out
    }
}

fn parse_rule(path: &Path, text: &str) -> Result<Rule, RuleError> {
    let mut rule: Rule = toml::from_str(text).map_err(|e| RuleError::Invalid {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let expected = format!("{}-{}", rule.id, rule.name);
    if stem != expected {
        return Err(RuleError::Invalid {
            path: path.to_path_buf(),
            message: format!("file name must be `{expected}.toml` (id-name)"),
        });
    }
    rule.native = resolve_native(path, &rule.matcher)?;
    check_rule(path, &rule)?;
    Ok(rule)
}

/// The native check a `kind = "native"` matcher names (an unknown name is an error).
fn resolve_native(path: &Path, matcher: &Matcher) -> Result<Option<checks::Native>, RuleError> {
    let Matcher::Native { check } = matcher else {
        return Ok(None);
    };
    checks::resolve(check)
        .map(Some)
        .ok_or_else(|| RuleError::Invalid {
            path: path.to_path_buf(),
            message: format!(
                "unknown native check `{check}`; known: {}",
                checks::names().collect::<Vec<_>>().join(", ")
            ),
        })
}

/// What every rule, whole or overridden, must satisfy.
fn check_rule(path: &Path, rule: &Rule) -> Result<(), RuleError> {
    let invalid = |message: String| RuleError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    if rule.id == rule.name {
        return Err(invalid(
            "name must differ from id (SARIF viewers show both)".into(),
        ));
    }
    if let Some(s) = rule.security_severity {
        if !(0.0..=10.0).contains(&s) {
            return Err(invalid(format!(
                "security_severity {s} is outside 0.0-10.0"
            )));
        }
        if !rule.tags.contains(&RuleTag::Security) {
            return Err(invalid(
                "security_severity is for rules tagged `security`".into(),
            ));
        }
    }
    Ok(())
}

impl Rule {
    /// Whether a selector names this rule: `ALL`, its id, its name or a prefix of its id.
    fn is_selected_by(&self, key: &str) -> bool {
        key.eq_ignore_ascii_case("ALL")
            || self.name == key
            || self
                .id
                .get(..key.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(key))
    }
}

fn match_rule(rule: &Rule, ctx: &CheckContext<'_>) -> Vec<Hit> {
    let image = &ctx.driver.image;
    let sites = &ctx.driver.sites;
    match &rule.matcher {
        Matcher::Imports {
            functions,
            dlls,
            per_call_site,
        } => {
            let wanted = |dll: &str, name: &str| {
                functions.iter().any(|f| f == name)
                    && (dlls.is_empty() || dlls.iter().any(|d| d.eq_ignore_ascii_case(dll)))
            };
            let mut hits = Vec::new();
            for (i, imp) in image.imports.iter().enumerate() {
                let Some(name) = imp.name.as_deref() else {
                    continue;
                };
                if !wanted(&imp.dll, name) {
                    continue;
                }
                let at_sites: Vec<usize> = if *per_call_site {
                    (0..sites.len()).filter(|&s| sites[s].api == name).collect()
                } else {
                    Vec::new()
                };
                if at_sites.is_empty() {
                    let mut hit = Hit::new(Anchor::Import(i), format!("imports {}", imp.display()));
                    hit.tags = crate::pool::apis::for_import(&imp.dll, name)
                        .and_then(|a| a.implied_tag)
                        .into_iter()
                        .collect();
                    hits.push(hit);
                } else {
                    for s in at_sites {
                        let site = &sites[s];
                        let mut hit = Hit::new(Anchor::CallSite(s), describe_site(image, site));
                        hit.tags = site.possible_tags();
                        hits.push(hit);
                    }
                }
            }
            hits
        }
        Matcher::SectionFlags { all } => image
            .sections
            .iter()
            .enumerate()
            .filter(|(_, s)| all.iter().all(|f| s.characteristics & f.bit() != 0))
            .map(|(i, s)| {
                Hit::new(
                    Anchor::Section(i),
                    format!(
                        "section `{}` has characteristics 0x{:08x}",
                        s.name, s.characteristics
                    ),
                )
            })
            .collect(),
        Matcher::HeaderFlags {
            missing_dll_characteristics,
            machines,
        } => {
            let applies = machines.is_empty()
                || machines
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(&image.machine.to_string()));
            if !applies
                || image.dll_characteristics & missing_dll_characteristics
                    == *missing_dll_characteristics
            {
                return Vec::new();
            }
            vec![Hit::new(
                dll_characteristics_anchor(image),
                format!(
                    "DllCharacteristics 0x{:04x} lacks 0x{:04x}",
                    image.dll_characteristics, missing_dll_characteristics
                ),
            )]
        }
        Matcher::CallSite {
            api_kinds,
            tags,
            pool_types,
            pool_type_how,
        } => sites
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                let kind_ok =
                    api_kinds.is_empty() || api_kinds.iter().any(|k| k.matches(s.spec().kind));
                let tag_ok = tags.is_empty()
                    || s.arg(Role::Tag)
                        .and_then(|v| v.constant())
                        .is_some_and(|t| tags.contains(&(t as u32)));
                let type_ok = pool_types.is_empty()
                    || s.arg(Role::PoolType)
                        .and_then(|v| v.constant())
                        .is_some_and(|t| pool_types.contains(&(t & 0x27)));
                let how_ok =
                    pool_type_how.is_none_or(|h| s.arg(Role::PoolType).is_some_and(|v| v.how == h));
                kind_ok && tag_ok && type_ok && how_ok
            })
            .map(|(i, s)| {
                let mut hit = Hit::new(Anchor::CallSite(i), describe_site(image, s));
                hit.tags = s.possible_tags();
                hit
            })
            .collect(),
        Matcher::Native { .. } => match rule.native {
            Some(checks::Native::Image(check)) => check(ctx),
            // Report-level rules run once per report (`check_report`), package-level ones once
            // per INF (`check_package`), not per image.
            Some(checks::Native::Report(_) | checks::Native::Package(_)) => Vec::new(),
            None => unreachable!("native rules are resolved when they load"),
        },
    }
}

/// Offset of `OptionalHeader.DllCharacteristics` (70 bytes into the optional header in both
/// PE32 and PE32+), found from the first section header's position.
fn dll_characteristics_anchor(image: &Image) -> Anchor {
    let first_section = image.sections.first().map(|s| s.header_offset);
    let size_of_optional = if image.machine.pointer_size() == 8 {
        240
    } else {
        224
    };
    match first_section {
        Some(at) if at >= size_of_optional => {
            // Optional header start = first section header - SizeOfOptionalHeader; assumes the
            // standard size, which every linker writes for drivers.
            Anchor::Header(u64::from(at - size_of_optional + 70), 2)
        }
        _ => Anchor::Header(0, 2),
    }
}

/// The rule table printed by `drvaudit rules` (and checked against the README).
pub fn table(rules: &RuleSet) -> String {
    let mut out =
        String::from("| id | name | level | default | summary |\n|---|---|---|---|---|\n");
    for r in rules.all() {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.id,
            r.name,
            r.level,
            if r.enabled { "on" } else { "off" },
            r.short
        ));
    }
    out
}
