//! Driver package INF files: parsing, the installation a given architecture gets, and the
//! static problems a package gate reports.
//!
//! Sources (Microsoft Learn, Windows driver docs): "General syntax rules for INF files" and
//! "INF Strings section" (see [`text`]); "INF Version section" and "INF DriverVer directive"
//! (`Signature`, `Class`, `ClassGuid`, `Provider`, `DriverVer=mm/dd/yyyy[,w.x.y.z]` with each
//! part below 65535, `CatalogFile` and `CatalogFile.nt`/`.ntx86`/`.ntamd64`/...); "INF
//! Manufacturer section" (`%name% = models[,TargetOSVersion...]`,
//! `nt[Architecture][.major[.minor[.product[.suite[.build]]]]]`; since Windows Server 2003 SP1 a
//! non-x86 architecture is used only through a models section decorated with it, while x86 also
//! takes `NT` without an architecture and the undecorated section); "INF file platform extensions
//! and x64-based systems" (for other sections Windows takes `name.nt<arch>`, else `name.nt`,
//! else `name`; `Install.Services` and `.CoInstallers` follow the chosen name); "INF CopyFiles
//! directive" (`CopyFiles = @file | section[, section...]`, entries
//! `dest[, source[, unused[, flags]]]`, no platform decoration on file-list sections); "INF
//! SourceDisksFiles section" (`file = diskid[, subdir[, size]]`, `.x86`/`.amd64`/`.arm64`
//! sections looked up before the undecorated one); "INF SourceDisksNames section" (`diskid =
//! description[, tag[, unused[, path]]]`); "INF DestinationDirs section" (`file-list-section =
//! dirid[,subdir]`, else `DefaultDestDir`); "INF AddService directive" (`AddService =
//! name, flags, service-install-section, ...`, `ServiceBinary` in that section).
//!
//! Invariants: names compare case-insensitively; sections of the same name are merged in file
//! order, and where a key occurs twice the first wins, as SetupAPI's first-line lookups do;
//! string substitution is one level (a `[Strings]` value is not itself expanded, so no
//! recursion can loop or grow) and stops at a hard size cap; input size, line count and line
//! length are bounded ([`Limits`]) with a typed [`InfError`]; everything else odd becomes a
//! [`Problem`] with its section and line, never a silent drop.

pub mod text;

use std::collections::HashMap;

pub use text::{Encoding, InfError, Limits};
use text::{LexProblem, Line};

/// A processor architecture as INF decorations name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    X86,
    Amd64,
    Arm,
    Arm64,
    Ia64,
}

impl Arch {
    /// Every architecture an INF decoration can name.
    pub const ALL: [Arch; 5] = [Arch::X86, Arch::Amd64, Arch::Arm, Arch::Arm64, Arch::Ia64];

    /// From a PE `IMAGE_FILE_HEADER.Machine`.
    pub fn from_machine(machine: u16) -> Option<Arch> {
        Some(match machine {
            0x014c => Arch::X86,
            0x8664 => Arch::Amd64,
            0x01c4 => Arch::Arm,
            0xaa64 => Arch::Arm64,
            0x0200 => Arch::Ia64,
            _ => return None,
        })
    }
    /// The name in decorations (`amd64`), also the `SourceDisksFiles.<name>` suffix.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86 => "x86",
            Arch::Amd64 => "amd64",
            Arch::Arm => "arm",
            Arch::Arm64 => "arm64",
            Arch::Ia64 => "ia64",
        }
    }
    fn parse(s: &str) -> Option<Arch> {
        Arch::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
    }
}

/// One entry (after string substitution; the raw text is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub line: usize,
    pub key: Option<String>,
    pub values: Vec<String>,
    pub raw_key: Option<String>,
    pub raw_values: Vec<String>,
}

impl Entry {
    /// The key (if any) followed by the values: the fields of a line such as a file-list entry.
    pub fn fields(&self) -> Vec<&str> {
        self.key
            .iter()
            .chain(self.values.iter())
            .map(String::as_str)
            .collect()
    }
    fn value(&self, i: usize) -> Option<&str> {
        self.values
            .get(i)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
    fn is(&self, key: &str) -> bool {
        self.key
            .as_deref()
            .is_some_and(|k| k.eq_ignore_ascii_case(key))
    }
}

/// A section (all same-named sections merged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The name as first written.
    pub name: String,
    /// Lines of every `[name]` header.
    pub header_lines: Vec<usize>,
    pub entries: Vec<Entry>,
}

impl Section {
    /// The first entry with `key`.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.is(key))
    }
    fn line(&self) -> usize {
        self.header_lines[0]
    }
}

/// Parsing options.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub limits: Limits,
    /// The language whose `[Strings.LLLL]` section is preferred to `[Strings]` (Windows uses the
    /// system locale; the default is 0x0409, en-US). `None`: `[Strings]` only.
    pub locale: Option<u16>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limits: Limits::default(),
            locale: Some(0x0409),
        }
    }
}

/// A parsed INF.
#[derive(Debug, Clone)]
pub struct Inf {
    pub encoding: Encoding,
    sections: Vec<Section>,
    index: HashMap<String, usize>,
    parse_problems: Vec<Problem>,
}

/// `[Version] DriverVer`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DriverVer {
    pub month: u8,
    pub day: u8,
    pub year: u16,
    /// `w.x.y.z` (missing trailing parts are 0); `None` when the directive has no version.
    pub version: Option<[u16; 4]>,
}

/// A `CatalogFile[.decoration]` entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CatalogRef {
    /// The key as written (`CatalogFile.NT`).
    pub key: String,
    pub file: String,
    pub line: usize,
}

/// The `[Version]` facts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Version {
    /// Header line of `[Version]`; `None` if the INF has none.
    pub line: Option<usize>,
    pub signature: Option<String>,
    pub class: Option<String>,
    pub class_guid: Option<String>,
    pub provider: Option<String>,
    /// `DriverVer` as written (after substitution) and its line.
    pub driver_ver_text: Option<(String, usize)>,
    /// The parsed DriverVer, or why it is malformed.
    pub driver_ver: Option<Result<DriverVer, String>>,
    pub catalog_files: Vec<CatalogRef>,
}

/// A `TargetOSVersion` decoration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TargetOs {
    /// As written (`NTamd64.10.0...14393`).
    pub text: String,
    pub arch: Option<Arch>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub product_type: Option<u32>,
    pub suite_mask: Option<u32>,
    pub build: Option<u32>,
}

impl TargetOs {
    /// Parses `nt[arch][.major[.minor[.product[.suite[.build]]]]]`.
    pub fn parse(text: &str) -> Option<TargetOs> {
        let t = text.trim();
        let mut parts = t.split('.');
        let head = parts.next()?;
        if !head.get(..2)?.eq_ignore_ascii_case("nt") {
            return None;
        }
        let arch = match head.get(2..)? {
            "" => None,
            a => Some(Arch::parse(a)?),
        };
        let num = |p: Option<&str>| -> Option<Option<u32>> {
            match p {
                None | Some("") => Some(None),
                Some(s) => {
                    let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                        Some(h) => u32::from_str_radix(h, 16).ok()?,
                        None => s.parse().ok()?,
                    };
                    Some(Some(v))
                }
            }
        };
        let os = TargetOs {
            text: t.to_string(),
            arch,
            major: num(parts.next())?,
            minor: num(parts.next())?,
            product_type: num(parts.next())?,
            suite_mask: num(parts.next())?,
            build: num(parts.next())?,
        };
        parts.next().is_none().then_some(os)
    }
    /// Whether Windows on `arch` can use a models section with this decoration.
    pub fn applies_to(&self, arch: Arch) -> bool {
        self.arch == Some(arch) || (self.arch.is_none() && arch == Arch::X86)
    }
}

/// A `[Manufacturer]` entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Manufacturer {
    /// The manufacturer name (the substituted key, or the value of a name-only line).
    pub name: String,
    /// The models section base name.
    pub models: String,
    pub decorations: Vec<TargetOs>,
    /// Decorations that do not parse as a TargetOSVersion.
    pub bad_decorations: Vec<String>,
    pub line: usize,
}

/// A models section Windows would use for an architecture.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModelsRef {
    /// `models` or `models.<decoration>`.
    pub section: String,
    pub exists: bool,
    /// Line of the `[Manufacturer]` entry.
    pub line: usize,
}

/// An install section an architecture gets (from a models entry, `DefaultInstall` or
/// `ClassInstall32`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InstallRef {
    /// The name as referenced (`NeoAdapter.Install`).
    pub requested: String,
    /// The decorated section Windows picks (`NeoAdapter.Install.NTamd64`, `.NT`, or the name
    /// itself), `None` if none exists.
    pub resolved: Option<String>,
    /// Where it was referenced (models entry; the section header for DefaultInstall).
    pub line: usize,
}

/// A file an installation copies.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CopiedFile {
    /// Source file name (the entry's source field, else its destination name).
    pub source: String,
    pub destination: String,
    /// The file-list section, `None` for `CopyFiles=@file`.
    pub list_section: Option<String>,
    /// The install section whose `CopyFiles` reached it.
    pub install_section: String,
    /// Line of the file-list entry (or of the `CopyFiles=@` directive).
    pub line: usize,
    /// `SourceDisksFiles` disk id and the path of the file relative to the INF's folder
    /// (`SourceDisksNames` path / subdir / name, `/`-separated); `None` when the file has no
    /// `SourceDisksFiles` entry.
    pub disk_id: Option<String>,
    pub package_path: Option<String>,
    /// `[DestinationDirs]` entry for the file-list section, else `DefaultDestDir`
    /// (`dirid[,subdir]` as written, e.g. `12` or `13`); `None` if neither exists.
    pub destination_dir: Option<String>,
}

/// A service an installation adds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Service {
    pub name: String,
    /// The `*.Services` section and the AddService line.
    pub services_section: String,
    pub line: usize,
    pub install_section: String,
    pub install_section_exists: bool,
    /// `ServiceBinary` (substituted, e.g. `%12%\x.sys`) and its line.
    pub binary: Option<(String, usize)>,
}

/// What is wrong.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ProblemKind {
    // Text level.
    UnterminatedQuote,
    UnterminatedSectionHeader,
    SectionNameTooLong { chars: usize },
    EntryOutsideSection,
    FieldTooLong { chars: usize },
    SubstitutedStringTooLong { chars: usize },
    UnresolvedString { key: String },
    InvalidUtf16 { units: usize },
    Utf8WithoutBom,
    Utf16WithoutBom,
    // [Version].
    MissingVersionSection,
    InvalidSignature { value: String },
    MissingDriverVer,
    MalformedDriverVer { value: String, why: String },
    MissingCatalogFile { arch: Arch },
    CatalogMissingFromPackage { file: String },
    // Manufacturer → models → install.
    InvalidDecoration { value: String },
    NoModelsForArchitecture { arch: Arch, models: String },
    ModelsSectionMissing { section: String },
    InstallSectionMissing { section: String },
    // Files.
    CopyFilesSectionMissing { section: String },
    NotInSourceDisksFiles { file: String },
    UnknownSourceDisk { file: String, disk: String },
    FileMissingFromPackage { file: String, path: String },
    // Services.
    ServiceSectionMissing { section: String },
    ServiceBinaryMissing { service: String },
    ServiceBinaryNotCopied { service: String, binary: String },
}

/// A static problem, with where it is, for a finding at `file.inf` line N.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Problem {
    /// 0 when the problem has no line (an absent section).
    pub line: usize,
    pub section: Option<String>,
    pub kind: ProblemKind,
}

impl Problem {
    /// A one-line description.
    pub fn message(&self) -> String {
        use ProblemKind::*;
        match &self.kind {
            UnterminatedQuote => "a quoted string is not closed on its line".into(),
            UnterminatedSectionHeader => "a section header has no closing ']'".into(),
            SectionNameTooLong { chars } => {
                format!("a section name has {chars} characters (at most 255)")
            }
            EntryOutsideSection => "an entry before the first section".into(),
            FieldTooLong { chars } => format!("a field has {chars} characters (at most 4095)"),
            SubstitutedStringTooLong { chars } => {
                format!("after string substitution a field has {chars} characters (at most 4095)")
            }
            UnresolvedString { key } => format!("%{key}% is not defined in a [Strings] section"),
            InvalidUtf16 { units } => {
                format!("{units} UTF-16 code units are not valid (shown as U+FFFD)")
            }
            Utf16WithoutBom => {
                "UTF-16 text without a byte-order mark: Windows recognises a Unicode INF by its \
                 BOM, and may read this one as ANSI"
                    .into()
            }
            Utf8WithoutBom => {
                "UTF-8 text without a byte-order mark: Windows reads it in the ANSI code page"
                    .into()
            }
            MissingVersionSection => "no [Version] section".into(),
            InvalidSignature { value } => {
                format!("Signature {value:?} is neither \"$Windows NT$\" nor \"$Chicago$\"")
            }
            MissingDriverVer => "[Version] has no DriverVer".into(),
            MalformedDriverVer { value, why } => format!("DriverVer {value:?} is malformed: {why}"),
            MissingCatalogFile { arch } => format!(
                "no CatalogFile applies to {}: the package is treated as unsigned",
                arch.name()
            ),
            CatalogMissingFromPackage { file } => {
                format!("the catalog {file} is not in the package")
            }
            InvalidDecoration { value } => format!("{value:?} is not a TargetOSVersion decoration"),
            NoModelsForArchitecture { arch, models } => format!(
                "no models section of {models} is decorated for {} (NT{})",
                arch.name(),
                arch.name()
            ),
            ModelsSectionMissing { section } => {
                format!("models section [{section}] does not exist")
            }
            InstallSectionMissing { section } => {
                format!("install section [{section}] does not exist")
            }
            CopyFilesSectionMissing { section } => {
                format!("CopyFiles section [{section}] does not exist")
            }
            NotInSourceDisksFiles { file } => {
                format!("{file} is copied but has no SourceDisksFiles entry")
            }
            UnknownSourceDisk { file, disk } => {
                format!("{file} is on source disk {disk}, which SourceDisksNames does not define")
            }
            FileMissingFromPackage { file, path } => {
                format!("{file} is copied but {path} is not in the package")
            }
            ServiceSectionMissing { section } => {
                format!("service install section [{section}] does not exist")
            }
            ServiceBinaryMissing { service } => format!("service {service} has no ServiceBinary"),
            ServiceBinaryNotCopied { service, binary } => {
                format!("service {service} runs {binary}, which the INF does not copy")
            }
        }
    }
}

/// Substitution output cap (chars): Windows' own limit is 4095; this only bounds memory.
const MAX_SUBSTITUTED: usize = 64 * 1024;

/// `%strkey%` substitution, one level. `%%` → `%`; an unknown key stays as written (numeric
/// keys are DIRIDs that Windows resolves at install time, others are recorded in `unresolved`).
fn substitute(s: &str, strings: &HashMap<String, String>, unresolved: &mut Vec<String>) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('%') {
        out.push_str(&rest[..p]);
        let after = &rest[p + 1..];
        if let Some(a) = after.strip_prefix('%') {
            out.push('%');
            rest = a;
        } else if let Some(end) = after.find('%') {
            let key = &after[..end];
            match strings.get(&key.to_lowercase()) {
                Some(v) => out.push_str(v),
                None => {
                    if !key.chars().all(|c| c.is_ascii_digit())
                        && !unresolved.iter().any(|u| u.eq_ignore_ascii_case(key))
                    {
                        unresolved.push(key.to_string());
                    }
                    out.push('%');
                    out.push_str(key);
                    out.push('%');
                }
            }
            rest = &after[end + 1..];
        } else {
            out.push('%');
            rest = after;
        }
        if out.len() > MAX_SUBSTITUTED {
            let mut cut = MAX_SUBSTITUTED;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            return out;
        }
    }
    out.push_str(rest);
    out
}

fn is_strings(name: &str) -> bool {
    let l = name.to_ascii_lowercase();
    l == "strings" || l.strip_prefix("strings.").is_some_and(|r| !r.is_empty())
}

/// `mm/dd/yyyy[,w.x.y.z]` → DriverVer or why not.
fn parse_driver_ver(values: &[String]) -> Result<DriverVer, String> {
    let date = values.first().map(String::as_str).unwrap_or("").trim();
    let parts: Vec<&str> = date.split(['/', '-']).collect();
    if parts.len() != 3
        || parts[0].len() != 2
        || parts[1].len() != 2
        || parts[2].len() != 4
        || !parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("the date {date:?} is not mm/dd/yyyy"));
    }
    let (m, d, y): (u8, u8, u16) = (
        parts[0].parse().unwrap_or(0),
        parts[1].parse().unwrap_or(0),
        parts[2].parse().unwrap_or(0),
    );
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(format!("month {m} in {date:?}")),
    };
    if d == 0 || d > days {
        return Err(format!("day {d} in {date:?}"));
    }
    let version = match values.get(1).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => {
            let p: Vec<&str> = v.split('.').collect();
            if p.is_empty() || p.len() > 4 {
                return Err(format!("the version {v:?} is not w.x.y.z"));
            }
            let mut out = [0u16; 4];
            for (i, x) in p.iter().enumerate() {
                match x.parse::<u32>() {
                    Ok(n)
                        if n < 65535 && !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()) =>
                    {
                        out[i] = n as u16
                    }
                    _ => {
                        return Err(format!(
                            "version part {x:?} of {v:?} is not a number below 65535"
                        ))
                    }
                }
            }
            Some(out)
        }
    };
    if values.len() > 2 {
        return Err("more than a date and a version".into());
    }
    Ok(DriverVer {
        month: m,
        day: d,
        year: y,
        version,
    })
}

/// Joins path parts of an INF (`\` or `/` separated) into a `/`-separated relative path.
fn join_path(parts: &[&str]) -> String {
    parts
        .iter()
        .flat_map(|p| p.split(['\\', '/']))
        .map(str::trim)
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

impl Inf {
    /// Parses with the default [`Options`].
    pub fn parse(bytes: &[u8]) -> Result<Inf, InfError> {
        Self::parse_with(bytes, &Options::default())
    }

    pub fn parse_with(bytes: &[u8], opts: &Options) -> Result<Inf, InfError> {
        if bytes.len() > opts.limits.max_bytes {
            return Err(InfError::TooLarge {
                size: bytes.len(),
                limit: opts.limits.max_bytes,
            });
        }
        let (text, encoding, bad_units) = text::decode(bytes);
        let lines = text::lines(&text, &opts.limits, is_strings)?;
        let mut problems = Vec::new();
        if bad_units > 0 {
            problems.push(Problem {
                line: 0,
                section: None,
                kind: ProblemKind::InvalidUtf16 { units: bad_units },
            });
        }
        if encoding == Encoding::Utf16Le {
            problems.push(Problem {
                line: 0,
                section: None,
                kind: ProblemKind::Utf16WithoutBom,
            });
        }
        if encoding == Encoding::Utf8 {
            problems.push(Problem {
                line: 0,
                section: None,
                kind: ProblemKind::Utf8WithoutBom,
            });
        }
        // Sections, merged by name; entries raw for now.
        let mut sections: Vec<Section> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut current: Option<usize> = None;
        for (line, l, lex) in lines {
            let section_name = current.map(|i| sections[i].name.clone());
            for p in lex {
                let kind = match p {
                    LexProblem::UnterminatedQuote => ProblemKind::UnterminatedQuote,
                    LexProblem::UnterminatedSectionHeader => ProblemKind::UnterminatedSectionHeader,
                    LexProblem::SectionNameTooLong(n) => {
                        ProblemKind::SectionNameTooLong { chars: n }
                    }
                    LexProblem::EntryOutsideSection => ProblemKind::EntryOutsideSection,
                    LexProblem::FieldTooLong(n) => ProblemKind::FieldTooLong { chars: n },
                };
                problems.push(Problem {
                    line,
                    section: section_name.clone(),
                    kind,
                });
            }
            match l {
                Line::Section(name) => {
                    let key = name.to_lowercase();
                    let i = *index.entry(key).or_insert_with(|| {
                        sections.push(Section {
                            name: name.clone(),
                            header_lines: Vec::new(),
                            entries: Vec::new(),
                        });
                        sections.len() - 1
                    });
                    sections[i].header_lines.push(line);
                    current = Some(i);
                }
                Line::Entry { key, values } => match current {
                    Some(i) => sections[i].entries.push(Entry {
                        line,
                        raw_key: key.clone(),
                        raw_values: values.clone(),
                        key,
                        values,
                    }),
                    None => problems.push(Problem {
                        line,
                        section: None,
                        kind: ProblemKind::EntryOutsideSection,
                    }),
                },
            }
        }
        // The string table: the locale's section first, then [Strings]; first definition wins.
        let mut strings: HashMap<String, String> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        if let Some(lcid) = opts.locale {
            order.push(format!("strings.{lcid:04x}"));
        }
        order.push("strings".into());
        for name in order {
            if let Some(&i) = index.get(&name) {
                for e in &sections[i].entries {
                    if let Some(k) = &e.raw_key {
                        let v = e.raw_values.first().cloned().unwrap_or_default();
                        strings.entry(k.to_lowercase()).or_insert(v);
                    }
                }
            }
        }
        for s in &mut sections {
            if is_strings(&s.name) {
                continue;
            }
            for e in &mut s.entries {
                let mut unresolved = Vec::new();
                e.key = e
                    .raw_key
                    .as_deref()
                    .map(|k| substitute(k, &strings, &mut unresolved));
                e.values = e
                    .raw_values
                    .iter()
                    .map(|v| substitute(v, &strings, &mut unresolved))
                    .collect();
                for v in e.values.iter().chain(e.key.iter()) {
                    let n = v.chars().count();
                    if n > text::MAX_FIELD {
                        problems.push(Problem {
                            line: e.line,
                            section: Some(s.name.clone()),
                            kind: ProblemKind::SubstitutedStringTooLong { chars: n },
                        });
                    }
                }
                for key in unresolved {
                    problems.push(Problem {
                        line: e.line,
                        section: Some(s.name.clone()),
                        kind: ProblemKind::UnresolvedString { key },
                    });
                }
            }
        }
        Ok(Inf {
            encoding,
            sections,
            index,
            parse_problems: problems,
        })
    }

    /// Every section, in order of first appearance.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// A section by name (case-insensitive).
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.index
            .get(&name.to_lowercase())
            .map(|&i| &self.sections[i])
    }

    /// The `[Version]` facts.
    pub fn version(&self) -> Version {
        let Some(v) = self.section("Version") else {
            return Version::default();
        };
        let text = |k: &str| v.get(k).and_then(|e| e.value(0)).map(str::to_string);
        let dv = v.get("DriverVer");
        Version {
            line: Some(v.line()),
            signature: text("Signature"),
            class: text("Class"),
            class_guid: text("ClassGuid"),
            provider: text("Provider"),
            driver_ver_text: dv.map(|e| (e.values.join(","), e.line)),
            driver_ver: dv.map(|e| parse_driver_ver(&e.values)),
            catalog_files: v
                .entries
                .iter()
                .filter(|e| {
                    e.key.as_deref().is_some_and(|k| {
                        let l = k.to_ascii_lowercase();
                        l == "catalogfile" || l.starts_with("catalogfile.")
                    })
                })
                .filter_map(|e| {
                    Some(CatalogRef {
                        key: e.key.clone()?,
                        file: e.value(0)?.to_string(),
                        line: e.line,
                    })
                })
                .collect(),
        }
    }

    /// The catalog Windows uses on `arch`: `CatalogFile.nt<arch>`, else `CatalogFile.nt`, else
    /// `CatalogFile`.
    pub fn catalog_file(&self, arch: Arch) -> Option<CatalogRef> {
        let cats = self.version().catalog_files;
        let want = [
            format!("catalogfile.nt{}", arch.name()),
            "catalogfile.nt".into(),
            "catalogfile".into(),
        ];
        want.iter()
            .find_map(|w| cats.iter().find(|c| c.key.eq_ignore_ascii_case(w)).cloned())
    }

    /// The `[Manufacturer]` entries.
    pub fn manufacturers(&self) -> Vec<Manufacturer> {
        let Some(m) = self.section("Manufacturer") else {
            return Vec::new();
        };
        m.entries
            .iter()
            .filter_map(|e| {
                let (name, models, decos) = match &e.key {
                    Some(k) => (k.clone(), e.value(0)?.to_string(), &e.values[1..]),
                    None => (
                        e.value(0)?.to_string(),
                        e.value(0)?.to_string(),
                        &e.values[1..],
                    ),
                };
                let mut decorations = Vec::new();
                let mut bad = Vec::new();
                for d in decos.iter().filter(|d| !d.trim().is_empty()) {
                    match TargetOs::parse(d) {
                        Some(t) => decorations.push(t),
                        None => bad.push(d.clone()),
                    }
                }
                Some(Manufacturer {
                    name,
                    models,
                    decorations,
                    bad_decorations: bad,
                    line: e.line,
                })
            })
            .collect()
    }

    /// The models sections Windows may use on `arch` (every OS version: a gate checks them all).
    pub fn models_sections(&self, arch: Arch) -> Vec<ModelsRef> {
        let mut out = Vec::new();
        for m in self.manufacturers() {
            let mut names: Vec<String> = m
                .decorations
                .iter()
                .filter(|d| d.applies_to(arch))
                .map(|d| format!("{}.{}", m.models, d.text))
                .collect();
            if names.is_empty() && arch == Arch::X86 {
                names.push(m.models.clone());
            }
            for section in names {
                out.push(ModelsRef {
                    exists: self.section(&section).is_some(),
                    section,
                    line: m.line,
                });
            }
        }
        out
    }

    /// `name.nt<arch>`, `name.nt` or `name`, whichever exists first.
    fn resolve(&self, name: &str, arch: Arch) -> Option<String> {
        [
            format!("{name}.nt{}", arch.name()),
            format!("{name}.nt"),
            name.to_string(),
        ]
        .into_iter()
        .find_map(|n| self.section(&n).map(|s| s.name.clone()))
    }

    /// The install sections `arch` gets: every models entry's, then `DefaultInstall` and
    /// `ClassInstall32` when present; each once, first reference kept.
    pub fn install_sections(&self, arch: Arch) -> Vec<InstallRef> {
        let mut out: Vec<InstallRef> = Vec::new();
        let push = |r: InstallRef, out: &mut Vec<InstallRef>| {
            if !out
                .iter()
                .any(|o| o.requested.eq_ignore_ascii_case(&r.requested))
            {
                out.push(r);
            }
        };
        for m in self.models_sections(arch).iter().filter(|m| m.exists) {
            for e in &self.section(&m.section).expect("exists").entries {
                if let Some(name) = e.value(0) {
                    push(
                        InstallRef {
                            requested: name.to_string(),
                            resolved: self.resolve(name, arch),
                            line: e.line,
                        },
                        &mut out,
                    );
                }
            }
        }
        for special in ["DefaultInstall", "ClassInstall32"] {
            if let Some(resolved) = self.resolve(special, arch) {
                let line = self.section(&resolved).map(Section::line).unwrap_or(0);
                push(
                    InstallRef {
                        requested: special.to_string(),
                        resolved: Some(resolved),
                        line,
                    },
                    &mut out,
                );
            }
        }
        out
    }

    /// The `SourceDisksFiles` entry for `file` on `arch`: (disk id, subdir, entry line).
    fn source_disk_file(&self, file: &str, arch: Arch) -> Option<(String, String, usize)> {
        for sec in [
            format!("SourceDisksFiles.{}", arch.name()),
            "SourceDisksFiles".to_string(),
        ] {
            if let Some(s) = self.section(&sec) {
                if let Some(e) = s.entries.iter().find(|e| {
                    e.fields()
                        .first()
                        .is_some_and(|f| f.eq_ignore_ascii_case(file))
                }) {
                    let f = e.fields();
                    return Some((
                        f.get(1).unwrap_or(&"").trim().to_string(),
                        f.get(2).unwrap_or(&"").to_string(),
                        e.line,
                    ));
                }
            }
        }
        None
    }

    /// The `SourceDisksNames` path of disk `id` on `arch` (`Some("")` for the INF's folder).
    fn source_disk_path(&self, id: &str, arch: Arch) -> Option<String> {
        for sec in [
            format!("SourceDisksNames.{}", arch.name()),
            "SourceDisksNames".to_string(),
        ] {
            if let Some(s) = self.section(&sec) {
                if let Some(e) = s
                    .entries
                    .iter()
                    .find(|e| e.key.as_deref().is_some_and(|k| k.trim() == id))
                {
                    return Some(e.values.get(3).cloned().unwrap_or_default());
                }
            }
        }
        None
    }

    /// Every file the installation on `arch` copies, in reference order.
    pub fn copied_files(&self, arch: Arch) -> Vec<CopiedFile> {
        self.walk_copies(arch, &mut Vec::new())
    }

    fn walk_copies(&self, arch: Arch, problems: &mut Vec<Problem>) -> Vec<CopiedFile> {
        let mut out = Vec::new();
        let mut sections_seen: Vec<String> = Vec::new();
        for inst in self.install_sections(arch) {
            let Some(resolved) = inst.resolved else {
                continue;
            };
            for name in [resolved.clone(), format!("{resolved}.CoInstallers")] {
                let Some(sec) = self.section(&name) else {
                    continue;
                };
                for d in sec.entries.iter().filter(|e| e.is("CopyFiles")) {
                    for v in d.values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
                        if let Some(file) = v.strip_prefix('@') {
                            out.push(self.copied(
                                arch,
                                file.trim(),
                                file.trim(),
                                None,
                                &sec.name,
                                d.line,
                            ));
                            continue;
                        }
                        let Some(list) = self.section(v) else {
                            problems.push(Problem {
                                line: d.line,
                                section: Some(sec.name.clone()),
                                kind: ProblemKind::CopyFilesSectionMissing {
                                    section: v.to_string(),
                                },
                            });
                            continue;
                        };
                        let key = format!(
                            "{}\u{0}{}",
                            sec.name.to_lowercase(),
                            list.name.to_lowercase()
                        );
                        if sections_seen.contains(&key) {
                            continue;
                        }
                        sections_seen.push(key);
                        for e in &list.entries {
                            let f = e.fields();
                            let Some(dest) = f.first().map(|d| d.trim()).filter(|d| !d.is_empty())
                            else {
                                continue;
                            };
                            let source = f
                                .get(1)
                                .map(|s| s.trim())
                                .filter(|s| !s.is_empty())
                                .unwrap_or(dest);
                            out.push(self.copied(
                                arch,
                                source,
                                dest,
                                Some(list.name.clone()),
                                &sec.name,
                                e.line,
                            ));
                        }
                    }
                }
            }
        }
        out
    }

    fn copied(
        &self,
        arch: Arch,
        source: &str,
        dest: &str,
        list: Option<String>,
        install: &str,
        line: usize,
    ) -> CopiedFile {
        let sdf = self.source_disk_file(source, arch);
        let package_path = sdf.as_ref().map(|(disk, subdir, _)| {
            let base = self.source_disk_path(disk, arch).unwrap_or_default();
            join_path(&[&base, subdir, source])
        });
        let dirs = self.section("DestinationDirs");
        let dir_of = |key: &str| dirs.and_then(|d| d.get(key)).map(|e| e.values.join(","));
        let destination_dir = list
            .as_deref()
            .and_then(dir_of)
            .or_else(|| dir_of("DefaultDestDir"));
        CopiedFile {
            source: source.to_string(),
            destination: dest.to_string(),
            destination_dir,
            list_section: list,
            install_section: install.to_string(),
            line,
            disk_id: sdf.map(|s| s.0),
            package_path,
        }
    }

    /// The services the installation on `arch` adds (`AddService` in `<install>.Services`).
    pub fn services(&self, arch: Arch) -> Vec<Service> {
        let mut out = Vec::new();
        for inst in self.install_sections(arch) {
            let Some(resolved) = inst.resolved else {
                continue;
            };
            let Some(sec) = self.section(&format!("{resolved}.Services")) else {
                continue;
            };
            for e in sec.entries.iter().filter(|e| e.is("AddService")) {
                let name = e.value(0).unwrap_or("").to_string();
                let install = e.value(2).unwrap_or("").to_string();
                let target = self.section(&install);
                let binary = target
                    .and_then(|t| t.get("ServiceBinary"))
                    .and_then(|b| Some((b.value(0)?.to_string(), b.line)));
                out.push(Service {
                    name,
                    services_section: sec.name.clone(),
                    line: e.line,
                    install_section_exists: target.is_some(),
                    install_section: install,
                    binary,
                });
            }
        }
        out
    }

    /// The static problems for an installation on `arch`: the text-level ones, then `[Version]`,
    /// models, install and file checks. With `package_files` (paths relative to the INF's folder,
    /// `/` or `\` separated), files and the catalog missing from the package are reported too.
    pub fn problems(&self, arch: Arch, package_files: Option<&[String]>) -> Vec<Problem> {
        let mut p = self.parse_problems.clone();
        // Normalised once: an INF copying n files from a package of m is O(n + m), not O(n·m).
        let package: Option<std::collections::HashSet<String>> = package_files.map(|files| {
            files
                .iter()
                .map(|f| join_path(&[f]).to_lowercase())
                .collect()
        });
        let in_package = |path: &str| -> bool {
            package
                .as_ref()
                .is_none_or(|files| files.contains(&join_path(&[path]).to_lowercase()))
        };
        let v = self.version();
        let vsec = Some("Version".to_string());
        let vline = v.line.unwrap_or(0);
        if v.line.is_none() {
            p.push(Problem {
                line: 0,
                section: None,
                kind: ProblemKind::MissingVersionSection,
            });
        } else {
            match &v.signature {
                Some(s)
                    if s.eq_ignore_ascii_case("$Windows NT$")
                        || s.eq_ignore_ascii_case("$Chicago$") => {}
                other => {
                    let line = self
                        .section("Version")
                        .and_then(|s| s.get("Signature"))
                        .map_or(vline, |e| e.line);
                    p.push(Problem {
                        line,
                        section: vsec.clone(),
                        kind: ProblemKind::InvalidSignature {
                            value: other.clone().unwrap_or_default(),
                        },
                    });
                }
            }
            match (&v.driver_ver, &v.driver_ver_text) {
                (None, _) => p.push(Problem {
                    line: vline,
                    section: vsec.clone(),
                    kind: ProblemKind::MissingDriverVer,
                }),
                (Some(Err(why)), Some((text, line))) => p.push(Problem {
                    line: *line,
                    section: vsec.clone(),
                    kind: ProblemKind::MalformedDriverVer {
                        value: text.clone(),
                        why: why.clone(),
                    },
                }),
                _ => {}
            }
        }
        match self.catalog_file(arch) {
            None => p.push(Problem {
                line: vline,
                section: vsec.clone(),
                kind: ProblemKind::MissingCatalogFile { arch },
            }),
            Some(c) if !in_package(&c.file) => p.push(Problem {
                line: c.line,
                section: vsec.clone(),
                kind: ProblemKind::CatalogMissingFromPackage {
                    file: c.file.clone(),
                },
            }),
            Some(_) => {}
        }
        let msec = Some("Manufacturer".to_string());
        for m in self.manufacturers() {
            for b in &m.bad_decorations {
                p.push(Problem {
                    line: m.line,
                    section: msec.clone(),
                    kind: ProblemKind::InvalidDecoration { value: b.clone() },
                });
            }
            if arch != Arch::X86 && !m.decorations.iter().any(|d| d.applies_to(arch)) {
                p.push(Problem {
                    line: m.line,
                    section: msec.clone(),
                    kind: ProblemKind::NoModelsForArchitecture {
                        arch,
                        models: m.models.clone(),
                    },
                });
            }
        }
        for m in self.models_sections(arch).into_iter().filter(|m| !m.exists) {
            p.push(Problem {
                line: m.line,
                section: msec.clone(),
                kind: ProblemKind::ModelsSectionMissing { section: m.section },
            });
        }
        for m in self.models_sections(arch).into_iter().filter(|m| m.exists) {
            for e in &self.section(&m.section).expect("exists").entries {
                if let Some(name) = e.value(0) {
                    if self.resolve(name, arch).is_none() {
                        p.push(Problem {
                            line: e.line,
                            section: Some(m.section.clone()),
                            kind: ProblemKind::InstallSectionMissing {
                                section: name.to_string(),
                            },
                        });
                    }
                }
            }
        }
        let mut copy_problems = Vec::new();
        let files = self.walk_copies(arch, &mut copy_problems);
        p.extend(copy_problems);
        let mut reported: Vec<String> = Vec::new();
        for f in &files {
            let section = f
                .list_section
                .clone()
                .or_else(|| Some(f.install_section.clone()));
            let path = match (&f.disk_id, &f.package_path) {
                (Some(disk), Some(path)) => {
                    if self.source_disk_path(disk, arch).is_none() {
                        let line = self
                            .source_disk_file(&f.source, arch)
                            .map_or(f.line, |s| s.2);
                        p.push(Problem {
                            line,
                            section: Some("SourceDisksFiles".into()),
                            kind: ProblemKind::UnknownSourceDisk {
                                file: f.source.clone(),
                                disk: disk.clone(),
                            },
                        });
                    }
                    path.clone()
                }
                _ => {
                    p.push(Problem {
                        line: f.line,
                        section: section.clone(),
                        kind: ProblemKind::NotInSourceDisksFiles {
                            file: f.source.clone(),
                        },
                    });
                    f.source.clone()
                }
            };
            if !in_package(&path) && !reported.iter().any(|r| r.eq_ignore_ascii_case(&path)) {
                reported.push(path.clone());
                p.push(Problem {
                    line: f.line,
                    section,
                    kind: ProblemKind::FileMissingFromPackage {
                        file: f.source.clone(),
                        path,
                    },
                });
            }
        }
        for s in self.services(arch) {
            let sec = Some(s.services_section.clone());
            if !s.install_section_exists {
                p.push(Problem {
                    line: s.line,
                    section: sec,
                    kind: ProblemKind::ServiceSectionMissing {
                        section: s.install_section.clone(),
                    },
                });
                continue;
            }
            match &s.binary {
                None => p.push(Problem {
                    line: s.line,
                    section: sec,
                    kind: ProblemKind::ServiceBinaryMissing {
                        service: s.name.clone(),
                    },
                }),
                Some((bin, line)) => {
                    let file = bin.rsplit(['\\', '/']).next().unwrap_or(bin).trim();
                    if !files
                        .iter()
                        .any(|f| f.destination.eq_ignore_ascii_case(file))
                    {
                        p.push(Problem {
                            line: *line,
                            section: Some(s.install_section.clone()),
                            kind: ProblemKind::ServiceBinaryNotCopied {
                                service: s.name.clone(),
                                binary: bin.clone(),
                            },
                        });
                    }
                }
            }
        }
        p.sort();
        p.dedup();
        p
    }
}

#[cfg(test)]
mod tests;
