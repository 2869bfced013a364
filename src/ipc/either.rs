//! The back end behind the public `ipc` types: a local socket (from `os`) or, with the `tcp`
//! feature, a TCP socket (from `tcp`). Each enum forwards I/O to the one it holds; the choice
//! is made once, by the name, when binding or connecting.
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[cfg(feature = "tcp")]
use super::tcp;
use super::{ConnectOptions, Error, ListenerOptions, PeerCredentials};
#[cfg(feature = "tcp")]
use crate::name::Repr;
use crate::{Endpoint, Name, os};

/// Runs `$body` with `$inner` bound to whichever socket `$value` (of type `Self`) holds.
macro_rules! either {
    ($value:expr, $inner:ident => $body:expr) => {
        match $value {
            Self::Local($inner) => $body,
            #[cfg(feature = "tcp")]
            Self::Tcp($inner) => $body,
        }
    };
}

/// Declares an enum over a local and a TCP socket type, with the I/O traits listed.
macro_rules! either_enum {
    ($($name:ident($local:ty, $tcp:ty): $($trait:ident),*;)+) => {$(
        #[derive(Debug)]
        pub(crate) enum $name {
            Local($local),
            #[cfg(feature = "tcp")]
            Tcp($tcp),
        }
        $(either_enum!(@$trait $name);)*
    )+};
    (@AsyncRead $name:ident) => {
        impl AsyncRead for $name {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                either!(self.get_mut(), s => Pin::new(s).poll_read(cx, buf))
            }
        }
    };
    (@AsyncWrite $name:ident) => {
        impl AsyncWrite for $name {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                either!(self.get_mut(), s => Pin::new(s).poll_write(cx, buf))
            }
            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                either!(self.get_mut(), s => Pin::new(s).poll_write_vectored(cx, bufs))
            }
            fn is_write_vectored(&self) -> bool {
                either!(self, s => s.is_write_vectored())
            }
            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                either!(self.get_mut(), s => Pin::new(s).poll_flush(cx))
            }
            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                either!(self.get_mut(), s => Pin::new(s).poll_shutdown(cx))
            }
        }
    };
    (@Read $name:ident) => {
        impl Read for $name {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                either!(self, s => s.read(buf))
            }
            fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
                either!(self, s => s.read_vectored(bufs))
            }
        }
    };
    (@Write $name:ident) => {
        impl Write for $name {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                either!(self, s => s.write(buf))
            }
            fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
                either!(self, s => s.write_vectored(bufs))
            }
            fn flush(&mut self) -> io::Result<()> {
                either!(self, s => s.flush())
            }
        }
    };
}

either_enum! {
    Listener(os::Listener, tcp::Listener): ;
    Stream(os::Stream, tcp::Stream): AsyncRead, AsyncWrite;
    RecvHalf(os::RecvHalf, tcp::RecvHalf): AsyncRead;
    SendHalf(os::SendHalf, tcp::SendHalf): AsyncWrite;
    BlockingListener(os::BlockingListener, tcp::BlockingListener): ;
    BlockingStream(os::BlockingStream, tcp::BlockingStream): Read, Write;
    BlockingRecvHalf(os::BlockingRecvHalf, tcp::BlockingStream): Read;
    BlockingSendHalf(os::BlockingSendHalf, tcp::BlockingStream): Write;
}

/// The error `peer_addr` gives for a local socket.
fn no_peer_addr() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "local sockets have no peer IP address (only TCP connections do)",
    )
}

impl Listener {
    pub(crate) fn bind(name: &Name, opts: &ListenerOptions) -> Result<Listener, Error> {
        #[cfg(feature = "tcp")]
        if let Repr::Tcp(tcp) = name.repr() {
            return tcp::Listener::bind(tcp).map(Listener::Tcp);
        }
        os::Listener::bind(name, opts).map(Listener::Local)
    }

    pub(crate) async fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Local(l) => l.accept().await.map(Stream::Local),
            #[cfg(feature = "tcp")]
            Listener::Tcp(l) => l.accept().await.map(Stream::Tcp),
        }
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        either!(self, l => l.endpoint())
    }
}

impl Stream {
    pub(crate) async fn connect(name: &Name, opts: &ConnectOptions) -> Result<Stream, Error> {
        #[cfg(feature = "tcp")]
        if let Repr::Tcp(tcp) = name.repr() {
            return tcp::connect(tcp).await.map(Stream::Tcp);
        }
        os::connect(name, opts).await.map(Stream::Local)
    }

    pub(crate) fn peer_credentials(&self) -> io::Result<PeerCredentials> {
        match self {
            Stream::Local(s) => os::peer_credentials(s),
            #[cfg(feature = "tcp")]
            Stream::Tcp(_) => Err(tcp::no_credentials()),
        }
    }

    pub(crate) fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Stream::Local(_) => Err(no_peer_addr()),
            #[cfg(feature = "tcp")]
            Stream::Tcp(s) => s.peer_addr(),
        }
    }

    pub(crate) fn into_split(self) -> (RecvHalf, SendHalf) {
        match self {
            Stream::Local(s) => {
                let (rx, tx) = os::split(s);
                (RecvHalf::Local(rx), SendHalf::Local(tx))
            }
            #[cfg(feature = "tcp")]
            Stream::Tcp(s) => {
                let (rx, tx) = s.into_split();
                (RecvHalf::Tcp(rx), SendHalf::Tcp(tx))
            }
        }
    }
}

impl BlockingListener {
    pub(crate) fn bind(name: &Name, opts: &ListenerOptions) -> Result<BlockingListener, Error> {
        #[cfg(feature = "tcp")]
        if let Repr::Tcp(tcp) = name.repr() {
            return tcp::BlockingListener::bind(tcp).map(BlockingListener::Tcp);
        }
        os::BlockingListener::bind(name, opts).map(BlockingListener::Local)
    }

    pub(crate) fn accept(&self) -> io::Result<BlockingStream> {
        match self {
            BlockingListener::Local(l) => l.accept().map(BlockingStream::Local),
            #[cfg(feature = "tcp")]
            BlockingListener::Tcp(l) => l.accept().map(BlockingStream::Tcp),
        }
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        either!(self, l => l.endpoint())
    }
}

impl BlockingStream {
    pub(crate) fn connect(name: &Name, opts: &ConnectOptions) -> Result<BlockingStream, Error> {
        #[cfg(feature = "tcp")]
        if let Repr::Tcp(tcp) = name.repr() {
            return tcp::connect_blocking(tcp).map(BlockingStream::Tcp);
        }
        os::connect_blocking(name, opts).map(BlockingStream::Local)
    }

    pub(crate) fn peer_credentials(&self) -> io::Result<PeerCredentials> {
        match self {
            BlockingStream::Local(s) => os::peer_credentials(s),
            #[cfg(feature = "tcp")]
            BlockingStream::Tcp(_) => Err(tcp::no_credentials()),
        }
    }

    pub(crate) fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        either!(self, s => s.set_read_timeout(timeout))
    }

    /// Reads (blocking) into memory that need not be initialized.
    #[cfg(unix)]
    pub(crate) fn recv_uninit(&self, buf: &mut [std::mem::MaybeUninit<u8>]) -> io::Result<usize> {
        either!(self, s => os::recv_uninit(s, buf))
    }

    /// Writes without waiting (the socket stays in blocking mode for reads): `WouldBlock`
    /// if there is no room for any of `bufs`.
    #[cfg(unix)]
    pub(crate) fn send_now(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        either!(self, s => os::send_now(s, bufs))
    }

    /// The same connection, registered with the current runtime and made non-blocking.
    #[cfg(unix)]
    pub(crate) fn into_async(self) -> io::Result<Stream> {
        match self {
            BlockingStream::Local(s) => os::into_async(s).map(Stream::Local),
            #[cfg(feature = "tcp")]
            BlockingStream::Tcp(s) => {
                s.set_nonblocking(true)?;
                tokio::net::TcpStream::from_std(s).map(Stream::Tcp)
            }
        }
    }

    pub(crate) fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            BlockingStream::Local(_) => Err(no_peer_addr()),
            #[cfg(feature = "tcp")]
            BlockingStream::Tcp(s) => s.peer_addr(),
        }
    }

    pub(crate) fn split(self) -> io::Result<(BlockingRecvHalf, BlockingSendHalf)> {
        match self {
            BlockingStream::Local(s) => {
                let (rx, tx) = os::split_blocking(s)?;
                Ok((BlockingRecvHalf::Local(rx), BlockingSendHalf::Local(tx)))
            }
            #[cfg(feature = "tcp")]
            BlockingStream::Tcp(s) => Ok((
                BlockingRecvHalf::Tcp(s.try_clone()?),
                BlockingSendHalf::Tcp(s),
            )),
        }
    }
}
