//! `drvaudit identify`: one row per driver — name, version, company, machine, signature class
//! and signer, Authenticode SHA-256, blocklist entries — as an aligned table or JSON.
//!
//! The rows come from the identities the audit computed ([`crate::facts::Identity`]); a
//! driver that could not be read has no row, and its notice is on standard error.

use crate::driver::ImageSummary;
use crate::facts::Identity;
use crate::report::{Batch, Report, Sink};

/// One driver's row.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row<'a> {
    /// The driver as reports name it (`pkg.zip:drivers/x.sys` for a package member).
    pub path: String,
    /// `x64`, `x86`, `arm64`, or the raw machine.
    pub machine: String,
    #[serde(flatten)]
    pub identity: &'a Identity,
}

/// The rows of a finished report, in report order.
pub fn rows<'a>(report: &Report, images: &'a [ImageSummary]) -> Vec<Row<'a>> {
    images
        .iter()
        .filter_map(|img| {
            Some(Row {
                path: crate::report::display_path(&report.artifacts, img.artifact),
                machine: img.machine.to_string(),
                identity: img.identity.as_deref()?,
            })
        })
        .collect()
}

/// The table: a header, then one line per driver with its columns aligned; a field it does
/// not have is `-`.
pub fn render_text(rows: &[Row<'_>]) -> String {
    const HEADER: [&str; 7] = [
        "DRIVER",
        "VERSION",
        "COMPANY",
        "MACHINE",
        "SIGNATURE",
        "AUTHENTICODE SHA-256",
        "BLOCKLIST",
    ];
    let dash = |v: &Option<String>| match v.as_deref().map(str::trim) {
        None | Some("") => "-".to_string(),
        Some(v) => v.to_string(),
    };
    let mut table: Vec<[String; 7]> = vec![HEADER.map(str::to_string)];
    for r in rows {
        let id = r.identity;
        let signature = match (id.signature, &id.signer) {
            (None, _) => "-".to_string(),
            (Some(class), None) => class.to_string(),
            (Some(class), Some(signer)) => match &id.catalog {
                Some(cat) => format!("{class} ({signer}, catalog {cat})"),
                None => format!("{class} ({signer})"),
            },
        };
        let blocklist = if id.blocklist.is_empty() {
            "-".to_string()
        } else {
            id.blocklist
                .iter()
                .map(|m| format!("{} {}", m.category, m.entry))
                .collect::<Vec<_>>()
                .join(", ")
        };
        table.push([
            r.path.clone(),
            dash(&id.file_version),
            dash(&id.company),
            r.machine.clone(),
            signature,
            dash(&id.authenticode_sha256),
            blocklist,
        ]);
    }
    let mut widths = [0usize; 7];
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &table {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = widths[i] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The identities as a sink: image summaries are kept as they come, the table or JSON
/// written at the end.
pub struct IdentifySink<W: std::io::Write> {
    out: W,
    json: bool,
    images: Vec<ImageSummary>,
}

impl<W: std::io::Write> IdentifySink<W> {
    /// The table, or JSON (an array of rows).
    pub fn new(out: W, json: bool) -> IdentifySink<W> {
        IdentifySink {
            out,
            json,
            images: Vec::new(),
        }
    }
}

impl<W: std::io::Write + Send> Sink for IdentifySink<W> {
    fn results(&mut self, batch: &Batch<'_>) -> std::io::Result<()> {
        self.images.extend_from_slice(batch.images);
        Ok(())
    }

    fn finish(&mut self, report: &Report) -> std::io::Result<()> {
        let mut images = std::mem::take(&mut self.images);
        images.extend_from_slice(&report.images);
        let rows = rows(report, &images);
        let text = if self.json {
            let mut s = serde_json::to_string_pretty(&rows)?;
            s.push('\n');
            s
        } else {
            render_text(&rows)
        };
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }
}
