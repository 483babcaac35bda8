//! The report's colours: levels as rustc colours them (errors red, warnings yellow, notes
//! cyan), paths and headings bold, secondary text dimmed. With colour off every style is the
//! plain one, which renders as nothing, so the same code writes both reports.

use anstyle::{AnsiColor, Style};

use crate::rules::Level;

/// The styles of one report.
#[derive(Debug, Clone, Copy)]
pub struct Styles {
    /// A driver's path in its heading, a dump's path.
    pub path: Style,
    /// Section headings (`top pool consumers`, `notes`, `statistics`).
    pub heading: Style,
    /// Secondary facts (machine, signature class, the `= why` lines).
    pub dim: Style,
    error: Style,
    warning: Style,
    note: Style,
}

impl Styles {
    /// Coloured styles, or the plain ones.
    pub fn new(color: bool) -> Styles {
        if !color {
            return Styles {
                path: Style::new(),
                heading: Style::new(),
                dim: Style::new(),
                error: Style::new(),
                warning: Style::new(),
                note: Style::new(),
            };
        }
        Styles {
            path: Style::new().bold(),
            heading: Style::new().bold().underline(),
            dim: Style::new().dimmed(),
            error: AnsiColor::Red.on_default().bold(),
            warning: AnsiColor::Yellow.on_default().bold(),
            note: AnsiColor::Cyan.on_default().bold(),
        }
    }

    /// The style of a level.
    pub fn level(&self, level: Level) -> Style {
        match level {
            Level::Error => self.error,
            Level::Warning => self.warning,
            Level::Note => self.note,
        }
    }

    /// `text` in `style` (nothing added when colour is off).
    pub fn paint(&self, style: Style, text: &str) -> String {
        format!("{}{text}{}", style.render(), style.render_reset())
    }
}

/// Whether `text` holds an escape sequence (a test helper, and the width check's guard).
pub fn has_escapes(text: &str) -> bool {
    text.contains('\u{1b}')
}
