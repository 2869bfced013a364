use std::io;

use thiserror::Error;

/// Why a frame could not be sent or received.
///
/// ```
/// use localrpc::transport::FrameError;
///
/// let e = FrameError::TooLarge { len: 1 << 32, max: 16 << 20 };
/// assert_eq!(e.to_string(), "frame of 4294967296 bytes exceeds the limit of 16777216 bytes");
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A frame is longer than the configured maximum. On send, the frame was refused before
    /// any of it was written and the transport stays usable. On receive, the peer announced it;
    /// nothing was allocated for it and the connection must be dropped.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The frame's length as sent or announced.
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame: {received} of {expected} bytes arrived")]
    Truncated {
        /// Bytes the frame needed, header included (4 while the header itself is incomplete).
        expected: u64,
        /// Bytes that arrived before the end of the stream.
        received: usize,
    },
    /// The underlying stream failed.
    #[error("transport i/o failed")]
    Io(#[from] io::Error),
}

impl From<FrameError> for io::Error {
    fn from(e: FrameError) -> io::Error {
        match e {
            FrameError::Io(e) => e,
            e @ FrameError::TooLarge { .. } => io::Error::new(io::ErrorKind::InvalidData, e),
            e @ FrameError::Truncated { .. } => io::Error::new(io::ErrorKind::UnexpectedEof, e),
        }
    }
}
