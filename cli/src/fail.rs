//! The one way the CLI fails: a code, a message that says what to do, and an exit status.

use std::process::ExitCode;

/// SPEC §2 exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Refused or failed: validation, conflict, not found.
    Refused = 1,
}

#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub code: String,
    pub message: String,
}

impl Failure {
    pub fn refused(code: impl Into<String>, message: impl Into<String>) -> Self {
        Failure {
            exit: Exit::Refused,
            code: code.into(),
            message: message.into(),
        }
    }

    /// Prints the failure (JSON on stdout with `--json`, else `error: …` on stderr).
    pub fn report(&self, json: bool) -> ExitCode {
        if json {
            let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
            println!("{body}");
        } else {
            eprintln!("error: {}", self.message);
        }
        ExitCode::from(self.exit as u8)
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
