//! Pipe names: the `pipe:` form, and where every form of [`Name`] leads on Windows.
use crate::name::Repr;
use crate::{Endpoint, Name, NameError};

/// The namespace every local pipe lives in.
pub(super) const PIPE_PREFIX: &str = r"\\.\pipe\";

/// The longest full pipe name (prefix included) Windows accepts, in UTF-16 units.
pub(super) const PIPE_NAME_MAX: usize = 256;

impl Name {
    /// A Windows named pipe (Windows only): a short name `x`, or the full `\\.\pipe\x`.
    ///
    /// The name is kept without the `\\.\pipe\` prefix, so it prints as `pipe:x` and resolves
    /// to `\\.\pipe\x`. It must not be empty nor hold a NUL, and the full name must fit in the
    /// 256 characters Windows allows.
    ///
    /// ```
    /// # #[cfg(windows)] {
    /// use localrpc::{Endpoint, Name};
    ///
    /// let name = Name::pipe(r"\\.\pipe\myapp.calc")?;
    /// assert_eq!(name, Name::pipe("myapp.calc")?);
    /// assert_eq!(name.to_string(), "pipe:myapp.calc");
    /// assert_eq!(name.endpoint()?, Endpoint::Pipe(r"\\.\pipe\myapp.calc".into()));
    /// # }
    /// # Ok::<(), localrpc::NameError>(())
    /// ```
    pub fn pipe(name: &str) -> Result<Name, NameError> {
        let short = strip_pipe_prefix(name).unwrap_or(name);
        crate::name::check_no_nul(short.as_bytes())?;
        let len = PIPE_PREFIX.len() + short.encode_utf16().count();
        if len > PIPE_NAME_MAX {
            return Err(NameError::TooLong {
                len,
                max: PIPE_NAME_MAX,
            });
        }
        Ok(Name::from_repr(Repr::Pipe(short.to_owned())))
    }
}

/// `name` without a leading `\\.\pipe\`, matched as Windows does, ignoring ASCII case.
fn strip_pipe_prefix(name: &str) -> Option<&str> {
    let (head, rest) = name.split_at_checked(PIPE_PREFIX.len())?;
    head.eq_ignore_ascii_case(PIPE_PREFIX).then_some(rest)
}

/// Pipe names have no `sun_path`; their own limit is checked in [`Name::pipe`].
pub(crate) fn check_socket_path_len(_len: usize) -> Result<(), NameError> {
    Ok(())
}

pub(crate) fn resolve(repr: &Repr) -> Result<Endpoint, NameError> {
    match repr {
        Repr::Portable(name) | Repr::Pipe(name) => {
            Ok(Endpoint::Pipe(format!("{PIPE_PREFIX}{name}")))
        }
        Repr::Path(_) => Err(NameError::Unsupported { form: "unix" }),
        Repr::Abstract(_) => Err(NameError::Unsupported { form: "abstract" }),
        #[cfg(feature = "tcp")]
        Repr::Tcp(tcp) => tcp.endpoint(),
    }
}

pub(crate) fn parse_abstract(_name: &str) -> Result<Name, NameError> {
    Err(NameError::Unsupported { form: "abstract" })
}

pub(crate) fn parse_pipe(name: &str) -> Result<Name, NameError> {
    Name::pipe(name)
}

/// The full pipe name of an endpoint that [`resolve`] produced.
pub(super) fn pipe_path(endpoint: &Endpoint) -> &str {
    match endpoint {
        Endpoint::Pipe(path) => path,
        _ => unreachable!("windows names resolve to pipes"),
    }
}
