use thiserror::Error;

/// Why a string or path is not a usable endpoint [`Name`](crate::Name).
///
/// ```
/// use localrpc::{Name, NameError};
///
/// assert!(matches!(Name::new(""), Err(NameError::Empty)));
/// assert!(matches!(Name::new("a/b"), Err(NameError::InvalidChar { ch: '/', .. })));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("endpoint name is empty")]
    Empty,
    /// The name contains a NUL byte, which socket paths and pipe names cannot hold.
    #[error("endpoint name contains a NUL byte at offset {offset}")]
    NulByte {
        /// Byte offset of the first NUL.
        offset: usize,
    },
    /// A portable name holds a character outside `A-Z a-z 0-9 . _ -`.
    #[error(
        "portable name contains {ch:?} at offset {offset}; only A-Z a-z 0-9 . _ - are allowed (use `unix:`, `abstract:` or `pipe:` for other forms)"
    )]
    InvalidChar {
        /// The offending character.
        ch: char,
        /// Byte offset of the character.
        offset: usize,
    },
    /// A portable name is `.` or `..` or starts with a dot, which would name a directory or hide the socket.
    #[error("portable name must not start with a dot")]
    LeadingDot,
    /// The resolved address is too long for the OS: a socket path or abstract name longer
    /// than `sockaddr_un::sun_path` holds (in bytes), or a pipe name over 256 UTF-16 units.
    #[error(
        "endpoint address is {len} long, over the {max} this OS allows (bytes of sun_path on Unix, UTF-16 units of a pipe name on Windows)"
    )]
    TooLong {
        /// Length in bytes of the resolved path or abstract name.
        len: usize,
        /// The largest length this OS accepts.
        max: usize,
    },
    /// A string form started with a scheme this crate does not know.
    #[error(
        "unknown endpoint scheme {scheme:?}; expected `unix:`, `abstract:`, `pipe:` or a portable name"
    )]
    UnknownScheme {
        /// The scheme that was given, without the colon.
        scheme: String,
    },
    /// The form exists, but not on this operating system.
    #[error("{form} endpoints are not available on this operating system")]
    Unsupported {
        /// Which form was asked for: `"abstract"`, `"pipe"` or `"unix"`.
        form: &'static str,
    },
}
