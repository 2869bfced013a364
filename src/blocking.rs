//! Calls from code without an async runtime: a blocking client, and serving from sync code.
//!
//! `#[localrpc::service]` generates `XBlockingClient` next to `XClient`: the same methods as
//! plain `fn`s, usable from any thread (a plugin inside a synchronous application, a CLI). It
//! needs no Tokio runtime: the call is written to the socket and the answer read back on the
//! calling thread, so a call costs the socket round trip and little else.
//!
//! ```no_run
//! #[localrpc::service]
//! pub trait Calculator {
//!     async fn add(&self, a: i64, b: i64) -> i64;
//! }
//!
//! fn main() -> Result<(), localrpc::Error> {
//!     let calc = CalculatorBlockingClient::connect("myapp.calc")?
//!         .with_timeout(std::time::Duration::from_secs(2));
//!     assert_eq!(calc.add(1, 2)?, 3);
//!     Ok(())
//! }
//! ```
//!
//! One [`Client`] carries one call at a time (clones share the connection and take turns);
//! for many calls in flight use the async [`crate::Client`], or open one blocking client per
//! thread. A call whose deadline passes returns [`Error::DeadlineExceeded`] and tells the
//! server to stop the handler; its late answer is skipped. There is no reconnect: once the
//! connection is lost every call fails with [`Error::ConnectionLost`]; connect again.
//!
//! [`serve`] serves from synchronous code: it blocks the calling thread and, on Unix, gives
//! each connection a thread of its own that answers calls with blocking reads and writes.
use std::fmt;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use prost::Message;

use crate::client::Outgoing;
use crate::ipc::ConnectOptions;
use crate::ipc::blocking::LocalStream;
use crate::server::BoxError;
use crate::transport::{DEFAULT_MAX_FRAME_LEN, FrameError, Payload};
use crate::wire::{self, envelope, response};
use crate::{
    CallRequest, CallResponse, Error, IntoName, NamedService, RefuseReason, ServerRequest,
    ServerResponse, ServiceInfo,
};

/// How long the server has to answer the hello of [`Client::handshake`].
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Payloads up to this size are copied next to the frame head and written in one call.
const COPY_PAYLOAD_MAX: usize = 64 * 1024;
/// How much a read asks for at least, so that several small frames arrive in one read.
const READ_CHUNK: usize = 8 * 1024;

/// A blocking connection to one service. Generated `XBlockingClient`s wrap it; see the
/// [module docs](self) for an example.
///
/// Cheap to clone; clones share the connection and their calls take turns on it.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

struct Shared {
    info: &'static ServiceInfo,
    timeout: Option<Duration>,
    max_frame_len: usize,
    server_pid: Option<u32>,
    conn: Mutex<Conn>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::Client")
            .field("service", &self.shared.info.name())
            .field("timeout", &self.shared.timeout)
            .field("server_pid", &self.shared.server_pid)
            .finish_non_exhaustive()
    }
}

/// Builds a blocking [`Client`]: default timeout, frame limit, connect options.
///
/// ```no_run
/// # #[localrpc::service]
/// # pub trait Calculator { async fn add(&self, a: i64, b: i64) -> i64; }
/// use std::time::Duration;
/// use localrpc::NamedService;
///
/// # fn demo() -> Result<(), localrpc::Error> {
/// let client = localrpc::blocking::Client::builder(<CalculatorBlockingClient>::INFO)
///     .timeout(Duration::from_secs(2))
///     .connect("myapp.calc")?;
/// let calc = CalculatorBlockingClient::new(client);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    info: &'static ServiceInfo,
    timeout: Option<Duration>,
    max_frame_len: usize,
    connect: ConnectOptions,
}

impl ClientBuilder {
    /// A default timeout for every call (overridable per call); none by default.
    ///
    /// See [`ClientBuilder`] for an example.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The largest frame sent or accepted (default 16 MiB).
    ///
    /// See [`ClientBuilder`] for an example.
    pub fn max_frame_len(mut self, max: usize) -> Self {
        self.max_frame_len = max;
        self
    }

    /// Options for opening the local socket (e.g. the Windows pipe-busy timeout).
    ///
    /// See [`ClientBuilder`] for an example.
    pub fn connect_options(mut self, options: ConnectOptions) -> Self {
        self.connect = options;
        self
    }

    /// Connects to `name`. The handshake travels with the first call (no extra round trip);
    /// [`Client::handshake`] performs it at once.
    ///
    /// See [`ClientBuilder`] for an example.
    pub fn connect(self, name: impl IntoName) -> Result<Client, Error> {
        let stream = self.connect.connect_blocking(name)?;
        Ok(self.over(stream))
    }

    /// Runs the protocol over an already connected blocking stream.
    ///
    /// See [`ClientBuilder`] for an example of the other settings.
    pub fn over(self, stream: LocalStream) -> Client {
        let server_pid = stream.peer_credentials().ok().and_then(|p| p.pid());
        Client {
            shared: Arc::new(Shared {
                info: self.info,
                timeout: self.timeout,
                max_frame_len: self.max_frame_len,
                server_pid,
                conn: Mutex::new(Conn::new(stream, self.max_frame_len)),
            }),
        }
    }
}

impl Client {
    /// Connects with default options.
    ///
    /// See the [module docs](self) for an example; generated clients call this from
    /// `XBlockingClient::connect`.
    pub fn connect(name: impl IntoName, info: &'static ServiceInfo) -> Result<Client, Error> {
        Client::builder(info).connect(name)
    }

    /// A builder for a client of `info` (a generated client's `INFO`).
    ///
    /// See [`ClientBuilder`] for an example.
    pub fn builder(info: &'static ServiceInfo) -> ClientBuilder {
        ClientBuilder {
            info,
            timeout: None,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            connect: ConnectOptions::new(),
        }
    }

    /// Performs the handshake now, if no call has yet, and returns its verdict: whether the
    /// server serves this service with the same method table.
    ///
    /// ```no_run
    /// # #[localrpc::service]
    /// # pub trait Calculator { async fn add(&self, a: i64, b: i64) -> i64; }
    /// # fn demo() -> Result<(), localrpc::Error> {
    /// let calc = CalculatorBlockingClient::connect("myapp.calc")?;
    /// calc.get_ref().handshake()?; // fails with Error::HandshakeRefused on a mismatch
    /// # Ok(()) }
    /// ```
    pub fn handshake(&self) -> Result<(), Error> {
        let mut conn = self.lock();
        conn.usable()?;
        if !conn.hello_sent {
            let hello = self.hello();
            conn.send(&[], &hello, None).map_err(|e| conn.lose(e))?;
        }
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        while !conn.hello_answered {
            match conn.read_frame(Some(deadline)) {
                Ok(frame) => conn.hello_reply(frame)?,
                Err(ReadFail::TimedOut) => {
                    return Err(conn.close(Closed::Lost(
                        "the server did not answer the handshake".into(),
                    )));
                }
                Err(ReadFail::Closed(why)) => return Err(conn.close(why)),
            }
        }
        Ok(())
    }

    /// The service this client calls.
    ///
    /// See [`ClientBuilder`] for an example.
    pub fn service(&self) -> &'static ServiceInfo {
        self.shared.info
    }

    /// Performs one call: writes the request, waits for its answer on this thread.
    ///
    /// ```no_run
    /// # #[localrpc::service]
    /// # pub trait Calculator { async fn add(&self, a: i64, b: i64) -> i64; }
    /// use localrpc::{CallRequest, CallResponse, NamedService};
    /// # fn demo() -> Result<(), localrpc::Error> {
    /// let info = <CalculatorBlockingClient>::INFO;
    /// let client = localrpc::blocking::Client::connect("myapp.calc", info)?;
    /// let args = postcard::to_allocvec(&(1i64, 2i64)).unwrap();
    /// match client.request(CallRequest::new(info, 0, args.into()))? {
    ///     CallResponse::Ok(bytes) => println!("{:?}", postcard::from_bytes::<i64>(&bytes)),
    ///     CallResponse::AppError(_) => unreachable!("add declares no error"),
    ///     CallResponse::Stream(_) => unreachable!("the blocking client makes no streaming calls"),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn request(&self, req: CallRequest) -> Result<CallResponse, Error> {
        if req.has_request_stream() || req.has_response_stream() {
            return Err(Error::Protocol(format!(
                "{} takes or returns a stream: streaming methods need the async client",
                req.method_name()
            )));
        }
        let out = Outgoing::new(req.timeout.or(self.shared.timeout));
        let deadline = out.deadline;

        let mut conn = self.lock();
        conn.usable()?;
        let id = conn.next_id;
        conn.next_id += 1;
        // The time left is taken after waiting for the connection.
        let frame = req.into_frame(id, &out, false, None, self.shared.max_frame_len)?;
        let hello = (!conn.hello_sent).then(|| self.hello());
        let hello = hello.as_ref().map_or(&[][..], |h| &h[..]);
        conn.send(hello, &frame.head, Some(frame.payload))
            .map_err(|e| conn.lose(e))?;

        loop {
            let frame = match conn.read_frame(deadline) {
                Ok(frame) => frame,
                Err(ReadFail::TimedOut) => {
                    conn.cancel(id);
                    return Err(Error::DeadlineExceeded);
                }
                Err(ReadFail::Closed(why)) => return Err(conn.close(why)),
            };
            if !conn.hello_answered {
                conn.hello_reply(frame)?;
                continue;
            }
            let decoded = match wire::fast::response(&frame) {
                Some(resp) => Ok(Some(envelope::Kind::Response(resp))),
                None => wire::Envelope::decode(frame).map(|e| e.kind),
            };
            let kind = match decoded {
                Ok(Some(kind)) => kind,
                Ok(None) => continue,
                Err(e) => {
                    let why = format!("undecodable envelope from the server: {e}");
                    return Err(conn.close(Closed::Lost(why)));
                }
            };
            match kind {
                envelope::Kind::Response(resp) if resp.call_id == id => {
                    return match resp.result {
                        Some(response::Result::Ok(value)) => Ok(CallResponse::Ok(value)),
                        Some(response::Result::AppError(err)) => Ok(CallResponse::AppError(err)),
                        Some(response::Result::Error(status)) => Err(wire::status_error(status)),
                        None => Err(Error::Protocol("response without a result".into())),
                    };
                }
                // The late answer of a call that timed out earlier.
                envelope::Kind::Response(_) => {}
                envelope::Kind::GoAway(_) => conn.going_away = true,
                envelope::Kind::Request(_) | envelope::Kind::Cancel(_) => {
                    tracing::debug!("ignoring a client-bound request or cancel from the server");
                }
                // This client makes no streaming calls.
                _ => {}
            }
        }
    }

    fn hello(&self) -> Bytes {
        wire::encode(&wire::hello(self.shared.info, None))
    }

    fn lock(&self) -> MutexGuard<'_, Conn> {
        // A panic while holding the lock leaves the connection in an unknown state.
        self.shared.conn.lock().unwrap_or_else(|poisoned| {
            let mut conn = poisoned.into_inner();
            conn.closed
                .get_or_insert(Closed::Lost("a call panicked mid-way".into()));
            conn
        })
    }
}

/// Why the connection can carry no more calls.
#[derive(Debug, Clone)]
enum Closed {
    Lost(String),
    ShutDown,
    Refused(RefuseReason, String),
}

impl Closed {
    fn error(&self) -> Error {
        match self {
            Closed::Lost(why) => Error::lost(why.clone()),
            Closed::ShutDown => Error::ShuttingDown,
            Closed::Refused(reason, message) => Error::HandshakeRefused {
                reason: *reason,
                message: message.clone(),
            },
        }
    }
}

enum ReadFail {
    TimedOut,
    Closed(Closed),
}

struct Conn {
    stream: LocalStream,
    max_frame_len: usize,
    next_id: u64,
    hello_sent: bool,
    hello_answered: bool,
    going_away: bool,
    closed: Option<Closed>,
    /// The read timeout currently set on the stream.
    read_timeout: Option<Duration>,
    rbuf: BytesMut,
    /// Where small reads land before they join `rbuf`: zeroed once, not on every read.
    scratch: Box<[u8]>,
    wbuf: Vec<u8>,
}

impl Conn {
    fn new(stream: LocalStream, max_frame_len: usize) -> Conn {
        Conn {
            stream,
            max_frame_len,
            next_id: 1,
            hello_sent: false,
            hello_answered: false,
            going_away: false,
            closed: None,
            read_timeout: None,
            rbuf: BytesMut::new(),
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            wbuf: Vec::new(),
        }
    }

    fn usable(&self) -> Result<(), Error> {
        match &self.closed {
            Some(why) => Err(why.error()),
            None if self.going_away => Err(Error::ShuttingDown),
            None => Ok(()),
        }
    }

    fn close(&mut self, why: Closed) -> Error {
        tracing::debug!(reason = ?why, "blocking client connection closed");
        self.closed.get_or_insert(why).error()
    }

    fn lose(&mut self, e: io::Error) -> Error {
        self.close(Closed::Lost(format!("write failed: {e}")))
    }

    /// Writes `hello` (if not empty) and one frame made of `head` and `payload`, in one
    /// write unless the payload has large pieces, which are written from their own buffers.
    fn send(&mut self, hello: &[u8], head: &[u8], payload: Option<Payload>) -> io::Result<()> {
        let payload = payload.unwrap_or_default();
        self.wbuf.clear();
        if !hello.is_empty() {
            self.wbuf.extend_from_slice(&frame_len(hello.len()));
            self.wbuf.extend_from_slice(hello);
            self.hello_sent = true;
        }
        self.wbuf
            .extend_from_slice(&frame_len(head.len() + payload.len()));
        self.wbuf.extend_from_slice(head);
        for piece in payload.pieces() {
            if piece.len() <= COPY_PAYLOAD_MAX {
                self.wbuf.extend_from_slice(piece);
            } else {
                self.stream.write_all(&self.wbuf)?;
                self.wbuf.clear();
                self.stream.write_all(piece)?;
            }
        }
        if self.wbuf.is_empty() {
            return Ok(());
        }
        self.stream.write_all(&self.wbuf)
    }

    fn cancel(&mut self, id: u64) {
        let cancel = wire::encode_envelope(envelope::Kind::Cancel(wire::Cancel { call_id: id }));
        if let Err(e) = self.send(&[], &cancel, None) {
            self.lose(e);
        }
    }

    /// Reads the server's answer to the hello.
    fn hello_reply(&mut self, frame: Bytes) -> Result<(), Error> {
        match wire::HelloReply::decode(frame) {
            Err(e) => {
                let why = format!("handshake reply does not decode: {e}");
                Err(self.close(Closed::Lost(why)))
            }
            Ok(wire::HelloReply {
                refusal: Some(refusal),
                ..
            }) => {
                let reason = wire::refuse_reason(refusal.reason);
                Err(self.close(Closed::Refused(reason, refusal.message)))
            }
            Ok(_) => {
                self.hello_answered = true;
                Ok(())
            }
        }
    }

    /// The next frame, waiting until `deadline` at most.
    fn read_frame(&mut self, deadline: Option<Instant>) -> Result<Bytes, ReadFail> {
        loop {
            let want = if self.rbuf.len() >= 4 {
                let len = u32::from_le_bytes(self.rbuf[..4].try_into().expect("4 bytes")) as usize;
                if len > self.max_frame_len {
                    let e = FrameError::TooLarge {
                        len: len as u64,
                        max: self.max_frame_len,
                    };
                    return Err(ReadFail::Closed(Closed::Lost(e.to_string())));
                }
                if self.rbuf.len() >= 4 + len {
                    self.rbuf.advance(4);
                    return Ok(self.rbuf.split_to(len).freeze());
                }
                4 + len - self.rbuf.len()
            } else {
                READ_CHUNK
            };
            let timeout = match deadline {
                None => None,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(ReadFail::TimedOut);
                    }
                    Some(left)
                }
            };
            if timeout != self.read_timeout {
                if let Err(e) = self.stream.set_read_timeout(timeout) {
                    return Err(ReadFail::Closed(Closed::Lost(format!(
                        "cannot set the read timeout: {e}"
                    ))));
                }
                self.read_timeout = timeout;
            }
            let start = self.rbuf.len();
            let result = if want <= READ_CHUNK {
                // Small reads go through the scratch buffer: cheaper than zeroing buffer
                // space for each read.
                let result = self.stream.read(&mut self.scratch);
                if let Ok(n) = result {
                    self.rbuf.extend_from_slice(&self.scratch[..n]);
                }
                result
            } else {
                self.rbuf.resize(start + want, 0);
                let result = self.stream.read(&mut self.rbuf[start..]);
                self.rbuf.truncate(start + *result.as_ref().unwrap_or(&0));
                result
            };
            match result {
                Ok(0) if start > 0 => {
                    let e = FrameError::Truncated {
                        expected: 4,
                        received: start,
                    };
                    return Err(ReadFail::Closed(Closed::Lost(format!(
                        "the server closed the connection mid-frame: {e}"
                    ))));
                }
                Ok(0) if self.going_away => return Err(ReadFail::Closed(Closed::ShutDown)),
                Ok(0) => {
                    return Err(ReadFail::Closed(Closed::Lost(
                        "the server closed the connection".into(),
                    )));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) && deadline.is_some() =>
                {
                    // Woken early by the timeout's rounding: check the deadline again.
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(ReadFail::TimedOut);
                    }
                }
                Err(e) => return Err(ReadFail::Closed(Closed::Lost(format!("read failed: {e}")))),
            }
        }
    }
}

fn frame_len(len: usize) -> [u8; 4] {
    u32::try_from(len)
        .expect("frames are checked against the limit first")
        .to_le_bytes()
}

/// Serves `service` at `name` from synchronous code, and blocks the calling thread for as
/// long as the process runs: [`ServerBuilder::serve_blocking`](crate::ServerBuilder::serve_blocking)
/// with the default settings, where it is described. On Unix each connection gets a thread
/// of its own, so a [blocking client](Client) sees close to the latency of a plain socket
/// exchange.
///
/// ```no_run
/// #[localrpc::service]
/// pub trait Calculator {
///     async fn add(&self, a: i64, b: i64) -> i64;
/// }
/// struct MyCalc;
/// impl Calculator for MyCalc {
///     async fn add(&self, a: i64, b: i64) -> i64 { a + b }
/// }
///
/// fn main() -> Result<(), localrpc::Error> {
///     localrpc::blocking::serve("myapp.calc", CalculatorServer::new(MyCalc))
/// }
/// ```
pub fn serve<S>(name: impl IntoName, service: S) -> Result<(), Error>
where
    S: NamedService
        + tower::Service<ServerRequest, Response = ServerResponse>
        + Clone
        + Send
        + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    crate::Server::builder().serve_blocking(name, service)
}

/// What the generated blocking clients call through. Implemented by [`Client`].
///
/// ```
/// fn takes_any(_: &impl localrpc::blocking::Call) {}
/// ```
pub trait Call {
    /// Performs one call.
    fn call(&self, req: CallRequest) -> Result<CallResponse, Error>;
}

impl Call for Client {
    fn call(&self, req: CallRequest) -> Result<CallResponse, Error> {
        self.request(req)
    }
}

impl<T: Call + ?Sized> Call for Arc<T> {
    fn call(&self, req: CallRequest) -> Result<CallResponse, Error> {
        (**self).call(req)
    }
}

impl<T: Call + ?Sized> Call for &T {
    fn call(&self, req: CallRequest) -> Result<CallResponse, Error> {
        (**self).call(req)
    }
}
