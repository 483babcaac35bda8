//! Containing panics: a bug met on one input costs that input, never the run, and a user never
//! sees panic text.
//!
//! Every input (and every image inside one) is analysed inside [`guarded`]. A panic there
//! becomes a [`Failure`] — the panic's message, where it was raised and which [`Component`] was
//! running — that the pipeline turns into a notice naming the input. Two things decide what the
//! notice says:
//!
//! * **Whose code panicked.** The panic hook ([`install_panic_hook`]) records the source
//!   location of each panic raised inside a guard. A location in a dependency's sources (a
//!   path under Cargo's registry, `…/registry/src/<index>/<crate>-<version>/…`) means a
//!   third-party parser gave up on this input: the input is *malformed* as far as drvaudit can
//!   read it. A location in drvaudit's own sources is a drvaudit bug. Without the hook (tests,
//!   fuzzing, the library used on its own) the component's own origin decides.
//! * **What was running.** Code that hands an input to a parser marks it with [`within`]; the
//!   innermost component a panic unwinds through is the one named.
//!
//! The hook prints nothing for a panic inside a guard: the notice reports it. `--debug` (or
//! `DRVAUDIT_DEBUG=1`) keeps Rust's default hook as well, with its message and, under
//! `RUST_BACKTRACE`, its backtrace. A panic outside every guard (a bug in the command line
//! itself) is one line naming the bug, not the default text.
//!
//! Invariant: nothing here allocates while no panic is in flight except the component stack,
//! whose depth is the nesting of [`within`] calls (a handful).

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};

/// A part of drvaudit, or a library it hands input to, named in failure notices.
#[derive(Debug, PartialEq, Eq)]
pub struct Component {
    /// What it does, as a notice names it ("cabinet reader").
    pub name: &'static str,
    /// The crate whose code does the work, or `None` for drvaudit's own.
    pub library: Option<&'static str>,
}

impl Component {
    /// drvaudit's own code.
    pub const fn own(name: &'static str) -> Component {
        Component {
            name,
            library: None,
        }
    }

    /// Work done by the crate `library` on drvaudit's behalf.
    pub const fn library(name: &'static str, library: &'static str) -> Component {
        Component {
            name,
            library: Some(library),
        }
    }
}

/// A panic contained by [`guarded`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The panic's message.
    pub message: String,
    /// Where it was raised (`file:line:column`), when the hook was installed.
    pub location: Option<String>,
    /// The innermost component running when it was raised.
    pub component: Option<&'static Component>,
}

impl Failure {
    /// The dependency (`cab 0.6.0`) whose code raised the panic, read from its location; else
    /// the library of the component that was running when no location is known.
    pub fn library(&self) -> Option<String> {
        match &self.location {
            Some(loc) => library_of(loc),
            None => self.component.and_then(|c| c.library).map(str::to_string),
        }
    }

    /// Whether the failure is a third-party parser giving up on the input (the input is then
    /// malformed as far as drvaudit can read it) rather than a drvaudit bug.
    pub fn in_library(&self) -> bool {
        self.library().is_some()
    }

    /// One sentence for a notice: what failed, on what, and where.
    pub fn describe(&self) -> String {
        let at = self
            .location
            .as_deref()
            .map(|l| format!(" (at {})", short_location(l)))
            .unwrap_or_default();
        match (self.library(), self.component) {
            (Some(lib), Some(c)) => format!(
                "malformed: the {lib} crate ({}) failed on it: {}{at}",
                c.name, self.message
            ),
            (Some(lib), None) => format!(
                "malformed: the {lib} crate failed on it: {}{at}",
                self.message
            ),
            (None, c) => format!(
                "internal error in {} (a drvaudit bug; please report it with the file): {}{at}",
                c.map_or("the analysis", |c| c.name),
                self.message
            ),
        }
    }
}

thread_local! {
    /// Components entered with [`within`] on this thread, innermost last.
    static STACK: RefCell<Vec<&'static Component>> = const { RefCell::new(Vec::new()) };
    /// The innermost component the panic in flight unwound through.
    static FAILED_IN: Cell<Option<&'static Component>> = const { Cell::new(None) };
    /// Where the panic in flight was raised (set by the hook).
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
    /// How many [`guarded`] calls are running on this thread.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Pops a component on the way out, and remembers the innermost one a panic left through.
struct Scope(&'static Component);

impl Drop for Scope {
    fn drop(&mut self) {
        STACK.with(|s| s.borrow_mut().pop());
        if std::thread::panicking() && FAILED_IN.with(|f| f.get().is_none()) {
            FAILED_IN.with(|f| f.set(Some(self.0)));
        }
    }
}

/// Runs `f` as `component`: a panic inside is reported as that component's failure.
pub fn within<T>(component: &'static Component, f: impl FnOnce() -> T) -> T {
    STACK.with(|s| s.borrow_mut().push(component));
    let _scope = Scope(component);
    f()
}

/// Runs `f`, turning a panic into a [`Failure`]: a bug met on one input must not end the scan of
/// the others. Nested guards each report their own panics.
pub fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, Failure> {
    DEPTH.with(|d| d.set(d.get() + 1));
    FAILED_IN.with(|c| c.set(None));
    LOCATION.with(|l| l.borrow_mut().take());
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    DEPTH.with(|d| d.set(d.get() - 1));
    result.map_err(|payload| Failure {
        message: payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string()),
        location: LOCATION.with(|l| l.borrow_mut().take()),
        // No component entered means the guard's own caller was running.
        component: FAILED_IN.with(|c| c.take()),
    })
}

/// Installs the process's panic hook (the `drvaudit` binary does, first thing). Inside a guard
/// a panic only has its location recorded, for the notice; outside every guard it prints one
/// line. With `debug` the default hook runs as well: its message, and its backtrace under
/// `RUST_BACKTRACE=1`.
pub fn install_panic_hook(debug: bool) {
    let default = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
        if DEPTH.with(|d| d.get()) > 0 {
            LOCATION.with(|l| *l.borrow_mut() = location);
            if debug {
                default(info);
            }
            return;
        }
        if debug {
            default(info);
            return;
        }
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string());
        let at = location
            .map(|l| format!(" at {}", short_location(&l)))
            .unwrap_or_default();
        eprintln!(
            "drvaudit: internal error (a drvaudit bug; please report it): {message}{at}; \
             run with --debug or DRVAUDIT_DEBUG=1 for details"
        );
    }));
}

/// The crate (`cab 0.6.0`) a source path belongs to when it lies in Cargo's registry or git
/// checkouts; `None` for drvaudit's own sources and the standard library.
fn library_of(location: &str) -> Option<String> {
    let path = location.replace('\\', "/");
    if let Some(i) = path.find("/registry/src/") {
        // `<index>/<crate>-<version>/…`
        let dir = path[i + "/registry/src/".len()..].split('/').nth(1)?;
        return Some(match dir.rfind('-') {
            Some(dash) if dir[dash + 1..].starts_with(|c: char| c.is_ascii_digit()) => {
                format!("{} {}", &dir[..dash], &dir[dash + 1..])
            }
            _ => dir.to_string(),
        });
    }
    if let Some(i) = path.find("/git/checkouts/") {
        // `<repository>-<hash>/<revision>/…`
        let dir = path[i + "/git/checkouts/".len()..].split('/').next()?;
        return Some(
            dir.rsplit_once('-')
                .map_or(dir, |(name, _)| name)
                .to_string(),
        );
    }
    None
}

/// A location without the machine-specific prefix of a registry path: `cab-0.6.0/src/folder.rs:134:17`.
fn short_location(location: &str) -> String {
    let path = location.replace('\\', "/");
    for marker in ["/registry/src/", "/git/checkouts/"] {
        if let Some(i) = path.find(marker) {
            let rest = &path[i + marker.len()..];
            if let Some(slash) = rest.find('/') {
                return rest[slash + 1..].to_string();
            }
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    static OURS: Component = Component::own("call-site analysis");
    static CAB: Component = Component::library("cabinet reader", "cab");

    #[test]
    fn a_panic_becomes_a_failure_naming_the_innermost_component() {
        let failure = guarded(|| {
            within(&OURS, || {
                within(&CAB, || -> u8 { panic!("{} blocks", 0) });
            })
        })
        .unwrap_err();
        assert_eq!(failure.message, "0 blocks");
        assert_eq!(failure.component, Some(&CAB));
        // No hook in unit tests: the component's origin decides.
        assert_eq!(failure.library().as_deref(), Some("cab"));
        assert_eq!(
            failure.describe(),
            "malformed: the cab crate (cabinet reader) failed on it: 0 blocks"
        );
        // The stack is empty again and the next guard starts clean.
        let failure = guarded(|| -> u8 { panic!("plain") }).unwrap_err();
        assert_eq!(failure.component, None);
        assert!(!failure.in_library());
        assert!(failure
            .describe()
            .starts_with("internal error in the analysis (a drvaudit bug"));
        assert_eq!(guarded(|| within(&OURS, || 7)), Ok(7));
        STACK.with(|s| assert!(s.borrow().is_empty()));
    }

    #[test]
    fn the_location_names_the_crate_that_panicked() {
        let reg = "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/cab-0.6.0/src/folder.rs:134:17";
        assert_eq!(library_of(reg).as_deref(), Some("cab 0.6.0"));
        assert_eq!(short_location(reg), "cab-0.6.0/src/folder.rs:134:17");
        let git = "/home/u/.cargo/git/checkouts/rust-cab-0123abcd/4f2e1a9/src/folder.rs:1:1";
        assert_eq!(library_of(git).as_deref(), Some("rust-cab"));
        assert_eq!(library_of("src/package.rs:10:5"), None);
        assert_eq!(library_of("/work/x/src/package.rs:10:5"), None);
        assert_eq!(
            library_of("/rustc/abc/library/core/src/slice/index.rs:1:1"),
            None
        );
        // A location in our own code overrides a library component: the bug is ours.
        let f = Failure {
            message: "m".into(),
            location: Some("src/package.rs:10:5".into()),
            component: Some(&CAB),
        };
        assert!(!f.in_library());
        assert_eq!(
            f.describe(),
            "internal error in cabinet reader (a drvaudit bug; please report it with the file): m (at src/package.rs:10:5)"
        );
    }
}
