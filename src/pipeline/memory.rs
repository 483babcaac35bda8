//! One input held in memory, audited exactly as a scan audits a file: the library's entry point
//! for a caller that already has the bytes (the fuzz targets in `fuzz/`, their regression
//! replay in `tests/it/regress.rs`, an embedding tool).

use std::collections::HashMap;

use crate::pe::Layout;
use crate::poolfiles::PoolTagDb;
use crate::report::{Artifact, ArtifactKind, Level, Notice, NoticeKind, Report};
use crate::rules::RuleSet;

use super::audit::{audit_file_bytes, audit_package, guarded, Auditor, DebugLookup, ImageFile};
use super::merge::{Merger, Mode, Unit};

/// What the bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryInput {
    /// A driver image, in file layout (as on disk) or loaded layout (as carved from memory).
    Image(Layout),
    /// A `.zip` package.
    Zip,
    /// A `.cab` package.
    Cab,
    /// A kernel crash dump: its loaded drivers carved and audited in loaded layout, its pool
    /// tracker table read.
    Dump,
}

/// Audits `bytes` as the input `name` (used as its artifact URI): the image is parsed, its
/// code analysed and every enabled rule run; a package's driver members, or a dump's loaded
/// drivers, are each audited in turn. Returns that one input's report: artifacts, findings, image summaries and notices,
/// under the same panic guard and budgets as a scan. `pooltag` supplies tag owners (DRV1005).
pub fn audit_bytes(
    name: &str,
    what: MemoryInput,
    bytes: &[u8],
    rules: &RuleSet,
    pooltag: Option<&PoolTagDb>,
) -> Report {
    let owners: Option<HashMap<u32, String>> = pooltag.map(|db| {
        db.entries()
            .iter()
            .map(|e| (e.tag, e.binary.clone()))
            .collect()
    });
    // No symbol folders, no `_NT_SYMBOL_PATH`: only debug information inside the image, or at
    // the absolute path its CodeView record names, is read.
    let debug = DebugLookup {
        search: crate::debuginfo::SymbolSearch {
            symbol_dirs: Vec::new(),
            nt_symbol_path: None,
        },
        source_map: Vec::new(),
        root: std::path::PathBuf::new(),
    };
    let packages = super::packages::FolderPackages::default();
    let auditor = Auditor {
        rules,
        owners: owners.as_ref(),
        call_sites: true,
        debug: &debug,
        // No block lists and no folder packages: the bytes are all there is.
        blocklists: &[],
        hash_needs: Default::default(),
        packages: &packages,
        now: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
        identify: false,
    };
    let kind = match what {
        MemoryInput::Image(_) => ArtifactKind::File,
        MemoryInput::Zip | MemoryInput::Cab => ArtifactKind::Package,
        MemoryInput::Dump => ArtifactKind::Dump,
    };
    let artifact = Artifact {
        name: crate::util::file_name(name),
        uri: name.to_string(),
        parent: None,
        kind,
        sha256: None,
        length: Some(bytes.len() as u64),
        memory_only: false,
        facts: Default::default(),
    };
    let unit = guarded(|| {
        let mut unit = Unit::default();
        let short = artifact.name.clone();
        unit.artifacts.push(artifact.clone());
        match what {
            MemoryInput::Image(layout) => {
                let file = ImageFile {
                    artifact: 0,
                    subject: name,
                    name: &short,
                    bytes,
                    layout,
                    path: None,
                    package: None,
                };
                audit_file_bytes(&mut unit, &file, &auditor)
            }
            MemoryInput::Zip => audit_package(
                &mut unit,
                crate::package::PackageKind::Zip,
                name,
                bytes,
                &auditor,
            ),
            MemoryInput::Cab => audit_package(
                &mut unit,
                crate::package::PackageKind::Cab,
                name,
                bytes,
                &auditor,
            ),
            MemoryInput::Dump => {
                let opened = crate::dump::Dump::from_bytes(name, bytes.to_vec());
                let (dump_unit, _pool, _loaded) = super::dumps::analyze_opened(
                    name,
                    name.to_string(),
                    Some(bytes.len() as u64),
                    opened,
                    &super::dumps::OnDisk::default(),
                    &auditor,
                );
                unit = dump_unit;
            }
        }
        unit.findings.sort_by(super::merge::finding_order);
        unit
    })
    .unwrap_or_else(|what| Unit {
        artifacts: vec![artifact.clone()],
        notices: vec![Notice::new(
            name,
            if what.in_library() {
                NoticeKind::Malformed
            } else {
                NoticeKind::Internal
            },
            Level::Error,
            what.describe(),
        )],
        ..Unit::default()
    });
    let mut merger = Merger::new(
        Report {
            rules: rules.enabled(),
            ..Report::default()
        },
        Mode::Keep,
        std::sync::Arc::new(Vec::new()),
        None,
    );
    merger.take(unit);
    merger.finish().0
}
