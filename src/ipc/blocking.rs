//! Blocking local sockets and pipes for code without an async runtime: [`std::io::Read`] and
//! [`std::io::Write`] over the same endpoints as the Tokio types.
//!
//! Unnamed pipes: see [`pipe`].
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use localrpc::ipc::blocking::{LocalListener, LocalStream};
//!
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = LocalListener::bind("myapp.echo")?;
//! std::thread::spawn(move || {
//!     let mut conn = listener.accept().unwrap();
//!     let mut buf = [0u8; 4];
//!     conn.read_exact(&mut buf).unwrap();
//!     conn.write_all(&buf).unwrap();
//! });
//! let mut stream = LocalStream::connect("myapp.echo")?;
//! stream.write_all(b"ping")?;
//! let mut buf = [0u8; 4];
//! stream.read_exact(&mut buf)?;
//! assert_eq!(&buf, b"ping");
//! # Ok(()) }
//! ```
use std::io;
use std::net::SocketAddr;

pub use super::pipe::blocking::{PipeReceiver, PipeSender, pipe};
use super::{ConnectOptions, Error, ListenerOptions, PeerCredentials, either};
use crate::{Endpoint, IntoName, os};

/// A blocking listener; see the [module docs](self) for an example.
#[derive(Debug)]
pub struct LocalListener {
    inner: either::BlockingListener,
}

impl LocalListener {
    /// Binds with default [`ListenerOptions`]: owner-only, stale sockets reclaimed.
    ///
    /// See the [module docs](self) for an example.
    pub fn bind(name: impl IntoName) -> Result<LocalListener, Error> {
        ListenerOptions::new().bind_blocking(name)
    }

    pub(crate) fn from_either(inner: either::BlockingListener) -> Self {
        LocalListener { inner }
    }

    /// Blocks until the next client connects.
    ///
    /// See the [module docs](self) for an example.
    pub fn accept(&self) -> io::Result<LocalStream> {
        self.inner.accept().map(LocalStream::from_either)
    }

    /// The real endpoint this listener is bound to; for TCP the address the OS picked when
    /// the name asked for port `0`.
    ///
    /// See the [module docs](self) for an example.
    pub fn endpoint(&self) -> &Endpoint {
        self.inner.endpoint()
    }
}

/// A blocking stream between two local processes; see the [module docs](self) for an example.
#[derive(Debug)]
pub struct LocalStream {
    inner: either::BlockingStream,
}

impl LocalStream {
    /// Connects with default [`ConnectOptions`].
    ///
    /// See the [module docs](self) for an example.
    pub fn connect(name: impl IntoName) -> Result<LocalStream, Error> {
        ConnectOptions::new().connect_blocking(name)
    }

    #[allow(
        dead_code,
        reason = "for streams made outside bind and connect, such as socket pairs"
    )]
    pub(crate) fn from_os(inner: os::BlockingStream) -> Self {
        LocalStream {
            inner: either::BlockingStream::Local(inner),
        }
    }

    pub(crate) fn from_either(inner: either::BlockingStream) -> Self {
        LocalStream { inner }
    }

    #[cfg(unix)]
    pub(crate) fn into_either(self) -> either::BlockingStream {
        self.inner
    }

    /// The identity of the process at the other end; a TCP stream has none and fails with
    /// [`io::ErrorKind::Unsupported`].
    ///
    /// See [`PeerCredentials`] for an example.
    pub fn peer_credentials(&self) -> io::Result<PeerCredentials> {
        self.inner.peer_credentials()
    }

    /// The IP address and port of the other end of a TCP stream (feature `tcp`); a local
    /// socket has none and fails with [`io::ErrorKind::Unsupported`].
    ///
    /// ```no_run
    /// let stream = localrpc::ipc::blocking::LocalStream::connect("tcp:127.0.0.1:4000")?;
    /// println!("connected to {}", stream.peer_addr()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// How long a `read` may wait before it fails with [`io::ErrorKind::WouldBlock`] or
    /// [`io::ErrorKind::TimedOut`] (which one depends on the OS, as with std's sockets);
    /// `None` (the default) waits for ever. A zero duration is refused.
    ///
    /// ```no_run
    /// # fn demo(stream: localrpc::ipc::blocking::LocalStream) -> std::io::Result<()> {
    /// use std::time::Duration;
    /// stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    /// # Ok(()) }
    /// ```
    pub fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        if timeout == Some(std::time::Duration::ZERO) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a zero read timeout is not allowed",
            ));
        }
        self.inner.set_read_timeout(timeout)
    }

    /// Splits into halves that can be moved to different threads.
    ///
    /// ```no_run
    /// # fn demo(stream: localrpc::ipc::blocking::LocalStream) -> std::io::Result<()> {
    /// let (mut rx, mut tx) = stream.split()?;
    /// std::thread::spawn(move || std::io::copy(&mut rx, &mut std::io::sink()));
    /// std::io::Write::write_all(&mut tx, b"hello")?;
    /// # Ok(()) }
    /// ```
    pub fn split(self) -> io::Result<(RecvHalf, SendHalf)> {
        let (rx, tx) = self.inner.split()?;
        Ok((RecvHalf { inner: rx }, SendHalf { inner: tx }))
    }
}

/// The receiving half of a blocking [`LocalStream`], from [`LocalStream::split`].
#[derive(Debug)]
pub struct RecvHalf {
    inner: either::BlockingRecvHalf,
}

/// The sending half of a blocking [`LocalStream`], from [`LocalStream::split`].
#[derive(Debug)]
pub struct SendHalf {
    inner: either::BlockingSendHalf,
}

delegate_io! {
    LocalStream: Read, Write;
    RecvHalf: Read;
    SendHalf: Write;
}
