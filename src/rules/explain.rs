//! `drvaudit explain ID`: a rule's documentation, its Markdown (`help` in the rule file)
//! rendered for a terminal, or as plain text when standard output is not one.
//!
//! The rule files use a small part of CommonMark: `**strong**`, `` `code` ``, `#` headings,
//! `-`/`*` list items and paragraphs separated by blank lines. Only those are rendered; any
//! other character is printed as written, so nothing of the text is lost.

use anstyle::{AnsiColor, Style};

use super::Rule;

/// The documentation of `rule`; with `color`, headings and strong text bold, code in cyan.
pub fn explain(rule: &Rule, color: bool) -> String {
    let bold = if color {
        Style::new().bold()
    } else {
        Style::new()
    };
    let title = format!("{} {}", rule.id, rule.name);
    let mut out = format!(
        "{}{title}{} ({}, {})\n\n",
        bold.render(),
        bold.render_reset(),
        rule.level,
        if rule.enabled {
            "enabled by default"
        } else {
            "disabled by default"
        },
    );
    out.push_str(&markdown(&rule.full, color));
    out.push('\n');
    out.push_str(&markdown(rule.help.trim(), color));
    if let Some(u) = &rule.help_uri {
        out.push_str(&format!("\nSee: {u}\n"));
    }
    out
}

/// Markdown lines rendered: headings bold, list items with a bullet, inline spans styled.
pub fn markdown(text: &str, color: bool) -> String {
    let bold = if color {
        Style::new().bold()
    } else {
        Style::new()
    };
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(h) = trimmed
            .strip_prefix("### ")
            .or_else(|| trimmed.strip_prefix("## "))
            .or_else(|| trimmed.strip_prefix("# "))
        {
            out.push_str(&format!(
                "{}{}{}\n",
                bold.render(),
                inline(h, false),
                bold.render_reset()
            ));
        } else if let Some(item) = trimmed
            .strip_prefix("- ")
            .or_else(|| trimmed.strip_prefix("* "))
        {
            out.push_str(&format!("  • {}\n", inline(item, color)));
        } else {
            out.push_str(&inline(line, color));
            out.push('\n');
        }
    }
    out
}

/// `**strong**` and `` `code` `` spans: styled, or their markers removed. An unclosed marker
/// is kept as written.
fn inline(text: &str, color: bool) -> String {
    let (strong, code) = if color {
        (Style::new().bold(), AnsiColor::Cyan.on_default())
    } else {
        (Style::new(), Style::new())
    };
    let mut out = String::new();
    let mut rest = text;
    loop {
        let next_strong = rest.find("**");
        let next_code = rest.find('`');
        let (at, marker, style) = match (next_strong, next_code) {
            (Some(s), Some(c)) if c < s => (c, "`", code),
            (Some(s), _) => (s, "**", strong),
            (None, Some(c)) => (c, "`", code),
            (None, None) => break,
        };
        let after = &rest[at + marker.len()..];
        let Some(end) = after.find(marker) else {
            break;
        };
        out.push_str(&rest[..at]);
        let span = &after[..end];
        if color {
            out.push_str(&format!("{}{span}{}", style.render(), style.render_reset()));
        } else if marker == "`" {
            // Plain text keeps code recognisable: quoted as in the rule file.
            out.push_str(&format!("`{span}`"));
        } else {
            out.push_str(span);
        }
        rest = &after[end + marker.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_drops_strong_markers_and_keeps_code_quotes() {
        assert_eq!(
            markdown("**Why is this bad?** use `ExAllocatePool2`", false),
            "Why is this bad? use `ExAllocatePool2`\n"
        );
        assert_eq!(markdown("- one\n* two", false), "  • one\n  • two\n");
        assert_eq!(markdown("# Title", false), "Title\n");
        assert_eq!(markdown("a ** b", false), "a ** b\n");
    }

    #[test]
    fn a_terminal_gets_bold_and_colour() {
        assert_eq!(
            markdown("**Why?** `x`", true),
            "\u{1b}[1mWhy?\u{1b}[0m \u{1b}[36mx\u{1b}[0m\n"
        );
    }
}
