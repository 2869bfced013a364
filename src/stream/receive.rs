//! The receiving side of a stream: the connection puts items in an [`Inbox`]; the consumer
//! takes them from the [`Streaming`] it is paired with, which grants credit back.
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Decode, ITEM_OVERHEAD, Source, Streaming};
use crate::Error;
use crate::transport::Parts;
use crate::wire::{self, ItemBatch, envelope};

/// What the receiver of a stream hears from the connection.
#[derive(Debug)]
pub(crate) enum Event {
    /// Items, in order.
    Items(ItemBatch),
    /// The end; an error if the stream was aborted.
    End(Option<Error>),
}

/// The receive side's accounting: bytes buffered and the window.
#[derive(Debug)]
pub(crate) struct RecvFlow {
    buffered: AtomicUsize,
    window: u32,
}

impl RecvFlow {
    /// Bytes received and not yet taken.
    pub(crate) fn buffered(&self) -> usize {
        self.buffered.load(Ordering::Relaxed)
    }
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
    pub(crate) fn admits(&self, items: &ItemBatch) -> bool {
        let buffered = self.flow.buffered.load(Ordering::Relaxed);
        (buffered == 0 && items.count() <= 1) || buffered + cost(items) <= self.flow.window as usize
    }

    pub(crate) fn items(&self, items: ItemBatch) {
        self.flow
            .buffered
            .fetch_add(cost(&items), Ordering::Relaxed);
        let _ = self.tx.send(Event::Items(items));
    }

    #[cfg(test)]
    fn item(&self, item: &[u8]) {
        self.items(ItemBatch::of(&[Bytes::copy_from_slice(item)]));
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
        batch: ItemBatch::default(),
        pos: 0,
        flow: flow.clone(),
        link: Some(link),
        untold: 0,
        unreported: 0,
        deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d.into()))),
        done: false,
    };
    let stream = Streaming {
        source: Source::Remote {
            incoming: Box::new(stream),
            decode: |body, range| Ok(body.slice(range)),
            guard: None,
        },
        flow: Some(flow.clone()),
    };
    (Inbox { tx, flow }, stream)
}

/// What a batch costs against a window.
fn cost(items: &ItemBatch) -> usize {
    items.len() + items.count() * ITEM_OVERHEAD
}

/// A stream being received: the consumer's end of an [`Inbox`].
pub(crate) struct Incoming {
    id: u64,
    rx: mpsc::UnboundedReceiver<Event>,
    /// The last batch received, and where in it the next item is.
    batch: ItemBatch,
    pos: usize,
    flow: Arc<RecvFlow>,
    /// Let go of once the stream is over, so that a finished stream does not keep the
    /// connection open.
    link: Option<Arc<dyn Link>>,
    /// Bytes taken and not yet counted off [`RecvFlow::buffered`] (counted per batch, and
    /// always before a grant, so the sender never sees more room than there is).
    untold: usize,
    /// Bytes taken since the last grant.
    unreported: usize,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    done: bool,
}

impl Incoming {
    /// Bytes received and not yet taken.
    pub(crate) fn buffered(&self) -> usize {
        self.flow.buffered().saturating_sub(self.untold)
    }

    /// The next item, decoded with `decode`.
    #[inline]
    pub(crate) fn poll_item<T>(
        &mut self,
        cx: &mut Context<'_>,
        decode: Decode<T>,
    ) -> Poll<Option<Result<T, Error>>> {
        // Most items need nothing but counting: that is done here, inline, and the rare work
        // (a grant, the end of a batch, the next batch) is left to a function of its own.
        match self.take_counted_item() {
            Some(range) => Poll::Ready(Some(decode(self.batch.body(), range))),
            None => self.poll_other_item(cx, decode),
        }
    }

    /// [`poll_item`](Self::poll_item) for an item that needs more than counting, or when
    /// the batch at hand is used up.
    #[inline(never)]
    fn poll_other_item<T>(
        &mut self,
        cx: &mut Context<'_>,
        decode: Decode<T>,
    ) -> Poll<Option<Result<T, Error>>> {
        loop {
            if let Some(range) = self.take_item() {
                return Poll::Ready(Some(decode(self.batch.body(), range)));
            }
            match self.poll_event(cx) {
                Poll::Ready(Some(Ok(batch))) => {
                    self.batch = batch;
                    self.pos = 0;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Takes the next item if counting it is all there is to do: a small item, not the
    /// last of its batch (which tells what was taken), short of the next grant. The same
    /// as [`take_item`](Self::take_item) for such an item.
    #[inline]
    fn take_counted_item(&mut self) -> Option<Range<usize>> {
        let range = self.batch.small_item_at(self.pos)?;
        let cost = super::cost(range.end - range.start);
        if range.end >= self.batch.body().len() || self.unreported + cost >= self.grant_at() {
            return None;
        }
        self.pos = range.end;
        self.untold += cost;
        self.unreported += cost;
        Some(range)
    }

    /// Takes the next item of the batch at hand, if any: where it lies in the batch's body.
    fn take_item(&mut self) -> Option<Range<usize>> {
        let range = self.batch.next_item(&mut self.pos)?;
        self.take(range.end - range.start);
        if self.pos >= self.batch.body().len() {
            self.tell();
        }
        Some(range)
    }

    /// The next batch, or how the stream ended.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<ItemBatch, Error>>> {
        self.tell();
        if self.done {
            return Poll::Ready(None);
        }
        let event = match self.rx.poll_recv(cx) {
            Poll::Ready(event) => event,
            Poll::Pending => {
                // Caught up: give back whatever was taken, so that a sender waiting to send
                // an item larger than its credit left is not stuck below the half-window mark.
                if self.unreported > 0 {
                    self.grant();
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
            Some(Event::Items(items)) => Poll::Ready(Some(Ok(items))),
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

    /// Accounts for an item of `len` bytes the consumer takes, granting credit back every
    /// half window.
    fn take(&mut self, len: usize) {
        let cost = super::cost(len);
        self.untold += cost;
        self.unreported += cost;
        if self.unreported >= self.grant_at() {
            self.grant();
        }
    }

    /// How many bytes taken call for a grant: half the window.
    fn grant_at(&self) -> usize {
        (self.flow.window / 2) as usize
    }

    /// Counts the bytes taken off what is buffered.
    fn tell(&mut self) {
        if self.untold > 0 {
            self.flow.buffered.fetch_sub(self.untold, Ordering::Relaxed);
            self.untold = 0;
        }
    }

    /// Gives the sender back the credit of what was taken.
    fn grant(&mut self) {
        self.tell();
        let grant = u32::try_from(self.unreported).unwrap_or(u32::MAX);
        self.unreported = 0;
        if let Some(link) = &self.link {
            link.grant(self.id, grant);
        }
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

/// The frame that grants the sender of call `id`'s stream `bytes` more credit.
pub(crate) fn credit_frame(id: u64, bytes: u32) -> Parts {
    Parts::whole(wire::encode_envelope(envelope::Kind::Credit(
        wire::Credit { call_id: id, bytes },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::sync::Mutex;

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
    async fn buffered_bytes_count_each_item_taken_from_a_batch() {
        let link = Arc::new(Recorder::default());
        let (inbox, mut stream) = incoming(7, 1024, link.clone(), None);
        inbox.items(ItemBatch::of(&[const { Bytes::from_static(&[1; 8]) }; 4])); // 24 each
        for left in [72, 48, 24, 0] {
            stream.next().await.unwrap().unwrap();
            assert_eq!(stream.buffered_bytes(), left);
        }
        assert!(
            link.grants.lock().unwrap().is_empty(),
            "96 < half the window"
        );
    }

    #[tokio::test]
    async fn items_of_every_size_in_a_batch_are_accounted_alike() {
        let link = Arc::new(Recorder::default());
        let (inbox, mut stream) = incoming(7, 128, link.clone(), None);
        // 24, 146 (a length of two bytes), 24 and 24: the second reaches half the window.
        let items = [&[1; 8][..], &[2; 130], &[3; 8], &[4; 8]].map(Bytes::copy_from_slice);
        inbox.items(ItemBatch::of(&items));
        assert_eq!(stream.buffered_bytes(), 218);
        for (item, left) in items.iter().zip([194, 48, 24, 0]) {
            assert_eq!(&stream.next().await.unwrap().unwrap(), item);
            assert_eq!(stream.buffered_bytes(), left);
        }
        assert_eq!(*link.grants.lock().unwrap(), [170]);
    }

    #[tokio::test]
    async fn a_small_item_that_reaches_half_the_window_grants_at_once() {
        let link = Arc::new(Recorder::default());
        let (inbox, mut stream) = incoming(7, 96, link.clone(), None);
        // 24, 24 (half the window: a grant, mid-batch), 146 (another) and 24 (the end).
        let items = [&[1; 8][..], &[2; 8], &[3; 130], &[4; 8]].map(Bytes::copy_from_slice);
        inbox.items(ItemBatch::of(&items));
        for (item, left) in items.iter().zip([194, 170, 24, 0]) {
            assert_eq!(&stream.next().await.unwrap().unwrap(), item);
            assert_eq!(stream.buffered_bytes(), left);
        }
        assert_eq!(*link.grants.lock().unwrap(), [48, 146]);
    }

    #[tokio::test]
    async fn credit_returns_as_items_are_taken_and_buffered_bytes_are_counted() {
        let link = Arc::new(Recorder::default());
        let (inbox, mut stream) = incoming(7, 64, link.clone(), None);
        for _ in 0..4 {
            inbox.item(&[1; 8]); // 24 each
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
}
