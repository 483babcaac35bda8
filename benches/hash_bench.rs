//! Hash-pass benchmark: `authenticode::pe::file_hashes` over every `.sys` under `BENCH_DRIVERS`
//! (default `../shared/corpus/drivers ../shared/corpus/vulnerable`), read into memory first, with
//! the hashes a plain scan computes (the Authenticode SHA-256 of the signature check) and with
//! those a blocklist adds (flat MD5 and SHA-1, Authenticode SHA-1). Best of seven passes each.
//!
//! Run with `cargo bench --bench hash_bench` (`BENCH_DRIVERS=/tmp/bt` for the 2,400-driver
//! tree `benches/scan_tree.sh` builds).

use std::time::Instant;

use drvaudit::authenticode::{pe, DigestAlgorithm as Alg};

fn main() {
    let dirs = std::env::var("BENCH_DRIVERS")
        .unwrap_or_else(|_| "../shared/corpus/drivers ../shared/corpus/vulnerable".into());
    let mut files = Vec::new();
    for dir in dirs.split_whitespace() {
        for e in walkdir::WalkDir::new(dir)
            .into_iter()
            .filter_map(Result::ok)
        {
            let sys = e
                .path()
                .extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("sys"));
            if sys && e.file_type().is_file() {
                files.push(std::fs::read(e.path()).expect("read a driver"));
            }
        }
    }
    if files.is_empty() {
        eprintln!("hash_bench: no .sys under {dirs} (set BENCH_DRIVERS); nothing timed");
        return;
    }
    let mb = files.iter().map(Vec::len).sum::<usize>() as f64 / 1e6;
    let plain = (vec![Alg::Sha256], vec![]);
    let blocklist = (vec![Alg::Sha1, Alg::Sha256], vec![Alg::Md5, Alg::Sha1]);
    println!("{} drivers, {mb:.1} MB", files.len());
    for (name, (auth, flat)) in [("plain scan", plain), ("with --blocklist", blocklist)] {
        let mut best = f64::MAX;
        for _ in 0..7 {
            let t = Instant::now();
            for f in &files {
                if let Ok(l) = pe::layout(f) {
                    std::hint::black_box(pe::file_hashes(f, &l, &auth, &flat));
                }
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("{name:>17}: {:7.1} ms, {:5.0} MB/s", best * 1e3, mb / best);
    }
}
