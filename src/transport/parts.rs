//! Frames in pieces.
use bytes::{Bytes, BytesMut};

/// A frame in two parts: a small head, copied into the write buffer, and a payload that a
/// large message keeps in its own buffers all the way to the vectored write.
#[derive(Debug)]
pub(crate) struct Parts {
    pub(crate) head: Bytes,
    pub(crate) payload: Payload,
}

impl Parts {
    pub(crate) fn len(&self) -> usize {
        self.head.len() + self.payload.len()
    }

    /// A frame that is all head (a cancel, a go-away, a status).
    pub(crate) fn whole(frame: Bytes) -> Parts {
        Parts {
            head: frame,
            payload: Payload::default(),
        }
    }
}

/// An encoded message in one or more pieces, in order. The codec writes into the first and
/// starts a new piece when it meets a large [`Blob`](crate::codec::Blob): the blob's buffer
/// becomes a piece of its own instead of being copied, and the writer hands every piece to
/// one vectored write.
#[derive(Debug, Clone, Default)]
pub(crate) struct Payload {
    first: Bytes,
    rest: Vec<Bytes>,
}

impl Payload {
    /// Pieces as the encoder left them: empty pieces are dropped.
    pub(crate) fn from_pieces(pieces: impl IntoIterator<Item = Bytes>) -> Payload {
        let mut pieces = pieces.into_iter().filter(|p| !p.is_empty());
        Payload {
            first: pieces.next().unwrap_or_default(),
            rest: pieces.collect(),
        }
    }

    /// The whole length.
    pub(crate) fn len(&self) -> usize {
        self.first.len() + self.rest.iter().map(Bytes::len).sum::<usize>()
    }

    /// The payload as one buffer, if it is one.
    pub(crate) fn as_whole(&self) -> Option<&Bytes> {
        self.rest.is_empty().then_some(&self.first)
    }

    /// The payload as one buffer: copied together if it is in pieces.
    pub(crate) fn join(&self) -> Bytes {
        match self.as_whole() {
            Some(whole) => whole.clone(),
            None => {
                let mut buf = BytesMut::with_capacity(self.len());
                for piece in self.pieces() {
                    buf.extend_from_slice(piece);
                }
                buf.freeze()
            }
        }
    }

    /// The pieces, in order.
    pub(crate) fn pieces(&self) -> impl Iterator<Item = &Bytes> {
        std::iter::once(&self.first).chain(&self.rest)
    }

    /// The pieces, in order, by value.
    pub(crate) fn into_pieces(self) -> impl Iterator<Item = Bytes> {
        std::iter::once(self.first).chain(self.rest)
    }
}

impl From<Bytes> for Payload {
    fn from(whole: Bytes) -> Payload {
        Payload {
            first: whole,
            rest: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_join_in_order_and_empty_ones_are_dropped() {
        let p = Payload::from_pieces([
            Bytes::new(),
            Bytes::from_static(b"ab"),
            Bytes::new(),
            Bytes::from_static(b"cde"),
        ]);
        assert_eq!(p.len(), 5);
        assert!(p.as_whole().is_none());
        assert_eq!(&p.join()[..], b"abcde");
        assert_eq!(p.pieces().count(), 2);

        let one = Payload::from_pieces([Bytes::from_static(b"xy")]);
        assert_eq!(one.as_whole().map(|b| &b[..]), Some(&b"xy"[..]));
        assert_eq!(Payload::from_pieces([]).len(), 0);
    }
}
