//! Frames over byte streams, and the [`Transport`] abstraction the RPC layer runs on.
//!
//! A transport is anything that is a [`Stream`] of received frames and a [`Sink`] of frames to
//! send; [`Transport`] is implemented for all such types. This module provides:
//!
//! - [`Framed`] over any `AsyncRead + AsyncWrite`: a [`LocalStream`](crate::ipc::LocalStream)
//!   (a local socket, or TCP with the `tcp` feature), a socketpair, or stdin and stdout joined
//!   with [`tokio::io::join`];
//! - [`FrameReader`] and [`FrameWriter`] for split halves;
//! - [`memory`], an in-process pair for unit tests.
//!
//! ```no_run
//! use futures_util::{SinkExt, StreamExt};
//! use localrpc::{ipc::LocalStream, transport::Framed};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut conn = Framed::new(LocalStream::connect("myapp.echo").await?);
//! conn.send("ping".into()).await?;
//! let reply = conn.next().await.transpose()?;
//! # Ok(()) }
//! ```
mod error;
mod framed;
mod parts;
mod read;
mod write;

use bytes::Bytes;
use futures_core::Stream;
use futures_sink::Sink;

pub use error::FrameError;
pub use framed::{FrameReader, FrameWriter, Framed};
pub(crate) use parts::{INLINE, Parts, Payload, Segment};
#[cfg(unix)]
pub(crate) use read::ReadState;
#[cfg(unix)]
pub(crate) use write::WriteState;

/// The default maximum frame length: 16 MiB.
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// Length of the frame header: a little-endian `u32`.
const HEADER_LEN: usize = 4;

/// A bidirectional channel of frames: a [`Stream`] of received frames and a [`Sink`] of
/// frames to send. Implemented for every type that is both.
///
/// ```
/// use localrpc::transport::{Framed, Transport};
///
/// fn takes_transport(_: impl Transport) {}
/// let (a, _b) = localrpc::transport::memory();
/// takes_transport(a);
/// ```
pub trait Transport:
    Stream<Item = Result<Bytes, FrameError>> + Sink<Bytes, Error = FrameError> + Send + Unpin + 'static
{
}

impl<T> Transport for T where
    T: Stream<Item = Result<Bytes, FrameError>>
        + Sink<Bytes, Error = FrameError>
        + Send
        + Unpin
        + 'static
{
}

/// Two connected in-memory transports, for tests. They use the same framing as real
/// sockets, over [`tokio::io::duplex`].
///
/// ```
/// use futures_util::{SinkExt, StreamExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), localrpc::transport::FrameError> {
/// let (mut a, mut b) = localrpc::transport::memory();
/// a.send("hi".into()).await?;
/// assert_eq!(b.next().await.unwrap()?, "hi");
/// # Ok(()) }
/// ```
pub fn memory() -> (
    Framed<tokio::io::DuplexStream>,
    Framed<tokio::io::DuplexStream>,
) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    (Framed::new(a), Framed::new(b))
}

#[cfg(test)]
mod tests;
