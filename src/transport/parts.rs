//! Frames in two buffers, and the writer task the RPC layer runs on each connection.
use bytes::Bytes;
use futures_util::SinkExt;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;

use super::{FrameError, FrameWriter};

/// A frame in two parts: a small head, copied into the write buffer, and a payload that a
/// large message keeps in its own buffer all the way to the vectored write.
#[derive(Debug)]
pub(crate) struct Parts {
    pub(crate) head: Bytes,
    pub(crate) payload: Bytes,
}

impl Parts {
    pub(crate) fn len(&self) -> usize {
        self.head.len() + self.payload.len()
    }

    /// A frame that is all head (a cancel, a go-away, a status).
    pub(crate) fn whole(frame: Bytes) -> Parts {
        Parts {
            head: frame,
            payload: Bytes::new(),
        }
    }
}

/// Writes frames from `rx` until every sender is gone, then closes the stream. Frames queued
/// while a write is in progress go out together in the next one.
pub(crate) async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: FrameWriter<W>,
    mut rx: mpsc::UnboundedReceiver<Parts>,
) -> Result<(), FrameError> {
    while let Some(frame) = rx.recv().await {
        writer.feed_parts(&frame.head, frame.payload).await?;
        while let Ok(frame) = rx.try_recv() {
            writer.feed_parts(&frame.head, frame.payload).await?;
        }
        writer.flush().await?;
    }
    writer.close().await
}
