//! Unnamed pipes for Tokio: a one-way byte channel between two ends, one of which can be
//! handed to a child process.
//!
//! See [`pipe`] for an example, and the blocking flavour in [`blocking`](super::blocking).
pub(crate) mod blocking;

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::os;

/// The writing end of a pipe or FIFO, for Tokio ([`AsyncWrite`]).
///
/// Created by [`pipe`] or [`pipe_with_blocking_receiver`], or by opening a FIFO (Unix). Writing
/// after every reading end is gone fails with [`io::ErrorKind::BrokenPipe`] (on Unix because
/// Rust programs ignore `SIGPIPE` by default; a program that restores its default action is
/// killed by it instead, as with any pipe); dropping the last writing end makes the reader see
/// end-of-file. On Windows a write is handed to the OS in the
/// background, so a failure can surface on the next write rather than on this one; data
/// written before the end is dropped is still delivered.
///
/// See [`pipe`] for an example.
#[derive(Debug)]
pub struct PipeSender {
    pub(crate) inner: os::PipeSender,
}

/// The reading end of a pipe or FIFO, for Tokio ([`AsyncRead`]).
///
/// Created by [`pipe`] or [`pipe_with_blocking_sender`], or by opening a FIFO (Unix). A read
/// returns `Ok(0)`, end-of-file, once every writing end has been dropped and the data before
/// it has been read.
///
/// See [`pipe`] for an example.
#[derive(Debug)]
pub struct PipeReceiver {
    pub(crate) inner: os::PipeReceiver,
}

/// Creates an unnamed pipe with both ends for Tokio.
///
/// Both ends are close-on-exec (Unix) or non-inheritable (Windows): a child process never
/// receives them by accident. To give one end to a child, create the pair with
/// [`pipe_with_blocking_receiver`] or [`pipe_with_blocking_sender`] and pass the blocking end
/// as the child's stdin, stdout or stderr ([`std::process::Stdio`] converts from it).
///
/// On Unix this is a kernel pipe (`pipe2` with `O_CLOEXEC`). On Windows, which has no
/// asynchronous anonymous pipes, it is a one-way named pipe with a unique random name,
/// created as the first and only instance, owner-only and closed to remote clients, whose
/// two ends are connected at once; nothing else can join it.
///
/// Must be called inside a Tokio runtime with I/O enabled.
///
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let (mut tx, mut rx) = localrpc::ipc::pipe()?;
/// tokio::spawn(async move {
///     tx.write_all(b"hello").await?;
///     std::io::Result::Ok(()) // dropping `tx` here ends the stream
/// });
/// let mut got = String::new();
/// rx.read_to_string(&mut got).await?;
/// assert_eq!(got, "hello");
/// # Ok(()) }
/// ```
pub fn pipe() -> io::Result<(PipeSender, PipeReceiver)> {
    let (tx, rx) = os::pipe()?;
    Ok((PipeSender { inner: tx }, PipeReceiver { inner: rx }))
}

/// Creates an unnamed pipe whose writing end is for Tokio and whose reading end is blocking,
/// typically to feed a child process's stdin.
///
/// The ends are not inheritable, as with [`pipe`]; converting the reading end into
/// [`std::process::Stdio`] makes it the child's stdin and nothing else.
///
/// Must be called inside a Tokio runtime with I/O enabled.
///
/// ```no_run
/// use std::process::Command;
/// use tokio::io::AsyncWriteExt;
///
/// # async fn demo() -> std::io::Result<()> {
/// let (mut tx, rx) = localrpc::ipc::pipe_with_blocking_receiver()?;
/// let mut child = Command::new("sort").stdin(rx).spawn()?;
/// tx.write_all(b"b\na\n").await?;
/// drop(tx); // end-of-file for the child
/// child.wait()?;
/// # Ok(()) }
/// ```
pub fn pipe_with_blocking_receiver() -> io::Result<(PipeSender, blocking::PipeReceiver)> {
    let (tx, rx) = os::pipe_blocking_receiver()?;
    Ok((
        PipeSender { inner: tx },
        blocking::PipeReceiver { inner: rx },
    ))
}

/// Creates an unnamed pipe whose writing end is blocking and whose reading end is for Tokio,
/// typically to collect a child process's stdout or stderr.
///
/// The ends are not inheritable, as with [`pipe`]; converting the writing end into
/// [`std::process::Stdio`] makes it the child's stdout (or stderr) and nothing else.
///
/// Must be called inside a Tokio runtime with I/O enabled.
///
/// ```no_run
/// use std::process::Command;
/// use tokio::io::AsyncReadExt;
///
/// # async fn demo() -> std::io::Result<()> {
/// let (tx, mut rx) = localrpc::ipc::pipe_with_blocking_sender()?;
/// let mut child = Command::new("hostname").stdout(tx).spawn()?;
/// let mut out = String::new();
/// rx.read_to_string(&mut out).await?; // end-of-file when the child exits
/// child.wait()?;
/// # Ok(()) }
/// ```
pub fn pipe_with_blocking_sender() -> io::Result<(blocking::PipeSender, PipeReceiver)> {
    let (tx, rx) = os::pipe_blocking_sender()?;
    Ok((
        blocking::PipeSender { inner: tx },
        PipeReceiver { inner: rx },
    ))
}

impl AsyncWrite for PipeSender {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl AsyncRead for PipeReceiver {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}
