//! [`Blob`]: bytes that a localrpc codec decodes without copying.
use std::cell::Cell;
use std::fmt;
use std::ops::Deref;

use bytes::Bytes;
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::{Serialize, Serializer};

/// A byte payload for service arguments and return values, sent and received without a copy.
///
/// `Vec<u8>` and `serde_bytes::ByteBuf` are copied into the message when encoded and out of
/// it when decoded. A `Blob`:
///
/// - when localrpc decodes it, shares the received buffer instead (the buffer is freed when
///   the last `Blob` referring to it is dropped);
/// - when localrpc sends it as (part of) a method's arguments or return value and it is
///   32 KiB or more, goes to the socket from its own buffer, as a piece of the message next
///   to the encoding of the rest; smaller blobs are copied, which costs less than a piece of
///   their own. Items of a [`Streaming`](crate::Streaming) are encoded into the frame that
///   carries them, so a blob sent as a stream item is copied.
///
/// It serializes like `serde_bytes::ByteBuf`, so the wire format is the same, and cloning it
/// is cheap. Outside localrpc's encoder and decoder (another serde format, or
/// [`Postcard`](super::Postcard) used directly) it is copied like `ByteBuf`.
///
/// A 1 MiB echo between two processes runs at about 1.2× the speed of a raw socket echo
/// that copies each message once, where `ByteBuf` gets 0.8× (`cargo bench --bench rpc`,
/// `benches/README.md`). While a received `Blob` lives, the connection's read buffer cannot be
/// reused for the next message, so keeping many of them alive costs a fresh buffer each.
///
/// ```
/// use localrpc::codec::Blob;
///
/// #[localrpc::service]
/// trait Storage {
///     async fn put(&self, key: String, data: Blob) -> u64;
///     async fn get(&self, key: String) -> Option<Blob>;
/// }
///
/// let blob = Blob::from(vec![1u8, 2, 3]);
/// assert_eq!(&blob[..], &[1, 2, 3]);
/// let bytes: bytes::Bytes = blob.clone().into_bytes();
/// assert_eq!(bytes.len(), 3);
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Blob(Bytes);

impl Blob {
    /// A blob of `bytes` (no copy).
    ///
    /// See the [type docs](Blob) for an example.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Blob(bytes.into())
    }

    /// The bytes (no copy).
    ///
    /// See the [type docs](Blob) for an example.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blob({} bytes)", self.0.len())
    }
}

impl Deref for Blob {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Blob {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Bytes> for Blob {
    fn from(b: Bytes) -> Self {
        Blob(b)
    }
}

impl From<Vec<u8>> for Blob {
    fn from(v: Vec<u8>) -> Self {
        Blob(v.into())
    }
}

impl From<&'static [u8]> for Blob {
    fn from(s: &'static [u8]) -> Self {
        Blob(Bytes::from_static(s))
    }
}

impl From<Blob> for Bytes {
    fn from(b: Blob) -> Bytes {
        b.0
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.len() < SPLICE_MIN {
            return serializer.serialize_bytes(&self.0);
        }
        // Offer the buffer itself to localrpc's encoder, which then sends it as it is.
        SPLICE.with(|splice| {
            let _restore = Restore(splice, splice.replace(&self.0));
            serializer.serialize_bytes(&self.0)
        })
    }
}

/// Blobs at least this large are sent from their own buffer rather than copied into the
/// message (smaller ones are cheaper to copy than to send as a piece of their own).
const SPLICE_MIN: usize = 32 * 1024;

/// Puts back a thread-local's outer value, also on a panic.
struct Restore<'a>(&'a Cell<*const Bytes>, *const Bytes);

impl Drop for Restore<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.set(self.1);
    }
}

/// The shared buffer of the blob being serialized, if `data` is all of it: for the encoder
/// of outgoing messages ([`encode_payload`](super::postcard::encode_payload)), which then
/// takes it as a piece of the message instead of copying it.
pub(crate) fn spliced(data: &[u8]) -> Option<Bytes> {
    let blob = SPLICE.with(Cell::get);
    // SAFETY: a non-null `SPLICE` points at the buffer of the `Blob` whose `serialize` is
    // running on this thread and borrows it; it is put back before that borrow ends.
    let blob = unsafe { blob.as_ref() }?;
    (blob.as_ptr() == data.as_ptr() && blob.len() == data.len()).then(|| blob.clone())
}

thread_local! {
    /// The buffer of the large `Blob` being serialized on this thread: set only while its
    /// `serialize` runs, which borrows it for that long.
    static SPLICE: Cell<*const Bytes> = const { Cell::new(std::ptr::null()) };

    /// The message being decoded on this thread, so that a `Blob` can share it: set only
    /// while [`decoding_from`] runs, which borrows it for that long.
    static SOURCE: Cell<*const Bytes> = const { Cell::new(std::ptr::null()) };
}

/// Runs `decode` with `source` as the buffer that blobs decoded from it may share.
pub(crate) fn decoding_from<R>(source: &Bytes, decode: impl FnOnce() -> R) -> R {
    // One look-up of the thread-local for both setting and putting back: this runs for
    // every stream item received.
    SOURCE.with(|slot| {
        let _restore = Restore(slot, slot.replace(source));
        decode()
    })
}

/// A cheap reference count of the part of the message being decoded that `v` lies in.
fn shared(v: &[u8]) -> Option<Bytes> {
    let source = SOURCE.with(Cell::get);
    // SAFETY: a non-null `SOURCE` points at the `Bytes` that the `decoding_from` running on
    // this thread borrows; it is put back before that borrow ends, even on a panic.
    let source = unsafe { source.as_ref() }?;
    let start = (v.as_ptr() as usize).checked_sub(source.as_ptr() as usize)?;
    (start + v.len() <= source.len()).then(|| source.slice(start..start + v.len()))
}

struct BlobVisitor;

impl<'de> Visitor<'de> for BlobVisitor {
    type Value = Blob;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bytes")
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Blob, E> {
        Ok(Blob(shared(v).unwrap_or_else(|| Bytes::copy_from_slice(v))))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Blob, E> {
        Ok(Blob(Bytes::copy_from_slice(v)))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
        Ok(Blob(v.into()))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Blob, A::Error> {
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(b) = seq.next_element::<u8>()? {
            v.push(b);
        }
        Ok(Blob(v.into()))
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Blob, D::Error> {
        deserializer.deserialize_bytes(BlobVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::postcard::{decode, encode};

    #[test]
    fn decoded_blobs_share_the_message() {
        let value = (7u32, Blob::from(vec![5u8; 1000]), String::from("x"));
        let mut buf = bytes::BytesMut::new();
        encode(&value, &mut buf).unwrap();
        let message = buf.freeze();
        let (n, blob, s): (u32, Blob, String) =
            decoding_from(&message, || decode(&message)).unwrap();
        assert_eq!((n, s.as_str()), (7, "x"));
        assert_eq!(&blob[..], &[5u8; 1000][..]);
        let inside = message.as_ptr_range();
        assert!(
            inside.contains(&blob.as_ptr()),
            "the blob points into the message"
        );

        // Without a source it still decodes, by copying.
        let (_, copied, _): (u32, Blob, String) = decode(&message).unwrap();
        assert_eq!(copied, blob);
        assert!(!inside.contains(&copied.as_ptr()));
    }

    #[test]
    fn large_blobs_are_sent_from_their_own_buffer() {
        use crate::codec::postcard::encode_payload;
        let large = Blob::from(vec![9u8; SPLICE_MIN]);
        let small = Blob::from(vec![8u8; SPLICE_MIN - 1]);
        let value = (String::from("key"), large.clone(), 5u8, small.clone());
        let payload = encode_payload(&value).unwrap();

        // The same bytes as a plain encoding, in three pieces: the large blob is one of
        // them, shared, not copied; the small one was copied into the last.
        let mut plain = bytes::BytesMut::new();
        encode(&value, &mut plain).unwrap();
        assert_eq!(payload.join(), plain.freeze());
        let pieces: Vec<&[u8]> = payload.pieces().collect();
        assert_eq!(pieces.len(), 3, "{pieces:?}");
        assert_eq!(pieces[1].as_ptr(), large.as_ptr());
        assert_eq!(pieces[1].len(), large.len());
        assert!(!pieces[2].as_ptr_range().contains(&small.as_ptr()));

        // Outside that encoder, and after it, nothing is left offered.
        assert!(spliced(&large).is_none());
        let mut other = bytes::BytesMut::new();
        encode(&large, &mut other).unwrap();
        assert_eq!(other.len(), large.len() + 3);
    }

    #[test]
    fn blobs_and_byte_bufs_share_a_wire_format() {
        let mut a = bytes::BytesMut::new();
        encode(&Blob::from(vec![1u8, 2, 3]), &mut a).unwrap();
        let mut b = bytes::BytesMut::new();
        encode(&serde_bytes::ByteBuf::from(vec![1u8, 2, 3]), &mut b).unwrap();
        assert_eq!(a, b);
    }
}
