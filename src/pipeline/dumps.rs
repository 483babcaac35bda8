//! Auditing the drivers loaded in a crash dump: list, carve, name their imports, run the rules.
//!
//! Each carved module becomes an artifact nested in its dump (`MEMORY.DMP` → `name@0xbase`)
//! and goes through exactly the same model and rules as a file, in loaded layout. Imports come
//! from the surviving import directory or, where `INIT` took it away, from matching each IAT
//! slot's value against the exports of every loaded module ([`crate::dump::recover_imports`]).

use std::collections::HashMap;
use std::path::Path;

use crate::driver::pe_key;
use crate::dump::{self, CarvedImage, Dump, ImportSource, LoadedModule};
use crate::pe::{Import, ImportOrigin, Layout};
use crate::pool::PoolSnapshot;
use crate::report::{Artifact, ArtifactKind, Level, Notice, NoticeKind};
use crate::util::{display_path, file_name};

use super::audit::{self, anomaly_notice, AuditError, Auditor, Target};
use super::merge::Unit;

/// The drivers scanned from files, by `(lower-case name, PE key)`: their artifact and display
/// path. A module of a dump with the same name and key is the same driver.
pub(crate) type OnDisk = HashMap<(String, String), (usize, String)>;

/// What a dump says about the scanned files: each file (artifact index) loaded in it, with the
/// module (`MEMORY.DMP>x.sys@0xbase`) it was loaded as.
pub(crate) type LoadedIn = Vec<(usize, String)>;

/// Analyses one dump: its artifact first, then one artifact per carved (or, for a triage dump,
/// listed) module. Returns the unit, the dump's pool usage when its pool tracker table could be
/// read, and the scanned files it lists as loaded.
pub(crate) fn analyze_dump(
    path: &Path,
    uri: String,
    on_disk: &OnDisk,
    auditor: &Auditor<'_>,
) -> (Unit, Option<PoolSnapshot>, LoadedIn) {
    let length = std::fs::metadata(path).ok().map(|m| m.len());
    analyze_opened(
        &display_path(path),
        uri,
        length,
        Dump::open(path),
        on_disk,
        auditor,
    )
}

/// [`analyze_dump`] of a dump already opened, from a file or from memory (or that failed to
/// open): `subject` names it in notices, `length` is its size in bytes.
pub(crate) fn analyze_opened(
    subject: &str,
    uri: String,
    length: Option<u64>,
    opened: Result<Dump, dump::DumpError>,
    on_disk: &OnDisk,
    auditor: &Auditor<'_>,
) -> (Unit, Option<PoolSnapshot>, LoadedIn) {
    let subject = subject.to_string();
    let mut unit = Unit::default();
    unit.artifacts.push(Artifact {
        name: file_name(&uri),
        uri,
        parent: None,
        kind: ArtifactKind::Dump,
        sha256: None,
        length,
        memory_only: false,
        facts: Default::default(),
    });
    let notice = |unit: &mut Unit, message: String, kind, level| {
        unit.notices
            .push(Notice::new(subject.clone(), kind, level, message))
    };
    let dump = match opened {
        Ok(d) => d,
        Err(e) => {
            let kind = match e {
                dump::DumpError::Io { .. } => NoticeKind::Unreadable,
                _ => NoticeKind::Malformed,
            };
            notice(&mut unit, e.to_string(), kind, Level::Error);
            return (unit, None, Vec::new());
        }
    };
    unit.artifacts[0].facts = dump_facts(&dump);
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
    // A triage dump holds the driver list but not the images: its modules are listed, and
    // matched to the scanned files.
    let mut loaded_in = Vec::new();
    if dump.is_triage() {
        loaded_in = list_modules(&mut unit, &subject, &dump, &modules, on_disk);
    }
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
            Ok(audit::Audited {
                mut summary,
                findings,
                notes,
            }) => {
                for (kind, level, message) in notes {
                    unit.notices
                        .push(Notice::new(module_subject.clone(), kind, level, message));
                }
                summary.artifact = idx;
                unit.artifacts[idx].sha256 = Some(summary.sha256.clone());
                unit.images.push(summary);
                unit.findings.extend(findings.into_iter().map(|mut f| {
                    f.artifact = idx;
                    f
                }));
            }
            Err(e) => {
                let kind = e.notice_kind();
                unit.notices.push(Notice::new(
                    module_subject,
                    kind,
                    Level::Warning,
                    format!("carved image not analysed: {e}"),
                ))
            }
        }
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
    // After the pool table was read: reading it records notices of its own (a budget reached
    // while probing, entries that do not add up).
    for n in dump.notice_records() {
        let kind = match n.kind {
            // A budget reached (a hostile or damaged dump) leaves part of the dump unexamined;
            // so does a mode the reader does not support.
            dump::NoticeKind::Budget => NoticeKind::Budget,
            dump::NoticeKind::Unsupported => NoticeKind::Unsupported,
            // Missing pages and damaged structures are worked around: the rest is analysed.
            dump::NoticeKind::Missing | dump::NoticeKind::Malformed | dump::NoticeKind::Partial => {
                NoticeKind::Partial
            }
        };
        notice(&mut unit, n.message, kind, Level::Warning);
    }
    (unit, pool, loaded_in)
}

type Audited = (
    Artifact,
    Result<audit::Audited, AuditError>,
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
    on_disk: &OnDisk,
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
        facts: Default::default(),
    };
    let mut memory_only = false;
    let target = Target {
        bytes: &carved.bytes,
        layout: Layout::Loaded,
        artifact: local_index,
        name: &module.name,
        display: &display,
        path: None,
        package: None,
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
        memory_only = !on_disk.contains_key(&(module.name.to_ascii_lowercase(), pe_key(image)));
        memory_only
    });
    artifact.memory_only = memory_only;
    let anomalies = match &result {
        Ok(a) => a.summary.anomalies.as_slice(),
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
        facts: Default::default(),
    }
}

/// `(lower-case name, PE key)` of every image scanned from a file or package, with its artifact
/// and display path.
pub(crate) fn on_disk_keys(report: &crate::report::Report) -> OnDisk {
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
                (
                    report.artifacts[i.artifact].name.to_ascii_lowercase(),
                    i.pe_key.clone(),
                ),
                (
                    i.artifact,
                    crate::report::display_path(&report.artifacts, i.artifact),
                ),
            )
        })
        .collect()
}

/// The dump's facts for its artifact: what it is, how it was taken, when, and how much of the
/// memory it describes it holds.
fn dump_facts(dump: &Dump) -> std::collections::BTreeMap<String, serde_json::Value> {
    let s = dump.summary();
    let mut f = std::collections::BTreeMap::new();
    f.insert(
        "dumpType".into(),
        format!("{}, DumpType {}", s.dump_type_name, s.dump_type).into(),
    );
    // MajorVersion is 0xF (free build) or 0xC (checked), not the NT version: the build says it.
    f.insert(
        "windows".into(),
        format!("build {} {}", s.build, s.arch.name()).into(),
    );
    f.insert("acquisition".into(), s.acquisition.describe().into());
    if let Some(live) = s.acquisition.is_live() {
        f.insert("liveAcquisition".into(), live.into());
    }
    if let dump::Acquisition::Crash { code } = s.acquisition {
        f.insert("bugcheck".into(), format!("{code:#010x}").into());
        f.insert(
            "bugcheckParameters".into(),
            s.bugcheck_parameters
                .iter()
                .map(|p| format!("{p:#x}"))
                .collect::<Vec<_>>()
                .into(),
        );
    }
    if let Some(t) = &s.system_time {
        f.insert("systemTime".into(), t.utc.clone().into());
    }
    if let Some(u) = &s.system_up_time {
        f.insert("upTime".into(), u.text.clone().into());
    }
    let c = dump.coverage();
    f.insert("coverage".into(), c.describe().into());
    f.insert("truncated".into(), c.truncated.into());
    f
}

/// The modules of a triage dump: one artifact each, matched to the scanned files by name,
/// TimeDateStamp and SizeOfImage; one note saying how many matched and which have no file.
/// Returns the matched files.
fn list_modules(
    unit: &mut Unit,
    subject: &str,
    dump: &Dump,
    modules: &[LoadedModule],
    on_disk: &OnDisk,
) -> LoadedIn {
    let mut loaded = Vec::new();
    let mut without = Vec::new();
    for m in modules {
        let module = format!("{subject}>{}@0x{:x}", m.name, m.base);
        let mut facts = std::collections::BTreeMap::new();
        if let Some(t) = m.time_date_stamp {
            facts.insert("timeDateStamp".into(), format!("{t:#010x}").into());
        }
        facts.insert("sizeOfImage".into(), format!("{:#x}", m.size).into());
        let matched = m
            .symbol_key()
            .and_then(|k| on_disk.get(&(m.name.to_ascii_lowercase(), k)));
        match matched {
            Some((artifact, display)) => {
                facts.insert("scannedFile".into(), display.clone().into());
                loaded.push((*artifact, module));
            }
            None => without.push(m.name.clone()),
        }
        unit.artifacts.push(Artifact {
            uri: format!("{}@0x{:x}", m.name, m.base),
            name: m.name.clone(),
            parent: Some(0),
            kind: ArtifactKind::Listed {
                base: m.base,
                full_path: m.full_path.clone(),
            },
            sha256: None,
            length: None,
            memory_only: false,
            facts,
        });
    }
    let s = dump.summary();
    let matched: Vec<String> = loaded.iter().map(|(a, _)| unit_name(on_disk, *a)).collect();
    let mut message = format!(
        "triage dump ({}): its driver list names {} module(s) and holds none of their images; ",
        s.acquisition.describe(),
        modules.len()
    );
    if matched.is_empty() {
        message.push_str("no scanned file matches any by name, TimeDateStamp and SizeOfImage");
    } else {
        message.push_str(&format!(
            "{} match scanned files by name, TimeDateStamp and SizeOfImage and are reported as \
             loaded when the dump was taken ({})",
            matched.len(),
            shortened(&matched, 8)
        ));
    }
    if !without.is_empty() && !matched.is_empty() {
        message.push_str(&format!(
            "; {} have no scanned file ({})",
            without.len(),
            shortened(&without, 8)
        ));
    } else if !without.is_empty() {
        message.push_str(&format!(" ({})", shortened(&without, 8)));
    }
    unit.notices.push(Notice::new(
        subject,
        NoticeKind::Partial,
        Level::Note,
        message,
    ));
    loaded
}

/// The display path of a scanned file's artifact, from the on-disk table.
fn unit_name(on_disk: &OnDisk, artifact: usize) -> String {
    on_disk
        .values()
        .find(|(a, _)| *a == artifact)
        .map_or_else(String::new, |(_, d)| d.clone())
}

/// `a, b, c, … (+N more)`.
fn shortened(items: &[String], keep: usize) -> String {
    let mut s = items
        .iter()
        .take(keep)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > keep {
        s.push_str(&format!(", +{} more", items.len() - keep));
    }
    s
}
