use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Codec, DecodeError, EncodeError, blob};
use crate::transport::Payload;

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

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.put_u8(byte);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Serializes into a buffer, but takes a large [`Blob`](super::Blob) as a piece of its own.
#[derive(Default)]
struct PiecesFlavor {
    buf: BytesMut,
    pieces: Vec<Bytes>,
}

impl postcard::ser_flavors::Flavor for PiecesFlavor {
    type Output = Payload;

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.buf.put_u8(byte);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        match blob::spliced(data) {
            Some(shared) => {
                if !self.buf.is_empty() {
                    self.pieces.push(self.buf.split().freeze());
                }
                self.pieces.push(shared);
            }
            None => self.buf.extend_from_slice(data),
        }
        Ok(())
    }

    fn finalize(mut self) -> postcard::Result<Payload> {
        if self.pieces.is_empty() {
            return Ok(Payload::from(self.buf.freeze()));
        }
        self.pieces.push(self.buf.freeze());
        Ok(Payload::from_pieces(self.pieces))
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
    postcard::serialize_with_flavor(value, PiecesFlavor::default()).map_err(EncodeError::new::<T>)
}

/// Decodes exactly one `T` from all of `src`.
pub(crate) fn decode<T: DeserializeOwned>(src: &[u8]) -> Result<T, DecodeError> {
    let (value, rest) =
        postcard::take_from_bytes(src).map_err(|e| DecodeError::invalid::<T>(src.len(), e))?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes {
            type_name: std::any::type_name::<T>(),
            len: src.len(),
            trailing: rest.len(),
        });
    }
    Ok(value)
}
