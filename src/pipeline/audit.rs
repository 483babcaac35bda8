//! Auditing one input: a driver file or a package's members, each image parsed, its code
//! analysed and every image rule run, all inside a panic guard.
//!
//! A panic is contained where it happens ([`crate::util::guard`]): in one image, that image's
//! error; in a package member's decompression, that member's problem; anywhere else in an
//! input, a notice naming the input. The notice names the component that failed; a
//! third-party parser's failure makes the input malformed ([`NoticeKind::Malformed`]), only a
//! failure of drvaudit's own code is an internal error ([`NoticeKind::Internal`]).

use std::collections::HashMap;
use std::path::Path;

use crate::debuginfo;
use crate::driver::{Driver, ImageSummary};
use crate::pe::{Image, ImageError, Layout};
use crate::report::{
    assign_fingerprints, Artifact, ArtifactKind, Finding, Level, Notice, NoticeKind, Place,
};
use crate::rules::{CheckContext, RuleSet};
use crate::util::guard::{self, Component, Failure};
use crate::util::{display_path, file_name, fileio};

use super::collect::{uri_for, Input, InputKind};
use super::merge::Unit;

/// What every image is audited with: the rules, the tag owners of `--pooltag`, and whether
/// its code is analysed for call sites.
pub(crate) struct Auditor<'a> {
    pub(crate) rules: &'a RuleSet,
    pub(crate) owners: Option<&'a HashMap<u32, String>>,
    pub(crate) call_sites: bool,
    /// Where debug information is looked for, and how source paths are shown.
    pub(crate) debug: &'a DebugLookup,
    /// The blocklists given (`--blocklist`).
    pub(crate) blocklists: &'a [crate::blocklist::Blocklist],
    /// The hashes they match on.
    pub(crate) hash_needs: crate::blocklist::HashNeeds,
    /// The folder packages met so far.
    pub(crate) packages: &'a super::packages::FolderPackages,
    /// When the scan runs (seconds since 1970).
    pub(crate) now: i64,
    /// Whether each image's identity is computed (`drvaudit identify`).
    pub(crate) identify: bool,
}

/// Finding source lines: the symbol folders and `_NT_SYMBOL_PATH`, the `--source-map` rules,
/// and the root source paths are made relative to.
pub(crate) struct DebugLookup {
    pub(crate) search: debuginfo::SymbolSearch,
    pub(crate) source_map: Vec<debuginfo::SourceMapRule>,
    pub(crate) root: std::path::PathBuf,
}

/// What auditing an image produced besides its findings: notes about it (debug information
/// looked for and not found).
pub(crate) struct Audited {
    pub(crate) summary: ImageSummary,
    pub(crate) findings: Vec<Finding>,
    pub(crate) notes: Vec<(NoticeKind, Level, String)>,
}

/// Why an image was not audited.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuditError {
    /// It is not a PE image drvaudit can model.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The analysis panicked (a drvaudit bug, or a library giving up on the image): the image
    /// is reported, not the scan lost.
    #[error("{}", .0.describe())]
    Internal(Failure),
}

impl AuditError {
    /// How a notice classes this error: a library's failure, like an image that does not
    /// parse, is a malformed input; only drvaudit's own failure is internal.
    pub(crate) fn notice_kind(&self) -> NoticeKind {
        match self {
            AuditError::Internal(f) if f.abandoned.is_some() => NoticeKind::Budget,
            AuditError::Internal(f) if !f.in_library() => NoticeKind::Internal,
            _ => NoticeKind::Malformed,
        }
    }
}

/// The stages of an image's audit, named in failure notices.
static PE_MODEL: Component = Component::own("the PE image model");
static CALL_SITES: Component = Component::own("call-site analysis");
static RULES: Component = Component::own("the image rules");
static PACKAGE: Component = Component::own("the package reader");

/// One image to audit, in file or loaded layout.
pub(crate) struct Target<'a> {
    /// The image bytes.
    pub(crate) bytes: &'a [u8],
    pub(crate) layout: Layout,
    /// Its artifact index (in the unit being built).
    pub(crate) artifact: usize,
    /// Short name (logical locations).
    pub(crate) name: &'a str,
    /// Display path (messages).
    pub(crate) display: &'a str,
    /// Ranges a carved image is missing.
    pub(crate) holes: Vec<(u32, u32)>,
    /// The image's file, for debug information beside it (`None` for package members and
    /// carved images).
    pub(crate) path: Option<&'a Path>,
    /// The package it came in.
    pub(crate) package: Option<&'a crate::packageinfo::PackageInfo>,
}

impl Auditor<'_> {
    /// Builds the model of one image, analyses its code and runs the image rules. `prepare`
    /// runs between parsing and code analysis (carved images use it to install the imports
    /// recovered from their IAT) and says whether the image exists only in memory.
    ///
    /// A panic while doing so (a bug, perhaps met only on one odd image) becomes this image's
    /// error: the other files of the scan, and the other modules of a dump, keep their results.
    pub(crate) fn audit(
        &self,
        target: Target<'_>,
        prepare: impl FnOnce(&mut Image) -> bool,
    ) -> Result<Audited, AuditError> {
        let run = || {
            let (image, memory_only) = guard::within(&PE_MODEL, || {
                let mut image = Image::parse(target.bytes, target.layout)?;
                let memory_only = prepare(&mut image);
                Ok::<_, AuditError>((image, memory_only))
            })?;
            // After `prepare`: a carved image's imports are only known once recovered.
            crate::util::deadline::check();
            let sites = if self.call_sites {
                guard::within(&CALL_SITES, || {
                    crate::callsite::analyze(&image, target.bytes)
                })
            } else {
                Vec::new()
            };
            let identity = crate::driver::stable_identity(&image);
            let driver = Driver {
                image,
                sites,
                holes: target.holes.clone(),
                name: target.name.to_string(),
                display: target.display.to_string(),
                identity,
                memory_only,
            };
            let facts = crate::facts::Facts::new(
                target.bytes,
                &driver.image,
                target.name,
                target.package,
                self.hash_needs,
            );
            let ctx = CheckContext {
                driver: &driver,
                pooltag: self.owners,
                facts: &facts,
                blocklists: self.blocklists,
                package: target.package,
                now: self.now,
            };
            crate::util::deadline::check();
            let mut findings: Vec<Finding> =
                guard::within(&RULES, || self.rules.check_driver(&ctx))
                    .into_iter()
                    .map(|(rule, hit)| {
                        let place = Place::Driver {
                            driver: &driver,
                            artifact: target.artifact,
                        };
                        Finding::from_hit(rule, hit, place)
                    })
                    .collect();
            assign_fingerprints(&mut findings);
            let mut notes = Vec::new();
            // A signature a rule asked about and that could not be read: who signed the
            // driver is unknown, which a gate must not take for an answer.
            let identity = self
                .identify
                .then(|| Box::new(facts.identity(self.blocklists)));
            if let Some(why) = facts.unreadable_signature() {
                notes.push((
                    NoticeKind::Malformed,
                    Level::Error,
                    format!("its Authenticode signature could not be read: {why}"),
                ));
            }
            if let Some((first, rest)) = facts.version_problems().split_first() {
                notes.push((
                    NoticeKind::Partial,
                    Level::Warning,
                    format!(
                        "its version resource is damaged, read as far as it could be: {first}{}",
                        if rest.is_empty() {
                            String::new()
                        } else {
                            format!(" (and {} more)", rest.len())
                        }
                    ),
                ));
            }
            // Debug information is read only for an image with findings to place, once.
            if findings.iter().any(|f| f.rva.is_some()) {
                self.place_in_source(&driver, &target, &mut findings, &mut notes);
            }
            let mut summary = driver.summary(target.artifact);
            summary.signature = facts.known_class();
            summary.identity = identity;
            Ok(Audited {
                summary,
                findings,
                notes,
            })
        };
        guarded(run).unwrap_or_else(|what| Err(AuditError::Internal(what)))
    }
}

impl Auditor<'_> {
    /// Gives each finding with an RVA its source location from the driver's PDB or DWARF, when
    /// they can be found; notes why not when the image names a PDB that is not there.
    fn place_in_source(
        &self,
        driver: &Driver,
        target: &Target<'_>,
        findings: &mut [Finding],
        notes: &mut Vec<(NoticeKind, Level, String)>,
    ) {
        let codeview = driver
            .image
            .codeview
            .as_ref()
            .map(|cv| debuginfo::CodeViewRef {
                pdb_path: cv.pdb_path.clone(),
                guid: debuginfo::Guid::from_codeview_bytes(cv.guid_bytes),
                age: cv.age,
            });
        let image = debuginfo::ImageRef {
            path: target.path,
            display_name: target.display,
            file_bytes: (target.layout == Layout::File).then_some(target.bytes),
            codeview: codeview.as_ref(),
        };
        let symbols = match debuginfo::open(&image, &self.debug.search) {
            Ok(s) => s,
            Err(debuginfo::Unavailable::NoDebugInfo { .. }) => return,
            Err(why) => {
                notes.push((NoticeKind::NoDebugInfo, Level::Note, why.to_string()));
                return;
            }
        };
        let from = match symbols.source() {
            debuginfo::DebugSource::Pdb(p) => format!("pdb:{}", crate::util::display_path(p)),
            debuginfo::DebugSource::DwarfInImage => "dwarf".into(),
            debuginfo::DebugSource::DebugLink(p) => {
                format!("debuglink:{}", crate::util::display_path(p))
            }
        };
        let mut failed = None;
        for f in findings.iter_mut() {
            let Some(rva) = f.rva else { continue };
            match symbols.locate(rva) {
                Ok(Some(loc)) => f.set_source(self.source_of(loc, &from)),
                Ok(None) => {}
                Err(e) => failed = Some(e),
            }
        }
        if let Some(e) = failed {
            notes.push((
                NoticeKind::NoDebugInfo,
                Level::Note,
                format!("source lines in part only: {e}"),
            ));
        }
    }

    /// A location as reports show it: source-mapped, relative to the root when inside it.
    fn source_of(&self, loc: debuginfo::SourceLocation, from: &str) -> crate::report::Source {
        let position = |file: &str, line: u32, column: Option<u32>| {
            let mapped = debuginfo::map_source_path(&self.debug.source_map, file);
            let candidate = mapped
                .clone()
                .unwrap_or_else(|| std::path::PathBuf::from(file.replace('\\', "/")));
            let relative = debuginfo::relative_to_root(&candidate, &self.debug.root)
                // A recorded relative path (DWARF's `./dlls/x.c`) is kept as recorded unless a
                // rule mapped it: it is relative to the build, not to this root.
                .filter(|_| mapped.is_some() || candidate.is_absolute());
            crate::report::SourcePosition {
                relative: relative.is_some(),
                path: relative.unwrap_or_else(|| file.replace('\\', "/")),
                line,
                column,
            }
        };
        crate::report::Source {
            at: position(&loc.file, loc.line, loc.column),
            function: loc.function.clone(),
            inlined: loc
                .inlined
                .iter()
                .map(|fr| crate::report::InlinedCall {
                    function: fr.function.clone(),
                    at: match (&fr.file, fr.line) {
                        (Some(file), Some(line)) => Some(position(file, line, fr.column)),
                        _ => None,
                    },
                })
                .collect(),
            from: from.to_string(),
        }
    }
}

pub(crate) use guard::guarded;

/// A unit for an input whose analysis panicked: the input as an artifact, and a notice naming
/// it and the component that failed — malformed when a library gave up on it, internal when
/// drvaudit's own code failed.
pub(crate) fn internal_error(
    input: &Path,
    kind: ArtifactKind,
    root: &Path,
    what: &Failure,
) -> Unit {
    let notice_kind = if what.abandoned.is_some() {
        NoticeKind::Budget
    } else if what.in_library() {
        NoticeKind::Malformed
    } else {
        NoticeKind::Internal
    };
    Unit {
        artifacts: vec![input_artifact(input, kind, root)],
        notices: vec![Notice::new(
            display_path(input),
            notice_kind,
            Level::Error,
            what.describe(),
        )],
        ..Unit::default()
    }
}

/// The artifact of an input named by the user (hash and length filled in once read).
pub(crate) fn input_artifact(path: &Path, kind: ArtifactKind, root: &Path) -> Artifact {
    let uri = uri_for(path, root);
    Artifact {
        name: file_name(&uri),
        uri,
        parent: None,
        kind,
        sha256: None,
        length: None,
        memory_only: false,
        facts: Default::default(),
    }
}

pub(crate) fn artifact_kind(kind: InputKind) -> ArtifactKind {
    match kind {
        InputKind::Image => ArtifactKind::File,
        InputKind::Zip | InputKind::Cab => ArtifactKind::Package,
        InputKind::Dump => ArtifactKind::Dump,
        InputKind::Inf => ArtifactKind::File,
    }
}

/// Analyses one file input (a driver or a package; dumps are analysed after every file).
pub(crate) fn analyze_input(input: &Input, root: &Path, auditor: &Auditor<'_>) -> Unit {
    let mut unit = Unit::default();
    let subject = display_path(&input.path);
    let kind = artifact_kind(input.kind);
    unit.artifacts.push(input_artifact(&input.path, kind, root));
    let file = match fileio::load_file(&input.path) {
        Ok(m) => m,
        Err(e) => {
            unit.notices.push(Notice::new(
                subject,
                NoticeKind::Unreadable,
                Level::Error,
                e.to_string(),
            ));
            return unit;
        }
    };
    let bytes: &[u8] = &file;
    unit.artifacts[0].length = Some(bytes.len() as u64);
    // A driver or INF in a folder that holds an INF is part of that folder's package.
    let folder = input
        .path
        .parent()
        .filter(|_| matches!(input.kind, InputKind::Image | InputKind::Inf));
    let package = folder.and_then(|dir| auditor.packages.of(dir, &display_path(dir)));
    match input.kind {
        InputKind::Image => {
            let name = unit.artifacts[0].name.clone();
            let file = ImageFile {
                artifact: 0,
                subject: &subject,
                name: &name,
                bytes,
                layout: Layout::File,
                path: Some(&input.path),
                package: package.as_deref(),
            };
            audit_file_bytes(&mut unit, &file, auditor);
        }
        InputKind::Inf => {
            unit.artifacts[0].sha256 = Some(crate::util::sha256_hex(bytes));
            let name = unit.artifacts[0].name.clone();
            match package.as_deref() {
                Some(p) => check_inf(&mut unit, 0, &subject, p, &name, auditor),
                None => unit.notices.push(Notice::new(
                    subject,
                    NoticeKind::Unreadable,
                    Level::Error,
                    "its folder could not be listed as a package",
                )),
            }
        }
        InputKind::Zip | InputKind::Cab => {
            let package = if input.kind == InputKind::Zip {
                crate::package::PackageKind::Zip
            } else {
                crate::package::PackageKind::Cab
            };
            audit_package(&mut unit, package, &subject, bytes, auditor);
        }
        InputKind::Dump => {}
    }
    unit.findings.sort_by(super::merge::finding_order);
    unit
}

/// Whether a package member is one a package's checks read besides its drivers: its INFs and
/// the catalogs they name.
fn is_package_file(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.ends_with(".inf") || n.ends_with(".cat")
}

/// Audits an archive: its package (when it holds an INF) is built first from its INFs and
/// catalogs, so that its drivers are checked against their catalogs; then its drivers and INFs
/// are read one at a time, in archive order — each decompressed, audited and dropped before
/// the next (see [`crate::package`] for the budgets) — and each INF is checked once every
/// driver has given the package its architectures. Problems with the archive become notices
/// naming it, or the member concerned; a member met in both reads is named once.
pub(crate) fn audit_package(
    unit: &mut Unit,
    kind: crate::package::PackageKind,
    subject: &str,
    bytes: &[u8],
    auditor: &Auditor<'_>,
) {
    use crate::package::{self as pkg, PackageKind};
    unit.artifacts[0].sha256 = Some(crate::util::sha256_hex(bytes));
    let names = match kind {
        PackageKind::Zip => pkg::zip_names(bytes),
        PackageKind::Cab => pkg::cab_names(bytes),
    };
    let mut problems = Vec::new();
    // First read: the INFs and catalogs (kilobytes; a catalog at most a few MiB), kept.
    let mut small: Vec<pkg::Member> = Vec::new();
    if names
        .iter()
        .any(|n| n.to_ascii_lowercase().ends_with(".inf"))
    {
        let read = guard::within(&PACKAGE, || {
            pkg::read_members(kind, bytes, &is_package_file, &mut |m| small.push(m))
        });
        match read {
            Ok(p) => problems.extend(p),
            Err(e) => {
                unit.notices.push(Notice::new(
                    subject,
                    NoticeKind::Malformed,
                    Level::Error,
                    e.to_string(),
                ));
                return;
            }
        }
    }
    let mut package = super::packages::build(subject.to_string(), names, Vec::new(), |path| {
        small
            .iter()
            .find(|m| m.path == path)
            .map(|m| m.bytes.clone())
            .ok_or_else(|| "not extracted from the archive (see its notices)".to_string())
    });
    drop(small);
    // Second read: the drivers, and the INFs again for their artifacts in archive order.
    let mut infs = Vec::new();
    let mut arches: Vec<crate::inf::Arch> = Vec::new();
    let mut visit = |m: pkg::Member| {
        crate::util::deadline::check();
        let idx = unit.artifacts.len();
        let is_inf = m.path.to_ascii_lowercase().ends_with(".inf");
        unit.artifacts.push(Artifact {
            name: file_name(&m.path),
            uri: m.path.clone(),
            parent: Some(0),
            kind: ArtifactKind::Member,
            sha256: is_inf.then(|| crate::util::sha256_hex(&m.bytes)),
            length: Some(m.bytes.len() as u64),
            memory_only: false,
            facts: Default::default(),
        });
        let member_subject = format!("{subject}:{}", m.path);
        if is_inf {
            infs.push((idx, member_subject, m.path));
            return;
        }
        arches.extend(super::packages::arch_of(&m.bytes));
        let name = file_name(&m.path);
        let file = ImageFile {
            artifact: idx,
            subject: &member_subject,
            name: &name,
            bytes: &m.bytes,
            layout: Layout::File,
            path: None,
            package: package.as_ref(),
        };
        audit_file_bytes(unit, &file, auditor);
    };
    let wanted = |n: &str| pkg::is_driver(n) || n.to_ascii_lowercase().ends_with(".inf");
    let read = guard::within(&PACKAGE, || {
        pkg::read_members(kind, bytes, &wanted, &mut visit)
    });
    match read {
        Err(e) => unit.notices.push(Notice::new(
            subject,
            NoticeKind::Malformed,
            Level::Error,
            e.to_string(),
        )),
        Ok(p) => {
            for p in p {
                if !problems.contains(&p) {
                    problems.push(p);
                }
            }
        }
    }
    for p in problems {
        let (who, kind) = match (&p.member, p.kind) {
            (_, pkg::ProblemKind::Budget) => (subject.to_string(), NoticeKind::Budget),
            (Some(m), _) => (format!("{subject}:{m}"), NoticeKind::Malformed),
            (None, _) => (subject.to_string(), NoticeKind::Malformed),
        };
        unit.notices
            .push(Notice::new(who, kind, Level::Error, p.message));
    }
    if let Some(p) = package.as_mut() {
        arches.sort_by_key(|a| a.name());
        arches.dedup();
        p.arches = arches;
    }
    if let Some(p) = &package {
        for (idx, member_subject, path) in infs {
            check_inf(unit, idx, &member_subject, p, &path, auditor);
        }
    }
}

/// Runs the package-level rules over the INF at `path` of `package`, into `unit`.
fn check_inf(
    unit: &mut Unit,
    artifact: usize,
    subject: &str,
    package: &crate::packageinfo::PackageInfo,
    path: &str,
    auditor: &Auditor<'_>,
) {
    let Some(inf) = package
        .infs
        .iter()
        .find(|i| i.path.eq_ignore_ascii_case(path))
    else {
        return;
    };
    if let Err(e) = &inf.inf {
        unit.notices.push(Notice::new(
            subject,
            NoticeKind::Malformed,
            Level::Error,
            format!("INF not read: {e}"),
        ));
        return;
    }
    // A catalog this INF names that could not be read: the package's signature could not be
    // checked (DRV4007 reports the drivers it should cover).
    if let Ok(parsed) = &inf.inf {
        let mut named: Vec<String> = crate::inf::Arch::ALL
            .iter()
            .filter_map(|&a| parsed.catalog_file(a).map(|c| c.file))
            .collect();
        named.sort_by_key(|n| n.to_ascii_lowercase());
        named.dedup_by_key(|n| n.to_ascii_lowercase());
        for name in named {
            if let Some(Err(why)) = package.catalog(inf, &name).map(|c| &c.catalog) {
                unit.notices.push(Notice::new(
                    subject,
                    NoticeKind::Malformed,
                    Level::Error,
                    format!("its catalog {name} could not be read: {why}"),
                ));
            }
        }
    }
    let ctx = crate::rules::PackageContext { package, inf };
    let mut findings: Vec<Finding> = guard::within(&RULES, || auditor.rules.check_package(&ctx))
        .into_iter()
        .map(|(rule, hit)| {
            let place = Place::Package {
                artifact,
                display: subject,
                identity: &inf.sha256,
            };
            Finding::from_hit(rule, hit, place)
        })
        .collect();
    assign_fingerprints(&mut findings);
    unit.findings.extend(findings);
}

/// A driver file (or package member, or an image held in memory) to audit.
pub(crate) struct ImageFile<'a> {
    pub(crate) artifact: usize,
    pub(crate) subject: &'a str,
    pub(crate) name: &'a str,
    pub(crate) bytes: &'a [u8],
    /// File layout (on disk) or loaded layout (carved from memory).
    pub(crate) layout: Layout,
    /// Its file, for debug information beside it, when it has one of its own.
    pub(crate) path: Option<&'a Path>,
    pub(crate) package: Option<&'a crate::packageinfo::PackageInfo>,
}

/// Parses and audits one image into `unit`, or records why it could not.
pub(crate) fn audit_file_bytes(unit: &mut Unit, file: &ImageFile<'_>, auditor: &Auditor<'_>) {
    let &ImageFile {
        artifact,
        subject,
        name,
        bytes,
        layout,
        path,
        package,
    } = file;
    if bytes.is_empty() {
        unit.notices.push(Notice::new(
            subject,
            NoticeKind::Malformed,
            Level::Error,
            "empty file: not a PE image",
        ));
        return;
    }
    let target = Target {
        bytes,
        layout,
        artifact,
        name,
        display: subject,
        holes: Vec::new(),
        path,
        package,
    };
    match auditor.audit(target, |_| false) {
        Ok(Audited {
            summary,
            findings,
            notes,
        }) => {
            for (kind, level, message) in notes {
                unit.notices
                    .push(Notice::new(subject, kind, level, message));
            }
            // The model hashed the bytes already; hashing is most of a scan's CPU time.
            unit.artifacts[artifact].sha256 = Some(summary.sha256.clone());
            if let Some(message) = anomaly_notice(&summary.anomalies) {
                unit.notices.push(Notice::new(
                    subject,
                    NoticeKind::Partial,
                    Level::Warning,
                    message,
                ));
            }
            unit.images.push(summary);
            unit.findings.extend(findings);
        }
        Err(e) => {
            unit.artifacts[artifact].sha256 = Some(crate::util::sha256_hex(bytes));
            unit.notices.push(Notice::new(
                subject,
                e.notice_kind(),
                Level::Error,
                e.to_string(),
            ))
        }
    }
}

/// One notice for all of an image's anomalies: a damaged directory can yield dozens of them,
/// and the reader needs to know the file is damaged and how, not every entry.
pub(crate) fn anomaly_notice(anomalies: &[String]) -> Option<String> {
    let (first, rest) = anomalies.split_first()?;
    let mut m = format!("malformed image, analysed as far as it could be read: {first}");
    for a in rest.iter().take(2) {
        m.push_str("; ");
        m.push_str(a);
    }
    if rest.len() > 2 {
        m.push_str(&format!(" (and {} more)", rest.len() - 2));
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(bytes: &[u8]) -> Target<'_> {
        Target {
            bytes,
            layout: Layout::File,
            artifact: 0,
            name: "clean.sys",
            display: "testdata/bin/clean.sys",
            holes: Vec::new(),
            path: None,
            package: None,
        }
    }

    fn no_debug() -> DebugLookup {
        DebugLookup {
            search: debuginfo::SymbolSearch::default(),
            source_map: Vec::new(),
            root: std::path::PathBuf::from("/"),
        }
    }

    /// A panic while auditing one image (here injected where carved images install their
    /// imports) is that image's error; the auditor goes on with the next.
    #[test]
    fn a_panic_while_auditing_is_the_image_error() {
        let rules = RuleSet::builtin().unwrap();
        let debug = no_debug();
        let packages = super::super::packages::FolderPackages::default();
        let auditor = Auditor {
            rules: &rules,
            owners: None,
            call_sites: true,
            debug: &debug,
            blocklists: &[],
            hash_needs: Default::default(),
            packages: &packages,
            now: 0,
            identify: false,
        };
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/bin/clean_gcc_x64_O2.sys");
        let bytes = std::fs::read(path).unwrap();
        let Err(err) = auditor.audit(target(&bytes), |_| panic!("injected failure")) else {
            panic!("the injected panic is the image's error");
        };
        // The injection runs in the PE model's stage; drvaudit's own code, so a drvaudit bug.
        assert_eq!(err.notice_kind(), NoticeKind::Internal);
        assert_eq!(
            err.to_string(),
            "internal error in the PE image model (a drvaudit bug; please report it with the \
             file): injected failure"
        );
        let Ok(audited) = auditor.audit(target(&bytes), |_| false) else {
            panic!("the image audits");
        };
        assert_eq!(audited.summary.sha256.len(), 64);
    }

    /// A panic outside any image (reading a package, walking a dump) becomes a notice naming
    /// the input, with the panic's own words: internal when drvaudit's own code failed,
    /// malformed when a library gave up on the input.
    #[test]
    fn a_panic_analysing_an_input_is_a_notice_naming_it() {
        let what = guarded(|| -> u8 { panic!("{} failure", "formatted") }).unwrap_err();
        assert_eq!(what.message, "formatted failure");
        let unit = internal_error(
            Path::new("pkgs/broken.cab"),
            ArtifactKind::Package,
            Path::new("/no/such/root"),
            &what,
        );
        assert_eq!(unit.artifacts.len(), 1);
        assert_eq!(unit.artifacts[0].name, "broken.cab");
        assert_eq!(unit.notices[0].subject, "pkgs/broken.cab");
        assert_eq!(unit.notices[0].level, Level::Error);
        assert_eq!(unit.notices[0].kind, NoticeKind::Internal);
        assert!(unit.notices[0].message.ends_with(": formatted failure"));
        assert_eq!(guarded(|| 7).ok(), Some(7));

        static CAB: Component = Component::library("cabinet reader", "cab");
        let what = guarded(|| guard::within(&CAB, || -> u8 { panic!("index out of bounds") }))
            .unwrap_err();
        let unit = internal_error(
            Path::new("pkgs/broken.cab"),
            ArtifactKind::Package,
            Path::new("/no/such/root"),
            &what,
        );
        assert_eq!(unit.notices[0].kind, NoticeKind::Malformed);
        assert_eq!(
            unit.notices[0].message,
            "malformed: the cab crate (cabinet reader) failed on it: index out of bounds"
        );
    }
}
