use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Codec, DecodeError, EncodeError, blob};
use crate::transport::{INLINE, Payload, Segment};

/// The default codec: [postcard](https://docs.rs/postcard), a compact, stable binary format
/// for serde types.
///
/// Decoding is strict: bytes left after the value are an error
/// ([`DecodeError::TrailingBytes`]), not silently ignored.
///
/// ```
/// use localrpc::codec::{Codec, Postcard};
///
/// let mut buf = bytes::BytesMut::new();
/// Postcard.encode(&(7u8, "seven".to_string()), &mut buf)?;
/// let back: (u8, String) = Postcard.decode(&buf)?;
/// assert_eq!(back, (7, "seven".into()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Postcard;

/// Serializes straight into the caller's buffer, no intermediate `Vec`.
struct BufFlavor<'a>(&'a mut BytesMut);

impl postcard::ser_flavors::Flavor for BufFlavor<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.put_u8(byte);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Serializes in place while the message is small, then into a buffer, and takes a large
/// [`Blob`](super::Blob) as a piece of its own.
struct PiecesFlavor {
    /// The piece being written.
    current: Current,
    /// The first piece, once a blob has followed it.
    first: Option<Segment>,
    /// The pieces after the first.
    rest: Vec<Bytes>,
}

enum Current {
    Inline { len: usize, bytes: [u8; INLINE] },
    Buf(BytesMut),
}

impl Current {
    fn extend(&mut self, data: &[u8]) {
        match self {
            Current::Inline { len, bytes } if *len + data.len() <= INLINE => {
                bytes[*len..*len + data.len()].copy_from_slice(data);
                *len += data.len();
            }
            Current::Inline { len, bytes } => {
                let mut buf = BytesMut::with_capacity(*len + data.len());
                buf.extend_from_slice(&bytes[..*len]);
                buf.extend_from_slice(data);
                *self = Current::Buf(buf);
            }
            Current::Buf(buf) => buf.extend_from_slice(data),
        }
    }

    fn take(&mut self) -> Segment {
        match std::mem::replace(self, Current::EMPTY) {
            Current::Inline { len, bytes } => Segment::Inline {
                len: len as u8,
                bytes,
            },
            Current::Buf(buf) => Segment::Heap(buf.freeze()),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Current::Inline { len, .. } => *len == 0,
            Current::Buf(buf) => buf.is_empty(),
        }
    }

    const EMPTY: Current = Current::Inline {
        len: 0,
        bytes: [0; INLINE],
    };
}

impl postcard::ser_flavors::Flavor for PiecesFlavor {
    type Output = Payload;

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.current.extend(&[byte]);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        match blob::spliced(data) {
            Some(shared) => {
                let done = self.current.take();
                match self.first {
                    None => self.first = Some(done),
                    Some(_) if done.is_empty() => {}
                    Some(_) => self.rest.push(done.to_bytes()),
                }
                self.rest.push(shared);
            }
            None => self.current.extend(data),
        }
        Ok(())
    }

    fn finalize(mut self) -> postcard::Result<Payload> {
        let Some(first) = self.first else {
            return Ok(Payload::starting_with(self.current.take(), Vec::new()));
        };
        if !self.current.is_empty() {
            self.rest.push(self.current.take().to_bytes());
        }
        Ok(Payload::starting_with(first, self.rest))
    }
}

impl<T: Serialize + DeserializeOwned> Codec<T> for Postcard {
    fn encode(&self, value: &T, dst: &mut BytesMut) -> Result<(), EncodeError> {
        encode(value, dst)
    }

    fn decode(&self, src: &[u8]) -> Result<T, DecodeError> {
        decode(src)
    }
}

/// Appends the postcard encoding of `value` to `dst`; on error `dst` is left as it was.
pub(crate) fn encode<T: Serialize + ?Sized>(
    value: &T,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    let start = dst.len();
    postcard::serialize_with_flavor(value, BufFlavor(dst)).map_err(|e| {
        dst.truncate(start);
        EncodeError::new::<T>(e)
    })
}

/// The postcard encoding of `value` for the wire: large [`Blob`](super::Blob)s in it are not
/// copied but become pieces of their own.
pub(crate) fn encode_payload<T: Serialize + ?Sized>(value: &T) -> Result<Payload, EncodeError> {
    let flavor = PiecesFlavor {
        current: Current::EMPTY,
        first: None,
        rest: Vec::new(),
    };
    postcard::serialize_with_flavor(value, flavor).map_err(EncodeError::new::<T>)
}

/// Decodes exactly one `T` from all of `src`.
#[inline]
pub(crate) fn decode<T: DeserializeOwned>(src: &[u8]) -> Result<T, DecodeError> {
    // Kept small, with the errors built out of line: this runs for every stream item.
    match postcard::take_from_bytes(src) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(trailing::<T>(src.len(), rest.len())),
        Err(e) => Err(invalid::<T>(src.len(), e)),
    }
}

#[cold]
fn invalid<T>(len: usize, e: postcard::Error) -> DecodeError {
    DecodeError::invalid::<T>(len, e)
}

#[cold]
fn trailing<T>(len: usize, trailing: usize) -> DecodeError {
    DecodeError::TrailingBytes {
        type_name: std::any::type_name::<T>(),
        len,
        trailing,
    }
}
