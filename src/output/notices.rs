//! Notices on standard error, before the report: what could not be examined is said first and
//! loudly, also when the report itself goes to a file (`-o`) or is SARIF.

use std::io::Write;

use crate::report::{Batch, NoticeKind, Report, Sink};

/// A sink that writes the run's notices to `err`, grouped by kind, before handing the end of
/// the run to `inner`.
pub struct NoticesFirst<'a, E: Write> {
    inner: Box<dyn Sink + 'a>,
    err: E,
}

impl<'a, E: Write> NoticesFirst<'a, E> {
    /// Wraps `inner`; notices go to `err` (standard error, in the CLI).
    pub fn new(inner: Box<dyn Sink + 'a>, err: E) -> NoticesFirst<'a, E> {
        NoticesFirst { inner, err }
    }
}

impl<E: Write + Send> Sink for NoticesFirst<'_, E> {
    fn results(&mut self, batch: &Batch<'_>) -> std::io::Result<()> {
        self.inner.results(batch)
    }

    fn finish(&mut self, report: &Report) -> std::io::Result<()> {
        // Standard error going away is no reason to lose the report.
        let _ = self.err.write_all(render(report).as_bytes());
        let _ = self.err.flush();
        self.inner.finish(report)
    }
}

/// The notices as they are printed: incomplete inputs first, with what that means for the exit
/// code, then the rest; each group under its heading.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let (incomplete, other): (Vec<_>, Vec<_>) = report
        .notices
        .iter()
        .partition(|n| n.kind.makes_incomplete());
    for (notices, first) in [(incomplete, true), (other, false)] {
        if notices.is_empty() {
            continue;
        }
        if first {
            let consequence = if report.exit_code == 2 {
                "the audit is incomplete (exit code 2; --allow-incomplete accepts this)"
            } else {
                "the audit is incomplete (accepted by --allow-incomplete)"
            };
            out.push_str(&format!(
                "drvaudit: {} input(s) could not be examined; {consequence}\n",
                notices.len()
            ));
        } else {
            out.push_str(&format!("drvaudit: {} notice(s)\n", notices.len()));
        }
        let mut kinds: Vec<NoticeKind> = notices.iter().map(|n| n.kind).collect();
        kinds.dedup();
        let mut seen = Vec::new();
        for kind in kinds {
            if seen.contains(&kind) {
                continue;
            }
            seen.push(kind);
            out.push_str(&format!("  {}:\n", kind.heading()));
            let of_kind: Vec<_> = notices.iter().filter(|n| n.kind == kind).collect();
            // A tree of vendor drivers without their PDBs gives one such note per driver: a
            // few say what they are, the log keeps them all.
            let shown = if kind == NoticeKind::NoDebugInfo {
                3
            } else {
                usize::MAX
            };
            for n in of_kind.iter().take(shown) {
                out.push_str(&format!("    {}: {}: {}\n", n.subject, n.level, n.message));
            }
            if of_kind.len() > shown {
                out.push_str(&format!(
                    "    … and {} more (each is a notification in the SARIF log)\n",
                    of_kind.len() - shown
                ));
            }
        }
    }
    out
}
