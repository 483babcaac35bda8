//! Pool-usage and pooltag inputs read from the hand-written samples in `testdata/pool/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use drvaudit::pool::tally::{pool_in_use_total, share, top_consumers};
use drvaudit::pool::{tag_display, PoolCounters, PoolSnapshot, TagUsage, TAG_MMCM, TAG_NONE};
use drvaudit::poolfiles::{
    load_pool_file, load_pooltag_file, owner_is_kernel, parse_tag_text, PoolSourceError,
};

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/pool")
        .join(name)
}

fn load(name: &str) -> PoolSnapshot {
    let path = sample(name);
    load_pool_file(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn tag(text: &str) -> u32 {
    parse_tag_text(text).unwrap()
}

fn usage<'a>(snapshot: &'a PoolSnapshot, text: &str) -> &'a TagUsage {
    let t = tag(text);
    snapshot
        .tags
        .iter()
        .find(|u| u.tag == t)
        .unwrap_or_else(|| panic!("tag {text:?} missing from {}", snapshot.source))
}

fn counters(allocs: u64, frees: u64, bytes: u64) -> PoolCounters {
    PoolCounters {
        allocs,
        frees,
        bytes,
    }
}

const INCIDENT_TAGS: [&str; 9] = [
    "Bone", "CM31", "File", "Io", "Irp", "MmCm", "None", "NtFs", "Thre",
];

#[test]
fn incident_poolused_gives_outstanding_allocations_and_bytes() {
    let s = load("incident_poolused.txt");
    assert!(
        s.source
            .ends_with("incident_poolused.txt (!poolused listing)"),
        "{}",
        s.source
    );
    let names: Vec<String> = s.tags.iter().map(|t| tag_display(t.tag)).collect();
    assert_eq!(
        names,
        ["Bone", "CM31", "File", "Io  ", "Irp ", "MmCm", "None", "NtFs", "Thre"]
    );
    // Summary `Allocs` is outstanding allocations: stored as allocs with frees 0.
    let none = usage(&s, "None");
    assert_eq!(none.tag, TAG_NONE);
    assert_eq!(none.nonpaged, counters(246_479, 0, 50_827_424));
    assert_eq!(none.paged, PoolCounters::default());
    assert_eq!(usage(&s, "MmCm").tag, TAG_MMCM);
    assert_eq!(usage(&s, "MmCm").nonpaged, counters(1_198, 0, 18_462_512));
    assert_eq!(usage(&s, "Io").nonpaged, counters(211, 0, 61_344));
    assert_eq!(usage(&s, "Io").paged, counters(12, 0, 1_536));
    assert_eq!(usage(&s, "CM31").nonpaged, PoolCounters::default());
    assert_eq!(usage(&s, "CM31").paged, counters(9_797, 0, 41_918_464));
    assert_eq!(usage(&s, "Irp").nonpaged, counters(1_532, 0, 431_824));
}

#[test]
fn incident_poolmon_log_keeps_the_last_appended_snapshot() {
    let s = load("incident_poolmon.log");
    assert!(s.source.ends_with("(PoolMon /n log)"), "{}", s.source);
    assert_eq!(s.tags.len(), 9);
    // The first snapshot had None at 148,479 allocations; the second one wins.
    assert_eq!(
        usage(&s, "None").nonpaged,
        counters(3_118_902, 2_872_423, 50_827_424)
    );
    assert_eq!(
        usage(&s, "MmCm").nonpaged,
        counters(2_207, 1_009, 18_462_512)
    );
    assert_eq!(usage(&s, "File").paged, counters(120, 120, 0));
    assert_eq!(usage(&s, "NtFs").paged, counters(5_529, 2_614, 80_192));
    assert_eq!(usage(&s, "CM31").nonpaged, PoolCounters::default());
}

#[test]
fn incident_csv_and_json_give_lifetime_counts() {
    for name in ["incident.csv", "incident.json"] {
        let s = load(name);
        assert_eq!(s.tags.len(), 9, "{name}");
        assert_eq!(
            usage(&s, "None").nonpaged,
            counters(3_118_902, 2_872_423, 50_827_424),
            "{name}"
        );
        assert_eq!(
            usage(&s, "Io").paged,
            counters(4_411, 4_399, 1_536),
            "{name}"
        );
        assert_eq!(
            usage(&s, "Thre").nonpaged,
            counters(89_939, 88_214, 1_104_000),
            "{name}"
        );
    }
    assert!(load("incident.csv").source.ends_with("(pool usage CSV)"));
    assert!(load("incident.json").source.ends_with("(pool usage JSON)"));
}

/// (tag, NonPaged bytes, NonPaged live allocations, Paged bytes, Paged live allocations).
fn figures(s: &PoolSnapshot) -> BTreeSet<(String, u64, u64, u64, u64)> {
    s.tags
        .iter()
        .map(|t| {
            (
                tag_display(t.tag),
                t.nonpaged.bytes,
                t.nonpaged.live(),
                t.paged.bytes,
                t.paged.live(),
            )
        })
        .collect()
}

#[test]
fn all_four_incident_files_agree() {
    let reference = figures(&load("incident_poolused.txt"));
    assert_eq!(reference.len(), INCIDENT_TAGS.len());
    assert!(reference.contains(&("None".to_string(), 50_827_424, 246_479, 0, 0)));
    assert!(reference.contains(&("MmCm".to_string(), 18_462_512, 1_198, 0, 0)));
    for name in ["incident_poolmon.log", "incident.csv", "incident.json"] {
        assert_eq!(figures(&load(name)), reference, "{name}");
    }
}

#[test]
fn poolmon_screen_sample() {
    let s = load("poolmon_screen.txt");
    assert!(s.source.ends_with("(PoolMon screen)"), "{}", s.source);
    assert_eq!(s.tags.len(), 6);
    assert_eq!(
        usage(&s, "None").nonpaged,
        counters(3_118_950, 2_872_431, 50_835_664)
    );
    assert_eq!(usage(&s, "CM31").paged, counters(10_204, 407, 41_918_464));
    assert_eq!(usage(&s, "File").nonpaged.live(), 9_372);
    assert_eq!(usage(&s, "Ab12").paged, counters(5, 5, 0));
    assert_eq!(usage(&s, "Bone").nonpaged, counters(52, 12, 20_480));
}

#[test]
fn poolused_sample_without_descriptions() {
    let s = load("poolused_nodesc.txt");
    assert_eq!(s.tags.len(), 5);
    assert_eq!(usage(&s, "MmSt").paged, counters(2_808, 0, 6_790_672));
    assert_eq!(usage(&s, "Io").nonpaged, counters(211, 0, 61_344));
    // kdexts prints non-printable tag bytes as `.`; the dot is kept.
    let gla = usage(&s, "Gla.");
    assert_eq!(gla.tag, u32::from_le_bytes(*b"Gla."));
    assert_eq!(gla.paged, counters(57, 0, 13_680));
}

#[test]
fn pooltag_sample_lookups() {
    let db = load_pooltag_file(&sample("pooltag.txt")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(db.len(), 16);
    let mmcm = db.lookup(TAG_MMCM).unwrap();
    assert_eq!(
        (mmcm.binary.as_str(), mmcm.description.as_str()),
        ("nt!mm", "Calls made to MmAllocateContiguousMemory")
    );
    assert!(owner_is_kernel(mmcm));
    let io = db.lookup(tag("Io")).unwrap();
    assert_eq!(io.tag, u32::from_le_bytes(*b"Io  "));
    assert!(owner_is_kernel(io));
    let none = db.lookup(TAG_NONE).unwrap();
    assert_eq!(none.binary, "<unknown>");
    assert!(!owner_is_kernel(none));
    let bone = db.lookup(tag("Bone")).unwrap();
    assert_eq!(bone.binary, "bonetrk.sys");
    assert!(!owner_is_kernel(bone));
    assert_eq!(db.lookup_all(tag("Bone")).len(), 1);
    // Case-sensitive: `MMCM` and `mmcm` are other tags.
    assert!(db.lookup(tag("mmcm")).is_none());
    assert!(db.lookup(tag("MMCM")).is_none());
    assert_eq!(
        db.lookup(tag("Ddk")).unwrap().tag,
        u32::from_le_bytes(*b"Ddk ")
    );
}

#[test]
fn incident_ranking() {
    let s = load("incident_poolused.txt");
    let total = pool_in_use_total(&s);
    assert_eq!(total, 72_567_984 + 42_000_576);
    let top = top_consumers(&s, 3);
    let names: Vec<String> = top.iter().map(|c| tag_display(c.tag)).collect();
    assert_eq!(names, ["None", "CM31", "MmCm"]);
    assert_eq!(top[0].live_allocs, 246_479);
    // 50,827,424 and 18,462,512 of 114,566,576 bytes in use.
    assert!((share(top[0].total_bytes(), total) - 0.443_642).abs() < 1e-6);
    assert!((share(top[2].total_bytes(), total) - 0.161_148).abs() < 1e-6);
}

/// Writes `text` to a scratch file and returns the error loading it gives.
fn load_error(file: &str, text: &str) -> (PoolSourceError, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file);
    std::fs::write(&path, text).unwrap();
    let e = load_pool_file(&path).expect_err("should not parse");
    (e, path.display().to_string())
}

#[test]
fn bad_lines_give_file_and_line() {
    let (e, p) = load_error(
        "short.txt",
        "0: kd> !poolused 2\n Tag     Allocs         Used     Allocs         Used\n\n None    246479     50827424          0\n",
    );
    assert_eq!(
        e.to_string(),
        format!("{p}:4: row has 3 of the 4 count columns; expected a `!poolused` row: a tag of 1-4 characters and 4 counts (Allocs and Used for NonPaged, then for Paged)")
    );
    assert!(matches!(e, PoolSourceError::BadLine { line: 4, .. }));

    let (e, p) = load_error(
        "type.log",
        " Tag  Type     Allocs     Frees      Diff   Bytes  Per Alloc\n\n None Nonp    3118902   2872423    246479 50827424        206\n MmCm Both       2207      1009      1198 18462512      15411\n",
    );
    assert_eq!(
        e.to_string(),
        format!("{p}:4: type `Both` is neither Nonp nor Paged; expected a PoolMon row: tag, `Nonp` or `Paged`, then Allocs, Frees, Diff, Bytes and Per Alloc (each optionally followed by a `( change )` column)")
    );

    let (e, p) = load_error(
        "count.csv",
        "tag,nonpaged_allocs,nonpaged_frees,nonpaged_bytes,paged_allocs,paged_frees,paged_bytes\nNone,3118902,2872423,50827424,0,0,0\nMmCm,2207,1009,18,462,512,0,0,0\n",
    );
    assert_eq!(
        e.to_string(),
        format!("{p}:3: 9 fields; expected a row of 7 fields matching `tag,nonpaged_allocs,nonpaged_frees,nonpaged_bytes,paged_allocs,paged_frees,paged_bytes`")
    );

    let (e, p) = load_error(
        "field.json",
        "[\n  {\"tag\": \"None\", \"nonpaged\": {\"alloc\": 1}}\n]\n",
    );
    assert_eq!(
        e.to_string(),
        format!("{p}:2: column 38: unknown field `alloc`, expected one of `allocs`, `frees`, `bytes`; expected a JSON array of {{\"tag\", \"nonpaged\", \"paged\"}} objects or {{\"source\", \"tags\"}}")
    );

    let (e, p) = load_error("notes.txt", "\n\nNonPagedPool is full, see attached dump\n");
    assert!(
        e.to_string()
            .starts_with(&format!("{p}:3: `NonPagedPool is full, see attached dump` starts no known pool usage format; expected a `!poolused` listing")),
        "{e}"
    );

    let (e, p) = load_error("empty.txt", "");
    assert_eq!(e.to_string(), format!("{p}: the file is empty"));

    let (e, p) = load_error(
        "header_only.txt",
        " Tag     Allocs         Used     Allocs         Used\n\nTOTAL         0            0          0            0\n",
    );
    assert_eq!(
        e.to_string(),
        format!("{p}: the !poolused listing has no pool tag rows")
    );

    let missing = Path::new("testdata/pool/does-not-exist.txt");
    let e = load_pool_file(missing).unwrap_err();
    assert!(matches!(e, PoolSourceError::Io { .. }));
    assert!(e
        .to_string()
        .starts_with("testdata/pool/does-not-exist.txt: cannot read the file:"));
}

#[test]
fn pooltag_bad_line_gives_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pooltag.txt");
    std::fs::write(&path, "rem test\nMmCm - nt!mm - ok\nMmCm nt!mm\n").unwrap();
    let e = load_pooltag_file(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:3: `MmCm nt!mm` has no ` - ` separator; expected `Tag - binary - description` or a comment (`rem`, `//`)",
            path.display()
        )
    );
}

#[test]
fn serialised_snapshot_loads_back_as_json() {
    let original = load("incident_poolmon.log");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snapshot.json");
    std::fs::write(&path, serde_json::to_string_pretty(&original).unwrap()).unwrap();
    let back = load_pool_file(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back.tags, original.tags);
}

#[test]
fn utf16_debugger_log_reads_like_utf8() {
    // `.logopen /u` and PowerShell redirection write UTF-16LE with a byte order mark.
    let text = std::fs::read_to_string(sample("incident_poolused.txt")).unwrap();
    let mut bytes = vec![0xFF, 0xFE];
    for unit in text.encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kd-unicode.log");
    std::fs::write(&path, bytes).unwrap();
    let s = load_pool_file(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(figures(&s), figures(&load("incident_poolused.txt")));
}
