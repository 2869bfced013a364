//! Streams of items within a call, and their flow control.
//!
//! A method of a service trait can take a [`Streaming<T>`] argument (client streaming), return
//! a [`Streaming<T>`] (server streaming), or both (bidirectional). See [`Streaming`] for the
//! declaration and what each side sees.
//!
//! Each stream has its own credit window in each direction: the receiver grants how many
//! bytes the sender may have outstanding (an item costs its encoded length plus
//! [`ITEM_OVERHEAD`]), and grants more as its consumer takes items. A consumer that stalls
//! stalls only its own stream: other calls and streams on the connection go on, and what the
//! stalled stream buffers stays within its window.
//!
//! The receiver grants credit back once its consumer has taken half the window, and whenever
//! it has taken everything received. Small items that are ready together travel in one
//! frame; a sender low on credit waits until it has a quarter of the window (or the cost of
//! its next item, if larger) before it starts a frame, rather than send frames of an item
//! or two while most of the window is on its way back.
//!
//! The window is credit, not memory set aside: a stream buffers up to its window only while
//! its consumer lags behind. On Unix, each connection's socket is also asked for a send
//! buffer as large as the default window, because the system's default (208 KiB on Linux)
//! would otherwise bound what is on its way sooner than the credit does.
use std::fmt;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;

use crate::Error;
use crate::wire::ItemFrame;

/// The default receive window of a stream, in bytes (see [`ITEM_OVERHEAD`]): 1 MiB, about
/// what HTTP/2 clients built on hyper, such as tonic's, grant a stream. A smaller window keeps
/// less buffered for a consumer that lags behind, and costs a fast stream some of its rate:
/// its sender waits for credit more often (see `benches/README.md`).
pub const DEFAULT_WINDOW: u32 = 1024 * 1024;

/// What an item costs against a window beyond its encoded length, so that even empty items
/// are bounded.
pub const ITEM_OVERHEAD: usize = 16;

/// The smallest window a side can be configured with.
pub(crate) const MIN_WINDOW: u32 = 64;

/// A stream of `T`s in a call: what a streaming method takes or returns.
///
/// Declare streams in a service trait with `Streaming<T>`:
///
/// ```
/// use localrpc::Streaming;
///
/// #[localrpc::service]
/// pub trait Files {
///     /// Server streaming: the client gets the chunks as they come.
///     async fn download(&self, path: String) -> Streaming<Vec<u8>>;
///     /// Client streaming: the server reads the chunks, then answers once.
///     async fn upload(&self, path: String, chunks: Streaming<Vec<u8>>) -> u64;
///     /// Both ways: every line sent comes back upper-cased.
///     async fn shout(&self, lines: Streaming<String>) -> Streaming<String>;
/// }
/// ```
///
/// The sending side builds one from any [`Stream`] (or iterator) of `T` with
/// [`Streaming::new`] (or [`Streaming::from_iter`]). The receiving side polls it as a
/// `Stream<Item = Result<T, localrpc::Error>>`, and the three ways a stream can finish are
/// told apart:
///
/// - `None`: the sender's stream ended; every item arrived.
/// - `Some(Ok(item))`: an item. Declare `Streaming<Result<T, E>>` to send application errors
///   as items; the stream goes on after them if the sender's does.
/// - `Some(Err(e))`, then `None`: the stream was aborted, and `e` says why:
///   [`Error::ConnectionLost`] (the peer is gone), [`Error::DeadlineExceeded`],
///   [`Error::Cancelled`] (the client cancelled the call), [`Error::ServerPanicked`], or the
///   errors a unary call can get before it starts (unknown method, refused by a layer, ...).
///
/// Dropping a `Streaming` before its end cancels the other side promptly: a client that
/// drops a response stream cancels the call (the server drops the handler and its stream);
/// a handler that drops a request stream tells the client to stop sending it (the client
/// drops the stream it was sending from).
///
/// A method that returns a stream returns at once on the client; errors before the first
/// item (unknown method, refused) come as the stream's first item. The call's deadline, if
/// any, covers the whole stream.
///
/// ```
/// # use localrpc::Streaming;
/// # use futures_util::StreamExt;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut numbers = Streaming::from_iter(1..=3);
/// let mut seen = Vec::new();
/// while let Some(item) = numbers.next().await {
///     seen.push(item.unwrap());
/// }
/// assert_eq!(seen, [1, 2, 3]);
/// # }
/// ```
///
/// `examples/streaming.rs` runs a download with progress and a log tail across two
/// processes.
pub struct Streaming<T> {
    source: Source<T>,
    /// The receive side's accounting, for streams that come from the peer.
    flow: Option<Arc<RecvFlow>>,
}

/// Where a stream's items come from.
enum Source<T> {
    /// A stream made on this side.
    Local(Pin<Box<dyn Stream<Item = Result<T, Error>> + Send>>),
    /// Items from the peer, decoded as they are taken.
    Remote {
        incoming: Box<Incoming>,
        decode: Decode<T>,
        /// Kept alive as long as the stream.
        guard: Option<Box<dyn Send>>,
    },
    /// Items of another type, encoded as they are taken.
    Encoded(Box<dyn EncodeItems<T>>),
}

/// Decodes an item received: the bytes it lies in, and where.
pub(crate) type Decode<T> = fn(&Bytes, Range<usize>) -> Result<T, Error>;

/// A source of items that can also encode them straight into a sender's buffer.
pub(crate) trait EncodeItems<T>: Send {
    /// The next item, encoded on its own.
    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, Error>>>;
    /// Appends the next item's encoding to `buf`; `buf` is as it was unless `Ok`.
    fn poll_encode(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<Option<Result<(), Error>>>;
    /// Encodes the items that are ready into `frame`, one after another, closing each that
    /// `budget` admits: one call for a whole batch, not one per item. `Ok` once the budget
    /// is spent, or an item it does not admit is left open in the frame; `Pending` once no
    /// item is ready; the end or an error of the items as they come.
    fn poll_encode_batch(
        &mut self,
        cx: &mut Context<'_>,
        frame: &mut ItemFrame,
        budget: &mut Budget,
    ) -> Poll<Option<Result<(), Error>>>;
}

impl<T> Streaming<T> {
    /// A stream that sends the items of `items`.
    ///
    /// See the [type docs](Streaming) for an example.
    pub fn new<S>(items: S) -> Self
    where
        S: Stream<Item = T> + Send + 'static,
        T: 'static,
    {
        use futures_util::StreamExt;
        Streaming::from_results(items.map(Ok), None)
    }

    /// A stream that sends the items of an iterator.
    ///
    /// See the [type docs](Streaming) for an example.
    #[expect(
        clippy::should_implement_trait,
        reason = "FromIterator would need `T: Send` items collected first; this is lazy"
    )]
    pub fn from_iter<I>(items: I) -> Self
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
        T: 'static,
    {
        Streaming::new(futures_util::stream::iter(items))
    }

    /// A stream with no items.
    ///
    /// ```
    /// let none: localrpc::Streaming<u8> = localrpc::Streaming::empty();
    /// # drop(none);
    /// ```
    pub fn empty() -> Self
    where
        T: Send + 'static,
    {
        Streaming::from_iter(std::iter::empty())
    }

    /// Bytes received from the peer and not yet taken from this stream (items cost their
    /// encoded length plus [`ITEM_OVERHEAD`]); at most the receive window, unless a single
    /// item is larger than the window. Always 0 for a stream made on this side.
    ///
    /// ```
    /// assert_eq!(localrpc::Streaming::from_iter([1u8]).buffered_bytes(), 0);
    /// ```
    pub fn buffered_bytes(&self) -> usize {
        match &self.source {
            Source::Remote { incoming, .. } => incoming.buffered(),
            _ => self.flow.as_ref().map_or(0, |f| f.buffered()),
        }
    }

    pub(crate) fn from_results<S>(items: S, flow: Option<Arc<RecvFlow>>) -> Self
    where
        S: Stream<Item = Result<T, Error>> + Send + 'static,
    {
        Streaming {
            source: Source::Local(Box::pin(items)),
            flow,
        }
    }

    pub(crate) fn encoded(items: Box<dyn EncodeItems<T>>) -> Self {
        Streaming {
            source: Source::Encoded(items),
            flow: None,
        }
    }

    /// Keeps `guard` alive as long as the stream.
    pub(crate) fn keep<G: Send + 'static>(mut self, guard: G) -> Self
    where
        T: 'static,
    {
        match &mut self.source {
            Source::Remote { guard: slot, .. } if slot.is_none() => {
                *slot = Some(Box::new(guard));
                self
            }
            _ => self.map_items(move |item| {
                let _ = &guard;
                Ok(item)
            }),
        }
    }

    /// Maps every item, keeping the receive accounting.
    pub(crate) fn map_items<U: 'static>(
        mut self,
        mut f: impl FnMut(T) -> Result<U, Error> + Send + 'static,
    ) -> Streaming<U>
    where
        T: 'static,
    {
        use futures_util::StreamExt;
        let flow = self.flow.take();
        Streaming::from_results(self.map(move |item| item.and_then(&mut f)), flow)
    }
}

impl Streaming<Bytes> {
    /// The same items, decoded with `decode`: where they lie in the frame that carried them
    /// for items from the peer, else one by one.
    pub(crate) fn decode_with<U: 'static>(self, decode: Decode<U>) -> Streaming<U> {
        match self.source {
            Source::Remote {
                incoming, guard, ..
            } => Streaming {
                source: Source::Remote {
                    incoming,
                    decode,
                    guard,
                },
                flow: self.flow,
            },
            source => Streaming {
                source,
                flow: self.flow,
            }
            .map_items(move |item| decode(&item, 0..item.len())),
        }
    }

    /// The source of a stream of typed items, which encodes a batch of them at a time.
    pub(crate) fn encoder(&mut self) -> Option<&mut dyn EncodeItems<Bytes>> {
        match &mut self.source {
            Source::Encoded(items) => Some(&mut **items),
            _ => None,
        }
    }

    /// The next item for a sender's `frame`. A typed item is encoded into it in place and
    /// left open (`Ok(None)`); an item that is bytes already comes back as it is
    /// (`Ok(Some(item))`), so that a large one goes out without a copy.
    pub(crate) fn poll_encode(
        &mut self,
        cx: &mut Context<'_>,
        frame: &mut ItemFrame,
    ) -> Poll<Option<Result<Option<Bytes>, Error>>> {
        match &mut self.source {
            Source::Encoded(items) => {
                let next = items.poll_encode(cx, frame.open_item());
                if !matches!(next, Poll::Ready(Some(Ok(())))) {
                    frame.discard_item();
                }
                next.map(|item| item.map(|item| item.map(|()| None)))
            }
            _ => Pin::new(self)
                .poll_next(cx)
                .map(|item| item.map(|item| item.map(Some))),
        }
    }
}

impl<T> Stream for Streaming<T> {
    type Item = Result<T, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match &mut self.source {
            Source::Local(items) => items.as_mut().poll_next(cx),
            Source::Remote {
                incoming, decode, ..
            } => incoming.poll_item(cx, *decode),
            Source::Encoded(items) => items.poll_item(cx),
        }
    }
}

impl<T> fmt::Debug for Streaming<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Streaming")
            .field("item", &std::any::type_name::<T>())
            .field("buffered_bytes", &self.buffered_bytes())
            .finish()
    }
}

/// What an item of `len` encoded bytes costs against a window.
#[inline]
pub(crate) fn cost(len: usize) -> usize {
    len + ITEM_OVERHEAD
}

mod credit;
mod receive;
mod send;

pub(crate) use credit::{CreditSlot, SendFlow};
use receive::Incoming;
pub(crate) use receive::{Inbox, Link, RecvFlow, credit_frame, incoming};
pub(crate) use send::{Budget, FrameSink, end_frame, send_stream};
