//! The per-user directory that holds sockets of portable names.
use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::ipc::Error;

/// `$XDG_RUNTIME_DIR` when it names an existing directory, else `<tmp>/localrpc-<uid>`.
pub(crate) fn runtime_base() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        if dir.is_absolute() && dir.is_dir() {
            return dir;
        }
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    std::env::temp_dir().join(format!("localrpc-{uid}"))
}

/// Makes sure `dir` is a directory of this user that nobody else can write to.
///
/// With `create`, a missing directory is created with mode 0700 (as a server does before
/// binding); without it, a missing directory is fine (the connect that follows will report
/// that nothing listens).
pub(crate) fn ensure_private_dir(dir: &Path, create: bool) -> Result<(), Error> {
    if create {
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(Error::Io {
                    op: "create socket directory",
                    endpoint: crate::Endpoint::Path(dir.to_owned()),
                    source,
                });
            }
        }
    }
    let meta = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if !create && e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Io {
                op: "inspect socket directory",
                endpoint: crate::Endpoint::Path(dir.to_owned()),
                source,
            });
        }
    };
    check_private(dir, &meta)
}

fn check_private(dir: &Path, meta: &fs::Metadata) -> Result<(), Error> {
    let insecure = |reason| Error::InsecureDir {
        path: dir.to_owned(),
        reason,
    };
    if !meta.file_type().is_dir() {
        return Err(insecure("it is not a directory (or is a symbolic link)"));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if meta.uid() != unsafe { libc::geteuid() } {
        return Err(insecure("it is owned by another user"));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(insecure("group or others can write to it"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "localrpc-dirtest-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn creates_owner_only_directory() {
        let dir = scratch("create");
        ensure_private_dir(&dir, true).unwrap();
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        // A second call accepts the directory it made.
        ensure_private_dir(&dir, true).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_writable_by_others() {
        let dir = scratch("wide");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let err = ensure_private_dir(&dir, true).unwrap_err();
        assert!(
            matches!(err, Error::InsecureDir { reason, .. } if reason.contains("others can write")),
            "{err}"
        );
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o770)).unwrap();
        assert!(ensure_private_dir(&dir, false).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_symlink() {
        let dir = scratch("link");
        let target = scratch("target");
        fs::create_dir(&target).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(&target, &dir).unwrap();
        assert!(matches!(
            ensure_private_dir(&dir, true),
            Err(Error::InsecureDir { .. })
        ));
        fs::remove_file(&dir).unwrap();
        fs::remove_dir_all(&target).unwrap();
    }

    #[test]
    fn refuses_other_owner() {
        // Only root can hand a directory to another user.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            assert!(
                std::env::var_os("LOCALRPC_REQUIRE_ROOT_TESTS").is_none(),
                "this test must run as root here"
            );
            eprintln!("not root: cannot create a directory owned by another user; not run");
            return;
        }
        let dir = scratch("owner");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        let err = ensure_private_dir(&dir, false).unwrap_err();
        assert!(
            matches!(err, Error::InsecureDir { reason, .. } if reason.contains("another user")),
            "{err}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
