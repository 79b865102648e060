//! Where passphrases come from: `--passphrase-file`, `CERTRAFT_PASSPHRASE`, or a TTY prompt
//! (twice, for a passphrase that protects something new). Never argv.

use std::io::IsTerminal;
use std::path::Path;

use certraft::api::dto::{strong_enough, MIN_PASSPHRASE_CHARS};
use certraft::bundle::Passphrase;

use crate::fail::Failure;

pub(crate) const ENV_PASSPHRASE: &str = "CERTRAFT_PASSPHRASE";

/// The passphrase given up front, if any: the file wins over the environment.
pub(crate) fn given(file: Option<&Path>) -> Result<Option<Passphrase>, Failure> {
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
pub(crate) fn prompt(for_file: &Path) -> Result<Option<Passphrase>, Failure> {
    ask(&format!("passphrase for {}: ", for_file.display()))
}

/// How strong a new passphrase must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strength {
    /// At least [`MIN_PASSPHRASE_CHARS`] characters.
    Required,
    /// Anything but empty (`--allow-weak-passphrase`).
    WeakAllowed,
}

impl Strength {
    pub(crate) fn from_flag(allow_weak: bool) -> Self {
        if allow_weak {
            Strength::WeakAllowed
        } else {
            Strength::Required
        }
    }
}

/// A passphrase that protects something the CLI is about to write (a PKCS#12 export, a
/// backup): `--passphrase-file`, else `CERTRAFT_PASSPHRASE`, else asked twice on a terminal.
/// Never empty, and at least [`MIN_PASSPHRASE_CHARS`] characters unless `strength` allows a
/// weak one. `what` names the thing, for messages ("the PKCS#12 export of web").
pub(crate) fn for_new_secret(
    file: Option<&Path>,
    what: &str,
    strength: Strength,
) -> Result<Passphrase, Failure> {
    let p = match given(file)? {
        Some(p) => p,
        None => {
            if strength == Strength::Required && std::io::stdin().is_terminal() {
                eprintln!("the passphrase alone protects the private keys once the file leaves the cluster: use at least {MIN_PASSPHRASE_CHARS} characters (a few random words)");
            }
            let Some(first) = ask(&format!("new passphrase for {what}: "))? else {
                return Err(missing(what));
            };
            let Some(again) = ask("the same passphrase again: ")? else {
                return Err(missing(what));
            };
            if first.expose() != again.expose() {
                return Err(Failure::refused(
                    "passphrase_mismatch",
                    "the two passphrases differ; nothing was done; run the command again",
                ));
            }
            first
        }
    };
    if p.is_empty() {
        return Err(Failure::refused(
            "empty_passphrase",
            format!("the passphrase for {what} is empty, which would leave private keys unprotected; give a non-empty passphrase"),
        ));
    }
    if strength == Strength::Required && !strong_enough(p.expose()) {
        return Err(Failure::refused(
            "weak_passphrase",
            format!(
                "the passphrase for {what} has {} characters; at least {MIN_PASSPHRASE_CHARS} are required because it alone protects the private keys once the file leaves the cluster; use a longer one (a few random words), or pass --allow-weak-passphrase for a system that cannot take one",
                p.expose().chars().count()
            ),
        ));
    }
    Ok(p)
}

/// The passphrase of something that exists (a backup to restore): `--passphrase-file`, else
/// `CERTRAFT_PASSPHRASE`, else asked once on a terminal.
pub(crate) fn for_existing_secret(file: Option<&Path>, what: &str) -> Result<Passphrase, Failure> {
    if let Some(p) = given(file)? {
        return Ok(p);
    }
    ask(&format!("passphrase for {what}: "))?.ok_or_else(|| missing(what))
}

fn missing(what: &str) -> Failure {
    Failure::refused(
        "passphrase_required",
        format!("{what} needs a passphrase and there is no terminal to ask on; pass --passphrase-file F or set {ENV_PASSPHRASE}"),
    )
}

/// One hidden line from the terminal; `None` when stdin is not a TTY.
fn ask(prompt: &str) -> Result<Option<Passphrase>, Failure> {
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let text = rpassword::prompt_password(prompt).map_err(|e| {
        Failure::refused(
            "passphrase_prompt_failed",
            format!("could not read the passphrase from the terminal: {e}"),
        )
    })?;
    Ok(Some(Passphrase::new(text)))
}
