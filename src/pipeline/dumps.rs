//! Auditing the drivers loaded in a crash dump: list, carve, name their imports, run the rules.
//!
//! Each carved module becomes an artifact nested in its dump (`MEMORY.DMP` → `name@0xbase`)
//! and goes through exactly the same model and rules as a file, in loaded layout. Imports come
//! from the surviving import directory or, where `INIT` took it away, from matching each IAT
//! slot's value against the exports of every loaded module ([`crate::dump::recover_imports`]).

use std::collections::HashSet;
use std::path::Path;

use crate::driver::{pe_key, ImageSummary};
use crate::dump::{self, CarvedImage, Dump, ImportSource, LoadedModule};
use crate::pe::{Import, ImportOrigin, Layout};
use crate::pool::PoolSnapshot;
use crate::report::{Artifact, ArtifactKind, Finding, Level, Notice, NoticeKind};
use crate::util::{display_path, file_name};

use super::audit::{anomaly_notice, AuditError, Auditor, Target};
use super::merge::Unit;

/// Analyses one dump: its artifact first, then one artifact per carved module. Returns the
/// unit and the dump's pool usage, when its pool tracker table could be read.
pub(crate) fn analyze_dump(
    path: &Path,
    uri: String,
    on_disk: &HashSet<(String, String)>,
    auditor: &Auditor<'_>,
) -> (Unit, Option<PoolSnapshot>) {
    let subject = display_path(path);
    let mut unit = Unit::default();
    unit.artifacts.push(Artifact {
        name: file_name(&uri),
        uri,
        parent: None,
        kind: ArtifactKind::Dump,
        sha256: None,
        length: std::fs::metadata(path).ok().map(|m| m.len()),
        memory_only: false,
    });
    let notice = |unit: &mut Unit, message: String, kind, level| {
        unit.notices
            .push(Notice::new(subject.clone(), kind, level, message))
    };
    let dump = match Dump::open(path) {
        Ok(d) => d,
        Err(e) => {
            let kind = match e {
                dump::DumpError::Io { .. } => NoticeKind::Unreadable,
                _ => NoticeKind::Malformed,
            };
            notice(&mut unit, e.to_string(), kind, Level::Error);
            return (unit, None);
        }
    };
    let modules = match dump.modules() {
        Ok(m) => m,
        Err(e) => {
            notice(
                &mut unit,
                format!("cannot list loaded modules: {e}"),
                NoticeKind::Malformed,
                Level::Error,
            );
            Vec::new()
        }
    };
    // A triage dump holds the driver list but not the images.
    let audited: &[LoadedModule] = if dump.is_triage() { &[] } else { &modules };
    // Each distinct image is carved once, within the dump's budgets (`dump::ModuleImages`): the
    // export map comes from the modules' export directories alone, and each image is audited
    // and dropped as soon as it is carved, so memory stays at an image or two per thread.
    let images = dump.images(audited);
    let mut outcomes: Vec<Option<Result<Audited, dump::BudgetExceeded>>> =
        (0..audited.len()).map(|_| None).collect();
    for (i, r) in images.par_map(|i, module, image, recovered| {
        audit_module(i + 1, &subject, module, image, recovered, on_disk, auditor)
    }) {
        outcomes[i] = Some(r);
    }
    for ((module, plan), outcome) in audited.iter().zip(images.plan()).zip(outcomes) {
        let module_subject = format!("{subject}>{}@0x{:x}", module.name, module.base);
        let (artifact, result, notes) = match outcome {
            Some(Ok(audited)) => audited,
            // Not carved: the module keeps its artifact, and the notice says why.
            other => {
                unit.artifacts.push(uncarved_artifact(module));
                let (kind, level, message) = match (other, plan) {
                    (Some(Err(e)), _) => (
                        NoticeKind::Budget,
                        Level::Warning,
                        format!("not carved: {}", e.detail()),
                    ),
                    (_, dump::CarvePlan::DuplicateOf { of }) => (
                        NoticeKind::Budget,
                        Level::Note,
                        format!(
                            "not carved again: same base and SizeOfImage as {}",
                            audited[*of].name
                        ),
                    ),
                    (_, dump::CarvePlan::Overlaps { of }) => (
                        NoticeKind::Malformed,
                        Level::Warning,
                        format!(
                            "not carved: its image overlaps {}@0x{:x}",
                            audited[*of].name, audited[*of].base
                        ),
                    ),
                    (_, dump::CarvePlan::OverBudget { budget }) => (
                        NoticeKind::Budget,
                        Level::Warning,
                        format!("not carved: {}", budget.detail()),
                    ),
                    (_, dump::CarvePlan::NoImage { why }) => (
                        NoticeKind::Partial,
                        Level::Warning,
                        format!("not carved: {why}"),
                    ),
                    (_, dump::CarvePlan::Carve { .. }) => (
                        NoticeKind::Internal,
                        Level::Warning,
                        "planned for carving but not carved".to_string(),
                    ),
                };
                unit.notices
                    .push(Notice::new(module_subject, kind, level, message));
                continue;
            }
        };
        unit.artifacts.push(artifact);
        let idx = unit.artifacts.len() - 1;
        if let Some((message, level)) = notes {
            unit.notices.push(Notice::new(
                module_subject.clone(),
                NoticeKind::Partial,
                level,
                message,
            ));
        }
        match result {
            Ok((mut summary, findings)) => {
                summary.artifact = idx;
                unit.artifacts[idx].sha256 = Some(summary.sha256.clone());
                unit.images.push(summary);
                unit.findings.extend(findings.into_iter().map(|mut f| {
                    f.artifact = idx;
                    f
                }));
            }
            Err(e) => {
                let kind = match e {
                    AuditError::Image(_) => NoticeKind::Malformed,
                    AuditError::Internal(_) => NoticeKind::Internal,
                };
                unit.notices.push(Notice::new(
                    module_subject,
                    kind,
                    Level::Warning,
                    format!("carved image not analysed: {e}"),
                ))
            }
        }
    }
    for n in dump.notice_records() {
        // A budget reached (a hostile or damaged dump) leaves part of the dump unexamined.
        let kind = match n.kind {
            dump::NoticeKind::Budget => NoticeKind::Budget,
            _ => NoticeKind::Partial,
        };
        notice(&mut unit, n.message, kind, Level::Warning);
    }
    let pool = match dump.pool_usage() {
        Ok(s) => Some(s),
        // A dump of this kind cannot hold the table (a triage dump): a fact, not a failure.
        Err(e @ dump::DumpError::Unavailable { .. }) => {
            notice(
                &mut unit,
                format!("no pool usage: {e}"),
                NoticeKind::Partial,
                Level::Note,
            );
            None
        }
        Err(e) => {
            notice(
                &mut unit,
                format!("no pool usage: {e}"),
                NoticeKind::MissingEvidence,
                Level::Error,
            );
            None
        }
    };
    (unit, pool)
}

type Audited = (
    Artifact,
    Result<(ImageSummary, Vec<Finding>), AuditError>,
    Option<(String, Level)>,
);

/// One notice per carved module, so that a dump of two hundred drivers with their INIT
/// sections discarded does not bury the report: what is missing, which IAT slots matched no
/// export, and what of the image's structure was malformed. Only expected holes: a note.
fn module_notice(
    carved: &CarvedImage,
    recovered: &[dump::RecoveredImport],
    anomalies: &[String],
) -> Option<(String, Level)> {
    let mut parts = Vec::new();
    if !carved.holes.is_empty() {
        let missing: u64 = carved.holes.iter().map(|&(_, l)| u64::from(l)).sum();
        parts.push(format!(
            "{missing:#x} of {:#x} bytes not in the dump, zero-filled: {}",
            carved.bytes.len(),
            carved.notes.join("; ")
        ));
    } else if !carved.notes.is_empty() {
        parts.push(carved.notes.join("; "));
    }
    let unnamed: Vec<&str> = recovered.iter().filter_map(|r| r.note.as_deref()).collect();
    if let Some(first) = unnamed.first() {
        parts.push(if unnamed.len() == 1 {
            format!("IAT: {first}")
        } else {
            format!("IAT: {first} (and {} more slots)", unnamed.len() - 1)
        });
    }
    parts.extend(anomaly_notice(anomalies));
    if parts.is_empty() {
        return None;
    }
    let expected_only = carved.holes_expected && unnamed.is_empty() && anomalies.is_empty();
    let level = if expected_only {
        Level::Note
    } else {
        Level::Warning
    };
    Some((parts.join("; "), level))
}

/// Audits one carved module; the artifact index is fixed up by the caller.
fn audit_module(
    local_index: usize,
    dump_subject: &str,
    module: &LoadedModule,
    carved: &CarvedImage,
    recovered: &[dump::RecoveredImport],
    on_disk: &HashSet<(String, String)>,
    auditor: &Auditor<'_>,
) -> Audited {
    let display = format!("{dump_subject}>{}@0x{:x}", module.name, module.base);
    let mut artifact = Artifact {
        uri: format!("{}@0x{:x}", module.name, module.base),
        name: module.name.clone(),
        parent: Some(0),
        kind: ArtifactKind::Carved {
            base: module.base,
            full_path: module.full_path.clone(),
        },
        sha256: None,
        length: Some(carved.bytes.len() as u64),
        memory_only: false,
    };
    let mut memory_only = false;
    let target = Target {
        bytes: &carved.bytes,
        layout: Layout::Loaded,
        artifact: local_index,
        name: &module.name,
        display: &display,
        holes: carved.holes.clone(),
    };
    let result = auditor.audit(target, |image| {
        let named: Vec<Import> = recovered
            .iter()
            .filter(|r| r.dll != "?")
            .map(|r| Import {
                dll: r.dll.clone(),
                name: r.name.clone(),
                ordinal: r.ordinal,
                iat_rva: r.iat_rva,
                delay: false,
                origin: match r.how {
                    ImportSource::FromImportDirectory => ImportOrigin::Directory,
                    ImportSource::FromExportMatch => ImportOrigin::ExportMatch,
                },
            })
            .collect();
        if !named.is_empty() {
            image.imports = named;
        }
        // Same name and symbol-server key as a scanned file: the same driver.
        memory_only = !on_disk.contains(&(module.name.to_ascii_lowercase(), pe_key(image)));
        memory_only
    });
    artifact.memory_only = memory_only;
    let anomalies = match &result {
        Ok((summary, _)) => summary.anomalies.as_slice(),
        Err(_) => &[],
    };
    let notice = module_notice(carved, recovered, anomalies);
    (artifact, result, notice)
}

/// The artifact of a module that was not carved (its notice says why).
fn uncarved_artifact(module: &LoadedModule) -> Artifact {
    Artifact {
        uri: format!("{}@0x{:x}", module.name, module.base),
        name: module.name.clone(),
        parent: Some(0),
        kind: ArtifactKind::Carved {
            base: module.base,
            full_path: module.full_path.clone(),
        },
        sha256: None,
        length: None,
        memory_only: false,
    }
}

/// `(lower-case name, PE key)` of every image scanned from a file or package.
pub(crate) fn on_disk_keys(report: &crate::report::Report) -> HashSet<(String, String)> {
    report
        .images
        .iter()
        .filter(|i| {
            !matches!(
                report.artifacts[i.artifact].kind,
                ArtifactKind::Carved { .. }
            )
        })
        .map(|i| {
            (
                report.artifacts[i.artifact].name.to_ascii_lowercase(),
                i.pe_key.clone(),
            )
        })
        .collect()
}
