//! Registry integrity: every rule file is embedded, ids are unique, and the README's rule
//! table is what `drvaudit rules` prints.

use crate::common::*;
use drvaudit::rules::RuleSet;

#[test]
fn every_rule_file_is_registered() {
    let mut on_disk: Vec<String> = std::fs::read_dir(root().join("rules"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    on_disk.sort();
    let mut registered: Vec<String> = drvaudit::rules::builtin_files().map(String::from).collect();
    registered.sort();
    assert_eq!(on_disk, registered);
    let rules = RuleSet::builtin().unwrap();
    assert_eq!(rules.all().len(), registered.len());
}

#[test]
fn readme_rule_table_matches_the_rules() {
    let readme = read(&root().join("README.md"));
    let table = drvaudit::rules::table(&RuleSet::builtin().unwrap());
    assert!(
        readme.contains(&table),
        "README.md must contain the table printed by `drvaudit rules`:\n{table}"
    );
}

#[test]
fn user_rules_are_loaded_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("DRV3006-no-force-integrity.toml"),
        read(&root().join("rules/DRV3006-no-force-integrity.toml"))
            .replace("enabled = false", "enabled = true"),
    )
    .unwrap();
    let mut rules = RuleSet::builtin().unwrap();
    rules.add_dir(dir.path()).unwrap();
    assert!(rules.get("DRV3006").unwrap().enabled);

    std::fs::write(
        dir.path().join("X1-bad.toml"),
        "id = \"X1\"\nname = \"bad\"\nlevel = \"fatal\"\n",
    )
    .unwrap();
    let err = RuleSet::builtin()
        .unwrap()
        .add_dir(dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("X1-bad.toml: invalid rule"), "{err}");
}
