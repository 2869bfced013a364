//! The error of an RPC call or connection.
use std::io;

use thiserror::Error;

use crate::codec::{DecodeError, EncodeError};
use crate::transport::FrameError;

/// Why a call (or a connection) failed. Application errors are not here: a method declared
/// `-> Result<T, E>` returns `Ok(Err(e))` for them.
///
/// ```no_run
/// # #[localrpc::service]
/// # pub trait Calculator { async fn add(&self, a: i64, b: i64) -> i64; }
/// use localrpc::Error;
///
/// # async fn demo(calc: CalculatorClient) {
/// match calc.add(1, 2).await {
///     Ok(sum) => println!("{sum}"),
///     Err(Error::DeadlineExceeded) => eprintln!("too slow"),
///     Err(Error::ConnectionLost { .. }) => eprintln!("server went away"),
///     Err(e) => eprintln!("{e}"),
/// }
/// # }
/// ```
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// Connecting to the endpoint failed.
    #[error("connect failed")]
    Connect(#[from] crate::ipc::Error),
    /// The server refused the handshake: another protocol version, service or method table.
    #[error("handshake refused: {reason}: {message}")]
    HandshakeRefused {
        /// What did not match.
        reason: RefuseReason,
        /// Both sides' values, in words.
        message: String,
    },
    /// The connection ended while the call was in flight, or before it was sent.
    #[error("connection lost")]
    ConnectionLost {
        /// What ended it, when known.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
    /// The server is shutting down and took no new calls.
    #[error("server is shutting down")]
    ShuttingDown,
    /// The call's deadline passed; the server was told to stop the handler.
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// The call was cancelled.
    #[error("call cancelled")]
    Cancelled,
    /// A frame was over the size limit (sent by us, or announced by the peer).
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// The frame's length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A response could not be decoded into the expected type.
    #[error("decode failed")]
    Decode(#[from] DecodeError),
    /// The server could not decode the request's arguments.
    #[error("server could not decode the request: {message}")]
    BadRequest {
        /// What the server's decoder said.
        message: String,
    },
    /// A value could not be encoded.
    #[error("encode failed")]
    Encode(#[from] EncodeError),
    /// The server does not know the method.
    #[error("unknown method {method}")]
    UnknownMethod {
        /// The method name or index that was asked for.
        method: String,
    },
    /// The handler panicked; the server goes on serving.
    #[error("server handler panicked: {message}")]
    ServerPanicked {
        /// The panic message, when it was a string.
        message: String,
    },
    /// A server-side layer refused the call (an authorization layer, a rate limit, ...).
    #[error("call refused by the server: {message}")]
    Refused {
        /// What the layer said.
        message: String,
    },
    /// Any other failure the server reported.
    #[error("server error: {message}")]
    Server {
        /// What the server said.
        message: String,
    },
    /// A protocol violation by the peer (an envelope that does not parse, a response to no call).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// An I/O error on the connection.
    #[error("i/o error")]
    Io(#[source] io::Error),
}

/// What did not match in a refused handshake.
///
/// ```
/// assert_eq!(localrpc::RefuseReason::MethodTable.to_string(), "method table differs");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
#[non_exhaustive]
pub enum RefuseReason {
    /// The protocol versions differ.
    #[error("protocol version differs")]
    Version,
    /// The client asked for a service this server does not serve.
    #[error("service differs")]
    Service,
    /// Same service, different methods or signatures.
    #[error("method table differs")]
    MethodTable,
    /// The payload codecs differ.
    #[error("codec differs")]
    Codec,
    /// The first message was not a handshake.
    #[error("malformed handshake")]
    Malformed,
}

impl Error {
    pub(crate) fn lost(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        Error::ConnectionLost {
            source: Some(source.into()),
        }
    }
}

impl From<FrameError> for Error {
    fn from(e: FrameError) -> Error {
        match e {
            FrameError::TooLarge { len, max } => Error::FrameTooLarge { len, max },
            other => Error::lost(other),
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e {
            Error::Connect(c) => c.kind(),
            Error::ConnectionLost { .. } => io::ErrorKind::ConnectionAborted,
            Error::DeadlineExceeded => io::ErrorKind::TimedOut,
            Error::Io(io) => io.kind(),
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}
