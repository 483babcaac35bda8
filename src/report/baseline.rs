//! Baselines: an earlier SARIF log of drvaudit, against which each result is new, unchanged,
//! updated or absent (SARIF §3.27.24 `baselineState`).
//!
//! Results are matched by their `drvaudit/v2` fingerprint ([`super::assign_fingerprints`]),
//! which holds the rule, the driver's stable identity, what the finding is about (API, tags,
//! pool type, the function's real name, the import or section) and an occurrence index — never
//! a path, an address or a line: a driver copied, renamed, re-packaged or rebuilt with unrelated
//! changes keeps its results' fingerprints. A fingerprint seen in both logs is `unchanged`, or
//! `updated` when its level differs; one only in the new log is `new`; one only in the baseline
//! is listed as `absent`. Several results may share a fingerprint (the same driver twice in the
//! tree); each baseline entry then matches one of them, in report order.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::rules::Level;

/// The fingerprint key results are matched by.
pub const FINGERPRINT: &str = "drvaudit/v2";

/// A result's state against the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BaselineState {
    /// Not in the baseline.
    New,
    /// In the baseline, the same.
    Unchanged,
    /// In the baseline with another level.
    Updated,
    /// Only in the baseline.
    Absent,
}

impl BaselineState {
    /// Whether a result in this state counts for the exit code.
    pub fn counts(self) -> bool {
        matches!(self, BaselineState::New | BaselineState::Updated)
    }

    /// The state as SARIF writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            BaselineState::New => "new",
            BaselineState::Unchanged => "unchanged",
            BaselineState::Updated => "updated",
            BaselineState::Absent => "absent",
        }
    }
}

/// Why a baseline could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// The file could not be read.
    #[error("{path}: cannot read the baseline: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It is not a SARIF log of drvaudit.
    #[error("{path}: not a drvaudit SARIF log: {why}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

struct Entry {
    level: Level,
    /// The result as the baseline has it, for listing it as absent.
    result: serde_json::Value,
}

/// The results of an earlier log, by fingerprint.
pub struct Baseline {
    entries: HashMap<String, VecDeque<Entry>>,
    /// Fingerprints in the baseline's order, for a stable list of absent results.
    order: Vec<String>,
}

impl Baseline {
    /// Reads a baseline log.
    pub fn load(path: &Path) -> Result<Baseline, BaselineError> {
        let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Baseline::parse(&text, path)
    }

    /// Parses a baseline log; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Baseline, BaselineError> {
        let format = |why: String| BaselineError::Format {
            path: path.to_path_buf(),
            why,
        };
        let log: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format(format!("not JSON: {e}")))?;
        let runs = log["runs"]
            .as_array()
            .ok_or_else(|| format("no `runs` array".into()))?;
        let mut entries: HashMap<String, VecDeque<Entry>> = HashMap::new();
        let mut order = Vec::new();
        for (r, run) in runs.iter().enumerate() {
            if run["tool"]["driver"]["name"] != "drvaudit" {
                return Err(format(format!("run {r} is not drvaudit's")));
            }
            let results = run["results"].as_array().map_or(&[][..], Vec::as_slice);
            for (i, result) in results.iter().enumerate() {
                super::sarif_shape::check_result(result, &format!("run {r} result {i}"))
                    .map_err(format)?;
                // A result the baseline itself listed as absent is not part of it.
                if result["baselineState"] == "absent" {
                    continue;
                }
                let fp = result["partialFingerprints"][FINGERPRINT]
                    .as_str()
                    .ok_or_else(|| {
                        format(format!(
                            "run {r} result {i} has no `{FINGERPRINT}` fingerprint (a log of an \
                             older drvaudit: write the baseline again)"
                        ))
                    })?;
                let level = match result["level"].as_str().unwrap_or("warning") {
                    "error" => Level::Error,
                    "note" | "none" => Level::Note,
                    _ => Level::Warning,
                };
                order.push(fp.to_string());
                entries.entry(fp.to_string()).or_default().push_back(Entry {
                    level,
                    result: result.clone(),
                });
            }
        }
        Ok(Baseline { entries, order })
    }

    /// The state of a finding with `fingerprint` and `level`, taking the baseline entry it
    /// matches.
    pub fn classify(&mut self, fingerprint: &str, level: Level) -> BaselineState {
        match self
            .entries
            .get_mut(fingerprint)
            .and_then(VecDeque::pop_front)
        {
            Some(e) if e.level == level => BaselineState::Unchanged,
            Some(_) => BaselineState::Updated,
            None => BaselineState::New,
        }
    }

    /// The baseline's results no finding matched, in its order, marked absent. Their artifact
    /// and rule indices point into the baseline's own log, so they are dropped; URIs stay.
    pub fn into_absent(mut self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for fp in &self.order {
            let Some(e) = self.entries.get_mut(fp).and_then(VecDeque::pop_front) else {
                continue;
            };
            // An object: [`Baseline::parse`] checked each result's shape.
            let mut r = e.result;
            r["baselineState"] = "absent".into();
            if let Some(o) = r.as_object_mut() {
                o.remove("ruleIndex");
                o.remove("rank");
                o.remove("suppressions");
            }
            // `get_mut`, not indexing: indexing would add the members a location lacks.
            let locations = r
                .get_mut("locations")
                .and_then(serde_json::Value::as_array_mut);
            for l in locations.into_iter().flatten() {
                if let Some(a) = l
                    .get_mut("physicalLocation")
                    .and_then(|p| p.get_mut("artifactLocation"))
                    .and_then(serde_json::Value::as_object_mut)
                {
                    a.remove("index");
                }
            }
            out.push(r);
        }
        out
    }
}
