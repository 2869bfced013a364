//! Blocking pipes, built on the Tokio types.
//!
//! Synchronous pipe handles serialise all I/O on a handle, so a thread blocked in `read`
//! would stall a `write` from another thread and split halves could deadlock. Instead the
//! blocking types wrap the overlapped Tokio types and wait for each call on the calling
//! thread. The pipes are registered with one private current-thread runtime, which a
//! background thread drives for the life of the process: completions (including the close
//! that a peer waits for as end-of-file) are processed even while no blocking call is in
//! progress, and the runtime is never dropped, so dropping a blocking stream inside some
//! other async runtime cannot panic.
use std::future::Future;
use std::io::{self, IoSlice, Read, Write};
use std::os::windows::io::{AsRawHandle, RawHandle};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::{Builder, EnterGuard, Handle};

use super::cred::PipeEnd;
use super::stream::{RecvHalf, SendHalf, Stream};
use super::{Listener, connect};
use crate::ipc::{ConnectOptions, Error, ListenerOptions};
use crate::{Endpoint, Name};

/// The runtime the blocking pipes are registered with, started on first use.
fn driver() -> io::Result<&'static Handle> {
    static HANDLE: OnceLock<Handle> = OnceLock::new();
    static INIT: Mutex<()> = Mutex::new(());
    if let Some(handle) = HANDLE.get() {
        return Ok(handle);
    }
    let _init = INIT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(handle) = HANDLE.get() {
        return Ok(handle);
    }
    let runtime = Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let handle = runtime.handle().clone();
    thread::Builder::new()
        .name("localrpc-pipe-io".into())
        .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
    Ok(HANDLE.get_or_init(|| handle))
}

/// Enters the driver's runtime context, which creating pipes and timers needs.
fn enter(name: &Name, op: &'static str) -> Result<EnterGuard<'static>, Error> {
    let endpoint = name.endpoint()?;
    driver().map(Handle::enter).map_err(|source| Error::Io {
        op,
        endpoint,
        source,
    })
}

/// Wakes a thread parked in [`block_on`].
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `fut` on this thread, parking between polls; the driver thread wakes it.
///
/// Unlike `Runtime::block_on`, this does not refuse to run inside another runtime: it just
/// blocks the thread, as a blocking Unix socket would.
fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}

#[derive(Debug)]
pub(crate) struct BlockingListener {
    inner: Listener,
}

impl BlockingListener {
    pub(crate) fn bind(name: &Name, opts: &ListenerOptions) -> Result<BlockingListener, Error> {
        let _context = enter(name, "bind")?;
        Listener::bind(name, opts).map(|inner| BlockingListener { inner })
    }

    pub(crate) fn accept(&self) -> io::Result<BlockingStream> {
        let _context = driver()?.enter();
        block_on(self.inner.accept()).map(BlockingStream::new)
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        self.inner.endpoint()
    }
}

pub(crate) fn connect_blocking(
    name: &Name,
    opts: &ConnectOptions,
) -> Result<BlockingStream, Error> {
    // The context stays entered while polling: the busy retry creates timers.
    let _context = enter(name, "connect")?;
    block_on(connect(name, opts)).map(BlockingStream::new)
}

/// A connected pipe with blocking `Read` and `Write`.
#[derive(Debug)]
pub(crate) struct BlockingStream {
    inner: Stream,
    /// The read timeout in nanoseconds; `NO_TIMEOUT` for none.
    read_timeout: AtomicU64,
}

const NO_TIMEOUT: u64 = u64::MAX;

impl BlockingStream {
    fn new(inner: Stream) -> Self {
        BlockingStream {
            inner,
            read_timeout: AtomicU64::new(NO_TIMEOUT),
        }
    }

    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        let nanos = timeout.map_or(NO_TIMEOUT, |t| {
            u64::try_from(t.as_nanos()).unwrap_or(NO_TIMEOUT - 1)
        });
        self.read_timeout.store(nanos, Ordering::Relaxed);
        Ok(())
    }
}

#[derive(Debug)]
pub(crate) struct BlockingRecvHalf {
    inner: RecvHalf,
}

#[derive(Debug)]
pub(crate) struct BlockingSendHalf {
    inner: SendHalf,
}

pub(crate) fn split_blocking(
    stream: BlockingStream,
) -> io::Result<(BlockingRecvHalf, BlockingSendHalf)> {
    let (rx, tx) = super::split(stream.inner);
    Ok((
        BlockingRecvHalf { inner: rx },
        BlockingSendHalf { inner: tx },
    ))
}

impl AsRawHandle for BlockingStream {
    fn as_raw_handle(&self) -> RawHandle {
        self.inner.as_raw_handle()
    }
}

impl PipeEnd for BlockingStream {
    fn is_server(&self) -> bool {
        self.inner.is_server()
    }
}

macro_rules! blocking_io {
    ($($ty:ty: $($trait:ident),+;)+) => {$($(blocking_io!(@$trait $ty);)+)+};
    (@Read $ty:ty) => {
        impl Read for $ty {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                block_on(self.inner.read(buf))
            }
        }
    };
    (@Write $ty:ty) => {
        impl Write for $ty {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                block_on(self.inner.write(buf))
            }
            fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
                block_on(self.inner.write_vectored(bufs))
            }
            fn flush(&mut self) -> io::Result<()> {
                block_on(self.inner.flush())
            }
        }
    };
}

impl Read for BlockingStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.read_timeout.load(Ordering::Relaxed) {
            NO_TIMEOUT => block_on(self.inner.read(buf)),
            nanos => {
                // The timer belongs to the driver's runtime.
                let _context = driver()?.enter();
                let read = tokio::time::timeout(Duration::from_nanos(nanos), self.inner.read(buf));
                block_on(read).unwrap_or_else(|_| {
                    Err(io::Error::new(io::ErrorKind::TimedOut, "read timed out"))
                })
            }
        }
    }
}

blocking_io! {
    BlockingStream: Write;
    BlockingRecvHalf: Read;
    BlockingSendHalf: Write;
}
