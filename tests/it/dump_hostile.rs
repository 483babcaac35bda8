//! Hostile and damaged dumps built by the test writer: every case must finish quickly, with one
//! clear notice or error, and never panic.

use std::time::{Duration, Instant};

use crate::support::dumpwriter::*;
use drvaudit::dump::{recover_imports, report, CarvePlan, CarvePlan::OverBudget, Dump, Limit};

/// Runs every reader entry point and returns the notices; panics only if the reader does.
fn exercise(bytes: &[u8]) -> Result<Vec<String>, String> {
    let (_dir, path) = to_file(bytes, "hostile.dmp");
    let d = Dump::open(&path).map_err(|e| e.to_string())?;
    if let Ok(mods) = d.modules() {
        let carved: Vec<_> = mods
            .iter()
            .take(8)
            .map(|m| (m.clone(), d.carve(m)))
            .collect();
        let _ = recover_imports(&carved);
    }
    let _ = d.pool_usage();
    let _ = report(&d);
    Ok(d.notices())
}

fn timed<T>(f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    r
}

fn x64() -> Scenario {
    Scenario::new(Arch::X64, 5, 19041, 2, ImportPlacement::InInit)
}

#[test]
fn truncated_inside_the_header_is_a_format_error_naming_the_file() {
    let (bytes, _) = x64().bytes();
    let (_dir, path) = to_file(&bytes[..0x800], "cut.dmp");
    let err = Dump::open(&path)
        .err()
        .expect("a cut header cannot open")
        .to_string();
    assert!(
        err.contains("cut.dmp") && err.contains("DUMP_HEADER64 needs 0x1040 bytes, file has 0x800"),
        "{err}"
    );
    let (_dir, path) = to_file(b"PAGE", "tiny.dmp");
    let err = Dump::open(&path).err().expect("4 bytes").to_string();
    assert!(err.contains("shorter than a dump signature"), "{err}");
}

#[test]
fn truncated_page_data_is_reported_and_never_panics() {
    for s in [
        x64(),
        Scenario::new(Arch::X86, 1, 7601, 1, ImportPlacement::InRdata),
        Scenario::new(Arch::X64, 8, 26100, 1, ImportPlacement::InInit),
    ] {
        let (bytes, _) = s.bytes();
        let mut cut = 0x2000;
        while cut < bytes.len() {
            let r = timed(|| exercise(&bytes[..cut]));
            if let Ok(notes) = &r {
                if cut > 0x2100 {
                    assert!(
                        notes
                            .iter()
                            .any(|n| n.contains("file holds only") || n.contains("past the end")),
                        "cut {cut:#x}: {notes:?}"
                    );
                }
            }
            cut += 0xC00;
        }
    }
}

#[test]
fn bitmap_claiming_more_pages_than_the_file_holds() {
    let (mut bytes, _) = x64().bytes();
    // Claim 2^40 pages in BITMAP_DUMP.Pages (0x2030).
    bytes[0x2030..0x2038].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let notes = timed(|| exercise(&bytes)).expect("opens");
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("bitmap claims 0x10000000000 pages but the file holds only")),
        "{notes:?}"
    );

    // Every bit set, but no page data behind them.
    let mut b = bytes[..0x2038].to_vec();
    b.extend(std::iter::repeat_n(0xFF, 0x100));
    b[0x2020..0x2028].copy_from_slice(&(0x2138u64).to_le_bytes());
    b[0x2030..0x2038].copy_from_slice(&(0x800u64).to_le_bytes());
    let notes = timed(|| exercise(&b)).expect("opens");
    assert!(notes.iter().any(|n| n == "bitmap marks 0x800 pages present but the file holds only 0x0 after offset 0x2138: pages past the end are treated as missing"), "{notes:?}");
}

#[test]
fn module_list_cycle_stops_with_one_notice() {
    let s = x64();
    let mut w = s.kernel();
    // Entry 1 links back to entry 0 instead of the head.
    set_flink(&mut w.kernel, w.entries_va, 1, w.entries_va);
    let bytes = encode(&w.header, &w.kernel.build());
    let (_dir, path) = to_file(&bytes, "cycle.dmp");
    let d = Dump::open(&path).unwrap();
    let mods = timed(|| d.modules()).unwrap();
    assert_eq!(mods.len(), 2);
    let cyc: Vec<_> = d
        .notices()
        .into_iter()
        .filter(|n| n.contains("seen twice (cycle)"))
        .collect();
    assert_eq!(
        cyc,
        [format!(
            "module list: entry {:#x} seen twice (cycle) after 2 entries; walk stopped",
            w.entries_va
        )]
    );
}

#[test]
fn page_table_loop_terminates() {
    let s = x64();
    let mut w = s.kernel();
    // The self-map VA: every index 0x1ED, so each level of the walk lands on the top table.
    let i = 0x1EDu64;
    let va = 0xFFFF_0000_0000_0000 | (i << 39) | (i << 30) | (i << 21) | (i << 12);
    w.kernel.page_table_loop(va);
    set_flink(&mut w.kernel, w.entries_va, 1, va);
    let bytes = encode(&w.header, &w.kernel.build());
    let (_dir, path) = to_file(&bytes, "loop.dmp");
    let d = Dump::open(&path).unwrap();
    let mods = timed(|| d.modules()).unwrap();
    assert_eq!(
        mods.len(),
        3,
        "the looped page is read once as an entry, then the walk stops"
    );
    assert!(
        d.notices().iter().any(|n| n.contains("after 3 entries")),
        "{:?}",
        d.notices()
    );
}

#[test]
fn absurd_size_of_image_is_clipped() {
    let s = x64();
    let mut w = s.kernel();
    w.kernel
        .write(w.entries_va + 0x100 + 0x40, &0xFFFF_F000u32.to_le_bytes());
    let bytes = encode(&w.header, &w.kernel.build());
    let (_dir, path) = to_file(&bytes, "size.dmp");
    let d = Dump::open(&path).unwrap();
    let mods = d.modules().unwrap();
    assert_eq!(mods[1].size, 0xFFFF_F000);
    let c = timed(|| d.carve(&mods[1]));
    assert_eq!(
        c.bytes.len(),
        0x7000,
        "clipped to the PE header's SizeOfImage"
    );
    assert!(c.bytes == w.expected_driver_bytes());
    let n = format!(
        "{GUID_DRIVER}: SizeOfImage 0xfffff000 is absurd (over 0x8000000); carving 0x7000 bytes"
    );
    assert!(c.notes.contains(&n), "{:?}", c.notes);
    let events = d.budget_events();
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(
        (e.kind, e.limit, e.figure),
        (Limit::ImageSize, 0x800_0000, 0xFFFF_F000)
    );
    assert_eq!(
        e.to_string(),
        format!(
            "{}: carving {GUID_DRIVER}@{:#x}: SizeOfImage clipped to 0x7000: budget reached: 0xfffff000 bytes against a limit of 0x8000000 (larger than any real driver)",
            path.display(),
            mods[1].base
        )
    );
    assert!(d.notices().contains(&e.to_string()), "{:?}", d.notices());
}

#[test]
fn unknown_dump_type_and_machine_are_errors() {
    let (mut bytes, _) = x64().bytes();
    bytes[0xF98..0xF9C].copy_from_slice(&0x77u32.to_le_bytes());
    assert!(exercise(&bytes)
        .unwrap_err()
        .contains("DumpType 0x77 at 0xf98 has no known memory layout"));
    let (mut bytes, _) = x64().bytes();
    bytes[0x30..0x34].copy_from_slice(&0x1234u32.to_le_bytes());
    assert!(exercise(&bytes)
        .unwrap_err()
        .contains("MachineImageType 0x1234"));
}

/// Deterministic byte corruption over the whole file: whatever happens, no panic and bounded
/// time.
#[test]
fn corrupted_bytes_never_panic() {
    for s in [
        x64(),
        Scenario::new(Arch::X86Pae, 2, 17763, 2, ImportPlacement::InInit),
        Scenario::new(Arch::Arm64, 6, 22000, 2, ImportPlacement::InInit),
        Scenario::new(Arch::X86, 1, 7601, 1, ImportPlacement::InRdata),
        Scenario::new(Arch::X64, 8, 26100, 1, ImportPlacement::InRdata),
    ] {
        let (clean, _) = s.bytes();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // DRVAUDIT_FUZZ_ROUNDS raises the count for a longer local run.
        let rounds: usize = std::env::var("DRVAUDIT_FUZZ_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(80);
        for round in 0..rounds {
            let mut b = clean.clone();
            // Every other round aims at the headers, where a flipped byte changes the most.
            let span = if round % 2 == 0 {
                0x2100.min(b.len())
            } else {
                b.len()
            };
            for _ in 0..16 {
                let at = (next() as usize) % span;
                b[at] = next() as u8;
            }
            let _ = timed(|| exercise(&b));
            // Pointer-shaped corruption of the page data: kernel-looking values (including
            // ones near the top of the address space) in aligned slots.
            let mut b = clean.clone();
            for _ in 0..24 {
                let at = ((next() as usize) % (b.len() - 8)) & !7;
                let v = match next() % 4 {
                    0 => u64::MAX - (next() % 0x2000),
                    1 => 0xFFFF_F800_0000_0000 | (next() & 0xFFFF_FFFF),
                    2 => next() & 0xFFFF_FFFF,
                    _ => next(),
                };
                b[at..at + 8].copy_from_slice(&v.to_le_bytes());
            }
            let _ = timed(|| exercise(&b));
        }
    }
}

#[test]
fn five_level_addresses_are_reported_unsupported() {
    let (mut bytes, _) = x64().bytes();
    // A PsLoadedModuleList that only 57-bit (LA57) paging could map.
    bytes[0x20..0x28].copy_from_slice(&0xFF00_F800_1040_0800u64.to_le_bytes());
    let (_dir, path) = to_file(&bytes, "la57.dmp");
    let d = Dump::open(&path).unwrap();
    assert!(
        d.notices()
            .iter()
            .any(|n| n.contains("five-level paging (LA57) is not supported")),
        "{:?}",
        d.notices()
    );
    let err = d.modules().unwrap_err().to_string();
    assert!(
        err.contains(
            "cannot read PsLoadedModuleList head at 0xff00f80010400800: not a kernel address"
        ),
        "{err}"
    );
}

#[test]
fn a_dump_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Dump>();
}

// ---------------------------------------------------------------------------------------------
// The hostile dumps of issue 19: bounded by what the dump holds, with a budget event naming the
// limit and the figure. Times are printed, not asserted.

fn elapsed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    eprintln!("{what}: {:?}", t.elapsed());
    r
}

#[test]
fn pool_tables_aliasing_one_page_are_refused_with_the_budget() {
    for processors in [2u32, 32, 2048] {
        let (bytes, _) = hostile_pool(processors, (1 << 20) + 1);
        let len = bytes.len();
        let d = Dump::from_bytes("pool-alias.dmp", bytes).unwrap();
        let r = elapsed(&format!("{processors} processors, {len}-byte dump"), || {
            report(&d)
        });
        let events: Vec<(Limit, u64, u64)> = r
            .budget
            .iter()
            .map(|e| (e.kind, e.limit, e.figure))
            .collect();
        let held = d.physical_pages() * 0x1000;
        assert_eq!(
            events[0],
            (Limit::PoolTableBytes, held, ((1 << 20) + 1) * 0x38)
        );
        assert_eq!(events[1].0, Limit::AliasedPages, "{:?}", r.budget);
        assert_eq!(events[1].2, 1, "one physical page behind the table");
        assert!(r.pool.is_empty());
        assert!(
            matches!(
                &r.pool_error,
                Some(drvaudit::dump::PoolTableError::Budget(e)) if e.kind == Limit::AliasedPages
            ),
            "{:?}",
            r.pool_error
        );
        // Everything else is still read.
        assert_eq!(r.modules.len(), 2);
        assert!(r
            .notices
            .iter()
            .any(|n| n.message == r.budget[1].to_string()));
    }
}

#[test]
fn modules_repeating_one_huge_image_are_carved_once() {
    for count in [256usize, 4096] {
        let (bytes, w) = hostile_modules(count, 0x800_0000, true);
        let d = Dump::from_bytes("modules.dmp", bytes).unwrap();
        let mods = d.modules().unwrap();
        assert_eq!(mods.len(), count);
        let images = d.images(&mods);
        let plan = images.plan();
        assert_eq!(plan[0], CarvePlan::Carve { bytes: 0x800_0000 });
        assert!(plan[1..]
            .iter()
            .all(|p| *p == CarvePlan::DuplicateOf { of: 0 }));
        let carved = elapsed(&format!("{count} modules"), || {
            images.par_map(|i, _, image, _| {
                (
                    i,
                    image.bytes.len(),
                    image.bytes[..0x4000] == w.nt.bytes[..],
                )
            })
        });
        assert_eq!(carved.len(), 1);
        assert_eq!(carved[0].0, 0);
        assert_eq!(
            carved[0].1.as_ref().unwrap(),
            &(0, 0x800_0000, true),
            "one 128 MiB image, starting with the kernel stub"
        );
        let note = format!(
            "module list: {} entries repeat the base and SizeOfImage of an earlier entry (first: #1 ntoskrnl.exe@0xfffff80010000000); each image is carved once",
            count - 1
        );
        assert!(d.notices().contains(&note), "{:?}", d.notices());
    }
}

#[test]
fn huge_modules_aliasing_one_page_stop_at_the_carving_budget() {
    let (bytes, _) = hostile_modules(64, 0x800_0000, false);
    let d = Dump::from_bytes("alias-modules.dmp", bytes).unwrap();
    let mods = d.modules().unwrap();
    assert_eq!(mods.len(), 64);
    let images = d.images(&mods);
    let planned = images
        .plan()
        .iter()
        .filter(|p| matches!(p, CarvePlan::Carve { .. }))
        .count();
    let refused: Vec<&CarvePlan> = images
        .plan()
        .iter()
        .filter(|p| matches!(p, CarvePlan::OverBudget { .. }))
        .collect();
    assert_eq!(planned + refused.len(), 64);
    eprintln!("{planned} planned, {} over budget", refused.len());
    let carved = elapsed("64 aliased modules", || {
        images.par_map(|i, _, image, _| (i, image.present_bytes()))
    });
    assert_eq!(carved.len(), planned);
    // Every image carved aliases the one page: refused with the figure.
    for (_, r) in &carved {
        let e = r.as_ref().unwrap_err();
        assert_eq!((e.kind, e.limit, e.figure), (Limit::AliasedPages, 4, 1));
    }
    // The plan stops at the page walks the dump has left (4 per page held + 65,536): a second
    // 128 MiB image would need 65,536 walks.
    let OverBudget { budget } = refused[0] else {
        unreachable!()
    };
    assert_eq!((budget.kind, budget.figure), (Limit::PageWalks, 65_536));
    assert!(budget.limit < 65_536, "{budget:?}");
    assert!(d.budget_events().contains(budget));
}

/// Writes issue 19's hostile dumps to the folder `DRVAUDIT_HOSTILE_OUT` names, to time the
/// binary on them (`/usr/bin/time -v drvaudit scan --dump FILE`): the pool tables aliasing one
/// page with 2, 32 and 2048 processors, 256 and 4096 modules repeating one 128 MiB image, 64
/// such modules aliasing one page. `cargo test --test it write_hostile_dumps -- --ignored`.
#[test]
#[ignore = "writes files for timing by hand"]
fn write_hostile_dumps() {
    let Ok(dir) = std::env::var("DRVAUDIT_HOSTILE_OUT") else {
        eprintln!("SKIPPED: set DRVAUDIT_HOSTILE_OUT to a folder");
        return;
    };
    let dir = std::path::Path::new(&dir);
    std::fs::create_dir_all(dir).unwrap();
    for processors in [2u32, 32, 2048] {
        let (bytes, _) = hostile_pool(processors, (1 << 20) + 1);
        std::fs::write(dir.join(format!("pool-alias-{processors}.dmp")), bytes).unwrap();
    }
    for count in [256usize, 4096] {
        let (bytes, _) = hostile_modules(count, 0x800_0000, true);
        std::fs::write(dir.join(format!("modules-{count}.dmp")), bytes).unwrap();
    }
    let (bytes, _) = hostile_modules(64, 0x800_0000, false);
    std::fs::write(dir.join("alias-modules-64.dmp"), bytes).unwrap();
}
