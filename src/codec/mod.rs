//! Codecs turn one complete message into a value and back.
//!
//! A codec never sees framing: the [`transport`](crate::transport) layer hands it exactly one
//! message. [`Postcard`] is the default.
mod blob;
mod error;
pub(crate) mod postcard;

use bytes::BytesMut;

pub use self::postcard::Postcard;
pub use blob::Blob;
pub(crate) use blob::decoding_from;
pub use error::{BoxError, DecodeError, EncodeError};

/// Encodes values of type `T` into messages and decodes them back.
///
/// Implement it to plug in another format:
///
/// ```
/// use bytes::{BufMut, BytesMut};
/// use localrpc::codec::{Codec, DecodeError, EncodeError};
///
/// /// UTF-8 text, as is.
/// struct Utf8;
///
/// impl Codec<String> for Utf8 {
///     fn encode(&self, value: &String, dst: &mut BytesMut) -> Result<(), EncodeError> {
///         dst.put_slice(value.as_bytes());
///         Ok(())
///     }
///     fn decode(&self, src: &[u8]) -> Result<String, DecodeError> {
///         String::from_utf8(src.to_vec()).map_err(|e| DecodeError::invalid::<String>(src.len(), e))
///     }
/// }
///
/// let mut buf = BytesMut::new();
/// Utf8.encode(&"hé".to_string(), &mut buf)?;
/// assert!(Utf8.decode(&[0xff]).is_err());
/// # Ok::<(), EncodeError>(())
/// ```
pub trait Codec<T>: Send + Sync + 'static {
    /// Appends the encoding of `value` to `dst`. On error, `dst` is left as it was.
    fn encode(&self, value: &T, dst: &mut BytesMut) -> Result<(), EncodeError>;

    /// Decodes exactly one value from the whole of `src`.
    fn decode(&self, src: &[u8]) -> Result<T, DecodeError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Msg {
        id: u64,
        name: String,
        data: Vec<u8>,
    }

    #[test]
    fn postcard_round_trip_appends() {
        let msg = Msg {
            id: 42,
            name: "x".into(),
            data: vec![1, 2, 3],
        };
        let mut buf = BytesMut::from(&b"prefix"[..]);
        Postcard.encode(&msg, &mut buf).unwrap();
        assert_eq!(&buf[..6], b"prefix");
        let back: Msg = Postcard.decode(&buf[6..]).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn postcard_errors_name_the_type() {
        let err = Codec::<Msg>::decode(&Postcard, &[1]).unwrap_err();
        match &err {
            DecodeError::Invalid { type_name, len, .. } => {
                assert!(type_name.ends_with("Msg"));
                assert_eq!(*len, 1);
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        let mut buf = BytesMut::new();
        Postcard.encode(&7u32, &mut buf).unwrap();
        buf.extend_from_slice(&[9, 9]);
        assert!(matches!(
            Codec::<u32>::decode(&Postcard, &buf),
            Err(DecodeError::TrailingBytes { trailing: 2, .. })
        ));
    }
}
