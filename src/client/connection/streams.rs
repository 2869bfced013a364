//! How a call's streams use the connection: the receiver of a response stream talks back
//! through it, and a request stream's items go out through its shared writer.
use std::sync::Arc;

use super::Connection;
use crate::stream::{self, FrameSink, Link};
use crate::transport::Parts;

/// The connection as the receiver of a response stream talks back through it.
pub(super) struct ConnLink(pub(super) Arc<Connection>);

impl Link for ConnLink {
    fn grant(&self, id: u64, bytes: u32) {
        self.0.write_later(stream::credit_frame(id, bytes));
    }

    fn abandon(&self, id: u64) {
        self.0.cancel(id);
    }
}

/// Where a request stream's items go: the connection's shared writer.
pub(crate) struct ClientSink(pub(crate) Arc<Connection>);

impl FrameSink for ClientSink {
    async fn send(&mut self, frame: Parts) -> bool {
        if self.0.closed.load(std::sync::atomic::Ordering::Acquire) {
            return false;
        }
        self.0.write_now(frame).await;
        true
    }
}
