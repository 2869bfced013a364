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
        "unknown endpoint scheme {scheme:?}; expected `unix:`, `abstract:`, `pipe:`, `tcp:` or a portable name"
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
    /// The form needs a cargo feature of localrpc that this build does not enable, such as
    /// `tcp:` names without the `tcp` feature.
    ///
    /// ```
    /// # #[cfg(not(feature = "tcp"))]
    /// assert_eq!(
    ///     "tcp:127.0.0.1:4000".parse::<localrpc::Name>(),
    ///     Err(localrpc::NameError::FeatureDisabled { feature: "tcp" }),
    /// );
    /// ```
    #[error(
        "`{feature}:` endpoints need the `{feature}` cargo feature of localrpc, which is not enabled"
    )]
    FeatureDisabled {
        /// The feature to enable.
        feature: &'static str,
    },
    /// The host of a `tcp:HOST:PORT` name is neither an IP address nor a host name.
    #[error(
        "invalid TCP host {host:?}; expected an IPv4 address, an IPv6 address in brackets or a host name, as in `tcp:127.0.0.1:4000`, `tcp:[::1]:4000`, `tcp:localhost:4000`"
    )]
    InvalidHost {
        /// The host as given.
        host: String,
    },
    /// The port of a `tcp:HOST:PORT` name is missing or not a number from 0 to 65535.
    #[error("invalid TCP port {port:?}; expected `tcp:HOST:PORT` with PORT from 0 to 65535")]
    InvalidPort {
        /// The port as given (empty when there was none).
        port: String,
    },
    /// A TCP host name did not resolve to any address.
    #[error("TCP host {host:?} did not resolve to an address")]
    UnresolvedHost {
        /// The host name.
        host: String,
    },
}
