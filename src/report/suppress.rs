//! Suppressions: findings a configuration accepts, each with a reason.
//!
//! A `[[suppress]]` entry names a rule and optionally narrows it to a path glob, a driver (its
//! file name or SHA-256) and a pool tag. A finding it matches stays in the SARIF log with a
//! `suppressions` entry (kind `external`, status `accepted`, the reason as justification), and
//! leaves the exit code and the text report; an entry that matched nothing is reported as
//! stale, as cargo-deny reports unused ignores.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::Finding;
use crate::pool::tag_display;

/// One accepted class of findings.
#[derive(Debug)]
pub struct Suppression {
    /// Rule id, name or id prefix.
    pub rule: String,
    /// Glob over the artifact's display path (`drivers/**/*.sys`, `pkg.cab:*/x.sys`).
    pub path: Option<globset::GlobMatcher>,
    /// Driver file name (case-insensitive) or lower-case SHA-256 of its image.
    pub driver: Option<String>,
    /// Pool tag the finding must be tied to.
    pub tag: Option<u32>,
    /// Why the findings are accepted (required).
    pub reason: String,
    /// Where the entry was written (`drvaudit.toml:12`), for the stale-suppression notice.
    pub origin: String,
    matched: AtomicUsize,
}

/// What a finding is matched on besides itself.
pub struct Subject<'a> {
    /// The artifact's display path (`testdata/bin/x.sys`, `pkg.zip:drivers/x.sys`).
    pub path: &'a str,
    /// The driver's file name.
    pub name: &'a str,
    /// The image's SHA-256, when known.
    pub sha256: Option<&'a str>,
}

impl Suppression {
    /// A suppression; `path` is a glob (an invalid one is an error naming it).
    pub fn new(
        rule: String,
        path: Option<&str>,
        driver: Option<String>,
        tag: Option<u32>,
        reason: String,
        origin: String,
    ) -> Result<Suppression, globset::Error> {
        let path = path
            .map(|p| {
                globset::GlobBuilder::new(p)
                    .literal_separator(false)
                    .build()
                    .map(|g| g.compile_matcher())
            })
            .transpose()?;
        Ok(Suppression {
            rule,
            path,
            driver: driver.map(|d| d.to_ascii_lowercase()),
            tag,
            reason,
            origin,
            matched: AtomicUsize::new(0),
        })
    }

    /// Whether the entry accepts `f` (found on `subject`); counts the match.
    pub fn accepts(&self, f: &Finding, subject: &Subject<'_>) -> bool {
        let rule = f.rule_id.eq_ignore_ascii_case(&self.rule)
            || f.rule_id
                .get(..self.rule.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(&self.rule));
        let path = self.path.as_ref().is_none_or(|g| g.is_match(subject.path));
        let driver = self.driver.as_deref().is_none_or(|d| {
            subject.name.eq_ignore_ascii_case(d) || subject.sha256.is_some_and(|h| h == d)
        });
        let tag = self.tag.is_none_or(|t| f.tags.contains(&t));
        let hit = rule && path && driver && tag;
        if hit {
            self.matched.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    /// How many findings the entry accepted so far.
    pub fn matched(&self) -> usize {
        self.matched.load(Ordering::Relaxed)
    }

    /// The entry in words, for notices: `DRV1001 in vendor/** on tag 'None'`.
    pub fn describe(&self) -> String {
        let mut s = self.rule.clone();
        if let Some(p) = &self.path {
            s.push_str(&format!(" in {}", p.glob()));
        }
        if let Some(d) = &self.driver {
            s.push_str(&format!(" on driver {d}"));
        }
        if let Some(t) = self.tag {
            s.push_str(&format!(" with tag '{}'", tag_display(t)));
        }
        s
    }
}

/// Marks every finding of `findings` that an entry of `suppressions` accepts (the first that
/// does gives the reason).
pub fn apply(suppressions: &[Suppression], findings: &mut [Finding], subject: &Subject<'_>) {
    if suppressions.is_empty() {
        return;
    }
    for f in findings {
        if let Some(s) = suppressions.iter().find(|s| s.accepts(f, subject)) {
            f.suppression = Some(s.reason.clone());
        }
    }
}
