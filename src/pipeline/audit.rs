//! Auditing one input: a driver file or a package's members, each image parsed, its code
//! analysed and every image rule run, all inside a panic guard.

use std::collections::HashMap;
use std::path::Path;

use crate::driver::{Driver, ImageSummary};
use crate::pe::{Image, ImageError, Layout};
use crate::report::{
    assign_fingerprints, Artifact, ArtifactKind, Finding, Level, Notice, NoticeKind, Place,
};
use crate::rules::{CheckContext, RuleSet};
use crate::util::{display_path, file_name, fileio};

use super::collect::{uri_for, Input, InputKind};
use super::merge::Unit;

/// What every image is audited with: the rules, the tag owners of `--pooltag`, and whether
/// its code is analysed for call sites.
pub(crate) struct Auditor<'a> {
    pub(crate) rules: &'a RuleSet,
    pub(crate) owners: Option<&'a HashMap<u32, String>>,
    pub(crate) call_sites: bool,
}

/// Why an image was not audited.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuditError {
    /// It is not a PE image drvaudit can model.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The analysis itself failed (a drvaudit bug): the image is reported, not the scan lost.
    #[error("internal error while analysing this image (a drvaudit bug; please report it with the file): {0}")]
    Internal(String),
}

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
    ) -> Result<(ImageSummary, Vec<Finding>), AuditError> {
        let run = || {
            let mut image = Image::parse(target.bytes, target.layout)?;
            let memory_only = prepare(&mut image);
            // After `prepare`: a carved image's imports are only known once recovered.
            let sites = if self.call_sites {
                crate::callsite::analyze(&image, target.bytes)
            } else {
                Vec::new()
            };
            let identity = crate::driver::stable_identity(&image);
            let driver = Driver {
                image,
                sites,
                holes: target.holes,
                name: target.name.to_string(),
                display: target.display.to_string(),
                identity,
                memory_only,
            };
            let ctx = CheckContext {
                driver: &driver,
                pooltag: self.owners,
            };
            let mut findings: Vec<Finding> = self
                .rules
                .check_driver(&ctx)
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
            Ok((driver.summary(target.artifact), findings))
        };
        guarded(run).unwrap_or_else(|what| Err(AuditError::Internal(what)))
    }
}

/// Runs `f`, turning a panic into its message: a bug met on one input must not end the scan
/// of the others.
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string())
    })
}

/// A unit for an input whose analysis failed with a bug: the input as an artifact, and a
/// notice naming it.
pub(crate) fn internal_error(input: &Path, kind: ArtifactKind, root: &Path, what: &str) -> Unit {
    Unit {
        artifacts: vec![input_artifact(input, kind, root)],
        notices: vec![Notice::new(
            display_path(input),
            NoticeKind::Internal,
            Level::Error,
            format!(
                "internal error while analysing this file (a drvaudit bug; please report it with the file): {what}"
            ),
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
    match input.kind {
        InputKind::Image => {
            let name = unit.artifacts[0].name.clone();
            audit_file_bytes(&mut unit, 0, &subject, &name, bytes, auditor);
        }
        InputKind::Zip | InputKind::Cab => {
            unit.artifacts[0].sha256 = Some(crate::util::sha256_hex(bytes));
            let members = if input.kind == InputKind::Zip {
                crate::package::zip_members(bytes)
            } else {
                crate::package::cab_members(bytes)
            };
            match members {
                Err(e) => unit.notices.push(Notice::new(
                    subject,
                    NoticeKind::Malformed,
                    Level::Error,
                    e.to_string(),
                )),
                Ok((members, problems)) => {
                    for p in problems {
                        unit.notices.push(Notice::new(
                            subject.clone(),
                            NoticeKind::Malformed,
                            Level::Error,
                            p,
                        ));
                    }
                    for m in members {
                        let idx = unit.artifacts.len();
                        unit.artifacts.push(Artifact {
                            name: file_name(&m.path),
                            uri: m.path.clone(),
                            parent: Some(0),
                            kind: ArtifactKind::Member,
                            sha256: None,
                            length: Some(m.bytes.len() as u64),
                            memory_only: false,
                            facts: Default::default(),
                        });
                        let member_subject = format!("{subject}:{}", m.path);
                        let name = file_name(&m.path);
                        audit_file_bytes(&mut unit, idx, &member_subject, &name, &m.bytes, auditor);
                    }
                }
            }
        }
        InputKind::Dump => {}
    }
    unit.findings.sort_by(super::merge::finding_order);
    unit
}

/// Parses and audits one file-layout image into `unit`, or records why it could not.
fn audit_file_bytes(
    unit: &mut Unit,
    artifact: usize,
    subject: &str,
    name: &str,
    bytes: &[u8],
    auditor: &Auditor<'_>,
) {
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
        layout: Layout::File,
        artifact,
        name,
        display: subject,
        holes: Vec::new(),
    };
    match auditor.audit(target, |_| false) {
        Ok((summary, findings)) => {
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
            let kind = match e {
                AuditError::Image(_) => NoticeKind::Malformed,
                AuditError::Internal(_) => NoticeKind::Internal,
            };
            unit.notices
                .push(Notice::new(subject, kind, Level::Error, e.to_string()))
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
        }
    }

    /// A panic while auditing one image (here injected where carved images install their
    /// imports) is that image's error; the auditor goes on with the next.
    #[test]
    fn a_panic_while_auditing_is_the_image_error() {
        let rules = RuleSet::builtin().unwrap();
        let auditor = Auditor {
            rules: &rules,
            owners: None,
            call_sites: true,
        };
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/bin/clean_gcc_x64_O2.sys");
        let bytes = std::fs::read(path).unwrap();
        let err = auditor
            .audit(target(&bytes), |_| panic!("injected failure"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("internal error while analysing this image")
                && err.ends_with("injected failure"),
            "{err}"
        );
        let (summary, _) = auditor.audit(target(&bytes), |_| false).unwrap();
        assert_eq!(summary.sha256.len(), 64);
    }

    /// A panic outside any image (reading a package, walking a dump) becomes a notice naming
    /// the input, with the panic's own words.
    #[test]
    fn a_panic_analysing_an_input_is_a_notice_naming_it() {
        let what = guarded(|| -> u8 { panic!("{} failure", "formatted") }).unwrap_err();
        assert_eq!(what, "formatted failure");
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
        assert_eq!(guarded(|| 7), Ok(7));
    }
}
