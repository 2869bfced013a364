//! Portable endpoint names and the real endpoints they resolve to.
//!
//! A [`Name`] is what a user writes in code, a config file or a command line; an [`Endpoint`]
//! is the address the operating system sees. [`Name::endpoint`] shows the mapping, so that an
//! "address in use" or "not found" error can always be traced to a real path.
//!
//! | form | string form | Linux, macOS, BSD | Windows |
//! |---|---|---|---|
//! | portable: [`Name::new`] | `myapp.calc` | socket file `myapp.calc.sock` in the per-user directory | `\\.\pipe\myapp.calc` |
//! | filesystem: [`Name::path`] | `unix:/run/x.sock` | that socket file | not available |
//! | abstract: `Name::abstract_name` | `abstract:x` | Linux and Android only | not available |
//! | pipe: `Name::pipe` | `pipe:x` | not available | `\\.\pipe\x` |
//! | TCP: `Name::tcp` (feature `tcp`) | `tcp:127.0.0.1:4000`, `tcp:[::1]:4000`, `tcp:localhost:4000` | that address | that address |
//!
//! The per-user directory on Unix is `$XDG_RUNTIME_DIR` when it is set, and otherwise
//! `localrpc-<uid>` in the temporary directory, created with mode `0700`. localrpc refuses to
//! use that directory if it belongs to another user or if others may write to it, because
//! whoever controls the directory controls which server a client reaches.
//!
//! Portable names map to *filesystem* sockets on Linux on purpose: abstract sockets ignore file
//! permissions, so any process on the host (in the same network namespace) could connect.
//! Abstract names stay available as an explicit choice.
//!
//! A `tcp:` name leaves the host and carries no peer credentials; without the `tcp` feature it
//! fails to parse with [`NameError::FeatureDisabled`].
mod error;
mod parse;
#[cfg(feature = "tcp")]
mod tcp;

use std::fmt;
use std::path::PathBuf;

pub use error::NameError;
#[allow(
    unused_imports,
    reason = "used by the Linux and Windows back ends only"
)]
pub(crate) use parse::check_no_nul;

/// A portable, validated endpoint name.
///
/// ```
/// use localrpc::Name;
///
/// let name = Name::new("myapp.calc")?;
/// assert_eq!(name.to_string(), "myapp.calc");
///
/// // The string form round-trips, so names can live in config files and env vars.
/// let parsed: Name = "myapp.calc".parse()?;
/// assert_eq!(parsed, name);
///
/// // The resolved endpoint is always visible.
/// println!("{name} listens at {}", name.endpoint()?);
/// # Ok::<(), localrpc::NameError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Name {
    repr: Repr,
}

#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) enum Repr {
    Portable(String),
    Path(PathBuf),
    #[allow(dead_code, reason = "constructed only on Linux and Android")]
    Abstract(Vec<u8>),
    #[allow(dead_code, reason = "constructed only on Windows")]
    Pipe(String),
    #[cfg(feature = "tcp")]
    Tcp(tcp::TcpName),
}

#[cfg(feature = "tcp")]
pub(crate) use tcp::TcpName;

/// The real address a [`Name`] resolves to on this operating system.
///
/// ```
/// use localrpc::{Endpoint, Name};
///
/// # #[cfg(unix)] {
/// let name = Name::path("/tmp/demo.sock")?;
/// assert_eq!(name.endpoint()?, Endpoint::Path("/tmp/demo.sock".into()));
/// # }
/// # Ok::<(), localrpc::NameError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// A Unix domain socket file.
    Path(PathBuf),
    /// A Linux abstract socket name (without the leading NUL byte).
    Abstract(Vec<u8>),
    /// A full Windows pipe name such as `\\.\pipe\myapp.calc`.
    Pipe(String),
    /// A TCP socket address (only with the `tcp` feature); a listener bound to port `0`
    /// reports the port the OS picked.
    Tcp(std::net::SocketAddr),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Path(p) => write!(f, "{}", p.display()),
            // `@name` is how `ss` and `lsof` print abstract sockets.
            Endpoint::Abstract(n) => write!(f, "@{}", String::from_utf8_lossy(n)),
            Endpoint::Pipe(p) => f.write_str(p),
            Endpoint::Tcp(addr) => write!(f, "{addr}"),
        }
    }
}

impl Name {
    /// A portable name: `A-Z a-z 0-9 . _ -`, not starting with a dot.
    ///
    /// It maps to a socket file in the per-user directory on Unix and to `\\.\pipe\<name>` on
    /// Windows (see the [module docs](self)).
    ///
    /// ```
    /// let name = localrpc::Name::new("myapp.calc")?;
    /// # Ok::<(), localrpc::NameError>(())
    /// ```
    pub fn new(name: impl Into<String>) -> Result<Name, NameError> {
        let name = name.into();
        parse::check_portable(&name)?;
        Ok(Name {
            repr: Repr::Portable(name),
        })
    }

    /// A filesystem socket path (Unix only; binding one on Windows fails with
    /// [`NameError::Unsupported`]).
    ///
    /// ```
    /// let name = localrpc::Name::path("/run/user/1000/app.sock")?;
    /// assert_eq!(name.to_string(), "unix:/run/user/1000/app.sock");
    /// # Ok::<(), localrpc::NameError>(())
    /// ```
    pub fn path(path: impl Into<PathBuf>) -> Result<Name, NameError> {
        let path = path.into();
        parse::check_path(&path)?;
        Ok(Name {
            repr: Repr::Path(path),
        })
    }

    /// The portable name, socket path, abstract name, pipe name or TCP `HOST:PORT` as given.
    ///
    /// ```
    /// let name = localrpc::Name::new("svc")?;
    /// assert_eq!(name.as_given(), "svc");
    /// # Ok::<(), localrpc::NameError>(())
    /// ```
    pub fn as_given(&self) -> std::borrow::Cow<'_, str> {
        match &self.repr {
            Repr::Portable(s) | Repr::Pipe(s) => s.as_str().into(),
            Repr::Path(p) => p.to_string_lossy(),
            Repr::Abstract(b) => String::from_utf8_lossy(b),
            #[cfg(feature = "tcp")]
            Repr::Tcp(tcp) => tcp.to_string().into(),
        }
    }

    /// Whether this is a portable name (as opposed to an explicit OS-specific form).
    ///
    /// ```
    /// assert!(localrpc::Name::new("svc")?.is_portable());
    /// # Ok::<(), localrpc::NameError>(())
    /// ```
    pub fn is_portable(&self) -> bool {
        matches!(self.repr, Repr::Portable(_))
    }

    /// The real endpoint this name resolves to, without touching the filesystem.
    ///
    /// For a portable name on Unix this reads `XDG_RUNTIME_DIR` and the user id; the directory
    /// itself is created and checked only when a listener binds or a client connects. For a
    /// TCP host name this looks the name up (a blocking query) and returns the first address;
    /// an IP address is returned as it is.
    ///
    /// ```
    /// let name = localrpc::Name::new("myapp.calc")?;
    /// let endpoint = name.endpoint()?;
    /// # #[cfg(unix)]
    /// assert!(endpoint.to_string().ends_with("myapp.calc.sock"));
    /// # #[cfg(windows)]
    /// assert_eq!(endpoint.to_string(), r"\\.\pipe\myapp.calc");
    /// # Ok::<(), localrpc::NameError>(())
    /// ```
    pub fn endpoint(&self) -> Result<Endpoint, NameError> {
        crate::os::resolve(&self.repr)
    }

    pub(crate) fn repr(&self) -> &Repr {
        &self.repr
    }

    #[allow(dead_code, reason = "used by the Linux and Windows back ends only")]
    pub(crate) fn from_repr(repr: Repr) -> Name {
        Name { repr }
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

impl TryFrom<&str> for Name {
    type Error = NameError;
    fn try_from(s: &str) -> Result<Name, NameError> {
        s.parse()
    }
}

impl TryFrom<String> for Name {
    type Error = NameError;
    fn try_from(s: String) -> Result<Name, NameError> {
        s.parse()
    }
}

#[cfg(test)]
mod tests;

/// Anything that names an endpoint: a [`Name`], or a string in the form [`Name`]'s
/// [`FromStr`](std::str::FromStr) reads (`"myapp.calc"`, `"unix:/run/x.sock"`, ...).
///
/// ```no_run
/// use localrpc::{Name, ipc::LocalStream};
/// # async fn demo() -> Result<(), localrpc::ipc::Error> {
/// LocalStream::connect("myapp.calc").await?;
/// LocalStream::connect(Name::new("myapp.calc")?).await?;
/// # Ok(()) }
/// ```
pub trait IntoName {
    /// Validates and converts.
    fn into_name(self) -> Result<Name, NameError>;
}

impl IntoName for Name {
    fn into_name(self) -> Result<Name, NameError> {
        Ok(self)
    }
}

impl IntoName for &Name {
    fn into_name(self) -> Result<Name, NameError> {
        Ok(self.clone())
    }
}

impl IntoName for &str {
    fn into_name(self) -> Result<Name, NameError> {
        self.parse()
    }
}

impl IntoName for String {
    fn into_name(self) -> Result<Name, NameError> {
        self.parse()
    }
}

impl IntoName for &String {
    fn into_name(self) -> Result<Name, NameError> {
        self.parse()
    }
}
