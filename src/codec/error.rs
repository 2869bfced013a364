use thiserror::Error;

/// A boxed error from the underlying format library.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A value could not be encoded.
///
/// ```
/// use localrpc::codec::EncodeError;
///
/// let err = EncodeError::new::<Vec<u8>>("buffer full");
/// assert_eq!(err.type_name(), "alloc::vec::Vec<u8>");
/// assert_eq!(err.to_string(), "cannot encode alloc::vec::Vec<u8>");
/// ```
#[derive(Debug, Error)]
#[error("cannot encode {type_name}")]
pub struct EncodeError {
    type_name: &'static str,
    #[source]
    source: BoxError,
}

impl EncodeError {
    /// Wraps a format library's error for a value of type `T`.
    ///
    /// See [`Codec`](super::Codec) for an example of implementing a codec.
    pub fn new<T: ?Sized>(source: impl Into<BoxError>) -> Self {
        EncodeError {
            type_name: std::any::type_name::<T>(),
            source: source.into(),
        }
    }

    /// The Rust type that failed to encode.
    ///
    /// See the [type docs](EncodeError) for an example.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }
}

/// A message could not be decoded into the expected type.
///
/// ```
/// use localrpc::codec::{Codec, DecodeError, Postcard};
///
/// let err = Codec::<(u32, String)>::decode(&Postcard, &[0xff, 0xff]).unwrap_err();
/// assert!(matches!(err, DecodeError::Invalid { len: 2, .. }));
/// assert!(err.to_string().contains("(u32, alloc::string::String)"));
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes are not a valid encoding of the type.
    #[error("cannot decode {type_name} from a {len}-byte message")]
    Invalid {
        /// The Rust type that was expected.
        type_name: &'static str,
        /// The message length.
        len: usize,
        /// What the format library said.
        #[source]
        source: BoxError,
    },
    /// A valid value was followed by bytes that belong to nothing.
    #[error("{trailing} unexpected bytes after {type_name} in a {len}-byte message")]
    TrailingBytes {
        /// The Rust type that was decoded.
        type_name: &'static str,
        /// The message length.
        len: usize,
        /// How many bytes were left over.
        trailing: usize,
    },
}

impl DecodeError {
    /// Wraps a format library's error for a message of `len` bytes that should hold a `T`.
    ///
    /// See [`Codec`](super::Codec) for an example of implementing a codec.
    pub fn invalid<T: ?Sized>(len: usize, source: impl Into<BoxError>) -> Self {
        DecodeError::Invalid {
            type_name: std::any::type_name::<T>(),
            len,
            source: source.into(),
        }
    }
}
