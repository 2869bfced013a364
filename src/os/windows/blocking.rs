//! Blocking pipes, built on the Tokio types.
//!
//! Synchronous pipe handles serialise all I/O on a handle, so a thread blocked in `read`
//! would stall a `write` from another thread and split halves could deadlock. Instead the
//! blocking types wrap the overlapped Tokio types. The pipes are registered with one private
//! current-thread runtime, which a background thread drives for the life of the process:
//! completions (including the close that a peer waits for as end-of-file) are processed even
//! while no blocking call is in progress, and the runtime is never dropped, so dropping a
//! blocking stream inside some other async runtime cannot panic.
//!
//! Every operation runs as a task on that thread and the calling thread waits for its
//! result. Overlapped I/O is thus always issued by a thread that outlives it: a stream that
//! several short-lived threads take turns on would otherwise leave a read pending on behalf
//! of a thread that has exited, which Wine completes before its status is final
//! (`ERROR_IO_INCOMPLETE`), losing the connection.
use std::future::Future;
use std::io::{self, IoSlice, Read, Write};
use std::os::windows::io::{AsRawHandle, RawHandle};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

use tokio::runtime::{Builder, EnterGuard, Handle};

use super::cred::PipeEnd;
use super::stream::Stream;
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

/// Runs `fut` as a task on the driver thread and waits for its output on this one.
fn on_driver<T: Send + 'static>(
    fut: impl Future<Output = io::Result<T>> + Send + 'static,
) -> io::Result<T> {
    let task = driver()?.spawn(fut);
    block_on(task).unwrap_or_else(|e| Err(io::Error::other(format!("pipe I/O task failed: {e}"))))
}

#[derive(Debug)]
pub(crate) struct BlockingListener {
    inner: Arc<Listener>,
}

impl BlockingListener {
    pub(crate) fn bind(name: &Name, opts: &ListenerOptions) -> Result<BlockingListener, Error> {
        let _context = enter(name, "bind")?;
        Listener::bind(name, opts).map(|inner| BlockingListener {
            inner: Arc::new(inner),
        })
    }

    pub(crate) fn accept(&self) -> io::Result<BlockingStream> {
        let listener = self.inner.clone();
        on_driver(async move { listener.accept().await }).map(BlockingStream::new)
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        self.inner.endpoint()
    }
}

pub(crate) fn connect_blocking(
    name: &Name,
    opts: &ConnectOptions,
) -> Result<BlockingStream, Error> {
    let endpoint = name.endpoint()?;
    let task_failed = |source| Error::Io {
        op: "connect",
        endpoint: endpoint.clone(),
        source,
    };
    let (name, opts) = (name.clone(), opts.clone());
    let task = driver()
        .map_err(task_failed)?
        .spawn(async move { connect(&name, &opts).await });
    block_on(task)
        .unwrap_or_else(|e| Err(task_failed(io::Error::other(e.to_string()))))
        .map(BlockingStream::new)
}

/// The most one `read` or `write` moves; the scratch buffers grow to this at most.
const CHUNK: usize = 64 * 1024;

/// One direction of a pipe: the handle shared with the other direction, and a scratch
/// buffer that carries the bytes between the calling thread and the driver's task.
#[derive(Debug)]
struct Direction {
    pipe: Arc<Stream>,
    scratch: Vec<u8>,
}

impl Direction {
    fn new(pipe: Arc<Stream>) -> Self {
        Direction {
            pipe,
            scratch: Vec::new(),
        }
    }

    /// Reads at most `buf.len()` bytes, giving up with `TimedOut` after `timeout`.
    fn read(&mut self, buf: &mut [u8], timeout: Option<Duration>) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(CHUNK);
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.resize(want, 0);
        let pipe = self.pipe.clone();
        let (scratch, read) = on_driver(async move {
            let read = async {
                loop {
                    pipe.readable().await?;
                    match pipe.try_read(&mut scratch[..want]) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        done => return done,
                    }
                }
            };
            // Dropping the read at the deadline is safe: bytes are only taken in `try_read`.
            let read = match timeout {
                None => read.await,
                Some(t) => tokio::time::timeout(t, read).await.unwrap_or_else(|_| {
                    Err(io::Error::new(io::ErrorKind::TimedOut, "read timed out"))
                }),
            };
            Ok((scratch, read))
        })?;
        let n = read.inspect(|&n| buf[..n].copy_from_slice(&scratch[..n]));
        self.scratch = scratch;
        n
    }

    /// Hands the pipe as many of `bufs`' bytes as fit in one chunk.
    fn write(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        for b in bufs {
            let room = CHUNK - scratch.len();
            scratch.extend_from_slice(&b[..b.len().min(room)]);
            if scratch.len() == CHUNK {
                break;
            }
        }
        if scratch.is_empty() {
            self.scratch = scratch;
            return Ok(0);
        }
        let pipe = self.pipe.clone();
        let (scratch, written) = on_driver(async move {
            let written = loop {
                pipe.writable().await?;
                match pipe.try_write(&scratch) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    done => break done,
                }
            };
            Ok((scratch, written))
        })?;
        self.scratch = scratch;
        written
    }
}

/// A connected pipe with blocking `Read` and `Write`.
#[derive(Debug)]
pub(crate) struct BlockingStream {
    reader: Direction,
    writer: Direction,
    /// The read timeout in nanoseconds; `NO_TIMEOUT` for none.
    read_timeout: AtomicU64,
}

const NO_TIMEOUT: u64 = u64::MAX;

impl BlockingStream {
    fn new(inner: Stream) -> Self {
        let pipe = Arc::new(inner);
        BlockingStream {
            reader: Direction::new(pipe.clone()),
            writer: Direction::new(pipe),
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
    reader: Direction,
}

#[derive(Debug)]
pub(crate) struct BlockingSendHalf {
    writer: Direction,
}

pub(crate) fn split_blocking(
    stream: BlockingStream,
) -> io::Result<(BlockingRecvHalf, BlockingSendHalf)> {
    Ok((
        BlockingRecvHalf {
            reader: stream.reader,
        },
        BlockingSendHalf {
            writer: stream.writer,
        },
    ))
}

impl AsRawHandle for BlockingStream {
    fn as_raw_handle(&self) -> RawHandle {
        self.reader.pipe.as_raw_handle()
    }
}

impl PipeEnd for BlockingStream {
    fn is_server(&self) -> bool {
        self.reader.pipe.is_server()
    }
}

impl Read for BlockingStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let timeout = match self.read_timeout.load(Ordering::Relaxed) {
            NO_TIMEOUT => None,
            nanos => Some(Duration::from_nanos(nanos)),
        };
        self.reader.read(buf, timeout)
    }
}

impl Read for BlockingRecvHalf {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf, None)
    }
}

macro_rules! blocking_write {
    ($($ty:ty),+) => {$(
        impl Write for $ty {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.writer.write(&[IoSlice::new(buf)])
            }
            fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
                self.writer.write(bufs)
            }
            /// A write is complete once the pipe has taken its bytes.
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
    )+};
}

blocking_write!(BlockingStream, BlockingSendHalf);
