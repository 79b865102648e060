//! Where passphrases come from: `--passphrase-file`, `CERTRAFT_PASSPHRASE`, or a TTY prompt.
//! Never argv.

use std::io::IsTerminal;
use std::path::Path;

use certraft::bundle::Passphrase;

use crate::fail::Failure;

pub const ENV_PASSPHRASE: &str = "CERTRAFT_PASSPHRASE";

/// The passphrase given up front, if any: the file wins over the environment.
pub fn given(file: Option<&Path>) -> Result<Option<Passphrase>, Failure> {
    if let Some(path) = file {
        let bytes = std::fs::read(path).map_err(|e| {
            Failure::refused(
                "passphrase_file_unreadable",
                format!(
                    "cannot read passphrase file {}: {e}; check the path and its permissions",
                    path.display()
                ),
            )
        })?;
        let p = Passphrase::from_file_contents(&bytes).map_err(|_| Failure::refused(
            "passphrase_file_not_utf8",
            format!("passphrase file {} is not UTF-8 text; write the passphrase as one line of text", path.display()),
        ))?;
        return Ok(Some(p));
    }
    match std::env::var(ENV_PASSPHRASE) {
        Ok(p) => Ok(Some(Passphrase::new(p))),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(Failure::refused(
            "passphrase_env_not_utf8",
            format!("{ENV_PASSPHRASE} is set but is not UTF-8 text; set it to the passphrase as text, or use --passphrase-file"),
        )),
    }
}

/// Asks on the terminal, when there is one; `None` when stdin is not a TTY.
pub fn prompt(for_file: &Path) -> Result<Option<Passphrase>, Failure> {
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let text = rpassword::prompt_password(format!("passphrase for {}: ", for_file.display()))
        .map_err(|e| {
            Failure::refused(
                "passphrase_prompt_failed",
                format!("could not read the passphrase from the terminal: {e}"),
            )
        })?;
    Ok(Some(Passphrase::new(text)))
}
