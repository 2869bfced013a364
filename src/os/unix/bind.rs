//! Binding a socket file safely: owner-only mode from the first instant, stale-socket reclaim
//! that never takes over a live server nor deletes what is not a socket, and removal on drop
//! only of the file this listener created.
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use super::{SUN_PATH_MAX, dir};
use crate::ipc::Error;
use crate::name::Repr;
use crate::{Endpoint, Name};

/// Removes the socket file on drop, if it is still the one this listener created.
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Ok(meta) = fs::symlink_metadata(&self.path) {
            if meta.dev() == self.dev && meta.ino() == self.ino {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

/// A bound, listening std socket and what it takes to clean it up.
#[derive(Debug)]
pub(crate) struct Bound {
    pub(crate) listener: UnixListener,
    pub(crate) endpoint: Endpoint,
    pub(crate) file: Option<SocketFile>,
}

pub(crate) fn bind(name: &Name, mode: u32, reclaim: bool) -> Result<Bound, Error> {
    let endpoint = name.endpoint()?;
    match name.repr() {
        Repr::Abstract(bytes) => {
            let listener = super::socket::bind_abstract(bytes)
                .map_err(|e| Error::from_io("bind", &endpoint, e))?;
            Ok(Bound {
                listener,
                endpoint,
                file: None,
            })
        }
        _ => {
            let Endpoint::Path(path) = &endpoint else {
                unreachable!("unix names resolve to paths or abstract names")
            };
            if name.is_portable() {
                let parent = path.parent().expect("portable socket path has a parent");
                dir::ensure_private_dir(parent, true)?;
            }
            let (listener, file) =
                bind_path(path, mode, reclaim).map_err(|e| e.into_error(&endpoint))?;
            Ok(Bound {
                listener,
                endpoint,
                file: Some(file),
            })
        }
    }
}

enum BindError {
    Typed(Error),
    Io(io::Error),
}

impl BindError {
    fn into_error(self, endpoint: &Endpoint) -> Error {
        match self {
            BindError::Typed(e) => e,
            BindError::Io(e) => Error::from_io("bind", endpoint, e),
        }
    }
}

impl From<io::Error> for BindError {
    fn from(e: io::Error) -> Self {
        BindError::Io(e)
    }
}

enum Occupant {
    Vacant,
    Stale,
}

/// What sits at `path` now: nothing, a stale socket, or (as an error) a live server or a
/// file that is not a socket.
fn probe(path: &Path) -> Result<Occupant, BindError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Occupant::Vacant),
        Err(e) => return Err(e.into()),
    };
    if !meta.file_type().is_socket() {
        return Err(BindError::Typed(Error::NotASocket {
            path: path.to_owned(),
        }));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(BindError::Typed(Error::AddrInUse {
            endpoint: Endpoint::Path(path.to_owned()),
        })),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(Occupant::Stale),
        Err(e) => Err(e.into()),
    }
}

fn bind_path(
    path: &Path,
    mode: u32,
    reclaim: bool,
) -> Result<(UnixListener, SocketFile), BindError> {
    let stale = matches!(probe(path)?, Occupant::Stale);
    if stale && !reclaim {
        return Err(BindError::Typed(Error::AddrInUse {
            endpoint: Endpoint::Path(path.to_owned()),
        }));
    }
    if stale {
        tracing::debug!(path = %path.display(), "replacing stale socket file");
    }
    let listener = match temp_sibling(path) {
        // Bind under a private temporary name, narrow the mode, then rename into place: the
        // socket is never reachable at `path` with the umask's wider mode, and a stale socket
        // is replaced atomically.
        Some(tmp) => {
            let listener = UnixListener::bind(&tmp)?;
            let placed = fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
                .and_then(|()| fs::rename(&tmp, path));
            if let Err(e) = placed {
                let _ = fs::remove_file(&tmp);
                return Err(e.into());
            }
            listener
        }
        // The path is too long for a temporary sibling: bind in place and narrow the mode.
        None => {
            if stale {
                fs::remove_file(path)?;
            }
            let listener = UnixListener::bind(path)?;
            fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
            listener
        }
    };
    let meta = fs::symlink_metadata(path)?;
    Ok((
        listener,
        SocketFile {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
        },
    ))
}

fn temp_sibling(path: &Path) -> Option<PathBuf> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_file_name(format!(".lr{:x}-{n:x}.tmp", std::process::id()));
    (tmp.as_os_str().len() <= SUN_PATH_MAX).then_some(tmp)
}
