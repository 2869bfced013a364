//! TCP listeners and streams (feature `tcp`) behind the same `ipc` types as local sockets.
//!
//! TCP is portable, so it lives here rather than in `os`. Streams are set to `TCP_NODELAY`:
//! the framing layer already batches what is ready, and a small request must not wait for
//! Nagle's algorithm.
use std::io;
use std::net::{self, SocketAddr};

use super::Error;
use crate::Endpoint;
use crate::name::TcpName;

pub(crate) type Stream = tokio::net::TcpStream;
pub(crate) type RecvHalf = tokio::net::tcp::OwnedReadHalf;
pub(crate) type SendHalf = tokio::net::tcp::OwnedWriteHalf;
pub(crate) type BlockingStream = net::TcpStream;

/// A Tokio TCP listener and the address it is bound to (the OS's pick for port 0).
#[derive(Debug)]
pub(crate) struct Listener {
    inner: tokio::net::TcpListener,
    endpoint: Endpoint,
}

impl Listener {
    pub(crate) fn bind(name: &TcpName) -> Result<Listener, Error> {
        let BlockingListener { inner, endpoint } = BlockingListener::bind(name)?;
        let inner = inner
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(inner))
            .map_err(|e| Error::from_io("bind", &endpoint, e))?;
        Ok(Listener { inner, endpoint })
    }

    pub(crate) async fn accept(&self) -> io::Result<Stream> {
        let (stream, _) = self.inner.accept().await?;
        no_delay(stream.set_nodelay(true));
        Ok(stream)
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

/// A blocking TCP listener and the address it is bound to.
#[derive(Debug)]
pub(crate) struct BlockingListener {
    inner: net::TcpListener,
    endpoint: Endpoint,
}

impl BlockingListener {
    /// Binds the first address the name resolves to that can be bound.
    pub(crate) fn bind(name: &TcpName) -> Result<BlockingListener, Error> {
        first_ok(name.addrs_blocking()?, name, |addr| {
            let error = |e| Error::from_io("bind", &Endpoint::Tcp(addr), e);
            let inner = net::TcpListener::bind(addr).map_err(error)?;
            let endpoint = Endpoint::Tcp(inner.local_addr().map_err(error)?);
            Ok(BlockingListener { inner, endpoint })
        })
    }

    pub(crate) fn accept(&self) -> io::Result<BlockingStream> {
        let (stream, _) = self.inner.accept()?;
        no_delay(stream.set_nodelay(true));
        Ok(stream)
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

/// Connects to the first address the name resolves to that accepts.
pub(crate) async fn connect(name: &TcpName) -> Result<Stream, Error> {
    let mut last = Error::Name(name.unresolved());
    for addr in name.addrs().await? {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(stream) => {
                no_delay(stream.set_nodelay(true));
                return Ok(stream);
            }
            Err(e) => last = Error::from_io("connect", &Endpoint::Tcp(addr), e),
        }
    }
    Err(last)
}

/// Connects a blocking stream to the first address the name resolves to that accepts.
pub(crate) fn connect_blocking(name: &TcpName) -> Result<BlockingStream, Error> {
    let stream = first_ok(name.addrs_blocking()?, name, |addr| {
        net::TcpStream::connect(addr)
            .map_err(|e| Error::from_io("connect", &Endpoint::Tcp(addr), e))
    })?;
    no_delay(stream.set_nodelay(true));
    Ok(stream)
}

/// The error `peer_credentials` gives for a TCP stream.
pub(crate) fn no_credentials() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "TCP connections carry no peer credentials",
    )
}

/// `TCP_NODELAY` is an optimisation: a socket the peer has already reset may refuse the
/// option on some systems, and its next read or write reports that reset anyway.
fn no_delay(result: io::Result<()>) {
    if let Err(error) = result {
        tracing::debug!(%error, "could not set TCP_NODELAY");
    }
}

/// The first success of `attempt` over `addrs`, or the error of the last address tried.
fn first_ok<T>(
    addrs: Vec<SocketAddr>,
    name: &TcpName,
    attempt: impl Fn(SocketAddr) -> Result<T, Error>,
) -> Result<T, Error> {
    let mut last = Error::Name(name.unresolved());
    for addr in addrs {
        match attempt(addr) {
            Ok(value) => return Ok(value),
            Err(e) => last = e,
        }
    }
    Err(last)
}
