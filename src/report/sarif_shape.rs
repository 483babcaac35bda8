//! The shape a SARIF log read back (a `--baseline`, a shard given to `drvaudit merge`) must
//! have before drvaudit edits its results and artifacts.
//!
//! Reading a `serde_json::Value` by index is total (a missing member reads as null), but
//! writing through an index panics when the value is neither an object nor null
//! (`serde_json::Value`'s `IndexMut`). Baselines and shards are files a user or a CI system
//! hands over, so their shape is checked once, here, against what SARIF 2.1.0 requires of
//! the members drvaudit rewrites (§3.27 result, §3.28 location, §3.29 physicalLocation,
//! §3.4 artifactLocation, §3.24 artifact): a log that breaks it is refused with the member
//! that broke it, as an unreadable input, instead of being half edited.

use serde_json::Value;

/// Checks one result: an object whose `locations` and `relatedLocations` (when present) are
/// arrays of location objects, each `physicalLocation` and its `artifactLocation` an object,
/// and `properties` an object. `at` names the result in the error (e.g. "run 0 result 3").
pub fn check_result(result: &Value, at: &str) -> Result<(), String> {
    let r = object(result, at)?;
    for key in ["locations", "relatedLocations"] {
        let Some(list) = r.get(key) else { continue };
        let list = list
            .as_array()
            .ok_or_else(|| format!("{at}: `{key}` is not an array"))?;
        for (i, loc) in list.iter().enumerate() {
            let here = format!("{at} {key}[{i}]");
            let loc = object(loc, &here)?;
            if let Some(p) = loc.get("physicalLocation") {
                let here = format!("{here}.physicalLocation");
                let p = object(p, &here)?;
                if let Some(a) = p.get("artifactLocation") {
                    object(a, &format!("{here}.artifactLocation"))?;
                }
            }
        }
    }
    optional_object(r.get("properties"), &format!("{at}.properties"))
}

/// Checks the artifact at `index` of a run: an object whose `location` and `properties` (when
/// present) are objects and whose `parentIndex` (when present) names an earlier artifact (as
/// drvaudit writes them; SARIF §3.24.3 only requires an existing one, but an earlier parent
/// rules out cycles).
pub fn check_artifact(artifact: &Value, index: usize, at: &str) -> Result<(), String> {
    let a = object(artifact, at)?;
    optional_object(a.get("location"), &format!("{at}.location"))?;
    optional_object(a.get("properties"), &format!("{at}.properties"))?;
    match a.get("parentIndex") {
        None => Ok(()),
        Some(p) => match p.as_u64() {
            Some(p) if (p as usize) < index => Ok(()),
            _ => Err(format!(
                "{at}: `parentIndex` {p} does not name an earlier artifact"
            )),
        },
    }
}

fn object<'a>(v: &'a Value, at: &str) -> Result<&'a serde_json::Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{at} is not an object but {}", kind(v)))
}

fn optional_object(v: Option<&Value>, at: &str) -> Result<(), String> {
    v.map_or(Ok(()), |v| object(v, at).map(|_| ()))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_result_as_drvaudit_writes_it_passes() {
        let r = json!({
            "ruleId": "DRV1001",
            "locations": [{"physicalLocation": {"artifactLocation": {"index": 0}}}],
            "properties": {"tag": "None"}
        });
        assert_eq!(check_result(&r, "result 0"), Ok(()));
        assert_eq!(check_result(&json!({}), "result 0"), Ok(()));
    }

    #[test]
    fn members_drvaudit_rewrites_must_be_objects() {
        let bad = json!({"locations": [{"physicalLocation": {"artifactLocation": 7}}]});
        assert_eq!(
            check_result(&bad, "run 0 result 2"),
            Err(
                "run 0 result 2 locations[0].physicalLocation.artifactLocation is not an object \
                 but a number"
                    .into()
            )
        );
        assert!(check_result(&json!([1]), "r").is_err());
        assert!(check_result(&json!({"relatedLocations": {}}), "r").is_err());
        assert!(check_result(&json!({"locations": ["x"]}), "r").is_err());
        assert!(check_result(&json!({"properties": 1}), "r").is_err());
    }

    #[test]
    fn a_parent_must_come_before_its_child() {
        let a = |p: Value| json!({"location": {"uri": "x"}, "parentIndex": p});
        assert_eq!(check_artifact(&a(json!(0)), 1, "artifact 1"), Ok(()));
        assert_eq!(
            check_artifact(&a(json!(1)), 1, "artifact 1"),
            Err("artifact 1: `parentIndex` 1 does not name an earlier artifact".into())
        );
        assert!(check_artifact(&a(json!(-1)), 1, "a").is_err());
        assert!(check_artifact(&json!({"location": "x"}), 0, "a").is_err());
        assert!(check_artifact(&json!(null), 0, "a").is_err());
    }
}
