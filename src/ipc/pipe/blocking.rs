//! The blocking ends of unnamed pipes and FIFOs, re-exported from `ipc::blocking`.
use std::fs::File;
use std::io;
use std::process::Stdio;

use crate::os;

/// The blocking writing end of a pipe or FIFO ([`Write`](std::io::Write)).
///
/// Created by [`pipe`], by [`ipc::pipe_with_blocking_sender`](crate::ipc::pipe_with_blocking_sender),
/// or by opening a FIFO (Unix). It converts into [`Stdio`] to become a child process's stdout or
/// stderr, and to and from the OS handle type (`OwnedFd` on Unix, `OwnedHandle` on Windows).
/// Writing after every reading end is gone fails with [`io::ErrorKind::BrokenPipe`] (see
/// [`ipc::PipeSender`](crate::ipc::PipeSender) about `SIGPIPE` on Unix).
///
/// See [`pipe`] for an example.
#[derive(Debug)]
pub struct PipeSender {
    pub(crate) inner: File,
}

/// The blocking reading end of a pipe or FIFO ([`Read`](std::io::Read)).
///
/// Created by [`pipe`], by
/// [`ipc::pipe_with_blocking_receiver`](crate::ipc::pipe_with_blocking_receiver), or by opening
/// a FIFO (Unix). It converts into [`Stdio`] to become a child process's stdin, and to and from
/// the OS handle type (`OwnedFd` on Unix, `OwnedHandle` on Windows). A read returns `Ok(0)`,
/// end-of-file, once every writing end has been dropped.
///
/// See [`pipe`] for an example.
#[derive(Debug)]
pub struct PipeReceiver {
    pub(crate) inner: File,
}

/// Creates an unnamed pipe with both ends blocking.
///
/// Both ends are close-on-exec (Unix) or non-inheritable (Windows): a child process only gets
/// the end that is converted into [`Stdio`] for it, as its stdin, stdout or stderr. On Unix
/// this is a kernel pipe; on Windows a one-way named pipe with a unique random name, created
/// as the first and only instance, owner-only and closed to remote clients, with synchronous
/// handles that the child's standard library can use as they are.
///
/// ```
/// use std::io::{Read, Write};
///
/// # fn main() -> std::io::Result<()> {
/// let (mut tx, mut rx) = localrpc::ipc::blocking::pipe()?;
/// let writer = std::thread::spawn(move || tx.write_all(b"hello")); // `tx` drops after
/// let mut got = String::new();
/// rx.read_to_string(&mut got)?;
/// assert_eq!(got, "hello");
/// writer.join().unwrap()?;
/// # Ok(()) }
/// ```
///
/// One end as a child's stdin:
///
/// ```no_run
/// use std::io::Write;
/// use std::process::Command;
///
/// # fn main() -> std::io::Result<()> {
/// let (mut tx, rx) = localrpc::ipc::blocking::pipe()?;
/// let mut child = Command::new("sort").stdin(rx).spawn()?;
/// tx.write_all(b"b\na\n")?;
/// drop(tx); // end-of-file for the child
/// child.wait()?;
/// # Ok(()) }
/// ```
pub fn pipe() -> io::Result<(PipeSender, PipeReceiver)> {
    let (tx, rx) = os::pipe_blocking()?;
    Ok((PipeSender { inner: tx }, PipeReceiver { inner: rx }))
}

delegate_io! {
    PipeSender: Write;
    PipeReceiver: Read;
}

impl From<PipeSender> for Stdio {
    /// The writing end as a child's stdout or stderr; the parent's copy closes with the
    /// `Command`.
    fn from(end: PipeSender) -> Stdio {
        Stdio::from(end.inner)
    }
}

impl From<PipeReceiver> for Stdio {
    /// The reading end as a child's stdin; the parent's copy closes with the `Command`.
    fn from(end: PipeReceiver) -> Stdio {
        Stdio::from(end.inner)
    }
}
