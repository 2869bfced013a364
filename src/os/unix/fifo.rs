//! FIFOs: named pipes in the filesystem (Unix only; this module does not exist on Windows,
//! whose named pipes are what [`LocalListener`](crate::ipc::LocalListener) uses).
//!
//! A FIFO is a file that carries bytes from the processes that open it for writing to the
//! processes that open it for reading; nothing is stored on disk. [`create`] makes one with
//! an exact mode, and the `open_*` functions open either end, checking first that the path
//! really is a FIFO ([`Error::NotAFifo`] otherwise: a regular file is never written to).
//!
//! Opening waits for the other end, as the OS does for FIFOs:
//! - The blocking opens ([`open_receiver_blocking`], [`open_sender_blocking`]) block until some
//!   process opens the other end, with no time limit, as [`std::fs::OpenOptions`] does.
//! - The Tokio writing end ([`open_sender`]) retries while no reader has the FIFO open,
//!   backing off from 1 ms to 50 ms between attempts, for up to 5 seconds by default
//!   ([`OpenOptions::reader_timeout`]); then it fails with [`Error::NoReader`].
//! - The Tokio reading end ([`open_receiver`]) opens at once. Reads wait for data and return
//!   end-of-file once every writer has closed the FIFO. What a read sees before the first
//!   writer has opened the FIFO is up to the OS: Linux waits for that writer; other systems
//!   may report end-of-file, so there open the reading end once a writer is known to exist, or
//!   use the blocking open.
//!
//! ```no_run
//! use localrpc::ipc::fifo;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let path = std::env::temp_dir().join("myapp.fifo");
//! fifo::create(&path, 0o600)?;
//!
//! // Usually another process opens the other end.
//! let mut rx = fifo::open_receiver(&path)?;
//! let mut tx = fifo::open_sender(&path).await?;
//! tx.write_all(b"hello").await?;
//! drop(tx); // end-of-file for the reader
//! let mut got = String::new();
//! rx.read_to_string(&mut got).await?;
//! assert_eq!(got, "hello");
//! std::fs::remove_file(&path)?;
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, doc(cfg(unix)))]

use std::ffi::CString;
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::Endpoint;
use crate::ipc::{Error, PipeReceiver, PipeSender, blocking};

/// The first pause between attempts to open the writing end while no reader is there.
const FIRST_RETRY: Duration = Duration::from_millis(1);
/// The longest pause between those attempts.
const MAX_RETRY: Duration = Duration::from_millis(50);

/// Creates a FIFO at `path` with exactly the permission bits `mode & 0o777`.
///
/// Unlike `mkfifo(3)` alone, the process umask does not narrow the mode: the FIFO is created
/// with the umask applied (so it is never wider than asked for) and then set to `mode`.
/// Nothing that already exists at `path` is touched.
///
/// # Errors
/// [`Error::AlreadyExists`] if anything (FIFO, file, link, directory) is at `path`,
/// [`Error::PathNotFound`] if its directory does not exist, [`Error::PermissionDenied`] if
/// the directory is not writable, and [`Error::Io`] for anything else.
///
/// ```no_run
/// use localrpc::ipc::{Error, fifo};
///
/// # fn demo() -> Result<(), Error> {
/// match fifo::create("/tmp/myapp.fifo", 0o600) {
///     Ok(()) | Err(Error::AlreadyExists { .. }) => {}
///     Err(e) => return Err(e),
/// }
/// # Ok(()) }
/// ```
pub fn create(path: impl AsRef<Path>, mode: u32) -> Result<(), Error> {
    let path = path.as_ref();
    let mode = mode & 0o777;
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|e| {
        io_error(
            "create FIFO",
            path,
            io::Error::new(io::ErrorKind::InvalidInput, e),
        )
    })?;
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call.
    if unsafe { libc::mkfifo(c_path.as_ptr(), mode as libc::mode_t) } != 0 {
        let e = io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::EEXIST) => Error::AlreadyExists {
                path: path.to_owned(),
            },
            _ => classify("create FIFO", path, e),
        });
    }
    set_exact_mode(path, mode).map_err(|e| io_error("set the mode of FIFO", path, e))
}

/// Widens the FIFO just made to `mode` if the umask narrowed it. The FIFO is opened (for
/// reading, non-blocking, never through a symlink) and changed through that descriptor, so
/// the mode lands on this FIFO even if the path was swapped in between.
fn set_exact_mode(path: &Path, mode: u32) -> io::Result<()> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_fifo() {
        return Err(io::Error::other(
            "the new FIFO was replaced by another file",
        ));
    }
    if meta.permissions().mode() & 0o777 != mode {
        file.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// How to open a FIFO: how long the Tokio writing end waits for a reader.
///
/// ```no_run
/// use std::time::Duration;
/// use localrpc::ipc::fifo;
///
/// # async fn demo() -> Result<(), localrpc::ipc::Error> {
/// let tx = fifo::OpenOptions::new()
///     .reader_timeout(Duration::from_secs(30))
///     .open_sender("/tmp/myapp.fifo")
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct OpenOptions {
    reader_timeout: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            reader_timeout: Duration::from_secs(5),
        }
    }
}

impl OpenOptions {
    /// Default options: the Tokio writing end waits up to 5 seconds for a reader.
    ///
    /// See the [type docs](OpenOptions) for an example.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long [`open_sender`](Self::open_sender) keeps retrying while no process has the
    /// FIFO open for reading, before failing with [`Error::NoReader`]. Default 5 seconds;
    /// `Duration::ZERO` tries once; `Duration::MAX` waits as long as it takes. The blocking
    /// opens wait in the kernel instead and do not use it.
    ///
    /// See the [type docs](OpenOptions) for an example.
    pub fn reader_timeout(mut self, timeout: Duration) -> Self {
        self.reader_timeout = timeout;
        self
    }

    /// Opens the writing end for Tokio, retrying while there is no reader (see the
    /// [module docs](self)). Must be called inside a Tokio runtime with I/O and time enabled.
    ///
    /// See the [type docs](OpenOptions) for an example.
    pub async fn open_sender(&self, path: impl AsRef<Path>) -> Result<PipeSender, Error> {
        let path = path.as_ref();
        check_fifo(path)?;
        let start = Instant::now();
        let mut pause = FIRST_RETRY;
        loop {
            match open(path, false, libc::O_NONBLOCK) {
                Ok(file) => {
                    let inner = tokio::net::unix::pipe::Sender::from_file_unchecked(file)
                        .map_err(|e| io_error("open FIFO", path, e))?;
                    return Ok(PipeSender { inner });
                }
                Err(OpenError::NoReader) => {
                    let waited = start.elapsed();
                    let Some(left) = self
                        .reader_timeout
                        .checked_sub(waited)
                        .filter(|d| !d.is_zero())
                    else {
                        return Err(Error::NoReader {
                            path: path.to_owned(),
                            waited,
                        });
                    };
                    tracing::trace!(path = %path.display(), ?waited, "no FIFO reader yet, retrying");
                    tokio::time::sleep(left.min(pause)).await;
                    pause = (pause * 2).min(MAX_RETRY);
                }
                Err(OpenError::Typed(e)) => return Err(e),
            }
        }
    }

    /// Opens the reading end for Tokio, at once. Must be called inside a Tokio runtime with
    /// I/O enabled.
    ///
    /// See the [module docs](self) for an example.
    pub fn open_receiver(&self, path: impl AsRef<Path>) -> Result<PipeReceiver, Error> {
        let path = path.as_ref();
        check_fifo(path)?;
        let file = open(path, true, libc::O_NONBLOCK).map_err(|e| e.into_error(path))?;
        let inner = tokio::net::unix::pipe::Receiver::from_file_unchecked(file)
            .map_err(|e| io_error("open FIFO", path, e))?;
        Ok(PipeReceiver { inner })
    }

    /// Opens the writing end, blocking until some process opens the FIFO for reading (with no
    /// time limit).
    ///
    /// ```no_run
    /// use std::io::Write;
    /// use localrpc::ipc::fifo;
    ///
    /// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut tx = fifo::OpenOptions::new().open_sender_blocking("/tmp/myapp.fifo")?;
    /// tx.write_all(b"hello")?;
    /// # Ok(()) }
    /// ```
    pub fn open_sender_blocking(
        &self,
        path: impl AsRef<Path>,
    ) -> Result<blocking::PipeSender, Error> {
        let path = path.as_ref();
        check_fifo(path)?;
        let inner = open(path, false, 0).map_err(|e| e.into_error(path))?;
        Ok(blocking::PipeSender { inner })
    }

    /// Opens the reading end, blocking until some process opens the FIFO for writing (with no
    /// time limit).
    ///
    /// ```no_run
    /// use std::io::Read;
    /// use localrpc::ipc::fifo;
    ///
    /// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut rx = fifo::OpenOptions::new().open_receiver_blocking("/tmp/myapp.fifo")?;
    /// let mut all = Vec::new();
    /// rx.read_to_end(&mut all)?; // until every writer has closed it
    /// # Ok(()) }
    /// ```
    pub fn open_receiver_blocking(
        &self,
        path: impl AsRef<Path>,
    ) -> Result<blocking::PipeReceiver, Error> {
        let path = path.as_ref();
        check_fifo(path)?;
        let inner = open(path, true, 0).map_err(|e| e.into_error(path))?;
        Ok(blocking::PipeReceiver { inner })
    }
}

/// Opens the writing end for Tokio with default [`OpenOptions`]: waits up to 5 seconds for a
/// reader, then fails with [`Error::NoReader`].
///
/// See the [module docs](self) for an example.
pub async fn open_sender(path: impl AsRef<Path>) -> Result<PipeSender, Error> {
    OpenOptions::new().open_sender(path).await
}

/// Opens the reading end for Tokio, at once.
///
/// See the [module docs](self) for an example.
pub fn open_receiver(path: impl AsRef<Path>) -> Result<PipeReceiver, Error> {
    OpenOptions::new().open_receiver(path)
}

/// Opens the writing end, blocking until some process opens the FIFO for reading.
///
/// See [`OpenOptions::open_sender_blocking`] for an example.
pub fn open_sender_blocking(path: impl AsRef<Path>) -> Result<blocking::PipeSender, Error> {
    OpenOptions::new().open_sender_blocking(path)
}

/// Opens the reading end, blocking until some process opens the FIFO for writing.
///
/// See [`OpenOptions::open_receiver_blocking`] for an example.
pub fn open_receiver_blocking(path: impl AsRef<Path>) -> Result<blocking::PipeReceiver, Error> {
    OpenOptions::new().open_receiver_blocking(path)
}

enum OpenError {
    /// `ENXIO`: a non-blocking open for writing found no reader.
    NoReader,
    Typed(Error),
}

impl OpenError {
    fn into_error(self, path: &Path) -> Error {
        match self {
            OpenError::Typed(e) => e,
            OpenError::NoReader => {
                io_error("open FIFO", path, io::Error::from_raw_os_error(libc::ENXIO))
            }
        }
    }
}

/// Refuses anything but a FIFO before opening it, so that a regular file is never opened for
/// writing and a device never gets an `open` it did not expect.
fn check_fifo(path: &Path) -> Result<(), Error> {
    let meta = fs::metadata(path).map_err(|e| classify("open FIFO", path, e))?;
    if meta.file_type().is_fifo() {
        Ok(())
    } else {
        Err(Error::NotAFifo {
            path: path.to_owned(),
        })
    }
}

/// Opens one end (close-on-exec, as std always does) and checks again, on the open file, that
/// it is a FIFO: the path may have been swapped since [`check_fifo`].
fn open(path: &Path, read: bool, flags: i32) -> Result<File, OpenError> {
    let file = fs::OpenOptions::new()
        .read(read)
        .write(!read)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENXIO) if !read => OpenError::NoReader,
            _ => OpenError::Typed(classify("open FIFO", path, e)),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| OpenError::Typed(io_error("open FIFO", path, e)))?;
    if !meta.file_type().is_fifo() {
        return Err(OpenError::Typed(Error::NotAFifo {
            path: path.to_owned(),
        }));
    }
    Ok(file)
}

/// Maps the OS error of `op` on `path` to the typed variants that apply to FIFOs.
fn classify(op: &'static str, path: &Path, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR) => Error::PathNotFound {
            path: path.to_owned(),
        },
        Some(libc::EACCES | libc::EPERM) => Error::PermissionDenied {
            endpoint: endpoint(path),
            source: e,
        },
        _ => io_error(op, path, e),
    }
}

fn io_error(op: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Io {
        op,
        endpoint: endpoint(path),
        source,
    }
}

fn endpoint(path: &Path) -> Endpoint {
    Endpoint::Path(PathBuf::from(path))
}
