//! The loop that sends a stream's items within its credit ([`SendFlow`]), batching the small
//! ones that are ready into frames.
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;

use super::{SendFlow, Streaming, cost};
use crate::Error;
use crate::transport::Parts;
use crate::wire::{self, ItemFrame, envelope};

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
const _: () = assert!(
    BATCH_ITEM <= ItemFrame::MAX_ITEM,
    "batched items have room for their length"
);

/// Sends `items` as call `id`'s stream within the credit `flow` allows, then its end. Items
/// that are ready at once, small, and within the credit are encoded together into one frame.
/// A panic in the stream ends it with [`wire::Code::Panicked`], after the items before it.
pub(crate) async fn send_stream(
    id: u64,
    mut items: Streaming<Bytes>,
    flow: &SendFlow,
    sink: &mut impl FrameSink,
    max_frame_len: usize,
) {
    // Room for the envelope around the items.
    let max_item = max_frame_len.saturating_sub(FRAME_OVERHEAD);
    let mut batcher = Batcher {
        id,
        max_item,
        batch_bytes: BATCH_BYTES.min(max_item),
        frame: None,
        held: None,
        end: None,
    };
    loop {
        // The first item of a frame: waited for, then its credit.
        let first = match batcher.held.take() {
            Some(item) => Pulled::Held(item),
            None => std::future::poll_fn(|cx| batcher.poll_first(cx, &mut items)).await,
        };
        let len = match &first {
            Pulled::Held(item) => item.len(),
            Pulled::Open(len) => *len,
            Pulled::End => break,
        };
        if len > batcher.max_item {
            let status = wire::Status::new(
                wire::Code::FrameTooLarge,
                format!(
                    "a stream item of {len} bytes exceeds the frame limit of {max_frame_len} bytes"
                ),
            );
            sink.send(end_frame(id, Some(status))).await;
            return;
        }
        if !flow.reserve(cost(len)).await {
            return;
        }
        let frame = batcher.frame.get_or_insert_with(|| ItemFrame::new(id));
        if len > BATCH_ITEM {
            let item = match first {
                Pulled::Held(item) => item,
                _ => frame.take_item(),
            };
            if !sink.send(wire::stream_item_parts(id, item)).await {
                return;
            }
            continue;
        }
        match first {
            Pulled::Held(item) => frame.push(&item),
            _ => frame.close_item(),
        }
        // More items that are ready now, small, and within the credit left and the batch.
        let bytes = cost(len);
        std::future::poll_fn(|cx| {
            batcher.gather(cx, &mut items, flow, bytes);
            Poll::Ready(())
        })
        .await;
        let frame = batcher.frame.take().expect("a frame with an item").finish();
        if !sink.send(frame).await {
            return;
        }
        if batcher.end.is_some() && batcher.held.is_none() {
            break;
        }
    }
    sink.send(end_frame(id, batcher.end.flatten())).await;
}

/// The first item of a frame, once there is one.
enum Pulled {
    /// Encoded in the frame, still open, of this length.
    Open(usize),
    /// Already bytes: held from the last frame, or from a stream of bytes.
    Held(Bytes),
    /// No more: [`Batcher::end`] says how the stream ended.
    End,
}

/// The state of [`send_stream`] between frames.
struct Batcher {
    id: u64,
    max_item: usize,
    batch_bytes: usize,
    /// The frame being filled.
    frame: Option<ItemFrame>,
    /// An item pulled that did not fit the last frame.
    held: Option<Bytes>,
    /// How the stream ended, once it has.
    end: Option<Option<wire::Status>>,
}

impl Batcher {
    /// Pulls the first item of a frame into it.
    fn poll_first(&mut self, cx: &mut Context<'_>, items: &mut Streaming<Bytes>) -> Poll<Pulled> {
        if self.end.is_some() {
            return Poll::Ready(Pulled::End);
        }
        let frame = self.frame.get_or_insert_with(|| ItemFrame::new(self.id));
        match catch_unwind(AssertUnwindSafe(|| items.poll_encode(cx, frame))) {
            Ok(Poll::Ready(Some(Ok(None)))) => Poll::Ready(Pulled::Open(frame.open_len())),
            Ok(Poll::Ready(Some(Ok(Some(item))))) => Poll::Ready(Pulled::Held(item)),
            Ok(Poll::Pending) => Poll::Pending,
            outcome => {
                frame.discard_item();
                self.end = Some(ended(self.id, outcome));
                Poll::Ready(Pulled::End)
            }
        }
    }

    /// Adds to the frame the items that are ready, small, and fit the batch's `bytes` and the
    /// credit; an item pulled that does not fit is held for the next frame.
    fn gather(
        &mut self,
        cx: &mut Context<'_>,
        items: &mut Streaming<Bytes>,
        flow: &SendFlow,
        bytes: usize,
    ) {
        let frame = self.frame.as_mut().expect("a frame");
        // The credit is taken once for the batch and what is left given back after.
        let mut budget = Budget {
            bytes,
            batch_bytes: self.batch_bytes,
            credit: flow.take_all(),
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            if let Some(encoder) = items.encoder() {
                // Typed items: the whole batch in one call.
                return match encoder.poll_encode_batch(cx, frame, &mut budget) {
                    Poll::Ready(Some(Ok(()))) => {
                        if frame.is_open() {
                            self.held = Some(frame.take_item());
                        }
                        Poll::Pending
                    }
                    outcome => outcome.map(|item| item.map(|item| item.map(|()| None))),
                };
            }
            // Items that are bytes already, one at a time.
            while budget.has_room() {
                match Pin::new(&mut *items).poll_next(cx) {
                    Poll::Ready(Some(Ok(item))) if item.len() <= BATCH_ITEM => {
                        frame.open_item().extend_from_slice(&item);
                    }
                    Poll::Ready(Some(Ok(item))) => {
                        self.held = Some(item);
                        break;
                    }
                    outcome => return outcome.map(|item| item.map(|item| item.map(Some))),
                }
                if !budget.admit(frame) {
                    self.held = Some(frame.take_item());
                    break;
                }
            }
            Poll::Pending
        }));
        frame.discard_item();
        flow.give_back(budget.credit);
        match outcome {
            Ok(Poll::Pending) => {}
            outcome => self.end = Some(ended(self.id, outcome)),
        }
    }
}

/// What a batch of items may still take: bytes of the frame, and credit.
#[derive(Debug)]
pub(crate) struct Budget {
    /// What the frame's items cost so far.
    bytes: usize,
    /// What a frame's items may cost at most.
    batch_bytes: usize,
    /// Credit taken for the batch and not spent yet.
    credit: usize,
}

impl Budget {
    /// Whether another item may be tried.
    #[inline]
    pub(crate) fn has_room(&self) -> bool {
        self.bytes < self.batch_bytes
    }

    /// Closes the item open in `frame` and pays for it, if it is small and fits the batch
    /// and the credit; else leaves it open and returns `false`.
    #[inline]
    pub(crate) fn admit(&mut self, frame: &mut ItemFrame) -> bool {
        let len = frame.open_len();
        let cost = cost(len);
        if len > BATCH_ITEM || self.bytes + cost > self.batch_bytes || cost > self.credit {
            return false;
        }
        frame.close_item();
        if frame.count() == 2 {
            // More than one item after all: room for a whole batch, once.
            reserve_batch(frame, self.batch_bytes);
        }
        self.bytes += cost;
        self.credit -= cost;
        true
    }
}

/// Makes room for a batch in `frame`: once a frame, so out of line.
#[cold]
fn reserve_batch(frame: &mut ItemFrame, bytes: usize) {
    frame.reserve(bytes);
}

/// How a stream ends after `outcome` of polling it: `None` for its end, else an abort.
fn ended<V>(
    id: u64,
    outcome: std::thread::Result<Poll<Option<Result<V, Error>>>>,
) -> Option<wire::Status> {
    match outcome {
        Ok(Poll::Ready(None)) => None,
        Ok(Poll::Ready(Some(Err(e)))) => Some(abort_status(e)),
        Ok(_) => unreachable!("only an end or an error ends a stream"),
        Err(panic) => {
            let message = crate::server::panic_message(panic.as_ref());
            tracing::error!(call_id = id, panic = %message, "a stream being sent panicked");
            Some(wire::Status::new(wire::Code::Panicked, message))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Keeps the frames sent.
    #[derive(Default)]
    struct Frames(Vec<Parts>);

    impl FrameSink for Frames {
        async fn send(&mut self, frame: Parts) -> bool {
            self.0.push(frame);
            true
        }
    }

    #[tokio::test]
    async fn small_items_share_a_frame_and_a_large_one_goes_from_its_own_buffer() {
        let large = Bytes::from(vec![7u8; 10_000]);
        let small = |s: &'static [u8]| Bytes::from_static(s);
        let items = vec![small(b"a"), small(b"b"), large.clone(), small(b"c")];
        let flow = SendFlow::new(1 << 20);
        let mut sink = Frames::default();
        send_stream(5, Streaming::from_iter(items), &flow, &mut sink, 1 << 20).await;
        let [first, alone, last, end] = &sink.0[..] else {
            panic!("expected 4 frames, got {}", sink.0.len());
        };
        let items_of = |parts: &Parts| {
            let frame: Bytes = [&parts.head[..], &parts.payload.join()[..]].concat().into();
            let (id, batch) = wire::stream_items(&frame).expect("a frame of items");
            assert_eq!(id, 5);
            batch.count()
        };
        assert_eq!(items_of(first), 2);
        assert_eq!(items_of(alone), 1);
        assert_eq!(
            alone.payload.join().as_ptr(),
            large.as_ptr(),
            "the large item was copied"
        );
        assert_eq!(items_of(last), 1);
        assert_eq!(end.head, end_frame(5, None).head);
    }

    /// A receiver that takes every frame at once and grants back what its items cost.
    struct Granting {
        flow: Arc<SendFlow>,
        /// Each frame's items, as they came.
        frames: Vec<Vec<Bytes>>,
        ended: bool,
    }

    impl FrameSink for Granting {
        async fn send(&mut self, parts: Parts) -> bool {
            let frame: Bytes = [&parts.head[..], &parts.payload.join()[..]].concat().into();
            let Some((_, batch)) = wire::stream_items(&frame) else {
                assert_eq!(parts.head, end_frame(9, None).head, "an end without error");
                self.ended = true;
                return true;
            };
            let mut pos = 0;
            let items: Vec<Bytes> = std::iter::from_fn(|| batch.next_item(&mut pos))
                .map(|range| batch.body().slice(range))
                .collect();
            let spent: usize = items.iter().map(|item| cost(item.len())).sum();
            self.flow.grant(u32::try_from(spent).unwrap());
            self.frames.push(items);
            true
        }
    }

    #[tokio::test]
    async fn typed_items_are_batched_within_the_credit_and_none_is_lost_or_reordered() {
        // 31 bytes encoded each; the window takes 5 of them. Item 100 is larger than the
        // window and than a batched item may be.
        let window = 5 * cost(31);
        let items: Vec<Vec<u8>> = (0..200u8)
            .map(|i| vec![i; if i == 100 { 5000 } else { 30 }])
            .collect();
        let flow = SendFlow::new(u32::try_from(window).unwrap());
        let mut sink = Granting {
            flow: flow.clone(),
            frames: Vec::new(),
            ended: false,
        };
        let typed = crate::__private::encode_stream(Streaming::from_iter(items.clone()));
        send_stream(9, typed, &flow, &mut sink, 1 << 20).await;
        assert!(sink.ended);
        for frame in &sink.frames {
            let spent: usize = frame.iter().map(|item| cost(item.len())).sum();
            assert!(
                spent <= window || frame.len() == 1,
                "a frame of {} items spent {spent} of a window of {window}",
                frame.len()
            );
        }
        assert!(
            sink.frames.iter().any(|frame| frame.len() == 5),
            "small items share frames"
        );
        let got: Vec<Vec<u8>> = sink
            .frames
            .iter()
            .flatten()
            .map(|item| crate::codec::postcard::decode(item).unwrap())
            .collect();
        assert_eq!(got, items);
    }

    /// Items `0..n` of 30 bytes each; once, at item `pause`, not ready yet (it wakes itself).
    struct Pausing {
        next: u8,
        n: u8,
        pause: u8,
        paused: bool,
    }

    impl Stream for Pausing {
        type Item = Vec<u8>;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Vec<u8>>> {
            if self.next == self.pause && !self.paused {
                self.paused = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if self.next == self.n {
                return Poll::Ready(None);
            }
            self.next += 1;
            Poll::Ready(Some(vec![self.next - 1; 30]))
        }
    }

    #[tokio::test]
    async fn a_typed_stream_not_ready_ends_its_batch_and_unspent_credit_comes_back() {
        let window = 1 << 20;
        let flow = SendFlow::new(window);
        let mut sink = Granting {
            flow: flow.clone(),
            frames: Vec::new(),
            ended: false,
        };
        let items = Pausing {
            next: 0,
            n: 20,
            pause: 7,
            paused: false,
        };
        let typed = crate::__private::encode_stream(Streaming::new(items));
        send_stream(9, typed, &flow, &mut sink, 1 << 20).await;
        assert!(sink.ended);
        let sizes: Vec<usize> = sink.frames.iter().map(Vec::len).collect();
        assert_eq!(sizes, [7, 13], "a batch ends where the stream is not ready");
        // Every frame's cost was granted back; what the batches took and did not spend must
        // have come back too.
        assert_eq!(flow.take_all(), window as usize);
    }
}
