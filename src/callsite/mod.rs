//! Call-site analysis: every call a driver's code makes to a pool API, with the constant
//! arguments (pool type or flags, size, tag, priority) recovered at that call.
//!
//! Why hand-written: no library recovers call arguments from Windows driver machine code. The
//! decoders are libraries (iced-x86 for x86/x64, yaxpeax-arm for ARM64); what is ours is the
//! search for the calls and a dataflow analysis ([`engine`]) shared by both architectures,
//! which refuses to guess: at a merge of paths a value survives only when every path carries
//! it, and several constants stay a set, never one of them (a wrong tag is worse than an
//! unknown one). The architecture modules ([`x86`], [`arm64`]) supply decoding, the transfer
//! function and the calling convention.
//!
//! The result is a list of [`CallSite`]s stored beside the [`Image`](crate::pe::Image); rules
//! read them like any other fact of the model.

mod arm64;
mod engine;
mod fltctx;
mod site;
mod x86;

pub use site::{arg_location, ArgDetail, ArgLocation, ArgValue, CallSite, Provenance, Reach};

use crate::pe::{Image, Machine};

/// Finds every pool-API call site in `image`, whose bytes (in the image's layout) are `data`.
pub fn analyze(image: &Image, data: &[u8]) -> Vec<CallSite> {
    analyze_with(image, data, true)
}

/// [`analyze`]; `shortcut` off solves every wrapper caller whole instead of first trying the
/// code just before its call, which must give the same sites (tested).
fn analyze_with(image: &Image, data: &[u8], shortcut: bool) -> Vec<CallSite> {
    let mut sites = match image.machine {
        Machine::X86 | Machine::X64 => x86::analyze(image, data, shortcut),
        Machine::Arm64 => arm64::analyze(image, data, shortcut),
        Machine::Other(_) => Vec::new(),
    };
    fltctx::resolve_context_tags(image, data, &mut sites);
    sites.sort_by_key(|s| (s.rva, s.via));
    sites.dedup();
    sites
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settling wrapper callers from the code just before the call is only a shortcut: on every
    /// fixture and corpus driver, every site (address, caller, values and how each was
    /// obtained) equals what solving every caller whole gives.
    #[test]
    fn caller_shortcut_changes_no_site() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut dirs = vec![root.join("testdata/bin")];
        let corpus = root.join("../shared/corpus/drivers");
        if corpus.is_dir() {
            dirs.push(corpus);
        } else {
            eprintln!("SKIPPED part: ../shared/corpus/drivers is absent; fixtures only");
        }
        let mut via = 0;
        for dir in dirs {
            let mut paths: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "sys"))
                .collect();
            paths.sort();
            for path in paths {
                let bytes = std::fs::read(&path).unwrap();
                let Ok(image) = Image::parse(&bytes, crate::pe::Layout::File) else {
                    continue;
                };
                let fast = analyze_with(&image, &bytes, true);
                assert_eq!(
                    fast,
                    analyze_with(&image, &bytes, false),
                    "{}",
                    path.display()
                );
                via += fast.iter().filter(|s| s.via.is_some()).count();
            }
        }
        // The fixtures alone resolve wrapper parameters at 30 callers (the corpus adds 238).
        assert!(via >= 30, "only {via} wrapper-resolved sites");
    }
}
