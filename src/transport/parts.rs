//! Frames in two buffers.
use bytes::Bytes;

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
