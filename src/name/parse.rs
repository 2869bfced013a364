//! Validation and the string form (`unix:`, `abstract:`, `pipe:`, `tcp:`, portable).
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use super::{Name, NameError, Repr};

pub(crate) fn check_no_nul(bytes: &[u8]) -> Result<(), NameError> {
    if bytes.is_empty() {
        return Err(NameError::Empty);
    }
    match bytes.iter().position(|&b| b == 0) {
        Some(offset) => Err(NameError::NulByte { offset }),
        None => Ok(()),
    }
}

pub(super) fn check_portable(name: &str) -> Result<(), NameError> {
    check_no_nul(name.as_bytes())?;
    if let Some((offset, ch)) = name
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(NameError::InvalidChar { ch, offset });
    }
    if name.starts_with('.') {
        return Err(NameError::LeadingDot);
    }
    Ok(())
}

pub(super) fn check_path(path: &Path) -> Result<(), NameError> {
    let bytes = path.as_os_str().as_encoded_bytes();
    check_no_nul(bytes)?;
    crate::os::check_socket_path_len(bytes.len())
}

#[cfg(feature = "tcp")]
fn parse_tcp(addr: &str) -> Result<Name, NameError> {
    super::TcpName::parse(addr).map(|tcp| Name::from_repr(Repr::Tcp(tcp)))
}

#[cfg(not(feature = "tcp"))]
fn parse_tcp(_addr: &str) -> Result<Name, NameError> {
    Err(NameError::FeatureDisabled { feature: "tcp" })
}

impl FromStr for Name {
    type Err = NameError;

    /// Parses `unix:PATH`, `abstract:NAME`, `pipe:NAME`, `tcp:HOST:PORT` (feature `tcp`) or a
    /// portable name.
    ///
    /// ```
    /// use localrpc::{Name, NameError};
    ///
    /// let name: Name = "unix:/tmp/app.sock".parse()?;
    /// assert_eq!(name, Name::path("/tmp/app.sock")?);
    /// assert!(matches!("http:x".parse::<Name>(), Err(NameError::UnknownScheme { .. })));
    /// # Ok::<(), NameError>(())
    /// ```
    fn from_str(s: &str) -> Result<Name, NameError> {
        match s.split_once(':') {
            Some(("unix", path)) => Name::path(path),
            Some(("abstract", name)) => crate::os::parse_abstract(name),
            Some(("pipe", name)) => crate::os::parse_pipe(name),
            Some(("tcp", addr)) => parse_tcp(addr),
            Some((scheme, _)) => Err(NameError::UnknownScheme {
                scheme: scheme.to_owned(),
            }),
            None => Name::new(s),
        }
    }
}

impl fmt::Display for Name {
    /// The string form that [`FromStr`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.repr() {
            Repr::Portable(s) => f.write_str(s),
            Repr::Path(p) => write!(f, "unix:{}", p.display()),
            Repr::Abstract(b) => write!(f, "abstract:{}", String::from_utf8_lossy(b)),
            Repr::Pipe(p) => write!(f, "pipe:{p}"),
            #[cfg(feature = "tcp")]
            Repr::Tcp(tcp) => write!(f, "tcp:{tcp}"),
        }
    }
}
