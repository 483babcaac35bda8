//! No panic text reaches a user: a panic inside a guard is reported only as its input's notice;
//! Rust's own message and backtrace appear with `--debug` / `DRVAUDIT_DEBUG=1`; a panic outside
//! every guard is one line. The hook is process-wide, so each case runs in a child process (this
//! test binary again, selecting [`hook_child`]).

use std::process::Command;

use drvaudit::util::guard::{self, Component};

static CAB: Component = Component::library("cabinet reader", "cab");

/// Runs [`hook_child`] in a child process with `mode`; returns (stdout, stderr).
fn child(mode: &str) -> (String, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "panics::hook_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DRVAUDIT_HOOK_CHILD", mode)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// In a child process: installs the hook as the binary does, then panics inside a guard (the
/// failure's notice text goes to stdout) and, in mode `unguarded`, outside every guard.
#[test]
fn hook_child() {
    let Ok(mode) = std::env::var("DRVAUDIT_HOOK_CHILD") else {
        return;
    };
    guard::install_panic_hook(mode == "debug");
    let failure =
        guard::guarded(|| guard::within(&CAB, || -> u8 { panic!("index out of bounds") }))
            .unwrap_err();
    println!("notice: {}", failure.describe());
    if mode == "unguarded" {
        panic!("outside every guard");
    }
}

#[test]
fn a_guarded_panic_prints_nothing_but_its_notice() {
    let (stdout, stderr) = child("quiet");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("backtrace"), "{stderr}");
    // The notice names the component and where its code failed (a location in this test).
    // libtest may print the test's name on the same line first.
    let line = stdout
        .lines()
        .find_map(|l| l.find("notice: ").map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("no notice in {stdout:?} / {stderr:?}"));
    assert!(
        line.starts_with(
            "notice: internal error in cabinet reader (a drvaudit bug; please report it with \
             the file): index out of bounds (at tests/it/panics.rs:"
        ),
        "{line}"
    );
}

#[test]
fn debug_keeps_the_default_message_and_backtrace() {
    let (_, stderr) = child("debug");
    assert!(
        stderr.contains("panicked at tests/it/panics.rs:"),
        "{stderr}"
    );
    assert!(stderr.contains("index out of bounds"), "{stderr}");
    assert!(stderr.contains("stack backtrace"), "{stderr}");
}

#[test]
fn an_unguarded_panic_is_one_line() {
    let (_, stderr) = child("unguarded");
    assert!(!stderr.contains("panicked at"), "{stderr}");
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
    assert!(
        stderr.contains(
            "drvaudit: internal error (a drvaudit bug; please report it): outside every guard \
             at tests/it/panics.rs:"
        ),
        "{stderr}"
    );
}

/// The binary accepts `--debug` anywhere (and DRVAUDIT_DEBUG).
#[test]
fn the_binary_takes_debug() {
    for (args, env) in [
        (vec!["--debug", "rules"], None),
        (vec!["rules", "--debug"], None),
        (vec!["rules"], Some(("DRVAUDIT_DEBUG", "1"))),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_drvaudit"));
        cmd.args(&args);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("DRV1001"));
    }
}
