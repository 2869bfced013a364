//! Unnamed pipes: kernel pipes created close-on-exec, and the fd conversions of the public
//! pipe ends.
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::ipc::{self, blocking};

pub(crate) type PipeSender = tokio::net::unix::pipe::Sender;
pub(crate) type PipeReceiver = tokio::net::unix::pipe::Receiver;

/// Both ends registered with the current Tokio runtime (created `O_CLOEXEC | O_NONBLOCK`).
pub(crate) fn pipe() -> io::Result<(PipeSender, PipeReceiver)> {
    tokio::net::unix::pipe::pipe()
}

pub(crate) fn pipe_blocking() -> io::Result<(File, File)> {
    let (tx, rx) = raw_pipe()?;
    Ok((File::from(tx), File::from(rx)))
}

/// The Tokio end is switched to non-blocking mode; the other end's open file description is
/// a separate one, so it stays blocking.
pub(crate) fn pipe_blocking_receiver() -> io::Result<(PipeSender, File)> {
    let (tx, rx) = raw_pipe()?;
    Ok((PipeSender::from_owned_fd(tx)?, File::from(rx)))
}

pub(crate) fn pipe_blocking_sender() -> io::Result<(File, PipeReceiver)> {
    let (tx, rx) = raw_pipe()?;
    Ok((File::from(tx), PipeReceiver::from_owned_fd(rx)?))
}

/// A blocking pipe, `(write end, read end)`, both close-on-exec from the first instant.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "illumos",
    target_os = "solaris",
))]
fn raw_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as RawFd; 2];
    // SAFETY: `fds` is valid for writes of two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[1]), OwnedFd::from_raw_fd(fds[0])) })
}

/// A blocking pipe, `(write end, read end)`, marked close-on-exec right after creation (these
/// systems have no `pipe2`); a `fork` + `exec` on another thread in between could inherit it.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "illumos",
    target_os = "solaris",
)))]
fn raw_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as RawFd; 2];
    // SAFETY: `fds` is valid for writes of two fds.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe succeeded, so both fds are open and owned by nobody else.
    let (tx, rx) = unsafe { (OwnedFd::from_raw_fd(fds[1]), OwnedFd::from_raw_fd(fds[0])) };
    for fd in [&tx, &rx] {
        // SAFETY: `fd` is open for the duration of the call; F_SETFD takes an int flag.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((tx, rx))
}

/// `AsFd`/`AsRawFd` for every pipe end; `OwnedFd` conversions both ways for the blocking ones.
macro_rules! fd_impls {
    (tokio: $($tokio:ty),+; blocking: $($blocking:ty),+) => {
        $(
            impl AsFd for $tokio {
                fn as_fd(&self) -> BorrowedFd<'_> {
                    self.inner.as_fd()
                }
            }
            impl AsRawFd for $tokio {
                fn as_raw_fd(&self) -> RawFd {
                    self.inner.as_raw_fd()
                }
            }
        )+
        $(
            impl AsFd for $blocking {
                fn as_fd(&self) -> BorrowedFd<'_> {
                    self.inner.as_fd()
                }
            }
            impl AsRawFd for $blocking {
                fn as_raw_fd(&self) -> RawFd {
                    self.inner.as_raw_fd()
                }
            }
            impl From<$blocking> for OwnedFd {
                fn from(end: $blocking) -> OwnedFd {
                    end.inner.into()
                }
            }
            /// Takes a pipe end (or FIFO) opened elsewhere, for example inherited from a
            /// parent; it is used as it is, in blocking mode.
            impl From<OwnedFd> for $blocking {
                fn from(fd: OwnedFd) -> Self {
                    Self { inner: File::from(fd) }
                }
            }
        )+
    };
}

fd_impls! {
    tokio: ipc::PipeSender, ipc::PipeReceiver;
    blocking: blocking::PipeSender, blocking::PipeReceiver
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::{AsRawFd, OwnedFd};

    use crate::ipc::{self, blocking};

    fn is_cloexec(fd: &impl AsRawFd) -> bool {
        // SAFETY: F_GETFD on an fd that the borrow keeps open.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        assert!(flags >= 0, "{}", std::io::Error::last_os_error());
        flags & libc::FD_CLOEXEC != 0
    }

    fn is_nonblocking(fd: &impl AsRawFd) -> bool {
        // SAFETY: F_GETFL on an fd that the borrow keeps open.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
        assert!(flags >= 0, "{}", std::io::Error::last_os_error());
        flags & libc::O_NONBLOCK != 0
    }

    #[test]
    fn blocking_ends_are_cloexec_and_blocking() {
        let (tx, rx) = blocking::pipe().unwrap();
        assert!(is_cloexec(&tx) && is_cloexec(&rx));
        assert!(!is_nonblocking(&tx) && !is_nonblocking(&rx));
    }

    #[test]
    fn tokio_and_mixed_ends_are_cloexec_with_the_right_mode() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let (tx, rx) = ipc::pipe().unwrap();
        assert!(is_cloexec(&tx) && is_cloexec(&rx));
        assert!(is_nonblocking(&tx) && is_nonblocking(&rx));
        let (tx, rx) = ipc::pipe_with_blocking_receiver().unwrap();
        assert!(is_cloexec(&tx) && is_cloexec(&rx));
        assert!(is_nonblocking(&tx) && !is_nonblocking(&rx));
        let (tx, rx) = ipc::pipe_with_blocking_sender().unwrap();
        assert!(is_cloexec(&tx) && is_cloexec(&rx));
        assert!(!is_nonblocking(&tx) && is_nonblocking(&rx));
    }

    #[test]
    fn owned_fd_round_trip_keeps_the_pipe() {
        let (tx, rx) = blocking::pipe().unwrap();
        let mut tx = blocking::PipeSender::from(OwnedFd::from(tx));
        let mut rx = blocking::PipeReceiver::from(OwnedFd::from(rx));
        tx.write_all(b"through fds").unwrap();
        drop(tx);
        let mut got = Vec::new();
        rx.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"through fds");
    }
}
