//! [`Framed`], [`FrameReader`] and [`FrameWriter`]: frames over byte streams.
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};

use super::read::ReadState;
use super::write::WriteState;
use super::{DEFAULT_MAX_FRAME_LEN, FrameError};

/// Bytes buffered by a sink before `poll_ready` makes the caller wait for a flush.
const BACKPRESSURE: usize = 256 * 1024;

/// A duplex byte stream carrying length-prefixed frames: a [`Stream`] of received frames and a
/// [`Sink`] of frames to send.
///
/// Each frame is a 4-byte little-endian length followed by that many bytes. Frames above
/// [`max_frame_len`](Framed::max_frame_len) are refused on send and, if a peer announces one,
/// end the stream with [`FrameError::TooLarge`] before anything is allocated for it. Frames fed
/// to the sink without a flush in between are written together (one `write` for small frames,
/// one vectored write for large ones).
///
/// This crate frames by hand rather than with `tokio_util::codec` so that large payloads are
/// written straight from their `Bytes` with vectored writes instead of being copied into a
/// write buffer, and so that errors stay typed.
///
/// ```
/// use bytes::Bytes;
/// use futures_util::{SinkExt, StreamExt};
/// use localrpc::transport::Framed;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), localrpc::transport::FrameError> {
/// let (a, b) = tokio::io::duplex(1024);
/// let (mut a, mut b) = (Framed::new(a), Framed::new(b));
/// a.send(Bytes::from_static(b"hello")).await?;
/// assert_eq!(b.next().await.unwrap()?, "hello");
/// # Ok(()) }
/// ```
///
/// Any pair of byte streams can be framed, stdin and stdout for instance:
///
/// ```no_run
/// let framed = localrpc::transport::Framed::new(tokio::io::join(tokio::io::stdin(), tokio::io::stdout()));
/// ```
#[derive(Debug)]
pub struct Framed<T> {
    io: T,
    read: ReadState,
    write: WriteState,
}

impl<T> Framed<T> {
    /// Frames `io` with the default limit of 16 MiB.
    ///
    /// See the [type docs](Framed) for an example.
    pub fn new(io: T) -> Self {
        Self::with_max_frame_len(io, DEFAULT_MAX_FRAME_LEN)
    }

    /// Frames `io` with a maximum frame length (capped at `u32::MAX`), applied to frames
    /// sent and received.
    ///
    /// ```
    /// let framed = localrpc::transport::Framed::with_max_frame_len(tokio::io::empty(), 1024);
    /// assert_eq!(framed.max_frame_len(), 1024);
    /// ```
    pub fn with_max_frame_len(io: T, max: usize) -> Self {
        let max = max.min(u32::MAX as usize);
        Framed {
            io,
            read: ReadState::new(max),
            write: WriteState::new(max),
        }
    }

    /// The maximum frame length.
    ///
    /// See [`Framed::with_max_frame_len`] for an example.
    pub fn max_frame_len(&self) -> usize {
        self.read.max()
    }

    /// The underlying stream.
    ///
    /// ```
    /// let framed = localrpc::transport::Framed::new(tokio::io::empty());
    /// let _io: &tokio::io::Empty = framed.get_ref();
    /// ```
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// The underlying stream, mutably. Reading or writing it directly corrupts the framing.
    ///
    /// See [`Framed::get_ref`] for an example.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.io
    }
}

impl<T: AsyncRead + Unpin> Stream for Framed<T> {
    type Item = Result<Bytes, FrameError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.read.poll_next(Pin::new(&mut this.io), cx)
    }
}

impl<T: AsyncWrite + Unpin> Sink<Bytes> for Framed<T> {
    type Error = FrameError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), FrameError>> {
        let this = self.get_mut();
        poll_ready(&mut this.write, Pin::new(&mut this.io), cx)
    }

    fn start_send(self: Pin<&mut Self>, frame: Bytes) -> Result<(), FrameError> {
        self.get_mut().write.push(frame)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), FrameError>> {
        let this = self.get_mut();
        this.write.poll_flush(Pin::new(&mut this.io), cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), FrameError>> {
        let this = self.get_mut();
        poll_close(&mut this.write, Pin::new(&mut this.io), cx)
    }
}

fn poll_ready<W: AsyncWrite + ?Sized>(
    write: &mut WriteState,
    io: Pin<&mut W>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), FrameError>> {
    if write.buffered() >= BACKPRESSURE {
        ready!(write.poll_flush(io, cx))?;
    }
    Poll::Ready(Ok(()))
}

fn poll_close<W: AsyncWrite + ?Sized>(
    write: &mut WriteState,
    mut io: Pin<&mut W>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), FrameError>> {
    ready!(write.poll_flush(io.as_mut(), cx))?;
    ready!(io.poll_shutdown(cx))?;
    Poll::Ready(Ok(()))
}

/// The receiving half of a framed stream: a [`Stream`] of frames over an [`AsyncRead`].
///
/// ```
/// use futures_util::{SinkExt, StreamExt};
/// use localrpc::transport::{FrameReader, FrameWriter};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), localrpc::transport::FrameError> {
/// let (a, b) = tokio::io::duplex(1024);
/// let mut tx = FrameWriter::new(a);
/// let mut rx = FrameReader::new(b);
/// tx.send("one".into()).await?;
/// assert_eq!(rx.next().await.unwrap()?, "one");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FrameReader<R> {
    io: R,
    read: ReadState,
}

impl<R> FrameReader<R> {
    /// Frames `io` with the default limit of 16 MiB.
    ///
    /// See the [type docs](FrameReader) for an example.
    pub fn new(io: R) -> Self {
        Self::with_max_frame_len(io, DEFAULT_MAX_FRAME_LEN)
    }

    /// Frames `io` with a maximum frame length (capped at `u32::MAX`).
    ///
    /// See [`Framed::with_max_frame_len`] for an example.
    pub fn with_max_frame_len(io: R, max: usize) -> Self {
        FrameReader {
            io,
            read: ReadState::new(max.min(u32::MAX as usize)),
        }
    }
    /// The underlying stream.
    ///
    /// See [`Framed::get_ref`] for an example.
    pub fn get_ref(&self) -> &R {
        &self.io
    }

    /// Frames `io`, starting with what an earlier reader of the same stream had read.
    #[cfg(unix)]
    pub(crate) fn resume(io: R, read: ReadState) -> Self {
        FrameReader { io, read }
    }
}

impl<R: AsyncRead + Unpin> Stream for FrameReader<R> {
    type Item = Result<Bytes, FrameError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.read.poll_next(Pin::new(&mut this.io), cx)
    }
}

/// The sending half of a framed stream: a [`Sink`] of frames over an [`AsyncWrite`].
///
/// See [`FrameReader`] for an example.
#[derive(Debug)]
pub struct FrameWriter<W> {
    io: W,
    write: WriteState,
}

impl<W> FrameWriter<W> {
    /// Frames `io` with the default limit of 16 MiB.
    ///
    /// See [`FrameReader`] for an example.
    pub fn new(io: W) -> Self {
        Self::with_max_frame_len(io, DEFAULT_MAX_FRAME_LEN)
    }

    /// Frames `io` with a maximum frame length (capped at `u32::MAX`).
    ///
    /// See [`Framed::with_max_frame_len`] for an example.
    pub fn with_max_frame_len(io: W, max: usize) -> Self {
        FrameWriter {
            io,
            write: WriteState::new(max.min(u32::MAX as usize)),
        }
    }
    /// The underlying stream.
    ///
    /// See [`Framed::get_ref`] for an example.
    pub fn get_ref(&self) -> &W {
        &self.io
    }

    /// Frames `io`, starting with what an earlier writer of the same stream had queued.
    #[cfg(unix)]
    pub(crate) fn resume(io: W, write: WriteState) -> Self {
        FrameWriter { io, write }
    }
}

impl<W> FrameWriter<W> {
    /// Queues a frame made of two buffers without waiting for room (the caller bounds what
    /// it queues), without copying a large `body`.
    pub(crate) fn push_parts(
        &mut self,
        head: &[u8],
        body: super::Payload,
    ) -> Result<(), FrameError> {
        self.write.push_parts(head, body)
    }
}

impl<W: AsyncWrite + Unpin> Sink<Bytes> for FrameWriter<W> {
    type Error = FrameError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), FrameError>> {
        let this = self.get_mut();
        poll_ready(&mut this.write, Pin::new(&mut this.io), cx)
    }

    fn start_send(self: Pin<&mut Self>, frame: Bytes) -> Result<(), FrameError> {
        self.get_mut().write.push(frame)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), FrameError>> {
        let this = self.get_mut();
        this.write.poll_flush(Pin::new(&mut this.io), cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), FrameError>> {
        let this = self.get_mut();
        poll_close(&mut this.write, Pin::new(&mut this.io), cx)
    }
}
