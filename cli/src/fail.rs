//! The one way the CLI fails: a code, a message that says what to do, and an exit status.

use std::process::ExitCode;

/// SPEC §2 exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Refused or failed: validation, conflict, not found, a TLS verification failure.
    Refused = 1,
    /// The command line is wrong or incomplete.
    Usage = 2,
    /// The cluster cannot be reached, has no leader, or did not answer in time.
    Unreachable = 3,
    /// No token, or the token was refused.
    Auth = 4,
}

#[derive(Debug)]
pub(crate) struct Failure {
    pub exit: Exit,
    /// Stable and machine-readable: the server's code for API errors, else the CLI's own.
    pub code: String,
    /// What is wrong, with the values involved (and, for the CLI's own errors, the next step).
    pub message: String,
    /// What to do next, when it is not already in the message.
    pub hint: Option<String>,
}

impl Failure {
    pub(crate) fn new(exit: Exit, code: impl Into<String>, message: impl Into<String>) -> Self {
        Failure {
            exit,
            code: code.into(),
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn refused(code: impl Into<String>, message: impl Into<String>) -> Self {
        Failure::new(Exit::Refused, code, message)
    }

    pub(crate) fn usage(code: impl Into<String>, message: impl Into<String>) -> Self {
        Failure::new(Exit::Usage, code, message)
    }

    pub(crate) fn unreachable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Failure::new(Exit::Unreachable, code, message)
    }

    pub(crate) fn auth(code: impl Into<String>, message: impl Into<String>) -> Self {
        Failure::new(Exit::Auth, code, message)
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Prints the failure (JSON on stdout with `--json`, else `error: …` and `hint: …` on
    /// stderr) and gives the exit status.
    pub(crate) fn report(&self, json: bool) -> ExitCode {
        if json {
            println!("{}", self.to_json());
        } else {
            eprintln!("error: {}", crate::output::printable(&self.message));
            if let Some(hint) = &self.hint {
                eprintln!("hint: {}", crate::output::printable(hint));
            }
        }
        ExitCode::from(self.exit as u8)
    }

    /// `{"error":{"code","message"}}`, with `"hint"` only when there is one.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let mut error = serde_json::json!({"code": self.code, "message": self.message});
        if let Some(hint) = &self.hint {
            error["hint"] = serde_json::Value::String(hint.clone());
        }
        serde_json::json!({ "error": error })
    }
}

impl From<certraft::bundle::FormatError> for Failure {
    fn from(e: certraft::bundle::FormatError) -> Self {
        Failure::refused(e.code(), e.to_string())
    }
}

impl From<certraft::bundle::AssembleError> for Failure {
    fn from(e: certraft::bundle::AssembleError) -> Self {
        Failure::refused(e.code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON error shape: `hint` appears only when there is one.
    #[test]
    fn json_error_has_hint_only_when_given() {
        let plain = Failure::refused("not_found", "no certificate named web").to_json();
        assert_eq!(
            plain,
            serde_json::json!({"error": {"code": "not_found", "message": "no certificate named web"}})
        );
        let hinted = Failure::auth("unauthorized", "token refused")
            .with_hint("pass --token-file F")
            .to_json();
        assert_eq!(hinted["error"]["hint"], "pass --token-file F");
    }

    /// The exit statuses are SPEC §2's.
    #[test]
    fn exit_codes_follow_the_spec() {
        assert_eq!(Exit::Refused as u8, 1);
        assert_eq!(Exit::Usage as u8, 2);
        assert_eq!(Exit::Unreachable as u8, 3);
        assert_eq!(Exit::Auth as u8, 4);
    }
}
