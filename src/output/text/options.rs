//! What the text report prints and how wide it aims to be (a leaf both its layouts read).

/// The widest line the report aims for (the grouped report and the consumers table); longer
/// lines are wrapped at spaces, and only a path or word longer than that stays whole.
pub const WIDTH: usize = 120;

/// How the text report is laid out and what it prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextOptions {
    /// One compiler-style line per finding (`path:line: level[ID] name: message`), for grep and
    /// editors, instead of the report grouped by driver.
    pub oneline: bool,
    /// Repeat each rule's reason under every finding (grouped report).
    pub verbose: bool,
    /// ANSI colour (levels coloured, paths bold).
    pub color: bool,
    /// Findings below this level are not printed (they still count, and decide the exit code).
    pub min_level: crate::rules::Level,
    /// Counts per rule and per driver after the findings.
    pub statistics: bool,
}

impl Default for TextOptions {
    fn default() -> TextOptions {
        TextOptions {
            oneline: false,
            verbose: false,
            color: false,
            min_level: crate::rules::Level::Note,
            statistics: false,
        }
    }
}
