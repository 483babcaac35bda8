//! Per-driver call-site figures: sites found, sites resolved through a wrapper's caller,
//! argument values recovered and unknown, allocation tags, and analysis time.
//!
//!     cargo run --release --example callsite_report -- ../shared/corpus/drivers/*.sys

use std::collections::BTreeSet;

use drvaudit::pe::{Image, Layout};
use drvaudit::pool::tag_display;

fn main() {
    println!(
        "{:<40} {:>5} {:>5} {:>6} {:>6} {:>8}  tags",
        "driver", "sites", "via", "known", "unkn", "ms"
    );
    for path in std::env::args().skip(1) {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{path}: {e}");
                continue;
            }
        };
        let image = match Image::parse(&bytes, Layout::File) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("{path}: {e}");
                continue;
            }
        };
        let t = std::time::Instant::now();
        let sites = drvaudit::callsite::analyze(&image, &bytes);
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let values = sites.iter().flat_map(|s| s.args.iter().map(|(_, v)| v));
        let known = values.clone().filter(|v| v.value.is_some()).count();
        let unknown = values.filter(|v| v.value.is_none()).count();
        let tags: BTreeSet<String> = sites
            .iter()
            .filter(|s| s.spec().kind != drvaudit::pool::apis::ApiKind::Free)
            .filter_map(|s| s.effective_tag())
            .map(tag_display)
            .collect();
        let name = path.rsplit('/').next().unwrap_or(&path);
        println!(
            "{:<40} {:>5} {:>5} {:>6} {:>6} {:>8.2}  {}",
            name,
            sites.len(),
            sites.iter().filter(|s| s.via.is_some()).count(),
            known,
            unknown,
            ms,
            tags.into_iter().collect::<Vec<_>>().join(",")
        );
    }
}
