//! `drvaudit merge`: the SARIF logs of the shards of one scan (`--shard I/N`) joined into one
//! run, as if one machine had scanned everything.
//!
//! - rules: the union, sorted by id, every `ruleIndex` renumbered;
//! - artifacts: each input with what is nested in it, files and packages first, then dumps,
//!   then pool exports, each group by URI (the order a scan lists them in); an input every
//!   shard read (a `--pool` export) once; every `index` and `parentIndex` renumbered;
//! - results: each shard's, re-pointed at the merged artifacts; the report-level results
//!   (DRV9001), which depend on which drivers use a tag, recomputed from the pool usage the
//!   shards recorded (`run.properties.poolUsage`) and every image's allocation tags
//!   (`artifact.properties.allocationTags`); then ordered as a scan orders them (ranked first);
//! - the invocation: the worst exit code, every notification.
//!
//! Fingerprints are the shards' own: they never depend on which machine scanned what.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::PathBuf;

use serde_json::Value;

use crate::attribution::Attribution;
use crate::driver::{ImageSummary, TagUse};
use crate::pe::Machine;
use crate::pool::{PoolSnapshot, TagUsage};
use crate::report::{assign_fingerprints, sarif_shape, Finding, Place};
use crate::rules::{ReportContext, RuleSet};

use super::sarif::{encode, member, Location};

/// Why logs could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A log could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The log.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The merged log could not be written.
    #[error("cannot write the merged log: {0}")]
    Write(#[source] std::io::Error),
    /// A log is not one drvaudit wrote, or the logs do not belong together.
    #[error("{path}: {why}")]
    Format {
        /// The log.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// One shard's run.
struct Shard {
    path: PathBuf,
    run: Value,
}

/// One input and what is nested in it, from one shard.
struct Group {
    shard: usize,
    /// The shard's artifact indices: the input first, then its descendants in order.
    members: Vec<usize>,
    class: u8,
    uri: String,
    hash: Option<String>,
}

/// Merges the logs at `paths` into one log written to `out`; `rules` are the rules the scans ran
/// with (their report-level rules are run again over the whole). Returns the merged run's exit
/// code (the worst of the shards').
pub fn merge(paths: &[PathBuf], rules: &RuleSet, out: impl Write) -> Result<i64, MergeError> {
    let mut logs = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|source| MergeError::Read {
            path: path.clone(),
            source,
        })?;
        logs.push((path.clone(), text));
    }
    merge_texts(&logs, rules, out)
}

/// [`merge`] of logs already read: (the path that names each in errors, its text).
pub fn merge_texts(
    logs: &[(PathBuf, String)],
    rules: &RuleSet,
    out: impl Write,
) -> Result<i64, MergeError> {
    let mut shards = Vec::new();
    for (path, text) in logs {
        let format = |why: String| MergeError::Format {
            path: path.clone(),
            why,
        };
        let log: Value =
            serde_json::from_str(text).map_err(|e| format(format!("not JSON: {e}")))?;
        let run = log["runs"]
            .as_array()
            .and_then(|r| r.first())
            .cloned()
            .ok_or_else(|| format("no run".into()))?;
        if run["tool"]["driver"]["name"] != "drvaudit" {
            return Err(format("not a log drvaudit wrote".into()));
        }
        // What is rewritten below must have the shape it is written through.
        let artifacts = run["artifacts"].as_array().map_or(&[][..], Vec::as_slice);
        for (i, a) in artifacts.iter().enumerate() {
            sarif_shape::check_artifact(a, i, &format!("artifact {i}")).map_err(format)?;
        }
        let results = run["results"].as_array().map_or(&[][..], Vec::as_slice);
        for (i, r) in results.iter().enumerate() {
            sarif_shape::check_result(r, &format!("result {i}")).map_err(format)?;
        }
        shards.push(Shard {
            path: path.clone(),
            run,
        });
    }
    let Some(first) = shards.first() else {
        return Err(MergeError::Format {
            path: PathBuf::from("-"),
            why: "no log to merge".into(),
        });
    };
    let usage = pool_usage(&shards)?;

    // Rules: the union, by id.
    let mut descriptors: BTreeMap<String, Value> = BTreeMap::new();
    for s in &shards {
        for r in s.run["tool"]["driver"]["rules"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(id) = r["id"].as_str() {
                descriptors
                    .entry(id.to_string())
                    .or_insert_with(|| r.clone());
            }
        }
    }
    let rule_index: BTreeMap<String, usize> = descriptors
        .keys()
        .enumerate()
        .map(|(i, id)| (id.clone(), i))
        .collect();

    // Artifacts: groups, ordered, duplicates (inputs every shard read) once.
    let mut groups = Vec::new();
    for (si, s) in shards.iter().enumerate() {
        let arts = s.run["artifacts"].as_array().map_or(&[][..], Vec::as_slice);
        let mut top_of = vec![0usize; arts.len()];
        let mut by_top: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, a) in arts.iter().enumerate() {
            top_of[i] = match a["parentIndex"].as_u64() {
                Some(p) if (p as usize) < i => top_of[p as usize],
                _ => i,
            };
            by_top.entry(top_of[i]).or_default().push(i);
        }
        for (top, members) in by_top {
            let a = &arts[top];
            groups.push(Group {
                shard: si,
                members,
                class: match a["properties"]["kind"].as_str() {
                    Some("dump") => 1,
                    Some("pool-export") => 2,
                    _ => 0,
                },
                uri: a["location"]["uri"].as_str().unwrap_or("").to_string(),
                hash: a["hashes"]["sha-256"].as_str().map(str::to_string),
            });
        }
    }
    groups.sort_by(|a, b| {
        (a.class, uri_components(&a.uri), a.shard).cmp(&(b.class, uri_components(&b.uri), b.shard))
    });
    let mut seen = BTreeSet::new();
    groups.retain(|g| seen.insert((g.class, g.uri.clone(), g.hash.clone())));
    // (shard, old index) → new index, for every kept artifact.
    let mut index: HashMap<(usize, usize), usize> = HashMap::new();
    let mut artifacts: Vec<Value> = Vec::new();
    for g in &groups {
        for &old in &g.members {
            index.insert((g.shard, old), artifacts.len());
            artifacts.push(shards[g.shard].run["artifacts"][old].clone());
        }
    }
    // Inputs dropped as duplicates point at the kept copy.
    for (si, s) in shards.iter().enumerate() {
        let arts = s.run["artifacts"].as_array().map_or(&[][..], Vec::as_slice);
        for (i, a) in arts.iter().enumerate() {
            if index.contains_key(&(si, i)) {
                continue;
            }
            let uri = &a["location"]["uri"];
            if let Some(n) = artifacts.iter().position(|k| &k["location"]["uri"] == uri) {
                index.insert((si, i), n);
            }
        }
    }
    for (n, a) in artifacts.iter_mut().enumerate() {
        a["location"]["index"] = n.into();
    }
    // Parents: each artifact's own shard decides.
    for g in &groups {
        for &old in &g.members {
            let new = index[&(g.shard, old)];
            if let Some(p) = shards[g.shard].run["artifacts"][old]["parentIndex"].as_u64() {
                artifacts[new]["parentIndex"] = index[&(g.shard, p as usize)].into();
            }
        }
    }

    // Results: re-pointed; report-level ones (about a pool tag) left to be recomputed.
    let mut results: Vec<Value> = Vec::new();
    let mut owners: HashMap<String, String> = HashMap::new();
    for (si, s) in shards.iter().enumerate() {
        for r in s.run["results"].as_array().into_iter().flatten() {
            let mut r = r.clone();
            let about_tag = r["locations"][0]["logicalLocations"][0]["kind"] == "resource";
            if about_tag && usage.is_some() {
                if let (Some(t), Some(o)) = (
                    r["properties"]["tag"].as_str(),
                    r["properties"]["owner"].as_str(),
                ) {
                    owners.insert(t.to_string(), o.to_string());
                }
                continue;
            }
            repoint(&mut r, si, &index, &rule_index);
            results.push(r);
        }
    }
    // As a scan does: the findings in walk order, then the report-level results in the order
    // their rule gives them, then all ranked.
    order_unranked(&mut results);
    if let Some(usage) = &usage {
        results.extend(report_level(
            usage,
            &artifacts,
            &owners,
            rules,
            &rule_index,
        )?);
    }
    order_ranked(&mut results);

    // The invocation: worst exit code, every notification.
    let exit = shards
        .iter()
        .filter_map(|s| s.run["invocations"][0]["exitCode"].as_i64())
        .max()
        .unwrap_or(0);
    let notifications: Vec<Value> = shards
        .iter()
        .flat_map(|s| {
            s.run["invocations"][0]["toolExecutionNotifications"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    let mut invocation = serde_json::json!({
        "executionSuccessful": shards
            .iter()
            .all(|s| s.run["invocations"][0]["executionSuccessful"] != false),
        "exitCode": exit,
    });
    if !notifications.is_empty() {
        invocation["toolExecutionNotifications"] = notifications.into();
    }

    let mut head = first.run.clone();
    head["tool"]["driver"]["rules"] = descriptors.into_values().collect::<Vec<_>>().into();
    write(
        out,
        &head,
        &results,
        &artifacts,
        &invocation,
        usage.as_ref(),
    )
    .map_err(MergeError::Write)?;
    Ok(exit)
}

/// The pool usage the shards were ranked by: the same in every shard that has one (each read
/// the same `--pool` exports and dumps), or an error.
fn pool_usage(shards: &[Shard]) -> Result<Option<Vec<TagUsage>>, MergeError> {
    let mut found: Option<(Vec<TagUsage>, &PathBuf)> = None;
    for s in shards {
        let Some(u) = s.run["properties"].get("poolUsage") else {
            continue;
        };
        let u: Vec<TagUsage> =
            serde_json::from_value(u.clone()).map_err(|e| MergeError::Format {
                path: s.path.clone(),
                why: format!("unreadable run.properties.poolUsage: {e}"),
            })?;
        match &found {
            Some((f, from)) if *f != u => {
                return Err(MergeError::Format {
                    path: s.path.clone(),
                    why: format!(
                        "its pool usage differs from {}'s: shards of one scan read the same \
                         pool evidence",
                        from.display()
                    ),
                })
            }
            Some(_) => {}
            None => found = Some((u, &s.path)),
        }
    }
    Ok(found.map(|(u, _)| u))
}

/// Points a shard's result at the merged artifacts and rules.
fn repoint(
    r: &mut Value,
    shard: usize,
    index: &HashMap<(usize, usize), usize>,
    rule_index: &BTreeMap<String, usize>,
) {
    // Objects where present: `merge_texts` checked each result's shape. `get_mut`, not
    // indexing, so that a location without an artifact is left as it is.
    let fix = |loc: &mut Value| {
        let Some(a) = loc
            .get_mut("physicalLocation")
            .and_then(|p| p.get_mut("artifactLocation"))
        else {
            return;
        };
        if let Some(old) = a["index"].as_u64() {
            if let Some(&new) = index.get(&(shard, old as usize)) {
                a["index"] = new.into();
            }
        }
    };
    // `get_mut`, not indexing: indexing a missing member would add it as null.
    for key in ["locations", "relatedLocations"] {
        let locations = r.get_mut(key).and_then(Value::as_array_mut);
        for l in locations.into_iter().flatten() {
            fix(l);
        }
    }
    if r.get("ruleIndex").is_some() {
        if let Some(&i) = r["ruleId"].as_str().and_then(|id| rule_index.get(id)) {
            r["ruleIndex"] = i.into();
        }
    }
}

/// The report-level results over the merged run: the attribution of `usage` to every image's
/// allocation tags, and the report-level rules run on it.
fn report_level(
    usage: &[TagUsage],
    artifacts: &[Value],
    owners: &HashMap<String, String>,
    rules: &RuleSet,
    rule_index: &BTreeMap<String, usize>,
) -> Result<Vec<Value>, MergeError> {
    let images: Vec<ImageSummary> = artifacts
        .iter()
        .enumerate()
        .filter_map(|(i, a)| {
            let tags = a["properties"]["allocationTags"].as_array()?;
            let tags = tags
                .iter()
                .filter_map(|t| crate::pool::tag_from_display(t.as_str()?))
                .map(|tag| TagUse {
                    tag,
                    apis: Vec::new(),
                    sites: 0,
                    allocates: true,
                    runtime: false,
                })
                .collect();
            Some(ImageSummary {
                artifact: i,
                machine: Machine::Other(0),
                sha256: String::new(),
                call_sites: 0,
                pe_key: String::new(),
                tags,
                anomalies: Vec::new(),
                identity: None,
                signature: None,
            })
        })
        .collect();
    let name = |a: usize| {
        let art = &artifacts[a];
        let uri = art["location"]["uri"].as_str().unwrap_or("");
        let name = percent_decode(uri.rsplit('/').next().unwrap_or(uri));
        // A carved image's URI ends in `@0xbase`; its name is before it.
        let name = match art["properties"]["kind"].as_str() {
            Some("carved") => name
                .rsplit_once('@')
                .map_or(name.clone(), |(n, _)| n.to_string()),
            _ => name,
        };
        if art["properties"]["memoryOnly"] == true {
            format!("{name} (memory-only)")
        } else {
            name
        }
    };
    let snapshot = PoolSnapshot {
        source: "merged shards".into(),
        tags: usage.to_vec(),
    };
    let mut attribution = Attribution::new(snapshot, &images, name, None);
    for c in &mut attribution.consumers {
        if let Some(o) = owners.get(&crate::pool::tag_display(c.tag)) {
            c.owner = Some(o.clone());
        }
    }
    let evidence_artifact = artifacts
        .iter()
        .position(|a| {
            matches!(
                a["properties"]["kind"].as_str(),
                Some("dump" | "pool-export")
            )
        })
        .unwrap_or(0);
    let ctx = ReportContext {
        attribution: &attribution,
        evidence_artifact,
    };
    let mut findings: Vec<Finding> = rules
        .check_report(&ctx)
        .into_iter()
        .map(|(rule, hit)| Finding::from_hit(rule, hit, Place::Report))
        .collect();
    assign_fingerprints(&mut findings);
    for f in &mut findings {
        f.evidence = attribution.evidence(&f.tags, f.driver_level, f.artifact);
    }
    // A tag's summary ranks by its own figures alone (no cap applies to it).
    crate::pipeline::rank_findings(&mut findings);
    let locations: Vec<Location> = artifacts
        .iter()
        .map(|a| {
            (
                a["location"]["uri"].as_str().unwrap_or("").to_string(),
                a["location"]["uriBaseId"].as_str().map(|_| "SRCROOT"),
            )
        })
        .collect();
    let merged_rules: Vec<crate::rules::Rule> = rule_index
        .keys()
        .map(|id| {
            rules.get(id).cloned().ok_or_else(|| MergeError::Format {
                path: PathBuf::from("-"),
                why: format!("the logs ran rule {id}, which this drvaudit does not have"),
            })
        })
        .collect::<Result<_, _>>()?;
    findings
        .iter()
        .map(|f| {
            encode(rule_index, &merged_rules, f, &locations)
                .map_err(|e| MergeError::Format {
                    path: PathBuf::from("-"),
                    why: e.to_string(),
                })
                .and_then(|s| {
                    serde_json::from_str(&s).map_err(|e| MergeError::Format {
                        path: PathBuf::from("-"),
                        why: e.to_string(),
                    })
                })
        })
        .collect()
}

/// The order of unranked results: by artifact, rule, address and fingerprint; absent results
/// (no artifact index) last.
fn order_unranked(results: &mut [Value]) {
    let base = |r: &Value| {
        let loc = &r["locations"][0]["physicalLocation"];
        (
            loc["artifactLocation"]["index"]
                .as_u64()
                .unwrap_or(u64::MAX),
            r["ruleId"].as_str().unwrap_or("").to_string(),
            loc["address"]["relativeAddress"].as_i64(),
            r["partialFingerprints"]["drvaudit/v2"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        )
    };
    results.sort_by_key(base);
}

/// Ranked results first, by rank (largest first), level (errors first), report-level results
/// after the findings they summarise; otherwise the order they are in (a stable sort).
fn order_ranked(results: &mut [Value]) {
    if results.iter().any(|r| r.get("rank").is_some()) {
        let level = |r: &Value| match r["level"].as_str() {
            Some("error") => 2,
            Some("warning") => 1,
            _ => 0,
        };
        let rank = |r: &Value| r["rank"].as_f64().unwrap_or(-1.0);
        let summary = |r: &Value| r["locations"][0]["logicalLocations"][0]["kind"] == "resource";
        results.sort_by(|a, b| {
            rank(b)
                .total_cmp(&rank(a))
                .then(level(b).cmp(&level(a)))
                .then(summary(a).cmp(&summary(b)))
        });
    }
}

/// A URI's path components, decoded, for ordering as a walk orders paths.
fn uri_components(uri: &str) -> Vec<String> {
    uri.split('/').map(percent_decode).collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes the merged log in the layout scans write (one compact line per result).
fn write(
    out: impl Write,
    head: &Value,
    results: &[Value],
    artifacts: &[Value],
    invocation: &Value,
    usage: Option<&Vec<TagUsage>>,
) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(out);
    out.write_all(b"{")?;
    member(
        &mut out,
        1,
        "$schema",
        &"https://json.schemastore.org/sarif-2.1.0.json",
        true,
    )?;
    member(&mut out, 1, "version", &"2.1.0", false)?;
    out.write_all(b",\n  \"runs\": [\n    {")?;
    let mut first = true;
    for key in [
        "automationDetails",
        "columnKind",
        "originalUriBaseIds",
        "tool",
    ] {
        if let Some(v) = head.get(key) {
            member(&mut out, 3, key, v, first)?;
            first = false;
        }
    }
    out.write_all(b",\n      \"results\": [")?;
    for (i, r) in results.iter().enumerate() {
        out.write_all(if i == 0 {
            b"\n        "
        } else {
            b",\n        "
        })?;
        serde_json::to_writer(&mut out, r)?;
    }
    if !results.is_empty() {
        out.write_all(b"\n      ")?;
    }
    out.write_all(b"]")?;
    member(&mut out, 3, "artifacts", &artifacts, false)?;
    member(&mut out, 3, "invocations", &[invocation], false)?;
    if let Some(u) = usage {
        /// `run.properties` as a scan writes it (struct order, not a map's).
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Properties<'a> {
            pool_usage: &'a Vec<TagUsage>,
        }
        member(
            &mut out,
            3,
            "properties",
            &Properties { pool_usage: u },
            false,
        )?;
    }
    out.write_all(b"\n    }\n  ]\n}\n")?;
    out.flush()
}
