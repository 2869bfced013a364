//! The Tokio Unix stream: read events always, write events only while a write is blocked.
//!
//! Tokio's own `UnixStream` registers every socket for readable and writable events. With
//! edge-triggered epoll, each time the peer reads what we wrote, the kernel reports our socket
//! writable again and wakes the reactor: on a request/response connection that is one wake-up
//! (on a busy single core, one context switch) per call, for nothing. This stream registers
//! the socket for read events only. When a write would block, it registers a duplicate of the
//! descriptor for write events, and drops it once a write goes through whole at the first
//! attempt again, so that bulk transfers wait for space while small calls never hear of it.
use std::io::{self, IoSlice, Write};
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream as StdStream};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::runtime::Handle;

/// The socket, registered for read events, and the runtime it is registered with.
#[derive(Debug)]
struct Shared {
    fd: AsyncFd<StdStream>,
    runtime: Handle,
}

/// Registration for write events, present only while writes block.
#[derive(Debug, Default)]
struct WriteSpace(Option<AsyncFd<OwnedFd>>);

/// A connected Unix stream socket (Tokio).
#[derive(Debug)]
pub(crate) struct Stream {
    shared: Arc<Shared>,
    space: WriteSpace,
}

/// The receiving half of a [`Stream`].
#[derive(Debug)]
pub(crate) struct RecvHalf {
    shared: Arc<Shared>,
}

/// The sending half of a [`Stream`]; dropping it shuts the write direction down, so the peer
/// reads the end of the stream (as Tokio's owned write half does).
#[derive(Debug)]
pub(crate) struct SendHalf {
    shared: Arc<Shared>,
    space: WriteSpace,
}

impl Stream {
    /// Splits into halves that can be used from different tasks.
    pub(crate) fn into_split(self) -> (RecvHalf, SendHalf) {
        let recv = RecvHalf {
            shared: self.shared.clone(),
        };
        (
            recv,
            SendHalf {
                shared: self.shared,
                space: self.space,
            },
        )
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        self.shared.fd.as_raw_fd()
    }
}

impl Drop for SendHalf {
    fn drop(&mut self) {
        let _ = self.shared.fd.get_ref().shutdown(Shutdown::Write);
    }
}

impl Shared {
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            // SAFETY: `recv` only writes into the bytes it reports, which are then marked
            // initialized; nothing here reads uninitialized memory.
            let unfilled = unsafe { buf.unfilled_mut() };
            let len = unfilled.len();
            match guard.try_io(|fd| recv(fd.as_raw_fd(), unfilled)) {
                Ok(Ok(n)) => {
                    // A short read drained the socket: the next data raises a new event, so
                    // waiting for it saves a read that would only say "would block".
                    if n > 0 && n < len {
                        guard.clear_ready();
                    }
                    // SAFETY: the kernel initialized the first `n` bytes of `unfilled`.
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }

    /// Runs `write` (which asks to write `len` bytes) until it does not block.
    fn poll_write(
        &self,
        space: &mut WriteSpace,
        cx: &mut Context<'_>,
        len: usize,
        mut write: impl FnMut(&StdStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        let sock = self.fd.get_ref();
        // Whether this write goes through without waiting: if whole, stop listening.
        let mut at_once = true;
        if space.0.is_none() {
            // Nothing listens for write space: try at once. This does not ask the reactor,
            // so it takes from the task's budget itself, as Tokio's own streams do.
            let coop = ready!(tokio::task::coop::poll_proceed(cx));
            loop {
                match write(sock) {
                    Ok(n) => {
                        coop.made_progress();
                        return Poll::Ready(Ok(n));
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            at_once = false;
        }
        loop {
            let waiter = match &mut space.0 {
                Some(waiter) => waiter,
                None => match self.register_write_space() {
                    Ok(waiter) => space.0.insert(waiter),
                    // Out of descriptors (a process at its limit): rather than fail the
                    // write, try again after the other tasks have had their turn.
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                        tracing::debug!(error = %e, "no descriptor to wait for write space; retrying");
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                },
            };
            // The guard clears stale readiness when the write would block, so a socket that
            // is still full costs one attempt, not two.
            let attempt = ready!(waiter.poll_write_ready(cx))?.try_io(|_| write(sock));
            match attempt {
                Ok(Ok(n)) => {
                    if at_once && n == len {
                        space.0 = None;
                    }
                    return Poll::Ready(Ok(n));
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => at_once = false,
            }
        }
    }

    /// A duplicate of the socket's descriptor, registered for write events. Registering
    /// reports the present state, so space freed since the blocked write is not missed.
    fn register_write_space(&self) -> io::Result<AsyncFd<OwnedFd>> {
        // At 3 or above: in a process whose standard streams are closed, a duplicate at 1 or
        // 2 would take what the process prints into the socket.
        // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own returns a new descriptor or -1.
        let dup = unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
        if dup < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `dup` is a fresh descriptor that nothing else owns.
        let dup = unsafe { OwnedFd::from_raw_fd(dup) };
        let _entered = self.runtime.enter();
        // SAFETY: an `OwnedFd` keeps its descriptor open and the same until it is dropped.
        unsafe { register(dup, Interest::WRITABLE) }
    }
}

/// Registers a descriptor with the current runtime's reactor.
///
/// # Safety
/// `io` must own its descriptor and keep it open, and the same, for as long as it lives
/// (as `OwnedFd`, `UnixStream` and `UnixListener` do).
unsafe fn register<T: AsRawFd>(io: T, interest: Interest) -> io::Result<AsyncFd<T>> {
    // SAFETY: the caller's promise is the one `register_with_interest` asks for.
    unsafe { AsyncFd::register_with_interest(io, interest) }.map_err(io::Error::from)
}

/// Registers a connected socket with the current runtime; it is made non-blocking.
pub(crate) fn from_std(stream: StdStream) -> io::Result<Stream> {
    stream.set_nonblocking(true)?;
    from_nonblocking(stream)
}

/// Registers a connected socket that is non-blocking already.
pub(super) fn from_nonblocking(stream: StdStream) -> io::Result<Stream> {
    super::socket::widen_send_buffer(&stream);
    let runtime = Handle::try_current().map_err(io::Error::other)?;
    // SAFETY: a `UnixStream` keeps its descriptor open and the same until dropped.
    let fd = unsafe { register(stream, Interest::READABLE)? };
    Ok(Stream {
        shared: Arc::new(Shared { fd, runtime }),
        space: WriteSpace::default(),
    })
}

/// A listening socket registered for incoming connections.
#[derive(Debug)]
pub(crate) struct Accepting(AsyncFd<UnixListener>);

impl Accepting {
    /// Registers a listening socket with the current runtime; it is made non-blocking.
    pub(crate) fn new(listener: UnixListener) -> io::Result<Accepting> {
        listener.set_nonblocking(true)?;
        // SAFETY: a `UnixListener` keeps its descriptor open and the same until dropped.
        unsafe { register(listener, Interest::READABLE) }.map(Accepting)
    }

    /// Waits for the next connection.
    pub(crate) async fn accept(&self) -> io::Result<Stream> {
        loop {
            let mut ready = self.0.readable().await?;
            match ready.try_io(|listener| listener.get_ref().accept()) {
                Ok(accepted) => return from_std(accepted?.0),
                Err(_would_block) => continue,
            }
        }
    }
}

fn recv(fd: RawFd, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn vectored_len(bufs: &[IoSlice<'_>]) -> usize {
    bufs.iter().map(|b| b.len()).sum()
}

macro_rules! impl_async_read {
    ($($ty:ty),+) => {$(
        impl AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                self.shared.poll_read(cx, buf)
            }
        }
    )+};
}

macro_rules! impl_async_write {
    ($($ty:ty),+) => {$(
        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                let this = self.get_mut();
                this.shared
                    .poll_write(&mut this.space, cx, buf.len(), |mut s| s.write(buf))
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                let this = self.get_mut();
                let len = vectored_len(bufs);
                this.shared
                    .poll_write(&mut this.space, cx, len, |mut s| s.write_vectored(bufs))
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(self.shared.fd.get_ref().shutdown(Shutdown::Write))
            }
        }
    )+};
}

impl_async_read!(Stream, RecvHalf);
impl_async_write!(Stream, SendHalf);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn pair() -> (Stream, Stream) {
        let (a, b) = StdStream::pair().unwrap();
        (from_std(a).unwrap(), from_std(b).unwrap())
    }

    #[tokio::test]
    async fn a_blocked_write_waits_for_space_and_a_whole_write_stops_listening() {
        let (a, mut b) = pair();
        let (_rx, mut tx) = a.into_split();
        let chunk: Vec<u8> = (0..64 << 10).map(|i| (i % 251) as u8).collect();
        assert!(
            tx.space.0.is_none(),
            "nothing listens for write space at first"
        );
        // Fill the socket buffer until a write would block.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut expected = Vec::new();
        loop {
            match Pin::new(&mut tx).poll_write(&mut cx, &chunk) {
                Poll::Ready(Ok(n)) => expected.extend_from_slice(&chunk[..n]),
                Poll::Ready(Err(e)) => panic!("write failed: {e}"),
                Poll::Pending => break,
            }
        }
        assert!(
            tx.space.0.is_some(),
            "a blocked write listens for write space"
        );
        expected.extend_from_slice(&chunk);
        // The reader drains what was sent; the blocked write then goes through.
        let len = expected.len();
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; len];
            b.read_exact(&mut got).await.unwrap();
            (b, got)
        });
        tx.write_all(&chunk).await.unwrap();
        let (mut b, got) = reader.await.unwrap();
        assert!(got == expected, "the bytes arrive intact and in order");
        // The socket is empty now: a small write goes through at once.
        tx.write_all(b"x").await.unwrap();
        assert!(
            tx.space.0.is_none(),
            "a whole write at once stops listening"
        );
        let mut x = [0u8; 1];
        b.read_exact(&mut x).await.unwrap();
        assert_eq!(&x, b"x");
        drop(tx);
        // The write half's drop shut the direction down: the peer reads the end.
        assert_eq!(b.read(&mut [0u8; 1]).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn vectored_writes_and_short_reads_keep_the_order() {
        let (mut a, mut b) = pair();
        let parts = [IoSlice::new(b"hello "), IoSlice::new(b"world")];
        let n = a.write_vectored(&parts).await.unwrap();
        assert_eq!(n, 11);
        let mut buf = [0u8; 64];
        let n = b.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hello world");
        // After a short read, data written later still wakes the reader.
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let n = b.read(&mut buf).await.unwrap();
            buf[..n].to_vec()
        });
        tokio::task::yield_now().await;
        a.write_all(b"later").await.unwrap();
        assert_eq!(reader.await.unwrap(), b"later");
    }
}
