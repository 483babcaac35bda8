//! Configuration: `drvaudit.toml`, the gate's flags, and what they resolve to.
//!
//! The file is found in the current directory or the nearest ancestor that has one, stopping
//! at a repository root (a directory holding `.git`), as ruff and zizmor look for theirs; or it
//! is given with `--config FILE`; `--no-config` ignores any. Paths in it are relative to its
//! folder. Precedence, highest first: a command-line flag, the config file, the rule file (or
//! drvaudit's default). Unknown keys are errors with their file, line and column.
//!
//! ```toml
//! select = ["DRV1", "DRV2"]           # rules that run (ids, names, id prefixes, ALL)
//! extend-select = ["DRV3006"]         # and these
//! ignore = ["deprecated-pool-allocator"]
//! fail-on = "warning"                 # error | warning | note | never
//! allow-incomplete = false
//! max-results = 5000                  # 0: no limit
//! pool = ["evidence/poolused.txt"]
//! pooltag = "pooltag.txt"
//! rule-dirs = ["ci/rules"]
//! baseline = "drvaudit-baseline.sarif"
//! symbols = ["symbols"]               # PDB folders or symbol stores
//! source-map = ["C:/build/=src/"]     # BUILD_PREFIX=DIR
//! blocklist = ["loldrivers/yaml"]
//!
//! [rules.DRV1003]
//! level = "error"
//!
//! [[suppress]]
//! rule = "DRV1001"
//! path = "vendor/legacy/**"
//! reason = "vendor driver, replacement tracked in #123"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::report::suppress::Suppression;
use crate::rules::{Level, RuleError, RuleSet, Selection};

/// The file name looked for.
pub const FILE_NAME: &str = "drvaudit.toml";

/// The lowest finding level that fails the gate, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FailOn {
    /// Errors fail the gate.
    Error,
    /// Warnings and errors.
    Warning,
    /// Any finding.
    Note,
    /// Nothing: the exit code is 0 whatever is found (2 still when the audit is incomplete).
    Never,
}

impl FailOn {
    /// The level at and above which findings fail, if any.
    pub fn level(self) -> Option<Level> {
        match self {
            FailOn::Error => Some(Level::Error),
            FailOn::Warning => Some(Level::Warning),
            FailOn::Note => Some(Level::Note),
            FailOn::Never => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            FailOn::Error => "error",
            FailOn::Warning => "warning",
            FailOn::Note => "note",
            FailOn::Never => "never",
        }
    }
}

/// The gate's flags: what a run checks and when it fails. Shared by `scan`, `baseline` and
/// `config`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GateArgs {
    /// Configuration file (default: drvaudit.toml here or in the nearest ancestor, up to the
    /// repository root).
    #[arg(long, value_name = "FILE", conflicts_with = "no_config")]
    pub config: Option<PathBuf>,
    /// Ignore any configuration file.
    #[arg(long)]
    pub no_config: bool,
    /// Rules to run instead of the default ones: ids, names, id prefixes or ALL
    /// (comma-separated, repeatable; replaces the config's `select`).
    #[arg(long, value_name = "RULES", value_delimiter = ',')]
    pub select: Vec<String>,
    /// Rules to run besides (comma-separated, repeatable; adds to the config's).
    #[arg(long, value_name = "RULES", value_delimiter = ',')]
    pub extend_select: Vec<String>,
    /// Rules not to run (comma-separated, repeatable; adds to the config's).
    #[arg(long, value_name = "RULES", value_delimiter = ',')]
    pub ignore: Vec<String>,
    /// Lowest finding level that makes the exit code 1 [default: error].
    #[arg(long, value_enum)]
    pub fail_on: Option<FailOn>,
    /// Inputs that cannot be examined (unreadable, corrupt, missing evidence) are still
    /// reported but do not make the exit code 2: for sweeps of whole systems.
    #[arg(long)]
    pub allow_incomplete: bool,
    /// Most results one SARIF run may hold before the sites of one rule in one driver are
    /// folded into one result (0: no limit) [default: 5000, GitHub code scanning's limit].
    #[arg(long, value_name = "N")]
    pub max_results: Option<usize>,
    /// Pool usage export: `!poolused` text, PoolMon log or screen, CSV or JSON (repeatable;
    /// replaces the config's).
    #[arg(long, value_name = "FILE")]
    pub pool: Vec<PathBuf>,
    /// pooltag.txt naming tag owners (enables DRV1005 tag-collision).
    #[arg(long, value_name = "FILE")]
    pub pooltag: Option<PathBuf>,
    /// Folder of additional or overriding rule files (repeatable; adds to the config's).
    #[arg(long = "rules", value_name = "DIR")]
    pub rule_dirs: Vec<PathBuf>,
    /// SARIF log of an earlier scan: results are marked new, unchanged, updated or absent, and
    /// only new and updated ones count for the exit code.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Folder of PDBs or a symbol store (repeatable; adds to the config's).
    #[arg(long, value_name = "DIR")]
    pub symbols: Vec<PathBuf>,
    /// Rewrite a build path prefix onto a checkout: BUILD_PREFIX=DIR (repeatable).
    #[arg(long, value_name = "PREFIX=DIR")]
    pub source_map: Vec<String>,
    /// Blocklist: a LOLDrivers YAML folder, drivers.json or drivers.csv, or a SiPolicy XML
    /// (repeatable; adds to the config's).
    #[arg(long, value_name = "PATH")]
    pub blocklist: Vec<PathBuf>,
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// drvaudit's default.
    Default,
    /// A command-line flag.
    Flag(&'static str),
    /// The config file, at a line.
    Config {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
    },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::Flag(name) => write!(f, "--{name}"),
            Origin::Config { path, line } => write!(f, "{}:{line}", path.display()),
        }
    }
}

/// Why the configuration could not be used: always with the file and, when it is about one
/// value, its line and column.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read the configuration: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, or has an unknown key or a value of the wrong type (the
    /// message holds the line and column).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's error, with the position.
        message: String,
    },
    /// A value is well-formed but wrong.
    #[error("{path}:{line}:{column}: {what}")]
    Value {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        what: String,
    },
    /// A rule file or a rule named in the configuration or flags.
    #[error("{0}")]
    Rules(#[from] RuleError),
    /// A flag's value is wrong.
    #[error("{0}")]
    Flag(String),
}

/// The file's contents. Every key is optional; values keep their position for messages.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    select: Option<Spanned<Vec<String>>>,
    extend_select: Option<Spanned<Vec<String>>>,
    ignore: Option<Spanned<Vec<String>>>,
    fail_on: Option<Spanned<FailOn>>,
    allow_incomplete: Option<Spanned<bool>>,
    max_results: Option<Spanned<usize>>,
    pool: Option<Spanned<Vec<PathBuf>>>,
    pooltag: Option<Spanned<PathBuf>>,
    rule_dirs: Option<Spanned<Vec<PathBuf>>>,
    baseline: Option<Spanned<PathBuf>>,
    symbols: Option<Spanned<Vec<PathBuf>>>,
    source_map: Option<Spanned<Vec<String>>>,
    blocklist: Option<Spanned<Vec<PathBuf>>>,
    #[serde(default)]
    rules: BTreeMap<String, Spanned<RuleSettings>>,
    #[serde(default)]
    suppress: Vec<Spanned<SuppressEntry>>,
}

/// `[rules.ID]`: a rule's level and whether it runs by default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSettings {
    level: Option<Level>,
    enabled: Option<bool>,
}

/// One `[[suppress]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuppressEntry {
    rule: String,
    path: Option<String>,
    driver: Option<String>,
    tag: Option<String>,
    reason: Option<String>,
}

/// Everything the gate's settings resolve to, with where each came from.
#[derive(Debug)]
pub struct Resolved {
    /// The config file used, if any.
    pub file: Option<PathBuf>,
    /// The rules, loaded, overridden and selected.
    pub rules: RuleSet,
    /// Lowest level that fails the gate.
    pub fail_on: Option<Level>,
    /// Incomplete audits do not fail the gate.
    pub allow_incomplete: bool,
    /// Most results in a SARIF run (0: no limit).
    pub max_results: usize,
    /// Pool usage exports.
    pub pool: Vec<PathBuf>,
    /// pooltag.txt.
    pub pooltag: Option<PathBuf>,
    /// The baseline log.
    pub baseline: Option<PathBuf>,
    /// PDB folders and symbol stores.
    pub symbols: Vec<PathBuf>,
    /// Build-path rewrites (`PREFIX=DIR`).
    pub source_map: Vec<(String, PathBuf)>,
    /// Blocklists.
    pub blocklists: Vec<PathBuf>,
    /// Accepted findings.
    pub suppressions: Vec<Suppression>,
    /// Each setting as `(key, value, origin)`, for `drvaudit config`.
    pub explained: Vec<(String, String, Origin)>,
    /// Where each rule's level and enablement came from.
    pub rule_origins: BTreeMap<String, Origin>,
}

/// The default of `max-results`: GitHub code scanning stores at most 5,000 results of a run.
pub const DEFAULT_MAX_RESULTS: usize = 5000;

/// Finds the config file for `cwd`: `drvaudit.toml` in it or the nearest ancestor holding one,
/// not looking above a directory that holds `.git`.
pub fn discover(cwd: &Path) -> Option<PathBuf> {
    for dir in cwd.ancestors() {
        let candidate = dir.join(FILE_NAME);
        if candidate.is_file() {
            return Some(candidate);
        }
        if dir.join(".git").exists() {
            return None;
        }
    }
    None
}

/// Resolves the flags and the config file (found from `cwd` unless given or disabled).
pub fn resolve(args: &GateArgs, cwd: &Path) -> Result<Resolved, ConfigError> {
    let path = match (&args.config, args.no_config) {
        (Some(p), _) => Some(cwd.join(p)),
        (None, true) => None,
        (None, false) => discover(cwd),
    };
    match path {
        Some(p) => {
            let text = std::fs::read_to_string(&p).map_err(|source| ConfigError::Read {
                path: p.clone(),
                source,
            })?;
            resolve_text(args, cwd, Some((p, &text)))
        }
        None => resolve_text(args, cwd, None),
    }
}

/// [`resolve`] with the config file already read: `config` is its path and text (`None`: no
/// config file). Rule folders named by the flags or the file are still read from disk.
pub fn resolve_text(
    args: &GateArgs,
    cwd: &Path,
    config: Option<(PathBuf, &str)>,
) -> Result<Resolved, ConfigError> {
    let (path, file, text) = match config {
        Some((p, text)) => {
            let file: File = toml::from_str(text).map_err(|e| ConfigError::Parse {
                path: p.clone(),
                message: e.to_string().trim_end().to_string(),
            })?;
            (Some(p), file, text)
        }
        None => (None, File::default(), ""),
    };
    let at = Positions {
        path: path.clone().unwrap_or_default(),
        text,
    };
    let base = path
        .as_deref()
        .and_then(Path::parent)
        .unwrap_or(cwd)
        .to_path_buf();
    let rel = |p: &PathBuf| base.join(p);
    // A flag's path is kept as given: relative to the working directory, which `cwd` is, and
    // shown in messages as the user wrote it.
    let flag_path = |p: &PathBuf| p.clone();
    let mut explained = Vec::new();
    let mut explain = |key: &str, value: String, origin: Origin| {
        explained.push((key.to_string(), value, origin));
    };

    // Rules: built-in, then rule folders (config's, then flags'), then per-rule settings, then
    // the selection.
    let mut rules = RuleSet::builtin()?;
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = &file.rule_dirs {
        dirs.extend(d.get_ref().iter().map(rel));
        explain("rule-dirs", list(d.get_ref()), at.origin(d.span()));
    }
    dirs.extend(args.rule_dirs.iter().map(flag_path));
    if !args.rule_dirs.is_empty() {
        explain("rule-dirs", list(&args.rule_dirs), Origin::Flag("rules"));
    }
    let mut rule_origins: BTreeMap<String, Origin> = BTreeMap::new();
    for d in &dirs {
        rules.add_dir(d)?;
    }
    for (key, s) in &file.rules {
        let settings = s.get_ref();
        rules
            .set(key, settings.level, settings.enabled)
            .map_err(|e| at.value(s.span(), e.to_string()))?;
        if let Some(r) = rules.get(key) {
            rule_origins.insert(r.id.clone(), at.origin(s.span()));
        }
    }
    let (select, select_origin) = if !args.select.is_empty() {
        (Some(args.select.clone()), Some(Origin::Flag("select")))
    } else {
        match &file.select {
            Some(s) => (Some(s.get_ref().clone()), Some(at.origin(s.span()))),
            None => (None, None),
        }
    };
    let mut extend = file
        .extend_select
        .as_ref()
        .map(|s| s.get_ref().clone())
        .unwrap_or_default();
    extend.extend(args.extend_select.iter().cloned());
    let mut ignore = file
        .ignore
        .as_ref()
        .map(|s| s.get_ref().clone())
        .unwrap_or_default();
    ignore.extend(args.ignore.iter().cloned());
    let selection = Selection {
        select,
        extend_select: extend,
        ignore,
    };
    let before: BTreeMap<String, bool> = rules
        .all()
        .iter()
        .map(|r| (r.id.clone(), r.enabled))
        .collect();
    rules.select(&selection).map_err(|e| match &e {
        RuleError::Selector { key } => at.locate_selector(&file, key, e.to_string()),
        _ => ConfigError::Rules(e),
    })?;
    let selection_origin = |id: &str| -> Option<Origin> {
        let hits = |keys: &[String]| {
            keys.iter().any(|k| {
                k.eq_ignore_ascii_case("ALL")
                    || id.get(..k.len()).is_some_and(|p| p.eq_ignore_ascii_case(k))
                    || rules.get(k).is_some_and(|r| r.id == id)
            })
        };
        if hits(&args.ignore) {
            return Some(Origin::Flag("ignore"));
        }
        if let Some(s) = file.ignore.as_ref().filter(|s| hits(s.get_ref())) {
            return Some(at.origin(s.span()));
        }
        if hits(&args.extend_select) {
            return Some(Origin::Flag("extend-select"));
        }
        if let Some(s) = file.extend_select.as_ref().filter(|s| hits(s.get_ref())) {
            return Some(at.origin(s.span()));
        }
        select_origin.clone()
    };
    for r in rules.all() {
        if before.get(&r.id) != Some(&r.enabled) || selection_origin(&r.id).is_some() {
            if let Some(o) = selection_origin(&r.id) {
                rule_origins.insert(r.id.clone(), o);
            }
        }
    }
    if let Some(o) = &select_origin {
        explain(
            "select",
            list(selection.select.as_deref().unwrap_or_default()),
            o.clone(),
        );
    }

    // Scalars: flag, else config, else default.
    let (fail_on, o) = match (args.fail_on, &file.fail_on) {
        (Some(f), _) => (f, Origin::Flag("fail-on")),
        (None, Some(f)) => (*f.get_ref(), at.origin(f.span())),
        (None, None) => (FailOn::Error, Origin::Default),
    };
    explain("fail-on", format!("{:?}", fail_on.as_str()), o);
    let (allow_incomplete, o) = match (args.allow_incomplete, &file.allow_incomplete) {
        (true, _) => (true, Origin::Flag("allow-incomplete")),
        (false, Some(v)) => (*v.get_ref(), at.origin(v.span())),
        (false, None) => (false, Origin::Default),
    };
    explain("allow-incomplete", allow_incomplete.to_string(), o);
    let (max_results, o) = match (args.max_results, &file.max_results) {
        (Some(n), _) => (n, Origin::Flag("max-results")),
        (None, Some(n)) => (*n.get_ref(), at.origin(n.span())),
        (None, None) => (DEFAULT_MAX_RESULTS, Origin::Default),
    };
    explain("max-results", max_results.to_string(), o);

    // Paths: a flag replaces the config's value for single values and `pool`; folders add up.
    let (pool, o) = match (&args.pool, &file.pool) {
        (p, _) if !p.is_empty() => (p.iter().map(flag_path).collect(), Origin::Flag("pool")),
        (_, Some(p)) => (p.get_ref().iter().map(rel).collect(), at.origin(p.span())),
        _ => (Vec::new(), Origin::Default),
    };
    explain("pool", list(&pool), o);
    let (pooltag, o) = match (&args.pooltag, &file.pooltag) {
        (Some(p), _) => (Some(flag_path(p)), Origin::Flag("pooltag")),
        (None, Some(p)) => (Some(rel(p.get_ref())), at.origin(p.span())),
        (None, None) => (None, Origin::Default),
    };
    explain("pooltag", optional(&pooltag), o);
    let (baseline, o) = match (&args.baseline, &file.baseline) {
        (Some(p), _) => (Some(flag_path(p)), Origin::Flag("baseline")),
        (None, Some(p)) => (Some(rel(p.get_ref())), at.origin(p.span())),
        (None, None) => (None, Origin::Default),
    };
    explain("baseline", optional(&baseline), o);
    let mut symbols: Vec<PathBuf> = Vec::new();
    if let Some(s) = &file.symbols {
        symbols.extend(s.get_ref().iter().map(rel));
        explain("symbols", list(s.get_ref()), at.origin(s.span()));
    }
    symbols.extend(args.symbols.iter().map(flag_path));
    if !args.symbols.is_empty() {
        explain("symbols", list(&args.symbols), Origin::Flag("symbols"));
    }
    let mut blocklists: Vec<PathBuf> = Vec::new();
    if let Some(b) = &file.blocklist {
        blocklists.extend(b.get_ref().iter().map(rel));
        explain("blocklist", list(b.get_ref()), at.origin(b.span()));
    }
    blocklists.extend(args.blocklist.iter().map(flag_path));
    if !args.blocklist.is_empty() {
        explain(
            "blocklist",
            list(&args.blocklist),
            Origin::Flag("blocklist"),
        );
    }
    let mut source_map = Vec::new();
    if let Some(m) = &file.source_map {
        for rule in m.get_ref() {
            source_map
                .push(parse_source_map(rule, &base).map_err(|what| at.value(m.span(), what))?);
        }
        explain("source-map", m.get_ref().join(", "), at.origin(m.span()));
    }
    for rule in &args.source_map {
        source_map.push(parse_source_map(rule, cwd).map_err(ConfigError::Flag)?);
    }
    if !args.source_map.is_empty() {
        explain(
            "source-map",
            args.source_map.join(", "),
            Origin::Flag("source-map"),
        );
    }

    let mut suppressions = Vec::new();
    for entry in &file.suppress {
        let e = entry.get_ref();
        let origin = at.origin(entry.span());
        let reason = e
            .reason
            .clone()
            .filter(|r| !r.trim().is_empty())
            .ok_or_else(|| {
                at.value(
                    entry.span(),
                    "a suppression needs a `reason` saying why the finding is accepted".into(),
                )
            })?;
        if rules.all().iter().all(|r| {
            !r.id.eq_ignore_ascii_case(&e.rule)
                && r.name != e.rule
                && !r
                    .id
                    .get(..e.rule.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(&e.rule))
        }) {
            return Err(at.value(entry.span(), format!("unknown rule `{}`", e.rule)));
        }
        // A name is matched as its id.
        let rule = rules
            .all()
            .iter()
            .find(|r| r.name == e.rule)
            .map_or_else(|| e.rule.clone(), |r| r.id.clone());
        let tag = e
            .tag
            .as_deref()
            .map(|t| {
                crate::poolfiles::parse_tag_field(t)
                    .ok_or_else(|| at.value(entry.span(), format!("`{t}` is not a pool tag")))
            })
            .transpose()?;
        let s = Suppression::new(
            rule,
            e.path.as_deref(),
            e.driver.clone(),
            tag,
            reason,
            origin.to_string(),
        )
        .map_err(|g| at.value(entry.span(), format!("bad path glob: {g}")))?;
        suppressions.push(s);
    }
    if !suppressions.is_empty() {
        explain(
            "suppress",
            format!(
                "{} entr{}",
                suppressions.len(),
                if suppressions.len() == 1 { "y" } else { "ies" }
            ),
            Origin::Config {
                path: at.path.clone(),
                line: at.line_of(file.suppress[0].span().start).0,
            },
        );
    }

    Ok(Resolved {
        file: path,
        rules,
        fail_on: fail_on.level(),
        allow_incomplete,
        max_results,
        pool,
        pooltag,
        baseline,
        symbols,
        source_map,
        blocklists,
        suppressions,
        explained,
        rule_origins,
    })
}

/// `PREFIX=DIR`, with DIR relative to `base`.
fn parse_source_map(rule: &str, base: &Path) -> Result<(String, PathBuf), String> {
    match rule.split_once('=') {
        Some((prefix, dir)) if !prefix.is_empty() && !dir.is_empty() => {
            Ok((prefix.to_string(), base.join(dir)))
        }
        _ => Err(format!(
            "source map `{rule}` is not BUILD_PREFIX=DIR (a build path prefix, `=`, a folder)"
        )),
    }
}

fn list<P: AsRef<Path>>(v: &[P]) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|p| format!("{:?}", p.as_ref().display().to_string()))
        .collect();
    format!("[{}]", items.join(", "))
}

fn optional(p: &Option<PathBuf>) -> String {
    p.as_ref().map_or_else(
        || "(none)".into(),
        |p| format!("{:?}", p.display().to_string()),
    )
}

/// Turns byte offsets of the config text into lines and columns.
struct Positions<'a> {
    path: PathBuf,
    text: &'a str,
}

impl Positions<'_> {
    /// 1-based line and column of byte `at`.
    fn line_of(&self, at: usize) -> (usize, usize) {
        let before = &self.text[..at.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        (line, column)
    }

    fn origin(&self, span: std::ops::Range<usize>) -> Origin {
        Origin::Config {
            path: self.path.clone(),
            line: self.line_of(span.start).0,
        }
    }

    fn value(&self, span: std::ops::Range<usize>, what: String) -> ConfigError {
        let (line, column) = self.line_of(span.start);
        ConfigError::Value {
            path: self.path.clone(),
            line,
            column,
            what,
        }
    }

    /// An unknown selector, placed at the config value that holds it (or reported as a flag's).
    fn locate_selector(&self, file: &File, key: &str, what: String) -> ConfigError {
        for s in [&file.select, &file.extend_select, &file.ignore]
            .into_iter()
            .flatten()
        {
            if s.get_ref().iter().any(|k| k == key) {
                return self.value(s.span(), what);
            }
        }
        ConfigError::Flag(what)
    }
}

/// The effective settings as `drvaudit config` prints them: the file, each setting with where
/// it came from, and every rule with its level, whether it runs, and why.
pub fn render(resolved: &Resolved) -> String {
    let mut out = String::new();
    match &resolved.file {
        Some(p) => out.push_str(&format!("# config file: {}\n", p.display())),
        None => out.push_str("# config file: none\n"),
    }
    let width = resolved
        .explained
        .iter()
        .map(|(k, v, _)| k.len() + v.len() + 3)
        .max()
        .unwrap_or(0);
    for (key, value, origin) in &resolved.explained {
        let line = format!("{key} = {value}");
        out.push_str(&format!("{line:<width$}  # {origin}\n"));
    }
    out.push_str("\n# rules\n");
    for r in resolved.rules.all() {
        let origin = resolved
            .rule_origins
            .get(&r.id)
            .map_or_else(|| "rule file".to_string(), ToString::to_string);
        out.push_str(&format!(
            "{:<8} {:<36} {:<8} {:<4} # {origin}\n",
            r.id,
            r.name,
            r.level.to_string(),
            if r.enabled { "on" } else { "off" },
        ));
    }
    if !resolved.suppressions.is_empty() {
        out.push_str("\n# suppressions\n");
        for s in &resolved.suppressions {
            out.push_str(&format!("{}: {} ({})\n", s.origin, s.describe(), s.reason));
        }
    }
    out
}
