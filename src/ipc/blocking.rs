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
use std::io::{self, IoSlice, IoSliceMut, Read, Write};

pub use super::pipe::blocking::{PipeReceiver, PipeSender, pipe};
use super::{ConnectOptions, Error, ListenerOptions, PeerCredentials};
use crate::{Endpoint, IntoName, os};

/// A blocking listener; see the [module docs](self) for an example.
#[derive(Debug)]
pub struct LocalListener {
    inner: os::BlockingListener,
}

impl LocalListener {
    /// Binds with default [`ListenerOptions`]: owner-only, stale sockets reclaimed.
    ///
    /// See the [module docs](self) for an example.
    pub fn bind(name: impl IntoName) -> Result<LocalListener, Error> {
        ListenerOptions::new().bind_blocking(name)
    }

    pub(crate) fn from_os(inner: os::BlockingListener) -> Self {
        LocalListener { inner }
    }

    /// Blocks until the next client connects.
    ///
    /// See the [module docs](self) for an example.
    pub fn accept(&self) -> io::Result<LocalStream> {
        self.inner.accept().map(LocalStream::from_os)
    }

    /// The real endpoint this listener is bound to.
    ///
    /// See the [module docs](self) for an example.
    pub fn endpoint(&self) -> &Endpoint {
        self.inner.endpoint()
    }
}

/// A blocking stream between two local processes; see the [module docs](self) for an example.
#[derive(Debug)]
pub struct LocalStream {
    inner: os::BlockingStream,
}

impl LocalStream {
    /// Connects with default [`ConnectOptions`].
    ///
    /// See the [module docs](self) for an example.
    pub fn connect(name: impl IntoName) -> Result<LocalStream, Error> {
        ConnectOptions::new().connect_blocking(name)
    }

    pub(crate) fn from_os(inner: os::BlockingStream) -> Self {
        LocalStream { inner }
    }

    /// The identity of the process at the other end.
    ///
    /// See [`PeerCredentials`] for an example.
    pub fn peer_credentials(&self) -> io::Result<PeerCredentials> {
        os::peer_credentials(&self.inner)
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
        let (rx, tx) = os::split_blocking(self.inner)?;
        Ok((RecvHalf { inner: rx }, SendHalf { inner: tx }))
    }
}

/// The receiving half of a blocking [`LocalStream`], from [`LocalStream::split`].
#[derive(Debug)]
pub struct RecvHalf {
    inner: os::BlockingRecvHalf,
}

/// The sending half of a blocking [`LocalStream`], from [`LocalStream::split`].
#[derive(Debug)]
pub struct SendHalf {
    inner: os::BlockingSendHalf,
}

macro_rules! delegate_io {
    ($($ty:ty: $($trait:ident),+;)+) => {$($(delegate_io!(@$trait $ty);)+)+};
    (@Read $ty:ty) => {
        impl Read for $ty {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.inner.read(buf)
            }
            fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
                self.inner.read_vectored(bufs)
            }
        }
    };
    (@Write $ty:ty) => {
        impl Write for $ty {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.inner.write(buf)
            }
            fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
                self.inner.write_vectored(bufs)
            }
            fn flush(&mut self) -> io::Result<()> {
                self.inner.flush()
            }
        }
    };
}

delegate_io! {
    LocalStream: Read, Write;
    RecvHalf: Read;
    SendHalf: Write;
}
