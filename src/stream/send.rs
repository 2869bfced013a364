//! The sending side of a stream: credit ([`SendFlow`]) and the loop that sends items within
//! it, batching the small ones that are ready.
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use bytes::Bytes;

use super::{Streaming, cost};
use crate::Error;
use crate::transport::Parts;
use crate::wire::{self, envelope};

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::Context;

    fn poll_once<F: Future>(fut: Pin<&mut F>) -> Poll<F::Output> {
        let mut cx = Context::from_waker(Waker::noop());
        fut.poll(&mut cx)
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
