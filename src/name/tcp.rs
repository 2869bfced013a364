//! The `tcp:HOST:PORT` form (feature `tcp`).
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use super::{Name, NameError, Repr};

/// A TCP host and port as given: an IP address is kept parsed, a host name is looked up only
/// when a listener binds or a client connects.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct TcpName {
    host: Host,
    port: u16,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Host {
    Ip(IpAddr),
    Name(String),
}

/// The longest DNS name, in bytes.
const HOST_NAME_MAX: usize = 253;

impl TcpName {
    /// Parses the `HOST:PORT` after `tcp:`; an IPv6 address must be in brackets.
    pub(super) fn parse(addr: &str) -> Result<TcpName, NameError> {
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| NameError::InvalidPort {
                port: String::new(),
            })?;
        let bracketed = host.starts_with('[') && host.ends_with(']');
        if host.contains(':') && !bracketed {
            return Err(NameError::InvalidHost {
                host: host.to_owned(),
            });
        }
        TcpName::new(host, parse_port(port)?)
    }

    /// A host in any of its forms (IPv6 with or without brackets) and a port.
    pub(super) fn new(host: &str, port: u16) -> Result<TcpName, NameError> {
        let invalid = || NameError::InvalidHost {
            host: host.to_owned(),
        };
        let host = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Host::Ip(IpAddr::V6(v6.parse::<Ipv6Addr>().map_err(|_| invalid())?))
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            Host::Ip(ip)
        } else if is_host_name(host) {
            Host::Name(host.to_owned())
        } else {
            return Err(invalid());
        };
        Ok(TcpName { host, port })
    }

    /// The first address the name resolves to; a host name is looked up (a blocking query).
    pub(crate) fn endpoint(&self) -> Result<crate::Endpoint, NameError> {
        Ok(crate::Endpoint::Tcp(self.addrs_blocking()?[0]))
    }

    /// Every address the name resolves to (at least one), looked up on the calling thread.
    pub(crate) fn addrs_blocking(&self) -> Result<Vec<SocketAddr>, NameError> {
        let addrs = match &self.host {
            Host::Ip(ip) => return Ok(vec![SocketAddr::new(*ip, self.port)]),
            Host::Name(host) => (host.as_str(), self.port).to_socket_addrs(),
        };
        self.non_empty(addrs.map(Iterator::collect))
    }

    /// Every address the name resolves to (at least one), looked up without blocking the
    /// runtime.
    pub(crate) async fn addrs(&self) -> Result<Vec<SocketAddr>, NameError> {
        let addrs = match &self.host {
            Host::Ip(ip) => return Ok(vec![SocketAddr::new(*ip, self.port)]),
            Host::Name(host) => tokio::net::lookup_host((host.as_str(), self.port)).await,
        };
        self.non_empty(addrs.map(Iterator::collect))
    }

    fn non_empty(
        &self,
        addrs: std::io::Result<Vec<SocketAddr>>,
    ) -> Result<Vec<SocketAddr>, NameError> {
        match addrs {
            Ok(addrs) if !addrs.is_empty() => Ok(addrs),
            _ => Err(self.unresolved()),
        }
    }

    /// The error for a host name that resolves to no address.
    pub(crate) fn unresolved(&self) -> NameError {
        NameError::UnresolvedHost {
            host: match &self.host {
                Host::Ip(ip) => ip.to_string(),
                Host::Name(name) => name.clone(),
            },
        }
    }
}

/// `HOST:PORT`, with an IPv6 address in brackets: the part after `tcp:`.
impl fmt::Display for TcpName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}:{}", self.port),
            Host::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

fn parse_port(port: &str) -> Result<u16, NameError> {
    port.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| port.parse().ok())
        .flatten()
        .ok_or_else(|| NameError::InvalidPort {
            port: port.to_owned(),
        })
}

/// Dot-separated labels of `A-Z a-z 0-9 - _`, none empty or starting or ending with `-`.
fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= HOST_NAME_MAX
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl Name {
    /// A TCP endpoint (feature `tcp`): an IP address (IPv6 with or without brackets) or a
    /// host name, and a port; port `0` lets the OS pick one when binding.
    ///
    /// TCP has no peer credentials and no access control: anyone who can reach the port can
    /// call. See the crate docs on TCP before listening on anything but a loopback address.
    ///
    /// ```
    /// use localrpc::{Endpoint, Name};
    ///
    /// let name = Name::tcp("127.0.0.1", 4000)?;
    /// assert_eq!(name.to_string(), "tcp:127.0.0.1:4000");
    /// assert_eq!(name, "tcp:127.0.0.1:4000".parse()?);
    /// assert_eq!(name.endpoint()?, Endpoint::Tcp("127.0.0.1:4000".parse().unwrap()));
    /// assert_eq!(Name::tcp("::1", 4000)?.to_string(), "tcp:[::1]:4000");
    /// # Ok::<(), localrpc::NameError>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "tcp")))]
    pub fn tcp(host: &str, port: u16) -> Result<Name, NameError> {
        TcpName::new(host, port).map(|tcp| Name::from_repr(Repr::Tcp(tcp)))
    }
}

/// The TCP name of a socket address (feature `tcp`), e.g. the real address of a listener
/// bound to port `0`, to hand to a client.
///
/// ```
/// use std::net::SocketAddr;
/// use localrpc::Name;
///
/// let addr: SocketAddr = "[::1]:4000".parse().unwrap();
/// assert_eq!(Name::from(addr).to_string(), "tcp:[::1]:4000");
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "tcp")))]
impl From<SocketAddr> for Name {
    fn from(addr: SocketAddr) -> Name {
        Name::from_repr(Repr::Tcp(TcpName {
            host: Host::Ip(addr.ip()),
            port: addr.port(),
        }))
    }
}
