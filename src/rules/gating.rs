//! Native checks of the DRV4xxx rules: who signed a driver, whether its package's catalog
//! covers it, whether a blocklist names it, and what its INF gets wrong.
//!
//! Signature classes are those of [`crate::authenticode::classify`]; a driver without an
//! embedded signature that its package's catalog lists takes the catalog's class (Windows
//! verifies such a driver through the catalog). Images carved from a dump have no certificate
//! table in memory: the signature rules say nothing about them.

use super::hit::{Anchor, CheckContext, Hit, PackageContext};
use crate::authenticode::{Classification, SignatureClass};
use crate::blocklist::{Category, ListKind, Match, MatchRule, Strength};
use crate::inf::Arch;
use crate::packageinfo::{lists_flat, lists_pe};

/// The class Windows would verify the driver by, with the catalog that decided it.
fn effective_class(ctx: &CheckContext<'_>) -> Option<(Classification, Option<String>)> {
    ctx.facts.effective_class().cloned()
}

fn driver_hit(key: &str, what: String) -> Hit {
    Hit::new(Anchor::Driver { key: key.into() }, what)
}

fn signer(c: &Classification) -> String {
    match (&c.signer, &c.issuer) {
        (Some(s), Some(i)) => format!("signed by \"{s}\" (issuer \"{i}\")"),
        (Some(s), None) => format!("signed by \"{s}\""),
        _ => "signed".into(),
    }
}

/// DRV4004: no embedded signature and no catalog of its package lists it.
pub(super) fn unsigned(ctx: &CheckContext<'_>) -> Vec<Hit> {
    match effective_class(ctx) {
        Some((c, _)) if c.class == SignatureClass::Unsigned => {
            let why = if ctx.package.is_some() {
                "has no embedded signature, and no catalog of its package lists it"
            } else {
                "has no embedded signature (and came in no package with a catalog)"
            };
            vec![driver_hit("signature", why.into())]
        }
        Some((c, _)) if c.class == SignatureClass::Malformed => vec![driver_hit(
            "signature",
            format!("has a signature that cannot be read: {}", c.reason),
        )],
        _ => Vec::new(),
    }
}

/// DRV4005: the signature chains to no root Windows trusts for drivers.
pub(super) fn test_signed(ctx: &CheckContext<'_>) -> Vec<Hit> {
    match effective_class(ctx) {
        Some((c, via)) if c.class == SignatureClass::TestSigned => vec![driver_hit(
            "signature",
            format!(
                "is test-signed: {}{}, a chain to no Microsoft root ({})",
                signer(&c),
                via.map(|v| format!(" through catalog {v}"))
                    .unwrap_or_default(),
                c.reason
            ),
        )],
        _ => Vec::new(),
    }
}

/// DRV4006: a signed digest differs from the file's.
pub(super) fn digest_mismatch(ctx: &CheckContext<'_>) -> Vec<Hit> {
    match ctx.facts.signature() {
        Some(v) if v.classification.class == SignatureClass::DigestMismatch => vec![driver_hit(
            "signature",
            format!(
                "does not match its signature: {} ({})",
                v.classification.reason,
                signer(&v.classification)
            ),
        )],
        _ => Vec::new(),
    }
}

/// DRV4008: the signer's certificate has expired and no timestamp proves it signed in time.
pub(super) fn expired_without_timestamp(ctx: &CheckContext<'_>) -> Vec<Hit> {
    match effective_class(ctx) {
        Some((c, _))
            if !matches!(
                c.class,
                SignatureClass::Unsigned | SignatureClass::Malformed
            ) && c.expired_without_timestamp(ctx.now) =>
        {
            let until = c
                .signer_not_after
                .map(crate::util::utc_date)
                .unwrap_or_else(|| "?".into());
            vec![driver_hit(
                "signature-time",
                format!(
                    "is {}, whose certificate expired on {until}, and carries no timestamp",
                    signer(&c)
                ),
            )]
        }
        _ => Vec::new(),
    }
}

/// DRV4009: attestation-signed (Hardware Dev Center without HLK tests).
pub(super) fn attestation_signed(ctx: &CheckContext<'_>) -> Vec<Hit> {
    match effective_class(ctx) {
        Some((c, via)) if c.class == SignatureClass::Attestation => vec![driver_hit(
            "signature",
            format!(
                "is attestation-signed{}",
                via.map(|v| format!(" (through catalog {v})"))
                    .unwrap_or_default()
            ),
        )],
        _ => Vec::new(),
    }
}

/// DRV4007: the INF copies the driver but the catalog it names lists no digest of it (or the
/// package lacks that catalog, or it cannot be read).
pub(super) fn catalog_does_not_cover(ctx: &CheckContext<'_>) -> Vec<Hit> {
    let (Some(package), Some(arch)) = (
        ctx.package,
        Arch::from_machine(ctx.driver.image.machine.raw()),
    ) else {
        return Vec::new();
    };
    let mut hits = Vec::new();
    for c in package.coverage(&ctx.driver.name, arch) {
        if c.catalog_name.is_empty() {
            continue; // an INF without CatalogFile: DRV4010 says so.
        }
        let what = match c.catalog.map(|f| &f.catalog) {
            None => continue, // missing from the package: DRV4010 reports it at the INF.
            Some(Err(why)) => format!(
                "is copied by {} whose catalog {} cannot be read: {why}",
                c.inf.path, c.catalog_name
            ),
            Some(Ok(cat)) if lists_pe(cat, |alg| ctx.facts.authenticode(alg)) => continue,
            Some(Ok(_)) => format!(
                "is copied by {} but its catalog {} lists no Authenticode digest of this file \
                 (changed after signing, or another build)",
                c.inf.path, c.catalog_name
            ),
        };
        hits.push(driver_hit(&format!("catalog:{}", c.catalog_name), what));
    }
    hits
}

/// One finding per LOLDrivers entry, and one per SiPolicy, that names the driver: a real
/// driver matches an entry by several hashes at once (flat and Authenticode MD5, SHA-1 and
/// SHA-256, over several samples) and a policy by several rules (Authenticode and page
/// hashes), which are one fact for the reader; every rule that matched is kept.
fn blocklist_hits(ctx: &CheckContext<'_>, keep: impl Fn(&Match) -> bool) -> Vec<Hit> {
    if ctx.blocklists.is_empty() {
        return Vec::new();
    }
    let subject = ctx.facts.subject();
    let mut hits = Vec::new();
    for list in ctx.blocklists {
        let mut groups: Vec<(String, Vec<Match>)> = Vec::new();
        for m in list.matches(subject).into_iter().filter(&keep) {
            let key = match m.list_kind {
                ListKind::SiPolicy => String::new(),
                _ => m.entry_id.clone(),
            };
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, g)) => g.push(m),
                None => groups.push((key, vec![m])),
            }
        }
        for (_, group) in groups {
            hits.push(blocklist_hit(&group));
        }
    }
    hits
}

/// The finding for the matches of one LOLDrivers entry, or of one SiPolicy.
fn blocklist_hit(group: &[Match]) -> Hit {
    let first = &group[0];
    let mut cves: Vec<&str> = group
        .iter()
        .flat_map(|m| &m.cves)
        .map(String::as_str)
        .collect();
    cves.sort();
    cves.dedup();
    let mut entries: Vec<&str> = Vec::new();
    let mut matched_by: Vec<String> = Vec::new();
    for m in group {
        if !entries.contains(&m.entry_id.as_str()) {
            entries.push(&m.entry_id);
        }
        let full = describe_rule(&m.rule);
        if !matched_by.contains(&full) {
            matched_by.push(full);
        }
    }
    let what = match first.list_kind {
        ListKind::SiPolicy => {
            // Each rule by its ID and what it matched; a policy's FriendlyNames are build paths.
            let mut rules: Vec<String> = Vec::new();
            for m in group {
                let r = format!("{} ({})", m.entry_id, short_rule(m));
                if !rules.contains(&r) {
                    rules.push(r);
                }
            }
            format!(
                "is denied by {}: {} {}",
                first.list,
                if rules.len() == 1 { "rule" } else { "rules" },
                rules.join(", ")
            )
        }
        _ => {
            let name = first
                .name
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            let cves = if cves.is_empty() {
                String::new()
            } else {
                format!(", {}", cves.join(", "))
            };
            format!(
                "is listed by {} as entry {}{name}{cves}, matched by {}",
                first.list,
                first.entry_id,
                hashes_matched(group)
            )
        }
    };
    // The list's file name, never its path: a fingerprint must not change with the checkout.
    let list_name = std::path::Path::new(&first.list)
        .file_name()
        .map_or_else(|| first.list.clone(), |n| n.to_string_lossy().into_owned());
    let key = match first.list_kind {
        ListKind::SiPolicy => format!("blocklist:{list_name}"),
        _ => format!("blocklist:{list_name}:{}", first.entry_id),
    };
    let mut hit = driver_hit(&key, what);
    let p = &mut hit.properties;
    p.insert("blocklist".into(), first.list.clone().into());
    p.insert("blocklistEntries".into(), entries.into());
    p.insert("blocklistLocation".into(), first.location.clone().into());
    if !cves.is_empty() {
        p.insert("cves".into(), cves.into());
    }
    p.insert("matchedBy".into(), matched_by.into());
    hit
}

/// What a LOLDrivers entry matched, compactly: "its Authenticode MD5, SHA-1 and SHA-256 and
/// its file SHA-256" (hash fields of several samples once each), then any other rule.
fn hashes_matched(group: &[Match]) -> String {
    use crate::blocklist::HashKind::*;
    let kinds: Vec<crate::blocklist::HashKind> = group
        .iter()
        .filter_map(|m| match m.rule {
            MatchRule::Hash { input, .. } => Some(input),
            _ => None,
        })
        .collect();
    let mut parts = Vec::new();
    for (what, algs) in [
        (
            "Authenticode",
            [
                (AuthenticodeMd5, "MD5"),
                (AuthenticodeSha1, "SHA-1"),
                (AuthenticodeSha256, "SHA-256"),
            ],
        ),
        (
            "file",
            [
                (FlatMd5, "MD5"),
                (FlatSha1, "SHA-1"),
                (FlatSha256, "SHA-256"),
            ],
        ),
    ] {
        let have: Vec<&str> = algs
            .iter()
            .filter(|(k, _)| kinds.contains(k))
            .map(|(_, n)| *n)
            .collect();
        if !have.is_empty() {
            parts.push(format!("its {what} {}", and_list(&have)));
        }
    }
    let page: Vec<&str> = [(PageSha1, "SHA-1"), (PageSha256, "SHA-256")]
        .iter()
        .filter(|(k, _)| kinds.contains(k))
        .map(|(_, n)| *n)
        .collect();
    if !page.is_empty() {
        parts.push(format!("its first-page {}", and_list(&page)));
    }
    for m in group {
        if !matches!(m.rule, MatchRule::Hash { .. }) {
            let r = short_rule(m);
            if !parts.contains(&r) {
                parts.push(r);
            }
        }
    }
    and_list(&parts.iter().map(String::as_str).collect::<Vec<_>>())
}

/// "a", "a and b", "a, b and c".
fn and_list(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// One matched rule, short, for a message (the full form is in `matchedBy`).
fn short_rule(m: &Match) -> String {
    match &m.rule {
        MatchRule::Hash { input, .. } => input.describe().to_string(),
        MatchRule::Signer {
            publisher,
            file_attrib,
            ..
        } => format!(
            "signer {}{}{}",
            m.name
                .as_deref()
                .map(|n| format!("\"{n}\""))
                .unwrap_or_else(|| "certificate".into()),
            publisher
                .as_deref()
                .map(|p| format!(" with publisher \"{p}\""))
                .unwrap_or_default(),
            // A signer rule limited to some files: name the file rule, or the reader takes
            // every driver of that signer for denied.
            file_attrib
                .as_deref()
                .map(|f| format!(" and file rule {f}"))
                .unwrap_or_default()
        ),
        other => describe_rule(other),
    }
}

fn describe_rule(r: &MatchRule) -> String {
    match r {
        MatchRule::Hash { field, input } => {
            format!("its {} (the list's {field})", input.describe())
        }
        MatchRule::Imphash => "imphash".into(),
        MatchRule::FileAttrib {
            attribute,
            value,
            minimum,
            maximum,
        } => {
            let v =
                |x: &Option<[u16; 4]>| x.map(|a| format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]));
            let range = match (v(minimum), v(maximum)) {
                (Some(a), Some(b)) => format!(" version {a} to {b}"),
                (Some(a), None) => format!(" version up to {a}"),
                (None, Some(b)) => format!(" version up to {b}"),
                (None, None) => String::new(),
            };
            format!("{attribute} \"{value}\"{range}")
        }
        MatchRule::Signer {
            cert_root,
            publisher,
            ..
        } => format!(
            "signer certificate TBS {cert_root}{}",
            publisher
                .as_deref()
                .map(|p| format!(" and publisher \"{p}\""))
                .unwrap_or_default()
        ),
    }
}

/// DRV4001: a LOLDrivers entry of a vulnerable driver names this very file.
pub(super) fn known_vulnerable(ctx: &CheckContext<'_>) -> Vec<Hit> {
    blocklist_hits(ctx, |m| {
        m.category == Category::Vulnerable && m.strength == Strength::Identity
    })
}

/// DRV4002: a LOLDrivers entry of a malicious driver names this file.
pub(super) fn known_malicious(ctx: &CheckContext<'_>) -> Vec<Hit> {
    blocklist_hits(ctx, |m| {
        m.category == Category::Malicious && m.strength == Strength::Identity
    })
}

/// DRV4003: a SiPolicy (Microsoft's driver block rules, a WDAC deny policy) blocks it.
pub(super) fn blocked_by_policy(ctx: &CheckContext<'_>) -> Vec<Hit> {
    blocklist_hits(ctx, |m| m.category == Category::Blocked)
}

/// DRV4010: what a static reading of the INF finds wrong, at its line.
pub(super) fn inf_problem(ctx: &PackageContext<'_>) -> Vec<Hit> {
    let Ok(inf) = &ctx.inf.inf else {
        return Vec::new();
    };
    let mut arches = ctx.package.arches.clone();
    if arches.is_empty() {
        arches.push(Arch::Amd64);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut hits = Vec::new();
    for arch in arches {
        for p in inf.problems(arch, Some(&ctx.package.files)) {
            let message = p.message();
            if seen.insert((p.line, message.clone())) {
                hits.push(Hit::new(
                    Anchor::InfLine {
                        line: p.line,
                        key: format!("inf:{message}"),
                    },
                    format!("has a static problem: {message}"),
                ));
            }
        }
    }
    hits
}

/// DRV4011: a file of the package that is no driver (the INF itself, the files it copies) is
/// not in the catalog its INF names.
pub(super) fn package_file_not_in_catalog(ctx: &PackageContext<'_>) -> Vec<Hit> {
    let Ok(inf) = &ctx.inf.inf else {
        return Vec::new();
    };
    let mut hits = Vec::new();
    let arches = if ctx.package.arches.is_empty() {
        vec![Arch::Amd64]
    } else {
        ctx.package.arches.clone()
    };
    let mut seen = std::collections::BTreeSet::new();
    for arch in arches {
        let Some(cat_ref) = inf.catalog_file(arch) else {
            continue;
        };
        let Some(Ok(cat)) = ctx
            .package
            .catalog(ctx.inf, &cat_ref.file)
            .map(|c| &c.catalog)
        else {
            continue; // missing or unreadable: DRV4010 / DRV4007 say so
        };
        if !lists_flat(cat, &ctx.inf.sha1, &ctx.inf.sha256) && seen.insert(cat_ref.file.clone()) {
            hits.push(Hit::new(
                Anchor::InfLine {
                    line: cat_ref.line,
                    key: format!("inf-not-in:{}", cat_ref.file),
                },
                format!(
                    "is not listed by its catalog {} (changed after the catalog was signed)",
                    cat_ref.file
                ),
            ));
        }
    }
    hits
}
