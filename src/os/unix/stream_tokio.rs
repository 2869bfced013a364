//! Unix targets whose Tokio reactor is neither epoll nor kqueue (event ports, `poll(2)`):
//! a descriptor registered by hand there is armed for one event only, so these keep Tokio's
//! own stream and listener, which register for both directions.
use std::io;
use std::os::unix::net::{UnixListener, UnixStream as StdStream};

pub(crate) use tokio::net::UnixStream as Stream;
pub(crate) use tokio::net::unix::{OwnedReadHalf as RecvHalf, OwnedWriteHalf as SendHalf};

/// Registers a connected socket with the current runtime; it is made non-blocking.
pub(crate) fn from_std(stream: StdStream) -> io::Result<Stream> {
    stream.set_nonblocking(true)?;
    super::socket::widen_send_buffer(&stream);
    Stream::from_std(stream)
}

/// A listening socket registered for incoming connections.
#[derive(Debug)]
pub(crate) struct Accepting(tokio::net::UnixListener);

impl Accepting {
    /// Registers a listening socket with the current runtime; it is made non-blocking.
    pub(crate) fn new(listener: UnixListener) -> io::Result<Accepting> {
        listener.set_nonblocking(true)?;
        tokio::net::UnixListener::from_std(listener).map(Accepting)
    }

    /// Waits for the next connection.
    pub(crate) async fn accept(&self) -> io::Result<Stream> {
        let (stream, _) = self.0.accept().await?;
        super::socket::widen_send_buffer(&stream);
        Ok(stream)
    }
}
