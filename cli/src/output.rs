//! What a command shows, for each output mode, built without printing so that commands stay
//! testable; `main` prints it once.

use std::fmt::Write as _;

use certraft::api::dto::Done;
use serde::Serialize;

use crate::fail::Failure;

/// `--json` and `-q` as given.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mode {
    pub json: bool,
    pub quiet: bool,
}

/// One command's result in every mode.
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// `--json`: printed on stdout (nothing else is printed); already pretty.
    json: String,
    /// Human mode: stdout.
    human: String,
    /// `-q`: stdout; nothing when empty.
    quiet: String,
    /// Human mode without `-q`: stderr, as is (context that is not the answer).
    notes: Vec<String>,
    /// Human mode, `-q` too: stderr, as `warning: …`.
    warnings: Vec<String>,
}

impl Output {
    /// Starts from the JSON answer, in its fields' declared order.
    pub(crate) fn json(value: &impl Serialize) -> Result<Self, Failure> {
        let json = serde_json::to_string_pretty(value).map_err(|e| {
            Failure::refused(
                "internal",
                format!("could not encode the answer as JSON: {e}"),
            )
        })?;
        Ok(Output {
            json,
            ..Output::default()
        })
    }

    /// Starts from a JSON value already at hand (the server's answer, passed through whole).
    pub(crate) fn raw(value: serde_json::Value) -> Self {
        // Encoding a `Value` cannot fail: its map keys are strings.
        let json = serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string());
        Output {
            json,
            ..Output::default()
        }
    }

    /// A [`Done`] answer: its message, and the commit index.
    pub(crate) fn done(raw: serde_json::Value, done: &Done) -> Self {
        let mut human = format!("{}\n", done.message);
        if let Some(index) = done.index {
            let _ = writeln!(human, "committed at log index {index}");
        }
        Output::raw(raw).human(human)
    }

    pub(crate) fn human(mut self, text: impl Into<String>) -> Self {
        self.human = text.into();
        self
    }

    pub(crate) fn quiet(mut self, text: impl Into<String>) -> Self {
        self.quiet = text.into();
        self
    }

    pub(crate) fn note(mut self, text: impl Into<String>) -> Self {
        self.notes.push(text.into());
        self
    }

    pub(crate) fn warnings<S: Into<String>>(
        mut self,
        warnings: impl IntoIterator<Item = S>,
    ) -> Self {
        self.warnings.extend(warnings.into_iter().map(Into::into));
        self
    }

    /// Prints in `mode`: `--json` alone on stdout; else the answer on stdout (`-q`: the terse
    /// one), notes (not with `-q`) and warnings on stderr.
    pub(crate) fn print(&self, mode: Mode) {
        if mode.json {
            println!("{}", self.json);
            return;
        }
        if mode.quiet {
            if !self.quiet.is_empty() {
                println!("{}", printable(self.quiet.trim_end_matches('\n')));
            }
        } else {
            print!("{}", printable(&self.human));
            if !self.human.is_empty() && !self.human.ends_with('\n') {
                println!();
            }
            for note in &self.notes {
                eprintln!("{}", printable(note));
            }
        }
        for warning in &self.warnings {
            eprintln!("warning: {}", printable(warning));
        }
    }
}

/// Text for a terminal: every control character but newline and tab is written as a
/// `\u{..}` escape, so a string from a server (a certificate subject, an audit line) can
/// neither drive the terminal (ESC sequences) nor overwrite what was printed (CR).
pub(crate) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod printable_tests {
    use super::printable;

    /// Regression (security review, item 11): escape sequences and carriage returns in a
    /// server's strings are shown escaped, never sent raw to the terminal.
    #[test]
    fn control_characters_from_a_server_are_escaped_before_printing() {
        for (input, shown) in [
            ("plain name", "plain name"),
            ("two\nlines\tand a tab", "two\nlines\tand a tab"),
            ("red\u{1b}[31m", "red\\u{1b}[31m"),
            ("over\rwrite", "over\\u{d}write"),
            ("bell\u{7}\u{9b}", "bell\\u{7}\\u{9b}"),
        ] {
            assert_eq!(printable(input), shown, "{input:?}");
        }
    }
}
