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
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use futures_core::Stream;
use tokio::sync::mpsc;

use crate::Error;
use crate::transport::Parts;
use crate::wire::{self, envelope};

/// The default receive window of a stream, in bytes (see [`ITEM_OVERHEAD`]).
pub const DEFAULT_WINDOW: u32 = 256 * 1024;

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
    inner: Pin<Box<dyn Stream<Item = Result<T, Error>> + Send>>,
    /// The receive side's accounting, for streams that come from the peer.
    flow: Option<Arc<RecvFlow>>,
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
        Streaming {
            inner: Box::pin(items.map(Ok)),
            flow: None,
        }
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
        self.flow
            .as_ref()
            .map_or(0, |f| f.buffered.load(Ordering::Relaxed))
    }

    pub(crate) fn from_results<S>(items: S, flow: Option<Arc<RecvFlow>>) -> Self
    where
        S: Stream<Item = Result<T, Error>> + Send + 'static,
    {
        Streaming {
            inner: Box::pin(items),
            flow,
        }
    }

    /// Keeps `guard` alive as long as the stream.
    pub(crate) fn keep<G: Send + 'static>(self, guard: G) -> Self
    where
        T: 'static,
    {
        self.map_items(move |item| {
            let _ = &guard;
            Ok(item)
        })
    }

    /// Maps every item, keeping the receive accounting.
    pub(crate) fn map_items<U: 'static>(
        self,
        mut f: impl FnMut(T) -> Result<U, Error> + Send + 'static,
    ) -> Streaming<U>
    where
        T: 'static,
    {
        use futures_util::StreamExt;
        Streaming {
            inner: Box::pin(self.inner.map(move |item| item.and_then(&mut f))),
            flow: self.flow,
        }
    }
}

impl<T> Stream for Streaming<T> {
    type Item = Result<T, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
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

/// What an item costs against a window.
pub(crate) fn cost(item: &Bytes) -> usize {
    item.len() + ITEM_OVERHEAD
}

/// What the receiver of a stream hears from the connection.
#[derive(Debug)]
pub(crate) enum Event {
    /// Items, in order.
    Items(Vec<Bytes>),
    /// The end; an error if the stream was aborted.
    End(Option<Error>),
}

/// The receive side's accounting: bytes buffered and the window.
#[derive(Debug)]
pub(crate) struct RecvFlow {
    buffered: AtomicUsize,
    window: u32,
}

/// How the receiver of a stream talks back to the sender.
pub(crate) trait Link: Send + Sync + 'static {
    /// Grants the sender `bytes` more credit.
    fn grant(&self, id: u64, bytes: u32);
    /// The receiver dropped the stream before its end.
    fn abandon(&self, id: u64);
}

/// The connection's end of a stream being received: where its frames go.
#[derive(Debug)]
pub(crate) struct Inbox {
    tx: mpsc::UnboundedSender<Event>,
    flow: Arc<RecvFlow>,
}

impl Inbox {
    /// Whether a sender that keeps to its credit could have sent `items` now: they fit in
    /// the window with what is buffered, or a single item comes alone.
    pub(crate) fn admits(&self, items: &[Bytes]) -> bool {
        let buffered = self.flow.buffered.load(Ordering::Relaxed);
        let cost: usize = items.iter().map(cost).sum();
        (buffered == 0 && items.len() <= 1) || buffered + cost <= self.flow.window as usize
    }

    pub(crate) fn items(&self, items: Vec<Bytes>) {
        let cost: usize = items.iter().map(cost).sum();
        self.flow.buffered.fetch_add(cost, Ordering::Relaxed);
        let _ = self.tx.send(Event::Items(items));
    }

    #[cfg(test)]
    fn item(&self, item: Bytes) {
        self.items(vec![item]);
    }

    pub(crate) fn end(self, error: Option<Error>) {
        let _ = self.tx.send(Event::End(error));
    }
}

/// A stream being received, with its inbox; `deadline` aborts it with `DeadlineExceeded`.
pub(crate) fn incoming(
    id: u64,
    window: u32,
    link: Arc<dyn Link>,
    deadline: Option<Instant>,
) -> (Inbox, Streaming<Bytes>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let flow = Arc::new(RecvFlow {
        buffered: AtomicUsize::new(0),
        window,
    });
    let stream = Incoming {
        id,
        rx,
        batch: Vec::new().into_iter(),
        flow: flow.clone(),
        link: Some(link),
        unreported: 0,
        deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d.into()))),
        done: false,
    };
    (
        Inbox {
            tx,
            flow: flow.clone(),
        },
        Streaming::from_results(stream, Some(flow)),
    )
}

struct Incoming {
    id: u64,
    rx: mpsc::UnboundedReceiver<Event>,
    /// The rest of the last batch received.
    batch: std::vec::IntoIter<Bytes>,
    flow: Arc<RecvFlow>,
    /// Let go of once the stream is over, so that a finished stream does not keep the
    /// connection open.
    link: Option<Arc<dyn Link>>,
    /// Bytes taken since the last grant.
    unreported: usize,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    done: bool,
}

impl Stream for Incoming {
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(item) = self.batch.next() {
            return Poll::Ready(Some(Ok(self.take(item))));
        }
        if self.done {
            return Poll::Ready(None);
        }
        let event = match self.rx.poll_recv(cx) {
            Poll::Ready(event) => event,
            Poll::Pending => {
                // Caught up: give back whatever was taken, so that a sender waiting to send
                // an item larger than its credit left is not stuck below the half-window mark.
                if self.unreported > 0 {
                    let grant = u32::try_from(self.unreported).unwrap_or(u32::MAX);
                    self.unreported = 0;
                    if let Some(link) = &self.link {
                        link.grant(self.id, grant);
                    }
                }
                if let Some(deadline) = &mut self.deadline
                    && deadline.as_mut().poll(cx).is_ready()
                {
                    self.finish();
                    if let Some(link) = self.link.take() {
                        link.abandon(self.id);
                    }
                    return Poll::Ready(Some(Err(Error::DeadlineExceeded)));
                }
                return Poll::Pending;
            }
        };
        match event {
            Some(Event::Items(items)) => {
                self.batch = items.into_iter();
                match self.batch.next() {
                    Some(item) => Poll::Ready(Some(Ok(self.take(item)))),
                    None => {
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    }
                }
            }
            Some(Event::End(error)) => {
                self.finish();
                Poll::Ready(error.map(Err))
            }
            // The connection's side went away without an end: the call is over.
            None => {
                self.finish();
                Poll::Ready(Some(Err(Error::Cancelled)))
            }
        }
    }
}

impl Incoming {
    /// Accounts for an item the consumer takes, granting credit back every half window.
    fn take(&mut self, item: Bytes) -> Bytes {
        let cost = cost(&item);
        self.flow.buffered.fetch_sub(cost, Ordering::Relaxed);
        self.unreported += cost;
        if self.unreported >= (self.flow.window / 2) as usize {
            let grant = u32::try_from(self.unreported).unwrap_or(u32::MAX);
            self.unreported = 0;
            if let Some(link) = &self.link {
                link.grant(self.id, grant);
            }
        }
        item
    }

    /// The stream is over: nothing more to tell the sender.
    fn finish(&mut self) {
        self.done = true;
        self.link = None;
        self.deadline = None;
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if let Some(link) = self.link.take() {
            link.abandon(self.id);
        }
    }
}

/// The send side's credit.
#[derive(Debug, Default)]
pub(crate) struct SendFlow {
    state: Mutex<SendState>,
}

#[derive(Debug, Default)]
struct SendState {
    available: i64,
    window: i64,
    stopped: bool,
    waker: Option<Waker>,
}

impl SendFlow {
    /// A flow with `initial` credit (0: wait for the receiver's first grant).
    pub(crate) fn new(initial: u32) -> Arc<SendFlow> {
        let flow = SendFlow::default();
        if initial > 0 {
            flow.grant(initial);
        }
        Arc::new(flow)
    }

    pub(crate) fn grant(&self, bytes: u32) {
        let mut state = self.state.lock().unwrap();
        if state.window == 0 {
            state.window = i64::from(bytes);
        }
        // A receiver never has reason to grant beyond its window: a peer that does is not
        // allowed to make this side queue more.
        state.available = (state.available + i64::from(bytes)).min(state.window);
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }

    /// The receiver wants no more items (or the call is over).
    pub(crate) fn stop(&self) {
        let mut state = self.state.lock().unwrap();
        state.stopped = true;
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }

    /// Takes the credit for an item of `cost` if it fits now (never for one that would need
    /// the whole window).
    fn try_reserve(&self, cost: usize) -> bool {
        let cost = i64::try_from(cost).unwrap_or(i64::MAX);
        let mut state = self.state.lock().unwrap();
        if !state.stopped && cost <= state.available {
            state.available -= cost;
            return true;
        }
        false
    }

    /// Waits until an item of `cost` may go and takes its credit; `false` once stopped.
    pub(crate) async fn reserve(&self, cost: usize) -> bool {
        let cost = i64::try_from(cost).unwrap_or(i64::MAX);
        std::future::poll_fn(|cx| {
            let mut state = self.state.lock().unwrap();
            if state.stopped {
                return Poll::Ready(false);
            }
            let whole_window = state.window > 0 && state.available >= state.window;
            if cost <= state.available || whole_window {
                state.available -= cost;
                return Poll::Ready(true);
            }
            state.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

/// A sender's credit as a table of calls holds it, to route grants to: the call is over
/// when the entry goes, and dropping it stops the sender.
#[derive(Debug)]
pub(crate) struct CreditSlot(Arc<SendFlow>);

impl CreditSlot {
    pub(crate) fn new(flow: &Arc<SendFlow>) -> CreditSlot {
        CreditSlot(flow.clone())
    }
}

impl std::ops::Deref for CreditSlot {
    type Target = SendFlow;

    fn deref(&self) -> &SendFlow {
        &self.0
    }
}

impl Drop for CreditSlot {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Where a sender's frames go.
pub(crate) trait FrameSink: Send {
    /// Sends a frame; `false` if the connection is gone.
    fn send(&mut self, frame: Parts) -> impl Future<Output = bool> + Send;
}

/// Items up to this size are batched with others into one frame; larger ones travel in a
/// frame of their own, without a copy.
const BATCH_ITEM: usize = 4096;
/// The most bytes one batch carries.
const BATCH_BYTES: usize = 64 * 1024;
/// The envelope of a frame of stream items, at most: tags and lengths.
const FRAME_OVERHEAD: usize = 32;

/// Sends `items` as call `id`'s stream within the credit `flow` allows, then its end. Items
/// that are ready at once, small, and within the credit go together in one frame.
pub(crate) async fn send_stream(
    id: u64,
    mut items: Streaming<Bytes>,
    flow: &SendFlow,
    sink: &mut impl FrameSink,
    max_frame_len: usize,
) {
    use futures_util::{FutureExt, StreamExt};
    // Room for the envelope around the items.
    let max_item = max_frame_len.saturating_sub(FRAME_OVERHEAD);
    let batch_bytes = BATCH_BYTES.min(max_item);
    let mut held: Option<Bytes> = None;
    let mut end: Option<Option<wire::Status>> = None;
    loop {
        let first = match held.take() {
            Some(item) => item,
            None => match items.next().await {
                Some(Ok(item)) => item,
                Some(Err(e)) => {
                    sink.send(end_frame(id, Some(abort_status(e)))).await;
                    return;
                }
                None => {
                    sink.send(end_frame(id, None)).await;
                    return;
                }
            },
        };
        if first.len() > max_item {
            let status = wire::Status::new(
                wire::Code::FrameTooLarge,
                format!(
                    "a stream item of {} bytes exceeds the frame limit of {max_frame_len} bytes",
                    first.len()
                ),
            );
            sink.send(end_frame(id, Some(status))).await;
            return;
        }
        if !flow.reserve(cost(&first)).await {
            return;
        }
        if first.len() > BATCH_ITEM {
            if !sink.send(wire::stream_item_parts(id, first)).await {
                return;
            }
            continue;
        }
        let mut batch = vec![first];
        let mut bytes = cost(&batch[0]);
        // More items that are ready now, small, and within the credit left and the batch.
        while bytes < batch_bytes {
            match items.next().now_or_never() {
                Some(Some(Ok(item)))
                    if item.len() <= BATCH_ITEM
                        && bytes + cost(&item) <= batch_bytes
                        && flow.try_reserve(cost(&item)) =>
                {
                    bytes += cost(&item);
                    batch.push(item);
                }
                Some(Some(Ok(item))) => {
                    held = Some(item);
                    break;
                }
                Some(Some(Err(e))) => {
                    end = Some(Some(abort_status(e)));
                    break;
                }
                Some(None) => {
                    end = Some(None);
                    break;
                }
                None => break,
            }
        }
        let frame = if batch.len() == 1 {
            wire::stream_item_parts(id, batch.pop().expect("one item"))
        } else {
            wire::stream_items_frame(id, &batch)
        };
        if !sink.send(frame).await {
            return;
        }
        if let Some(error) = end {
            sink.send(end_frame(id, error)).await;
            return;
        }
    }
}

/// How a sender's stream that failed ends on the wire.
fn abort_status(e: Error) -> wire::Status {
    match e {
        Error::ServerPanicked { message } => wire::Status::new(wire::Code::Panicked, message),
        e => wire::Status::new(wire::Code::Internal, e.to_string()),
    }
}

pub(crate) fn end_frame(id: u64, error: Option<wire::Status>) -> Parts {
    Parts::whole(wire::encode_envelope(envelope::Kind::StreamEnd(
        wire::StreamEnd { call_id: id, error },
    )))
}

pub(crate) fn credit_frame(id: u64, bytes: u32) -> Parts {
    Parts::whole(wire::encode_envelope(envelope::Kind::Credit(
        wire::Credit { call_id: id, bytes },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn poll_once<F: Future>(fut: Pin<&mut F>) -> Poll<F::Output> {
        let mut cx = Context::from_waker(Waker::noop());
        fut.poll(&mut cx)
    }

    #[derive(Default)]
    struct Recorder {
        grants: Mutex<Vec<u32>>,
        abandoned: Mutex<Vec<u64>>,
    }

    impl Link for Recorder {
        fn grant(&self, _id: u64, bytes: u32) {
            self.grants.lock().unwrap().push(bytes);
        }
        fn abandon(&self, id: u64) {
            self.abandoned.lock().unwrap().push(id);
        }
    }

    #[tokio::test]
    async fn credit_returns_as_items_are_taken_and_buffered_bytes_are_counted() {
        let link = Arc::new(Recorder::default());
        let (inbox, mut stream) = incoming(7, 64, link.clone(), None);
        for _ in 0..4 {
            inbox.item(Bytes::from_static(&[1; 8])); // 24 each
        }
        assert_eq!(stream.buffered_bytes(), 96);
        stream.next().await.unwrap().unwrap();
        assert_eq!(stream.buffered_bytes(), 72);
        assert!(
            link.grants.lock().unwrap().is_empty(),
            "24 < half the window"
        );
        stream.next().await.unwrap().unwrap();
        assert_eq!(*link.grants.lock().unwrap(), [48]);
        inbox.end(Some(Error::DeadlineExceeded));
        stream.next().await.unwrap().unwrap();
        stream.next().await.unwrap().unwrap();
        assert!(matches!(
            stream.next().await,
            Some(Err(Error::DeadlineExceeded))
        ));
        assert!(stream.next().await.is_none());
        drop(stream);
        assert!(link.abandoned.lock().unwrap().is_empty(), "it had ended");
    }

    #[tokio::test]
    async fn dropping_before_the_end_abandons_and_a_vanished_inbox_is_an_abort() {
        let link = Arc::new(Recorder::default());
        let (inbox, stream) = incoming(3, 1024, link.clone(), None);
        drop(stream);
        assert_eq!(*link.abandoned.lock().unwrap(), [3]);
        drop(inbox);
        let (inbox, mut stream) = incoming(4, 1024, link.clone(), None);
        drop(inbox);
        assert!(matches!(stream.next().await, Some(Err(Error::Cancelled))));
    }

    #[tokio::test]
    async fn the_sender_waits_for_credit_and_a_large_item_goes_alone() {
        let flow = SendFlow::new(100);
        assert!(flow.reserve(60).await);
        // 40 left: a 60 must wait.
        let waiting = flow.reserve(60);
        tokio::pin!(waiting);
        assert!(poll_once(waiting.as_mut()).is_pending());
        flow.grant(60);
        assert!(waiting.await);
        // Only with the whole window back may an item larger than it go.
        flow.grant(40);
        let big = flow.reserve(500);
        tokio::pin!(big);
        assert!(poll_once(big.as_mut()).is_pending());
        flow.grant(20);
        assert!(big.await);
        flow.stop();
        assert!(!flow.reserve(1).await);
    }
}
