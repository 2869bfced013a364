//! One stream type over both ends of a pipe instance, and its halves.
use std::io;
use std::os::windows::io::{AsRawHandle, RawHandle};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::windows::named_pipe::{NamedPipeClient, NamedPipeServer};

use super::cred::PipeEnd;

/// A connected pipe: an instance a listener accepted, or the client end a connect opened.
#[derive(Debug)]
pub(crate) enum Stream {
    Server(NamedPipeServer),
    Client(NamedPipeClient),
}

pub(crate) type RecvHalf = tokio::io::ReadHalf<Stream>;
pub(crate) type SendHalf = tokio::io::WriteHalf<Stream>;

/// Named pipes have no native split; tokio's lock-based halves are cheap here because a
/// pipe handle is full duplex and each poll holds the lock only briefly.
pub(crate) fn split(stream: Stream) -> (RecvHalf, SendHalf) {
    tokio::io::split(stream)
}

/// Runs `$body` with `$pipe` bound to whichever end `$stream` holds.
macro_rules! either {
    ($stream:expr, $pipe:ident => $body:expr) => {
        match $stream {
            Stream::Server($pipe) => $body,
            Stream::Client($pipe) => $body,
        }
    };
}

impl Stream {
    pub(crate) async fn readable(&self) -> io::Result<()> {
        either!(self, p => p.readable().await)
    }

    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        either!(self, p => p.try_read(buf))
    }

    pub(crate) async fn writable(&self) -> io::Result<()> {
        either!(self, p => p.writable().await)
    }

    pub(crate) fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        either!(self, p => p.try_write(buf))
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        either!(self.get_mut(), p => Pin::new(p).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        either!(self.get_mut(), p => Pin::new(p).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        either!(self.get_mut(), p => Pin::new(p).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        either!(self, p => p.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(self.get_mut(), p => Pin::new(p).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        either!(self.get_mut(), p => Pin::new(p).poll_shutdown(cx))
    }
}

impl AsRawHandle for Stream {
    fn as_raw_handle(&self) -> RawHandle {
        either!(self, p => p.as_raw_handle())
    }
}

impl PipeEnd for Stream {
    fn is_server(&self) -> bool {
        matches!(self, Stream::Server(_))
    }
}
