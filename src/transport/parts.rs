//! Frames in pieces.
use std::fmt;
use std::ops::Deref;

use bytes::{Bytes, BytesMut};

/// A frame in two parts: a small head, copied into the write buffer, and a payload that a
/// large message keeps in its own buffers all the way to the vectored write.
#[derive(Debug)]
pub(crate) struct Parts {
    pub(crate) head: Segment,
    pub(crate) payload: Payload,
}

impl Parts {
    pub(crate) fn len(&self) -> usize {
        self.head.len() + self.payload.len()
    }

    /// A frame that is all head (a cancel, a go-away, a status).
    pub(crate) fn whole(frame: Bytes) -> Parts {
        Parts {
            head: frame.into(),
            payload: Payload::default(),
        }
    }
}

/// Bytes kept in place up to this many: most heads of requests and responses, and most
/// small payloads, cost no allocation.
pub(crate) const INLINE: usize = 62;

/// Some bytes of a frame: in place if they are few, else in a buffer of their own.
#[derive(Clone)]
pub(crate) enum Segment {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Bytes),
}

impl Segment {
    /// A copy of `data`, in place if it fits.
    #[cfg(test)]
    pub(crate) fn copy(data: &[u8]) -> Segment {
        if data.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..data.len()].copy_from_slice(data);
            Segment::Inline {
                len: data.len() as u8,
                bytes,
            }
        } else {
            Segment::Heap(Bytes::copy_from_slice(data))
        }
    }

    /// `len` bytes written by `write` into a segment: in place if they fit. `write` must
    /// write exactly `len` bytes, into a slice (a concrete `BufMut`, whose writes inline).
    pub(crate) fn build(len: usize, write: impl FnOnce(&mut &mut [u8])) -> Segment {
        if len <= INLINE {
            let mut bytes = [0; INLINE];
            let mut rest = &mut bytes[..len];
            write(&mut rest);
            assert!(rest.is_empty(), "fewer bytes written than announced");
            Segment::Inline {
                len: len as u8,
                bytes,
            }
        } else {
            let mut buf = BytesMut::zeroed(len);
            let mut rest = &mut buf[..];
            write(&mut rest);
            assert!(rest.is_empty(), "fewer bytes written than announced");
            Segment::Heap(buf.freeze())
        }
    }

    /// The bytes as a `Bytes` (a copy if they are in place).
    pub(crate) fn to_bytes(&self) -> Bytes {
        match self {
            Segment::Inline { .. } => Bytes::copy_from_slice(self),
            Segment::Heap(bytes) => bytes.clone(),
        }
    }
}

impl Default for Segment {
    fn default() -> Self {
        Segment::Inline {
            len: 0,
            bytes: [0; INLINE],
        }
    }
}

impl Deref for Segment {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Segment::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Segment::Heap(bytes) => bytes,
        }
    }
}

impl From<Bytes> for Segment {
    fn from(bytes: Bytes) -> Segment {
        Segment::Heap(bytes)
    }
}

impl PartialEq for Segment {
    fn eq(&self, other: &Segment) -> bool {
        self[..] == other[..]
    }
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&Bytes::copy_from_slice(self), f)
    }
}

/// An encoded message in one or more pieces, in order. The codec writes into the first and
/// starts a new piece when it meets a large [`Blob`](crate::codec::Blob): the blob's buffer
/// becomes a piece of its own instead of being copied, and the writer hands every piece to
/// one vectored write.
#[derive(Debug, Clone, Default)]
pub(crate) struct Payload {
    first: Segment,
    rest: Vec<Bytes>,
}

impl Payload {
    /// A payload of these pieces; empty ones are dropped.
    #[cfg(test)]
    pub(crate) fn from_pieces(pieces: impl IntoIterator<Item = Bytes>) -> Payload {
        let mut pieces = pieces.into_iter().filter(|p| !p.is_empty());
        Payload {
            first: pieces.next().map(Segment::Heap).unwrap_or_default(),
            rest: pieces.collect(),
        }
    }

    /// A payload that begins with `first`, followed by `rest`.
    pub(crate) fn starting_with(first: Segment, rest: Vec<Bytes>) -> Payload {
        Payload { first, rest }
    }

    /// The whole length.
    pub(crate) fn len(&self) -> usize {
        self.first.len() + self.rest.iter().map(Bytes::len).sum::<usize>()
    }

    /// The payload as one buffer, if it is one already.
    pub(crate) fn as_whole(&self) -> Option<&Bytes> {
        match (&self.first, self.rest.is_empty()) {
            (Segment::Heap(whole), true) => Some(whole),
            _ => None,
        }
    }

    /// The payload as one buffer: copied together unless it is one already.
    pub(crate) fn join(&self) -> Bytes {
        match self.as_whole() {
            Some(whole) => whole.clone(),
            None if self.rest.is_empty() => self.first.to_bytes(),
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
    pub(crate) fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(&self.first[..]).chain(self.rest.iter().map(|b| &b[..]))
    }

    /// The first piece, and the others by value.
    pub(crate) fn into_parts(self) -> (Segment, Vec<Bytes>) {
        (self.first, self.rest)
    }
}

impl From<Bytes> for Payload {
    fn from(whole: Bytes) -> Payload {
        Payload {
            first: Segment::Heap(whole),
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

    #[test]
    fn segments_keep_few_bytes_in_place() {
        let small = Segment::copy(&[7; INLINE]);
        assert!(matches!(small, Segment::Inline { .. }));
        assert_eq!(&small[..], &[7; INLINE][..]);
        let large = Segment::copy(&[8; INLINE + 1]);
        assert!(matches!(large, Segment::Heap(_)));
        assert_eq!(large.len(), INLINE + 1);
        for len in [0, 5, INLINE, INLINE + 1, 300] {
            let built = Segment::build(len, |buf| bytes::BufMut::put_bytes(buf, 3, len));
            assert_eq!(&built[..], &vec![3u8; len][..]);
            assert_eq!(built.to_bytes(), vec![3u8; len]);
        }
        let p = Payload::starting_with(Segment::copy(b"ab"), vec![Bytes::from_static(b"c")]);
        assert_eq!(&p.join()[..], b"abc");
        assert!(
            Payload::starting_with(Segment::copy(b"ab"), Vec::new())
                .as_whole()
                .is_none()
        );
    }
}
