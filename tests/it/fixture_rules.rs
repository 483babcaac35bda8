//! Every fixture driver against the expectations written beside its sources:
//! `testdata/truth/expected_rules.tsv` says which rules fire on which binaries, and
//! `testdata/truth/sites.tsv` (derived from disassembly and line tables, independently of
//! drvaudit) gives the exact RVA of every call a call-site rule must report.

use std::collections::BTreeMap;

use crate::common::*;
use drvaudit::report::Report;

fn fixtures() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(testdata("bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sys"))
        .collect();
    v.sort();
    v
}

fn reports() -> BTreeMap<String, Report> {
    fixtures()
        .into_iter()
        .map(|n| {
            let r = scan_paths(&[testdata(&format!("bin/{n}"))]);
            assert!(problems(&r).is_empty(), "{n}: {:?}", problems(&r));
            (n, r)
        })
        .collect()
}

fn rvas(r: &Report, rule: &str) -> Vec<u32> {
    let mut v: Vec<u32> = r
        .findings
        .iter()
        .filter(|f| f.rule_id == rule)
        .filter_map(|f| f.rva)
        .collect();
    v.sort();
    v
}

#[test]
fn rules_fire_exactly_where_the_fixture_table_says() {
    let table = read(&testdata("truth/expected_rules.tsv"));
    let reports = reports();
    let mut checked = 0;
    for line in table.lines().filter(|l| !l.starts_with('#')).skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (pattern, rule, expect) = (cols[0], cols[1], cols[2]);
        let prefix = pattern.trim_end_matches("*.sys");
        for (name, r) in reports.iter().filter(|(n, _)| n.starts_with(prefix)) {
            // DRV3007 applies to x64 and ARM64 only (kernel CFG does not exist on x86).
            let expect = if rule == "DRV3007" && name.contains("_x86_") {
                "silent"
            } else {
                expect
            };
            let fired = r.findings.iter().any(|f| f.rule_id == rule);
            assert_eq!(fired, expect == "fire", "{name} {rule}: expected {expect}");
            checked += 1;
        }
    }
    assert!(checked > 300, "only {checked} expectations checked");
}

/// One row of sites.tsv.
struct Site {
    report_rva: u32,
    api: String,
    ty: String,
    tag: Option<u32>,
}

fn hex(s: &str) -> Option<u32> {
    u32::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

fn truth_sites() -> BTreeMap<String, Vec<Site>> {
    let mut out: BTreeMap<String, Vec<Site>> = BTreeMap::new();
    for line in read(&testdata("truth/sites.tsv")).lines().skip(1) {
        let c: Vec<&str> = line.split('\t').collect();
        out.entry(c[0].to_string()).or_default().push(Site {
            report_rva: hex(c[6]).or(hex(c[1])).unwrap(),
            api: c[2].to_string(),
            ty: c[3].to_string(),
            tag: hex(c[5]),
        });
    }
    out
}

const UNTAGGED: &[&str] = &["ExAllocatePool", "ExAllocatePoolWithQuota"];
const DEPRECATED: &[&str] = &[
    "ExAllocatePoolWithTag",
    "ExAllocatePoolWithQuotaTag",
    "ExAllocatePoolWithTagPriority",
];
const FREES: &[&str] = &["ExFreePool", "ExFreePoolWithTag", "ExFreePool2"];
/// APIs whose type column in sites.tsv is a POOL_TYPE (not POOL_FLAGS or lookaside flags).
const TYPED: &[&str] = &[
    "ExAllocatePool",
    "ExAllocatePoolWithQuota",
    "ExAllocatePoolWithTag",
    "ExAllocatePoolWithQuotaTag",
    "ExAllocatePoolWithTagPriority",
    "FltAllocatePoolAlignedWithTag",
];

fn printable(tag: u32) -> bool {
    tag.to_le_bytes().iter().all(|b| (0x20..=0x7e).contains(b))
}

#[test]
fn call_site_rules_report_exactly_the_truth_rvas() {
    let truth = truth_sites();
    let reports = reports();
    let mut compared = 0;
    for (binary, sites) in &truth {
        let Some(r) = reports.get(binary) else {
            panic!("{binary} is in sites.tsv but not in testdata/bin");
        };
        let alloc = |s: &&Site| !FREES.contains(&s.api.as_str());
        let allocated: Vec<u32> = sites.iter().filter(alloc).filter_map(|s| s.tag).collect();
        let expect = |pred: &dyn Fn(&Site) -> bool| {
            let mut v: Vec<u32> = sites
                .iter()
                .filter(|s| pred(s))
                .map(|s| s.report_rva)
                .collect();
            v.sort();
            v
        };
        let cases: [(&str, Vec<u32>); 8] = [
            ("DRV1001", expect(&|s| UNTAGGED.contains(&s.api.as_str()))),
            ("DRV1002", expect(&|s| DEPRECATED.contains(&s.api.as_str()))),
            (
                "DRV1003",
                expect(&|s| alloc(&s) && matches!(s.tag, Some(0x206B6444 | 0x206D6457))),
            ),
            (
                "DRV1004",
                expect(&|s| alloc(&s) && s.tag.is_some_and(|t| t == 0 || !printable(t))),
            ),
            (
                "DRV1006",
                expect(&|s| {
                    FREES.contains(&s.api.as_str())
                        && s.tag.is_some_and(|t| t != 0 && !allocated.contains(&t))
                }),
            ),
            (
                "DRV1007",
                expect(&|s| {
                    TYPED.contains(&s.api.as_str())
                        && hex(&s.ty).is_some_and(|t| matches!(t & 0x27, 2 | 6 | 0x22 | 0x26))
                }),
            ),
            ("DRV1008", expect(&|s| s.api == "NdisAllocateMemory")),
            ("DRV2005", expect(&|s| s.ty.starts_with("runtime:"))),
        ];
        for (rule, want) in cases {
            assert_eq!(rvas(r, rule), want, "{binary} {rule}");
            compared += want.len();
        }
    }
    assert!(compared > 200, "only {compared} findings compared");
}

/// DRV1006 says how many allocation sites pass a tag that could not be recovered (they could be
/// the missing allocation): the truth table's `unknown` tags, plus wrapper (`param`) sites none
/// of whose callers are listed.
#[test]
fn free_tag_finding_counts_the_allocations_whose_tag_is_unknown() {
    let table = read(&testdata("truth/sites.tsv"));
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(1)
        .map(|l| l.split('\t').collect())
        .collect();
    let mut checked = 0;
    for (name, r) in reports() {
        let mine: Vec<&Vec<&str>> = rows.iter().filter(|c| c[0] == name).collect();
        let resolved = |rva: &str| mine.iter().any(|c| c[1] == rva && c[6] != "-");
        let unknown = mine
            .iter()
            .filter(|c| !FREES.contains(&c[2]))
            .filter(|c| c[5] == "unknown" || (c[5] == "param" && !resolved(c[1])))
            .count();
        let expected = match unknown {
            0 => None,
            1 => Some("while 1 allocation site passes a tag that could not be recovered".into()),
            n => Some(format!(
                "while {n} allocation sites pass a tag that could not be recovered"
            )),
        };
        for f in r.findings.iter().filter(|f| f.rule_id == "DRV1006") {
            match &expected {
                Some(e) => assert!(msg(f).contains(e.as_str()), "{name}: {}", msg(f)),
                None => assert!(!msg(f).contains("could not be recovered"), "{name}"),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 10, "DRV1006 findings on the fixtures");
}
