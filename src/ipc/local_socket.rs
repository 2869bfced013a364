//! Tokio local sockets: Unix domain sockets or Windows named pipes (or, with the `tcp` feature,
//! TCP) behind one type.
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{ConnectOptions, Error, ListenerOptions, PeerCredentials, either};
use crate::{Endpoint, IntoName, os};

/// A Tokio listener for local connections.
///
/// ```no_run
/// use localrpc::ipc::LocalListener;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = LocalListener::bind("myapp.echo")?;
/// loop {
///     let mut stream = listener.accept().await?;
///     tokio::spawn(async move {
///         let mut buf = [0u8; 1024];
///         while let Ok(n @ 1..) = stream.read(&mut buf).await {
///             if stream.write_all(&buf[..n]).await.is_err() { break }
///         }
///     });
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct LocalListener {
    inner: either::Listener,
}

impl LocalListener {
    /// Binds with default [`ListenerOptions`]: owner-only, stale sockets reclaimed.
    ///
    /// Must be called inside a Tokio runtime (it registers with the runtime's reactor);
    /// [`blocking::LocalListener`](super::blocking::LocalListener) needs none.
    ///
    /// See the [type docs](LocalListener) for an example.
    pub fn bind(name: impl IntoName) -> Result<LocalListener, Error> {
        ListenerOptions::new().bind(name)
    }

    pub(crate) fn from_either(inner: either::Listener) -> Self {
        LocalListener { inner }
    }

    /// Waits for the next client.
    ///
    /// See the [type docs](LocalListener) for an example.
    pub async fn accept(&self) -> io::Result<LocalStream> {
        self.inner.accept().await.map(LocalStream::from_either)
    }

    /// The real endpoint this listener is bound to; for TCP the address the OS picked when
    /// the name asked for port `0`.
    ///
    /// See [`ListenerOptions`] for an example.
    pub fn endpoint(&self) -> &Endpoint {
        self.inner.endpoint()
    }
}

/// A Tokio stream between two local processes; [`AsyncRead`] + [`AsyncWrite`].
///
/// ```no_run
/// use localrpc::ipc::LocalStream;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let mut stream = LocalStream::connect("myapp.echo").await?;
/// stream.write_all(b"ping").await?;
/// let mut buf = [0u8; 4];
/// stream.read_exact(&mut buf).await?;
/// println!("server is pid {:?}", stream.peer_credentials()?.pid());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LocalStream {
    inner: either::Stream,
}

impl LocalStream {
    /// Connects with default [`ConnectOptions`].
    ///
    /// See the [type docs](LocalStream) for an example.
    pub async fn connect(name: impl IntoName) -> Result<LocalStream, Error> {
        ConnectOptions::new().connect(name).await
    }

    /// A stream made outside bind and connect, such as one end of a socket pair.
    pub(crate) fn from_os(inner: os::Stream) -> Self {
        LocalStream {
            inner: either::Stream::Local(inner),
        }
    }

    pub(crate) fn from_either(inner: either::Stream) -> Self {
        LocalStream { inner }
    }

    /// The identity of the process at the other end: the client for a stream a listener
    /// accepted, the server for a stream that connected.
    ///
    /// A TCP stream has none: this fails with [`io::ErrorKind::Unsupported`].
    ///
    /// See the [type docs](LocalStream) for an example.
    pub fn peer_credentials(&self) -> io::Result<PeerCredentials> {
        self.inner.peer_credentials()
    }

    /// The IP address and port of the other end of a TCP stream (feature `tcp`); a local
    /// socket has none and fails with [`io::ErrorKind::Unsupported`].
    ///
    /// An address is not an identity: TCP has no authentication (see the crate docs).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let stream = localrpc::ipc::LocalStream::connect("tcp:127.0.0.1:4000").await?;
    /// println!("connected to {}", stream.peer_addr()?);
    /// # Ok(()) }
    /// ```
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// Splits into halves that can be used from different tasks.
    ///
    /// ```no_run
    /// # async fn demo(stream: localrpc::ipc::LocalStream) {
    /// let (mut rx, mut tx) = stream.into_split();
    /// tokio::spawn(async move { tokio::io::copy(&mut rx, &mut tokio::io::sink()).await });
    /// # }
    /// ```
    pub fn into_split(self) -> (RecvHalf, SendHalf) {
        let (rx, tx) = self.inner.into_split();
        (RecvHalf { inner: rx }, SendHalf { inner: tx })
    }
}

/// The receiving half of a [`LocalStream`], from [`LocalStream::into_split`].
#[derive(Debug)]
pub struct RecvHalf {
    inner: either::RecvHalf,
}

/// The sending half of a [`LocalStream`], from [`LocalStream::into_split`].
#[derive(Debug)]
pub struct SendHalf {
    inner: either::SendHalf,
}

macro_rules! delegate_async_io {
    ($($ty:ty: $($trait:ident),+;)+) => {$($(delegate_async_io!(@$trait $ty);)+)+};
    (@AsyncRead $ty:ty) => {
        impl AsyncRead for $ty {
            fn poll_read(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                Pin::new(&mut self.inner).poll_read(cx, buf)
            }
        }
    };
    (@AsyncWrite $ty:ty) => {
        impl AsyncWrite for $ty {
            fn poll_write(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.inner).poll_write(cx, buf)
            }
            fn poll_write_vectored(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
            }
            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }
            fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut self.inner).poll_flush(cx)
            }
            fn poll_shutdown(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<io::Result<()>> {
                Pin::new(&mut self.inner).poll_shutdown(cx)
            }
        }
    };
}

delegate_async_io! {
    LocalStream: AsyncRead, AsyncWrite;
    RecvHalf: AsyncRead;
    SendHalf: AsyncWrite;
}
