//! Files the CLI writes (exports, backups): created with mode 0600, and an existing file is
//! replaced only with `--force`.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use crate::fail::Failure;

/// Whether an existing `--out` file may be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overwrite {
    Refuse,
    Replace,
}

impl Overwrite {
    pub(crate) fn from_force(force: bool) -> Self {
        if force {
            Overwrite::Replace
        } else {
            Overwrite::Refuse
        }
    }
}

/// Fails early, before any passphrase prompt or request, when `path` exists and may not be
/// replaced. [`write`] checks again, atomically.
pub(crate) fn check_free(path: &Path, overwrite: Overwrite) -> Result<(), Failure> {
    if overwrite == Overwrite::Refuse && path.symlink_metadata().is_ok() {
        return Err(exists(path));
    }
    Ok(())
}

/// Writes `bytes` to `path`, mode 0600 (also when replacing a file that had another mode).
pub(crate) fn write(path: &Path, bytes: &[u8], overwrite: Overwrite) -> Result<(), Failure> {
    let mut options = OpenOptions::new();
    options.write(true);
    match overwrite {
        Overwrite::Refuse => options.create_new(true),
        Overwrite::Replace => options.create(true).truncate(true),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let cannot = |e: std::io::Error| {
        Failure::refused(
            "write_failed",
            format!(
                "cannot write {}: {e}; check the directory exists and is writable, or choose another --out",
                path.display()
            ),
        )
    };
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            exists(path)
        } else {
            cannot(e)
        }
    })?;
    #[cfg(unix)]
    if overwrite == Overwrite::Replace {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(cannot)?;
    }
    file.write_all(bytes).map_err(cannot)?;
    file.sync_all().map_err(cannot)
}

fn exists(path: &Path) -> Failure {
    Failure::refused(
        "out_exists",
        format!(
            "{} already exists; pass --force to replace it, or choose another --out",
            path.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new file is 0600; an existing one is refused without --force and replaced (and made
    /// 0600) with it.
    #[test]
    fn writes_private_files_and_refuses_to_clobber() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("out.p12");
        write(&path, b"one", Overwrite::Refuse).expect("new file");
        assert_eq!(std::fs::read(&path).expect("read"), b"one");

        let err = write(&path, b"two", Overwrite::Refuse).expect_err("exists");
        assert_eq!(err.code, "out_exists");
        assert!(check_free(&path, Overwrite::Refuse).is_err());
        assert!(check_free(&path, Overwrite::Replace).is_ok());

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            write(&path, b"two", Overwrite::Replace).expect("replace");
            assert_eq!(mode(&path), 0o600);
        }
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
    }
}
