use std::io;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::{Endpoint, NameError};

/// Why binding a listener, connecting to an endpoint, or creating or opening a FIFO failed.
///
/// Every variant names the real endpoint or path, so "address in use" can be traced to a path.
/// It converts into [`io::Error`] with a matching [`io::ErrorKind`] for code that only
/// speaks `io::Result`.
///
/// ```no_run
/// use localrpc::ipc::{Error, LocalStream};
///
/// # async fn demo() {
/// match LocalStream::connect("myapp.calc").await {
///     Ok(_stream) => {}
///     Err(Error::NotFound { endpoint }) => eprintln!("is the server running? nothing at {endpoint}"),
///     Err(e) => eprintln!("{e}"),
/// }
/// # }
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The name is not valid, or its form does not exist on this OS.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A live server already listens at this endpoint.
    #[error("address {endpoint} is in use by a live server")]
    AddrInUse {
        /// The endpoint that is taken.
        endpoint: Endpoint,
    },
    /// Something that is not a socket sits at the path; localrpc never removes it.
    #[error("refusing to bind {}: a file that is not a socket exists there", path.display())]
    NotASocket {
        /// The path that is occupied.
        path: PathBuf,
    },
    /// No server listens at the endpoint (no such socket or pipe, or a stale socket file).
    #[error("no server is listening at {endpoint}")]
    NotFound {
        /// The endpoint that was tried.
        endpoint: Endpoint,
    },
    /// The OS denied access to the endpoint (file mode or security descriptor). For a FIFO the
    /// endpoint is [`Endpoint::Path`] with the FIFO's path.
    #[error("permission denied for {endpoint}")]
    PermissionDenied {
        /// The endpoint that was tried.
        endpoint: Endpoint,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },
    /// Every pipe instance stayed busy until the connect deadline passed (Windows).
    #[error("all instances of {endpoint} stayed busy for {waited:?}")]
    Busy {
        /// The endpoint that was tried.
        endpoint: Endpoint,
        /// How long the client waited.
        waited: Duration,
    },
    /// The per-user socket directory is not safe to use.
    #[error("refusing to use socket directory {}: {reason}", path.display())]
    InsecureDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// This process has no channel to a parent: it was not started by
    /// [`process::spawn`](crate::process::spawn), the variable naming the channel was
    /// inherited from an ancestor, or the channel was already taken.
    #[error("no channel to a parent process: {reason}")]
    NotSpawned {
        /// What is missing or wrong, in words.
        reason: String,
    },
    /// Something already exists at the path where a FIFO was to be created; it is left alone.
    #[error("cannot create a FIFO at {}: the path already exists", path.display())]
    AlreadyExists {
        /// The path that is taken.
        path: PathBuf,
    },
    /// The path, or a directory on the way to it, does not exist (creating or opening a FIFO).
    #[error("no such file or directory: {}", path.display())]
    PathNotFound {
        /// The path that was tried.
        path: PathBuf,
    },
    /// The file at the path is not a FIFO, so it was not used as one.
    #[error("{} is not a FIFO", path.display())]
    NotAFifo {
        /// The path that was tried.
        path: PathBuf,
    },
    /// No process opened the FIFO for reading before the wait for one ran out.
    #[error("no reader opened the FIFO {} within {waited:?}", path.display())]
    NoReader {
        /// The FIFO's path.
        path: PathBuf,
        /// How long the writer waited.
        waited: Duration,
    },
    /// Any other OS error, with the operation and endpoint it happened on.
    #[error("{op} {endpoint} failed")]
    Io {
        /// The operation: `"bind"`, `"connect"`, ...
        op: &'static str,
        /// The endpoint it was applied to.
        endpoint: Endpoint,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The [`io::ErrorKind`] closest to this error.
    ///
    /// ```
    /// use localrpc::{ipc::Error, Endpoint};
    /// let e = Error::NotFound { endpoint: Endpoint::Pipe(r"\\.\pipe\x".into()) };
    /// assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    /// ```
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Error::Name(_) => io::ErrorKind::InvalidInput,
            Error::AddrInUse { .. } | Error::NotASocket { .. } => io::ErrorKind::AddrInUse,
            Error::NotFound { .. } => io::ErrorKind::NotFound,
            Error::PermissionDenied { .. } | Error::InsecureDir { .. } => {
                io::ErrorKind::PermissionDenied
            }
            Error::Busy { .. } | Error::NoReader { .. } => io::ErrorKind::TimedOut,
            Error::NotSpawned { .. } => io::ErrorKind::NotFound,
            Error::AlreadyExists { .. } => io::ErrorKind::AlreadyExists,
            Error::PathNotFound { .. } => io::ErrorKind::NotFound,
            Error::NotAFifo { .. } => io::ErrorKind::InvalidInput,
            Error::Io { source, .. } => source.kind(),
        }
    }

    /// Classifies an OS error from `op` on `endpoint`.
    pub(crate) fn from_io(op: &'static str, endpoint: &Endpoint, source: io::Error) -> Error {
        let endpoint = endpoint.clone();
        match source.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused if op == "connect" => {
                Error::NotFound { endpoint }
            }
            io::ErrorKind::AddrInUse => Error::AddrInUse { endpoint },
            io::ErrorKind::PermissionDenied => Error::PermissionDenied { endpoint, source },
            _ => Error::Io {
                op,
                endpoint,
                source,
            },
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::new(e.kind(), e)
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::time::Duration;

    use super::Error;
    use crate::Endpoint;

    #[test]
    fn io_error_kind_matches_kind_for_fifo_errors() {
        let path = std::path::PathBuf::from("/tmp/x.fifo");
        let cases = [
            (
                Error::AlreadyExists { path: path.clone() },
                io::ErrorKind::AlreadyExists,
            ),
            (
                Error::PathNotFound { path: path.clone() },
                io::ErrorKind::NotFound,
            ),
            (
                Error::NotAFifo { path: path.clone() },
                io::ErrorKind::InvalidInput,
            ),
            (
                Error::NoReader {
                    path: path.clone(),
                    waited: Duration::from_secs(5),
                },
                io::ErrorKind::TimedOut,
            ),
            (
                Error::PermissionDenied {
                    endpoint: Endpoint::Path(path.clone()),
                    source: io::ErrorKind::PermissionDenied.into(),
                },
                io::ErrorKind::PermissionDenied,
            ),
        ];
        for (error, kind) in cases {
            let message = error.to_string();
            assert!(message.contains("x.fifo"), "names the path: {message}");
            assert_eq!(error.kind(), kind, "{message}");
            let io = io::Error::from(error);
            assert_eq!(io.kind(), kind, "{message}");
            assert_eq!(io.to_string(), message);
        }
    }
}
