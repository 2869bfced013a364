//! The streams of a connection's calls on the server: sending a handler's response stream,
//! and the way a handler's request stream talks back to the client.
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::catch::CatchUnwind;
use crate::stream::{self, FrameSink, Link, SendFlow};
use crate::transport::Parts;
use crate::wire::{self, Code, envelope};

/// Sends a handler's response stream within its deadline. A panic in the stream, or in
/// dropping it, ends it as [`Code::Panicked`] and leaves the connection serving.
pub(super) async fn send_response_stream(
    id: u64,
    items: crate::Streaming<Bytes>,
    flow: Arc<SendFlow>,
    mut out: ServerSink,
    deadline: Option<Instant>,
    max_frame_len: usize,
) {
    let end_tx = out.0.clone();
    let send = async move {
        let send = stream::send_stream(id, items, &flow, &mut out, max_frame_len);
        match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline.into(), send).await.is_ok(),
            None => {
                send.await;
                true
            }
        }
    };
    let status = match CatchUnwind(send).await {
        Ok(true) => return,
        Ok(false) => wire::Status::new(Code::DeadlineExceeded, "deadline exceeded"),
        Err(panic) => {
            tracing::error!(call_id = id, panic = %panic, "response stream panicked");
            wire::Status::new(Code::Panicked, panic)
        }
    };
    let _ = end_tx.send(stream::end_frame(id, Some(status)));
}

/// Where a call's stream frames go: the driver, which writes them.
pub(super) struct ServerSink(pub(super) mpsc::UnboundedSender<Parts>);

impl FrameSink for ServerSink {
    async fn send(&mut self, frame: Parts) -> bool {
        self.0.send(frame).is_ok()
    }
}

/// How a handler's request stream talks back to the client.
pub(super) struct ServerLink(pub(super) mpsc::UnboundedSender<Parts>);

impl Link for ServerLink {
    fn grant(&self, id: u64, bytes: u32) {
        let _ = self.0.send(stream::credit_frame(id, bytes));
    }

    fn abandon(&self, id: u64) {
        let _ = self.0.send(stop_sending_frame(id));
    }
}

/// Tells the client to stop sending call `id`'s request stream.
pub(super) fn stop_sending_frame(id: u64) -> Parts {
    Parts::whole(wire::encode_envelope(envelope::Kind::StopSending(
        wire::StopSending { call_id: id },
    )))
}
