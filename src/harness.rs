//! One input's bytes through all the code that reads them: the entry points of the fuzz
//! targets (`fuzz/fuzz_targets/`, one per input format) and of their regression replay
//! (`tests/it/regress.rs`, which feeds every file under `testdata/regress/<target>/` to the
//! target of that name on a stable toolchain).
//!
//! Each entry point takes arbitrary bytes and must return without panicking, within a time and
//! memory linear in the input (the fuzz campaigns run with `-timeout=10 -rss_limit_mb=2048`).
//! Results are rendered through the outputs too, so that text read from a hostile input (names,
//! messages) is exercised all the way to SARIF and the terminal.
//!
//! Entry points never touch the file system; the little fixed context some need (the built-in
//! rules, a `pooltag.txt`, a fixture driver for rule files to run against) is built once per
//! process.

use std::path::Path;
use std::sync::OnceLock;

use crate::authenticode::{self, DigestAlgorithm};
use crate::pe::Layout;
use crate::pipeline::{audit_bytes, MemoryInput};
use crate::poolfiles::{self, PoolFileFormat, PoolTagDb};
use crate::report::Report;
use crate::rules::{CheckContext, RuleSet};

/// A fuzz target: its name (the folder of its regression files) and its entry point.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, by name.
pub const TARGETS: &[Target] = &[
    ("pe_file", pe_file),
    ("pe_loaded", pe_loaded),
    ("zip", zip),
    ("cab", cab),
    ("pool_poolused", pool_poolused),
    ("pool_poolmon", pool_poolmon),
    ("pool_csv", pool_csv),
    ("pool_json", pool_json),
    ("pool_detect", pool_detect),
    ("pooltag", pooltag),
    ("rule_toml", rule_toml),
    ("authenticode_pe", authenticode_pe),
    ("pkcs7", pkcs7),
    ("catalog", catalog),
    ("dump", dump),
    ("inf", inf),
    ("identity", identity),
    ("blocklist_yaml", blocklist_yaml),
    ("blocklist_json", blocklist_json),
    ("blocklist_csv", blocklist_csv),
    ("sipolicy", sipolicy),
    ("pdb", pdb),
    ("dwarf", dwarf),
    ("config_toml", config_toml),
    ("baseline_sarif", baseline_sarif),
    ("merge_sarif", merge_sarif),
];

/// The entry point of target `name`.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|&(_, f)| f)
}

fn builtin_rules() -> &'static RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES.get_or_init(|| RuleSet::builtin().expect("the built-in rules load"))
}

/// The project's sample pooltag.txt, so that DRV1005 (tag collision) runs too.
fn sample_pooltag() -> &'static PoolTagDb {
    static DB: OnceLock<PoolTagDb> = OnceLock::new();
    DB.get_or_init(|| {
        let text = include_str!("../testdata/pool/pooltag.txt");
        poolfiles::parse_pooltag_text(text, "pooltag.txt").expect("the sample pooltag.txt parses")
    })
}

/// Findings rendered per input. Rendering is linear in the findings, but an image dense with
/// call sites (`testdata/regress/pe_file/arm64-wrapper-callers.sys`: 65,000 findings from
/// 263 KB) spends about 80 % of an instrumented execution escaping their strings, 5 to 6 s,
/// so its mutations meet libFuzzer's 10 s limit on a loaded machine with no super-linear cost
/// anywhere (a pe_file find on 6872451). Every finding is still produced and checked by the
/// audit; the outputs' paths are covered long before this many.
const MAX_RENDERED: usize = 4096;

/// Renders a report through both outputs (the results are discarded).
fn render(report: &mut Report) {
    report.findings.truncate(MAX_RENDERED);
    let sarif = crate::output::sarif::render(report, Path::new(""));
    debug_assert!(sarif.starts_with('{'));
    let _ = crate::output::text::render(report, &Default::default());
    let _ = crate::output::text::render_oneline(report);
    let _ = crate::output::notices::render(report);
}

/// A driver image in file layout, through the whole per-image audit: PE model, call sites,
/// every rule, the outputs.
pub fn pe_file(data: &[u8]) {
    let mut report = audit_bytes(
        "fuzz.sys",
        MemoryInput::Image(Layout::File),
        data,
        builtin_rules(),
        Some(sample_pooltag()),
    );
    render(&mut report);
}

/// A driver image in loaded layout (as carved from a dump), through the whole per-image audit.
pub fn pe_loaded(data: &[u8]) {
    let mut report = audit_bytes(
        "fuzz.sys",
        MemoryInput::Image(Layout::Loaded),
        data,
        builtin_rules(),
        Some(sample_pooltag()),
    );
    render(&mut report);
}

/// A `.zip` package: members streamed, each audited.
pub fn zip(data: &[u8]) {
    let mut report = audit_bytes("fuzz.zip", MemoryInput::Zip, data, builtin_rules(), None);
    render(&mut report);
}

/// A `.cab` package: members streamed, each audited.
pub fn cab(data: &[u8]) {
    let mut report = audit_bytes("fuzz.cab", MemoryInput::Cab, data, builtin_rules(), None);
    render(&mut report);
}

/// Pool text in one format, decoded as a file is (UTF-8, UTF-16 with or without BOM, Latin-1).
fn pool_as(format: PoolFileFormat, data: &[u8]) {
    let text = poolfiles::decode_text(data);
    if let Ok(snapshot) = poolfiles::parse_pool_text_as(format, &text, "fuzz.txt") {
        // The CSV export must read back as the same figures.
        let csv = poolfiles::snapshot_to_csv(&snapshot);
        let again = poolfiles::parse_pool_text_as(PoolFileFormat::Csv, &csv, "fuzz.csv")
            .expect("drvaudit's own CSV export reads back");
        assert_eq!(again.tags, snapshot.tags, "CSV round trip");
    }
}

/// WinDbg `!poolused` text.
pub fn pool_poolused(data: &[u8]) {
    pool_as(PoolFileFormat::Poolused, data);
}

/// PoolMon `/n` logs and screens.
pub fn pool_poolmon(data: &[u8]) {
    pool_as(PoolFileFormat::PoolmonLog, data);
}

/// drvaudit's CSV form.
pub fn pool_csv(data: &[u8]) {
    pool_as(PoolFileFormat::Csv, data);
}

/// drvaudit's JSON form.
pub fn pool_json(data: &[u8]) {
    pool_as(PoolFileFormat::Json, data);
}

/// Any pool file, its format detected as `--pool` does.
pub fn pool_detect(data: &[u8]) {
    let _ = poolfiles::parse_pool_bytes(data, "fuzz.txt");
}

/// `pooltag.txt`.
pub fn pooltag(data: &[u8]) {
    let text = poolfiles::decode_text(data);
    if let Ok(db) = poolfiles::parse_pooltag_text(&text, "pooltag.txt") {
        for e in db.entries().iter().take(64) {
            let _ = db.lookup_all(e.tag);
            let _ = e.owner_is_kernel();
        }
    }
}

/// A fixture driver with call sites, for rule files to run against.
/// The driver rule files are run against.
const FIXTURE: &[u8] = include_bytes!("../testdata/bin/pooltest_gcc_x64_O2.sys");

fn fixture_driver() -> &'static crate::driver::Driver {
    static DRIVER: OnceLock<crate::driver::Driver> = OnceLock::new();
    DRIVER.get_or_init(|| {
        let bytes = FIXTURE;
        let image = crate::pe::Image::parse(bytes, Layout::File).expect("the fixture parses");
        let sites = crate::callsite::analyze(&image, bytes);
        crate::driver::Driver {
            identity: crate::driver::stable_identity(&image),
            image,
            sites,
            holes: Vec::new(),
            name: "pooltest.sys".into(),
            display: "pooltest.sys".into(),
            memory_only: false,
        }
    })
}

/// A rule file (`--rules DIR`): a new rule, or an override of a built-in one; once loaded, the
/// rules run against a fixture driver and their findings are made.
pub fn rule_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut rules = builtin_rules().clone();
    // The file name decides whether an override is accepted: try the id's own name first.
    let stem = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("id").map(str::trim))
        .and_then(|l| l.strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or_else(|| "DRV8000".to_string());
    if rules
        .add_text(Path::new(&format!("rules/{stem}.toml")), text)
        .is_err()
    {
        return;
    }
    let driver = fixture_driver();
    let facts = crate::facts::Facts::new(
        FIXTURE,
        &driver.image,
        &driver.name,
        None,
        Default::default(),
    );
    let ctx = CheckContext {
        driver,
        pooltag: None,
        facts: &facts,
        blocklists: &[],
        package: None,
        now: 0,
    };
    for (rule, hit) in rules.check_driver(&ctx) {
        let finding = crate::report::Finding::from_hit(
            rule,
            hit,
            crate::report::Place::Driver {
                driver,
                artifact: 0,
            },
        );
        let _ = finding.message(&rule.why);
    }
    let _ = crate::rules::table(&rules);
    for rule in rules.all() {
        let _ = crate::rules::explain::explain(rule, true);
    }
}

const ALGS: &[DigestAlgorithm] = &[
    DigestAlgorithm::Md5,
    DigestAlgorithm::Sha1,
    DigestAlgorithm::Sha256,
];

/// A PE image's Authenticode: the certificate table, every PKCS#7 signature in it, digests,
/// first-page hashes and the signature class.
pub fn authenticode_pe(data: &[u8]) {
    if let Ok(verdict) = authenticode::inspect_pe(data) {
        let _ = verdict.classification.signer_valid_at_timestamp();
        let _ = verdict
            .classification
            .expired_without_timestamp(1_700_000_000);
        if let Some(sigs) = &verdict.signatures {
            for s in &sigs.signatures {
                let _ = s.digest_matches();
                let _ = authenticode::classify::classify_one(s);
            }
        }
    }
    let _ = authenticode::authenticode_digests(data, ALGS);
    let _ = authenticode::first_page_hashes(data, ALGS);
}

/// A bare PKCS#7 SignedData (as in a `WIN_CERTIFICATE` or a detached signature).
pub fn pkcs7(data: &[u8]) {
    if let Ok(sigs) = authenticode::pkcs7::parse_signatures(data, 0) {
        let c = authenticode::classify_signatures(&sigs);
        let _ = c.signer_valid_at_timestamp();
        for s in &sigs {
            for cert in s.chain_certs() {
                let _ = cert.tbs_hash();
                let _ = cert.serial_hex();
                let _ = cert.subject.one_line();
            }
        }
    }
    let _ = authenticode::Certificate::from_der(data);
}

/// A catalog (`.cat`): its members, attributes and signature class.
pub fn catalog(data: &[u8]) {
    if let Ok(cat) = authenticode::Catalog::parse(data) {
        let _ = cat.classification();
        for m in cat.members.iter().take(256) {
            let _ = m.digest();
            let _ = m.file();
            let _ = m.os_attr();
            if let Some((_, d)) = m.digest() {
                let _ = cat.find(&d);
            }
        }
        let _ = cat.find_file("fixture.sys").count();
    }
}

/// A crash dump held in memory: what `drvaudit dump` prints (header, modules, pool table, as
/// text and JSON), then what `scan --dump` does (every loaded driver carved once and audited).
pub fn dump(data: &[u8]) {
    if let Ok(d) = crate::dump::Dump::from_bytes("fuzz.dmp", data.to_vec()) {
        let report = crate::dump::report(&d);
        let _ = crate::dump::render_text(&report);
        let _ = serde_json::to_string(&report);
    }
    let mut report = audit_bytes("fuzz.dmp", MemoryInput::Dump, data, builtin_rules(), None);
    render(&mut report);
}

const ARCHES: [crate::inf::Arch; 5] = [
    crate::inf::Arch::X86,
    crate::inf::Arch::Amd64,
    crate::inf::Arch::Arm,
    crate::inf::Arch::Arm64,
    crate::inf::Arch::Ia64,
];

/// An INF file: its sections, version, and for every architecture the catalog, models,
/// install sections, copied files, services and static problems.
pub fn inf(data: &[u8]) {
    let Ok(inf) = crate::inf::Inf::parse(data) else {
        return;
    };
    let _ = inf.version();
    let _ = inf.manufacturers();
    for arch in ARCHES {
        let _ = inf.catalog_file(arch);
        let _ = inf.models_sections(arch);
        let _ = inf.install_sections(arch);
        let files: Vec<String> = inf
            .copied_files(arch)
            .iter()
            .map(|f| format!("{f:?}"))
            .collect();
        let _ = inf.services(arch);
        for p in inf.problems(arch, None) {
            let _ = p.message();
        }
        let _ = inf.problems(arch, Some(&files));
    }
}

/// A driver image's identity facts: its version resource (both layouts), flat hashes and
/// imphash.
pub fn identity(data: &[u8]) {
    for layout in [
        crate::identity::Layout::File,
        crate::identity::Layout::Loaded,
    ] {
        if let Ok(Some(v)) = crate::identity::version_info(data, layout) {
            let _ = v.original_filename();
            let _ = v.file_version();
            let _ = v.file_version_string();
            let _ = v.company_name();
        }
    }
    let _ = crate::authenticode::pe::flat_digests(
        data,
        &[
            crate::authenticode::DigestAlgorithm::Md5,
            crate::authenticode::DigestAlgorithm::Sha1,
            crate::authenticode::DigestAlgorithm::Sha256,
        ],
    );
    if let Ok(image) = crate::pe::Image::parse(data, Layout::File) {
        // Delay imports are left out, as pefile does.
        let imports = image.imports.iter().filter(|i| !i.delay).map(|i| {
            let name = match &i.name {
                Some(n) => crate::identity::ImportName::Name(n),
                None => crate::identity::ImportName::Ordinal(i.ordinal.unwrap_or(0)),
            };
            (i.dll.as_str(), name)
        });
        let _ = crate::identity::imphash(imports);
    }
}

/// A driver the block lists are matched against: every fact set, so that every matcher runs.
fn blocklist_subject() -> crate::blocklist::Subject {
    let hex = |n: usize| "00".repeat(n);
    crate::blocklist::Subject {
        flat_md5: Some(hex(16)),
        flat_sha1: Some(hex(20)),
        flat_sha256: Some(hex(32)),
        authenticode_md5: Some(hex(16)),
        authenticode_sha1: Some(hex(20)),
        authenticode_sha256: Some(hex(32)),
        authenticode_unpadded: None,
        page_sha1: Some(hex(20)),
        page_sha256: Some(hex(32)),
        original_filename: Some("fuzz.sys".into()),
        internal_name: Some("fuzz".into()),
        file_description: Some("fuzz".into()),
        product_name: Some("fuzz".into()),
        file_version: Some([10, 0, 0, 1]),
        imphash: Some(hex(16)),
        signatures: Vec::new(),
    }
}

fn blocklist_as(kind: crate::blocklist::ListKind, name: &str, data: &[u8]) {
    let opts = crate::blocklist::loldrivers::LoadOptions { certificates: true };
    if let Ok(list) = crate::blocklist::from_bytes(Path::new(name), kind, data, opts) {
        let _ = list.matches(&blocklist_subject());
    }
}

/// One LOLDrivers YAML file (the project's own subset YAML reader and its pre-pass).
pub fn blocklist_yaml(data: &[u8]) {
    blocklist_as(
        crate::blocklist::ListKind::LolDriversYaml,
        "fuzz.yaml",
        data,
    );
}

/// LOLDrivers' drivers.json.
pub fn blocklist_json(data: &[u8]) {
    blocklist_as(
        crate::blocklist::ListKind::LolDriversJson,
        "drivers.json",
        data,
    );
}

/// LOLDrivers' drivers.csv.
pub fn blocklist_csv(data: &[u8]) {
    blocklist_as(
        crate::blocklist::ListKind::LolDriversCsv,
        "drivers.csv",
        data,
    );
}

/// A SiPolicy XML (Microsoft's driver block rules).
pub fn sipolicy(data: &[u8]) {
    blocklist_as(crate::blocklist::ListKind::SiPolicy, "SiPolicy.xml", data);
}

/// A PDB: the MSF container checks, its identity, the symbol index, then lookups at a spread
/// of addresses. The PDB reader reads a file, so the bytes go to a per-process temporary file.
pub fn pdb(data: &[u8]) {
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    let path = PATH.get_or_init(|| {
        let dir = if Path::new("/dev/shm").is_dir() {
            std::path::PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("drvaudit-fuzz-{}.pdb", std::process::id()))
    });
    if std::fs::write(path, data).is_err() {
        return;
    }
    let Ok(opened) = crate::debuginfo::pdb::open_pdb(path) else {
        return;
    };
    if let Ok(symbols) = crate::debuginfo::pdb::PdbSymbols::new(opened, path) {
        for rva in lookup_rvas() {
            let _ = symbols.locate(rva);
            let _ = symbols.function(rva);
        }
    }
}

/// Addresses looked up in debug information: the start of every page of the first 64 KiB
/// (where the fixtures' code is), a few odd offsets, and the ends of the address space.
fn lookup_rvas() -> impl Iterator<Item = u32> {
    (0..16u32)
        .map(|p| 0x1000 * p)
        .chain([0x1001, 0x1010, 0x1234, 0x2008, u32::MAX, 0])
}

/// DWARF inside a PE image (mingw builds): the sections read, then lookups.
pub fn dwarf(data: &[u8]) {
    if let Ok(symbols) = crate::debuginfo::dwarf::DwarfSymbols::from_pe(data, Path::new("fuzz.sys"))
    {
        for rva in lookup_rvas() {
            let _ = symbols.locate(rva);
            let _ = symbols.function(rva);
        }
    }
    let _ = crate::debuginfo::CodeViewRef::from_image(data, Path::new("fuzz.sys"));
}

/// A configuration file (`drvaudit.toml`): parsed and resolved with the built-in rules, then
/// rendered as `drvaudit config` prints it. Paths in it are relative to a folder that does
/// not exist, so nothing it names is found.
pub fn config_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let cwd = Path::new("/nonexistent-drvaudit-fuzz");
    let args = crate::config::GateArgs::default();
    if let Ok(resolved) =
        crate::config::resolve_text(&args, cwd, Some((cwd.join("drvaudit.toml"), text)))
    {
        let _ = crate::config::render(&resolved);
    }
}

/// A baseline SARIF log (`--baseline`): parsed, then findings classified against it.
pub fn baseline_sarif(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(mut b) = crate::report::baseline::Baseline::parse(text, Path::new("base.sarif")) {
        for level in [
            crate::report::Level::Error,
            crate::report::Level::Warning,
            crate::report::Level::Note,
        ] {
            let _ = b.classify("0000000000000000", level);
            let _ = b.classify("DRV1001/0", level);
        }
        let _ = b.into_absent();
    }
}

/// Shard logs (`drvaudit merge`): the log alone, and twice (two shards that read the same
/// inputs), merged into one log.
pub fn merge_sarif(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let one = (std::path::PathBuf::from("shard-1.sarif"), text.to_string());
    let two = (std::path::PathBuf::from("shard-2.sarif"), text.to_string());
    let _ = crate::output::merge::merge_texts(
        std::slice::from_ref(&one),
        builtin_rules(),
        std::io::sink(),
    );
    let _ = crate::output::merge::merge_texts(&[one, two], builtin_rules(), std::io::sink());
}
