//! The last line of defence against a hostile input: a per-input wall-clock limit.
//!
//! Budgets bound the work each part of drvaudit does on an input (see `package` and `dump`);
//! this bounds what they miss. The pipeline runs each input under [`with_limit`]; the loops
//! whose work grows with the input (the call-site analysis of each function, each package
//! member, each module carved from a dump, each image's rules) call [`check`]. Once the limit
//! has passed, `check` unwinds with an [`Abandoned`] payload: [`super::guard::guarded`] hands it
//! on through every guard inside the input, so that the input's own guard reports it once, as
//! a budget reached (`--input-timeout`), and the scan goes on with the other inputs.
//!
//! Rust cannot stop a thread from outside, so the check is cooperative: a loop inside a
//! third-party parser is not cut short by it (those are bounded by the budgets of the code that
//! calls them). A check costs one read of the monotonic clock; it sits at the level of a
//! function or a member, never of an instruction.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// The default limit: generous, far above what any real input takes (the largest real driver
/// takes well under a second; a multi-gigabyte dump a few seconds), so that only an input
/// that makes drvaudit loop or crawl reaches it.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(600);

/// The payload [`check`] unwinds with once the limit has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abandoned {
    /// The limit that was reached.
    pub limit: Duration,
}

impl Abandoned {
    /// The notice's sentence.
    pub fn describe(&self) -> String {
        format!(
            "time limit reached: still being analysed after {}, the per-input limit \
             (--input-timeout; input-timeout in drvaudit.toml); abandoned, its results are not \
             reported",
            seconds(self.limit)
        )
    }
}

/// A duration as a notice writes it (`600 s`, `0.5 s`).
fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s} s")
    }
}

thread_local! {
    /// When the input being analysed on this thread must be abandoned, and its limit.
    static DEADLINE: Cell<Option<Deadline>> = const { Cell::new(None) };
}

/// When an input must be abandoned, and the limit that set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: Instant,
    limit: Duration,
}

/// The deadline of the input being analysed on this thread, to hand to the threads that help
/// analyse it ([`under`]).
pub fn current() -> Option<Deadline> {
    DEADLINE.with(Cell::get)
}

/// Runs `f` (the analysis of one input) under `limit` from now; `None` means no limit.
pub fn with_limit<T>(limit: Option<Duration>, f: impl FnOnce() -> T) -> T {
    under(
        limit.map(|limit| Deadline {
            at: Instant::now() + limit,
            limit,
        }),
        f,
    )
}

/// Runs `f` under `deadline` (one taken with [`current`] on the thread that started the input).
/// It replaces this thread's own for the time of `f`: a worker that picks up another input's
/// work while waiting must not apply its own input's deadline to it.
pub fn under<T>(deadline: Option<Deadline>, f: impl FnOnce() -> T) -> T {
    /// Restores the thread's deadline however `f` ends (an unwinding panic included).
    struct Restore(Option<Deadline>);
    impl Drop for Restore {
        fn drop(&mut self) {
            DEADLINE.with(|d| d.set(self.0));
        }
    }
    let _restore = Restore(DEADLINE.with(Cell::get));
    DEADLINE.with(|d| d.set(deadline));
    f()
}

/// Unwinds with [`Abandoned`] when this thread's input has run past its limit.
pub fn check() {
    if let Some(d) = DEADLINE.with(Cell::get) {
        if Instant::now() >= d.at {
            std::panic::panic_any(Abandoned { limit: d.limit });
        }
    }
}

/// The [`Abandoned`] payload of a panic, if it is one.
pub fn abandoned(payload: &(dyn std::any::Any + Send)) -> Option<Abandoned> {
    payload.downcast_ref::<Abandoned>().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_limit_never_abandons() {
        with_limit(None, check);
        check();
    }

    #[test]
    fn a_passed_limit_unwinds_with_its_figure() {
        let r = std::panic::catch_unwind(|| with_limit(Some(Duration::ZERO), check));
        let payload = r.expect_err("the limit has passed");
        let a = abandoned(payload.as_ref()).expect("the payload is Abandoned");
        assert_eq!(a.limit, Duration::ZERO);
        // The deadline is gone once the input's analysis has ended.
        check();
    }

    #[test]
    fn a_deadline_handed_to_another_thread_applies_there() {
        let d = with_limit(Some(Duration::ZERO), current);
        assert!(d.is_some());
        let r = std::thread::spawn(move || std::panic::catch_unwind(|| under(d, check)))
            .join()
            .unwrap();
        let payload = r.expect_err("the handed deadline has passed");
        assert_eq!(abandoned(payload.as_ref()).unwrap().limit, Duration::ZERO);
        // Work of another input, picked up under a deadline, runs under its own.
        with_limit(Some(Duration::ZERO), || {
            with_limit(Some(Duration::from_secs(3600)), check);
        });
    }

    #[test]
    fn the_sentence_names_the_limit_and_the_flag() {
        let a = Abandoned {
            limit: Duration::from_secs(600),
        };
        assert!(a.describe().contains("after 600 s"), "{}", a.describe());
        assert!(a.describe().contains("--input-timeout"));
        let half = Abandoned {
            limit: Duration::from_millis(500),
        };
        assert!(
            half.describe().contains("after 0.5 s"),
            "{}",
            half.describe()
        );
    }
}
