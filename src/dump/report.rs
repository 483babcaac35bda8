//! The value behind `drvaudit dump FILE`: header summary (with how and when the dump was taken),
//! coverage, module list, a `!poolused`-style table sorted by NonPaged bytes with how the table
//! was read, budgets reached and notices. [`DumpReport`] serialises for `--format json` and holds
//! every fact; [`render_text`] is the human form, a pure function of the report.

use std::fmt::Write as _;

use serde::Serialize;

use crate::pool::tag_display;

use super::budget::BudgetExceeded;
use super::error::{DumpNotice, PoolTableError};
use super::facts::Coverage;
use super::header::DumpSummary;
use super::kdbg::Kdbg;
use super::modules::LoadedModule;
use super::pooltrack::PoolTables;

/// Header figures as the report shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeaderReport {
    /// Everything decoded from the header.
    #[serde(flatten)]
    pub summary: DumpSummary,
    /// The DTB after masking (PCID bits, PAE alignment).
    #[serde(serialize_with = "super::hex::u64")]
    pub directory_table_base_masked: u64,
    /// Where KDBG was found, when it was.
    #[serde(serialize_with = "super::hex::opt")]
    pub kdbg_address: Option<u64>,
    /// How KDBG was found.
    pub kdbg_source: Option<String>,
    /// KernBase from KDBG.
    #[serde(serialize_with = "super::hex::opt")]
    pub kern_base: Option<u64>,
    /// Number of physical pages the file holds.
    pub physical_pages: u64,
    /// How much of the memory the headers describe is in the file.
    pub coverage: Coverage,
}

/// One `!poolused` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PoolRow {
    /// The tag as PoolMon shows it.
    pub tag: String,
    /// The tag value.
    pub tag_value: u32,
    /// Outstanding NonPaged allocations.
    pub nonpaged_allocs: u64,
    /// NonPaged bytes in use.
    pub nonpaged_bytes: u64,
    /// Outstanding Paged allocations.
    pub paged_allocs: u64,
    /// Paged bytes in use.
    pub paged_bytes: u64,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DumpReport {
    /// The dump file.
    pub path: String,
    /// Header summary.
    pub header: HeaderReport,
    /// Loaded modules (the triage driver list for triage dumps).
    pub modules: Vec<LoadedModule>,
    /// Why the module list is missing, if it is.
    pub modules_error: Option<String>,
    /// `!poolused` rows sorted by NonPaged bytes, descending.
    pub pool: Vec<PoolRow>,
    /// Where the pool figures came from, or why there are none.
    pub pool_source: String,
    /// How the pool tracker tables were found, sized and read, and every inconsistent entry
    /// (its per-tag totals are the rows of `pool`).
    pub pool_tables: Option<PoolTables>,
    /// Why the pool tracker table could not be read, when it could not.
    pub pool_error: Option<PoolTableError>,
    /// Budgets reached while reading (each also a notice).
    pub budget: Vec<BudgetExceeded>,
    /// Page-table walks done while building the report, and the dump's limit.
    pub page_walks: (u64, u64),
    /// Anomalies met while reading, with their kind.
    pub notices: Vec<DumpNotice>,
}

/// What the facade hands over to build a report from.
pub(crate) struct Parts<'a> {
    pub path: String,
    pub summary: DumpSummary,
    pub directory_table_base_masked: u64,
    pub kdbg: Option<&'a Kdbg>,
    pub physical_pages: u64,
    pub coverage: Coverage,
    pub modules: Vec<LoadedModule>,
    pub modules_error: Option<String>,
    pub pool_tables: Option<PoolTables>,
    pub pool_source: String,
    pub pool_error: Option<PoolTableError>,
    pub budget: Vec<BudgetExceeded>,
    pub page_walks: (u64, u64),
    pub notices: Vec<DumpNotice>,
}

/// The report from its parts: the `!poolused` rows sorted by NonPaged bytes.
pub(crate) fn build(p: Parts<'_>) -> DumpReport {
    let k = p.kdbg;
    let header = HeaderReport {
        directory_table_base_masked: p.directory_table_base_masked,
        kdbg_address: k.and_then(|k| k.va),
        kdbg_source: k.map(|k| k.source.clone()),
        kern_base: k.map(|k| k.kern_base),
        physical_pages: p.physical_pages,
        coverage: p.coverage,
        summary: p.summary,
    };
    let mut rows: Vec<PoolRow> = p
        .pool_tables
        .iter()
        .flat_map(|t| &t.snapshot.tags)
        .map(|t| PoolRow {
            tag: tag_display(t.tag),
            tag_value: t.tag,
            nonpaged_allocs: t.nonpaged.live(),
            nonpaged_bytes: t.nonpaged.bytes,
            paged_allocs: t.paged.live(),
            paged_bytes: t.paged.bytes,
        })
        .collect();
    rows.sort_by(|a, b| {
        b.nonpaged_bytes
            .cmp(&a.nonpaged_bytes)
            .then(b.paged_bytes.cmp(&a.paged_bytes))
            .then(a.tag_value.cmp(&b.tag_value))
    });
    DumpReport {
        path: p.path,
        header,
        modules: p.modules,
        modules_error: p.modules_error,
        pool: rows,
        pool_source: p.pool_source,
        pool_tables: p.pool_tables,
        pool_error: p.pool_error,
        budget: p.budget,
        page_walks: p.page_walks,
        notices: p.notices,
    }
}

/// Renders the report for a terminal.
pub fn render_text(r: &DumpReport) -> String {
    let mut o = String::new();
    let h = &r.header;
    let s = &h.summary;
    let _ = writeln!(o, "{}", r.path);
    let _ = writeln!(
        o,
        "  arch            {} (machine {:#x}), {} processor(s)",
        s.arch.name(),
        s.machine,
        s.processors
    );
    let _ = writeln!(
        o,
        "  dump type       {} ({})",
        s.dump_type, s.dump_type_name
    );
    let _ = writeln!(
        o,
        "  build           {} (major {:#x})",
        s.build, s.major_version
    );
    let p = s.bugcheck_parameters;
    let _ = writeln!(o, "  taken by        {}", s.acquisition.describe());
    // Only a crash has a bugcheck; for a live acquisition the fields hold the tool's marker.
    let label = if s.acquisition.is_live() == Some(true) {
        "bugcheck field "
    } else {
        "bugcheck       "
    };
    let _ = writeln!(
        o,
        "  {label} {:#010x} ({:#x}, {:#x}, {:#x}, {:#x})",
        s.bugcheck_code, p[0], p[1], p[2], p[3]
    );
    let time = s.system_time.as_ref().map_or("unset", |t| t.utc.as_str());
    let up = s
        .system_up_time
        .as_ref()
        .map_or("unset".to_string(), |u| u.text.clone());
    let _ = writeln!(o, "  time (UTC)      {time}, uptime {up}");
    let _ = writeln!(o, "  coverage        {}", h.coverage.describe());
    let _ = writeln!(
        o,
        "  DTB             {:#x} (masked {:#x})",
        s.directory_table_base, h.directory_table_base_masked
    );
    let kdbg = match (s.kd_debugger_data_block, &h.kdbg_source) {
        (Some(v), Some(src)) => format!("{v:#x} ({src})"),
        (Some(v), None) => format!("{v:#x} (not readable)"),
        (None, Some(src)) => format!("header field unset ({src})"),
        (None, None) => "header field unset".to_string(),
    };
    let _ = writeln!(o, "  KDBG            {kdbg}");
    let _ = writeln!(o, "  PsLoadedModuleList {:#x}", s.ps_loaded_module_list);
    let _ = writeln!(o, "  physical pages  {:#x}", h.physical_pages);
    if !s.comment.is_empty() {
        let _ = writeln!(o, "  comment         {}", s.comment);
    }
    let _ = writeln!(o, "\nModules ({}):", r.modules.len());
    if let Some(e) = &r.modules_error {
        let _ = writeln!(o, "  unavailable: {e}");
    }
    for m in &r.modules {
        let stamp = m
            .time_date_stamp
            .map_or("-".to_string(), |t| format!("{t:08x}"));
        let _ = writeln!(
            o,
            "  {:#018x} {:#010x} {stamp:>8}  {:<24} {}",
            m.base, m.size, m.name, m.full_path
        );
    }
    let _ = writeln!(
        o,
        "\nPool usage, sorted by NonPaged bytes ({}):",
        r.pool_source
    );
    if let Some(t) = &r.pool_tables {
        let _ = writeln!(o, "  size: {}", t.size_source.describe());
        for a in &t.anomalies {
            let _ = writeln!(
                o,
                "  flagged: entry {} of the table at {:#x} (tag {}): {:?}",
                a.index,
                a.table,
                tag_display(a.tag),
                a.anomaly
            );
        }
        for n in &t.not_included {
            let _ = writeln!(o, "  not included: {n}");
        }
    }
    if !r.pool.is_empty() {
        let _ = writeln!(
            o,
            "  {:<14} {:>10} {:>14} {:>10} {:>14}",
            "Tag", "NP allocs", "NP bytes", "P allocs", "P bytes"
        );
        for row in &r.pool {
            let _ = writeln!(
                o,
                "  {:<14} {:>10} {:>14} {:>10} {:>14}",
                row.tag,
                // Thousands separators, as the scan's consumers table has them.
                crate::util::group(row.nonpaged_allocs),
                crate::util::group(row.nonpaged_bytes),
                crate::util::group(row.paged_allocs),
                crate::util::group(row.paged_bytes)
            );
        }
    }
    if !r.notices.is_empty() {
        let _ = writeln!(o, "\nNotices:");
        for n in &r.notices {
            let _ = writeln!(o, "  - {}", n.message);
        }
    }
    o
}
