use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tracing::Instrument;

use super::call::{streaming_call, unary_call};
use super::connection::{Connection, Offered};
use super::request::Outgoing;
use super::{CallRequest, CallResponse, ReconnectPolicy};
use crate::deadline;
use crate::ipc::{ConnectOptions, LocalStream};
use crate::server::BoxError;
use crate::stream;
use crate::transport::DEFAULT_MAX_FRAME_LEN;
use crate::{Error, IntoName, Name, ServiceInfo};
use crate::{ServerRequest, ServerResponse};

/// A connection to one service: many calls in flight at once, answered out of order.
///
/// Cheap to clone (clones share the connection). Generated clients (`XClient`) wrap it; it is
/// also a `tower::Service<CallRequest>`, so tower layers can wrap it.
///
/// Connect inside a Tokio runtime: the connection reads, writes and keeps its timers there.
/// Its calls and streams may then be polled anywhere, by that runtime or by another executor
/// on a thread of its own; deadlines, request streams and reconnecting still run on the
/// connection's runtime.
///
/// Requests that callers make at about the same moment share a write: the callers woken by
/// one batch of replies leave theirs to the last of them. Many callers on one connection
/// make the most calls per second when they run on the connection's own thread (a
/// current-thread runtime); on a multi-threaded one they pay for wake-ups between worker
/// threads (figures in `benches/README.md`).
///
/// ```no_run
/// # #[localrpc::service]
/// # pub trait Calculator { async fn add(&self, a: i64, b: i64) -> i64; }
/// use std::time::Duration;
/// use localrpc::{Client, NamedService, ReconnectPolicy};
///
/// # async fn demo() -> Result<(), localrpc::Error> {
/// let client = Client::builder(CalculatorClient::<Client>::INFO)
///     .timeout(Duration::from_secs(2))
///     .reconnect(ReconnectPolicy::default())
///     .connect("myapp.calc")
///     .await?;
/// let limited = tower::ServiceBuilder::new()
///     .concurrency_limit(16)
///     .service(client);
/// # let _ = limited;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

struct Shared {
    info: &'static ServiceInfo,
    timeout: Option<Duration>,
    stream_window: u32,
    /// The connection calls go to; read by every call, written only by a reconnect.
    conn: RwLock<Arc<Connection>>,
    setup: Setup,
    redial: Option<Redial>,
    reconnecting: tokio::sync::Mutex<()>,
}

struct Redial {
    name: Name,
    options: ConnectOptions,
    policy: ReconnectPolicy,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("service", &self.shared.info.name())
            .field("timeout", &self.shared.timeout)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Client`]: default timeout, frame limit, reconnect policy.
///
/// See [`Client`] for an example.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    info: &'static ServiceInfo,
    timeout: Option<Duration>,
    stream_window: u32,
    max_frame_len: usize,
    reconnect: Option<ReconnectPolicy>,
    connect: ConnectOptions,
    offered: Option<Offered>,
}

impl ClientBuilder {
    /// A default timeout for every call (overridable per call); none by default.
    ///
    /// See [`Client`] for an example.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The largest frame sent or accepted (default 16 MiB). A call whose request is larger
    /// fails with [`Error::FrameTooLarge`] before anything is sent.
    ///
    /// See [`Client`] for an example.
    pub fn max_frame_len(mut self, max: usize) -> Self {
        self.max_frame_len = max;
        self
    }

    /// The receive window of each stream a method returns, in bytes (default
    /// [`stream::DEFAULT_WINDOW`](crate::stream::DEFAULT_WINDOW), at least 64): how much the
    /// server may send ahead of what the caller has taken from the stream. Streams whose
    /// callers stop reading hold at most this much each: a client with many such streams
    /// open at once may want a smaller window.
    ///
    /// See [`Client`] for an example.
    pub fn stream_window(mut self, bytes: u32) -> Self {
        self.stream_window = bytes.max(crate::stream::MIN_WINDOW);
        self
    }

    /// Reconnect when a call finds the connection lost (none by default: calls then fail
    /// with [`Error::ConnectionLost`]). Calls in flight when the connection dies still fail.
    ///
    /// See [`Client`] for an example.
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = Some(policy);
        self
    }

    /// Options for opening the local socket (e.g. the Windows pipe-busy timeout).
    ///
    /// See [`Client`] for an example.
    pub fn connect_options(mut self, options: ConnectOptions) -> Self {
        self.connect = options;
        self
    }

    /// Connects to `name` and performs the handshake.
    ///
    /// See [`Client`] for an example.
    pub async fn connect(self, name: impl IntoName) -> Result<Client, Error> {
        let name = name.into_name().map_err(crate::ipc::Error::from)?;
        let conn = dial(&name, &self.connect, &self.setup()).await?;
        let options = self.connect.clone();
        let redial = self.reconnect.clone().map(|policy| Redial {
            name,
            options,
            policy,
        });
        Ok(self.finish(conn, redial))
    }

    /// Runs the protocol over any byte-stream halves (a socketpair, a child's stdio, TCP).
    /// There is no name to reconnect to, so a reconnect policy is ignored.
    ///
    /// ```no_run
    /// # #[localrpc::service]
    /// # pub trait Calculator { async fn add(&self, a: i64, b: i64) -> i64; }
    /// # async fn demo(child: &mut tokio::process::Child) -> Result<(), localrpc::Error> {
    /// use localrpc::{Client, NamedService};
    /// let (stdout, stdin) = (child.stdout.take().unwrap(), child.stdin.take().unwrap());
    /// let client = Client::builder(CalculatorClient::<Client>::INFO).connect_io(stdout, stdin).await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_io<R, W>(self, reader: R, writer: W) -> Result<Client, Error>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let setup = self.setup();
        let conn = Connection::open(
            reader,
            writer,
            setup.info,
            setup.max_frame_len,
            None,
            setup.offered,
        );
        Ok(self.finish(conn, None))
    }

    /// Runs the protocol over an already connected local stream (for example the one
    /// [`process::Child::take_stream`](crate::process::Child::take_stream) returns). There
    /// is no name to reconnect to, so a reconnect policy is ignored. Must be called inside
    /// a Tokio runtime.
    ///
    /// ```no_run
    /// # #[localrpc::service]
    /// # pub trait Calculator { async fn add(&self, a: i64, b: i64) -> i64; }
    /// # async fn demo() -> Result<(), localrpc::Error> {
    /// use localrpc::{Client, NamedService};
    /// let stream = localrpc::ipc::LocalStream::connect("myapp.calc").await?;
    /// let client = Client::builder(CalculatorClient::<Client>::INFO).over(stream);
    /// # Ok(()) }
    /// ```
    pub fn over(self, stream: LocalStream) -> Client {
        let conn = open_stream(stream, &self.setup());
        self.finish(conn, None)
    }

    /// Offers `service` on the connection for the server to call back: its handlers get a
    /// typed client of it with [`peer_client`](crate::peer_client). The service runs in
    /// this process, each call on a task of its own; wrap it in tower layers as any server.
    /// Only unary methods can be called back.
    ///
    /// See [`peer_client`](crate::peer_client) for an example.
    pub fn offer<S>(self, service: S) -> Self
    where
        S: crate::NamedService
            + tower::Service<ServerRequest, Response = ServerResponse>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        self.offer_as(S::INFO, service)
    }

    /// Like [`offer`](Self::offer), for a service whose type does not name it, such as a
    /// generated server wrapped in tower layers: `info` is the generated server's `INFO`.
    ///
    /// ```no_run
    /// # #[localrpc::service]
    /// # pub trait Progress { async fn report(&self, percent: u8); }
    /// # struct Printer;
    /// # impl Progress for Printer { async fn report(&self, _: u8) {} }
    /// # #[localrpc::service]
    /// # pub trait Worker { async fn work(&self) -> u64; }
    /// use std::time::Duration;
    /// use localrpc::NamedService;
    ///
    /// # async fn demo() -> Result<(), localrpc::Error> {
    /// let progress = tower::ServiceBuilder::new()
    ///     .timeout(Duration::from_secs(1))
    ///     .service(ProgressServer::new(Printer));
    /// let client = localrpc::Client::builder(<WorkerClient>::INFO)
    ///     .offer_as(<ProgressServer<Printer>>::INFO, progress)
    ///     .connect("myapp.worker")
    ///     .await?;
    /// # drop(client); Ok(()) }
    /// ```
    pub fn offer_as<S>(mut self, info: &'static ServiceInfo, service: S) -> Self
    where
        S: tower::Service<ServerRequest, Response = ServerResponse> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        use tower::ServiceExt;
        self.offered = Some(Offered {
            info,
            svc: tower::util::BoxCloneSyncService::new(service.map_err(Into::into)),
        });
        self
    }

    fn setup(&self) -> Setup {
        Setup {
            info: self.info,
            max_frame_len: self.max_frame_len,
            offered: self.offered.clone(),
        }
    }

    fn finish(self, conn: Arc<Connection>, redial: Option<Redial>) -> Client {
        Client {
            shared: Arc::new(Shared {
                info: self.info,
                timeout: self.timeout,
                stream_window: self.stream_window,
                conn: RwLock::new(conn),
                setup: self.setup(),
                redial,
                reconnecting: tokio::sync::Mutex::new(()),
            }),
        }
    }
}

/// What every connection of a client is opened with.
#[derive(Clone)]
struct Setup {
    info: &'static ServiceInfo,
    max_frame_len: usize,
    offered: Option<Offered>,
}

async fn dial(
    name: &Name,
    options: &ConnectOptions,
    setup: &Setup,
) -> Result<Arc<Connection>, Error> {
    let stream = options.connect(name).await?;
    Ok(open_stream(stream, setup))
}

fn open_stream(stream: LocalStream, setup: &Setup) -> Arc<Connection> {
    let server = stream.peer_credentials().ok();
    let (reader, writer) = stream.into_split();
    Connection::open(
        reader,
        writer,
        setup.info,
        setup.max_frame_len,
        server,
        setup.offered.clone(),
    )
}

impl Client {
    /// Connects with default options.
    ///
    /// See [`Client`] for an example; generated clients call this from `XClient::connect`.
    pub async fn connect(name: impl IntoName, info: &'static ServiceInfo) -> Result<Client, Error> {
        Client::builder(info).connect(name).await
    }

    /// A builder for a client of `info` (a generated client's `INFO`).
    ///
    /// See [`Client`] for an example.
    pub fn builder(info: &'static ServiceInfo) -> ClientBuilder {
        ClientBuilder {
            info,
            timeout: None,
            stream_window: stream::DEFAULT_WINDOW,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            reconnect: None,
            connect: ConnectOptions::new(),
            offered: None,
        }
    }

    /// Waits until the server has accepted the handshake, or says why it refused.
    ///
    /// `connect` does not wait for the server's answer: the first call follows the hello
    /// without an extra round trip, and fails with [`Error::HandshakeRefused`] if the server
    /// refuses. Call this to find out at startup instead.
    ///
    /// ```no_run
    /// # #[localrpc::service]
    /// # pub trait Calculator { async fn add(&self, a: i64, b: i64) -> i64; }
    /// # async fn demo() -> Result<(), localrpc::Error> {
    /// let calc = CalculatorClient::connect("myapp.calc").await?;
    /// calc.get_ref().handshake().await?; // a version mismatch shows here
    /// # Ok(()) }
    /// ```
    pub async fn handshake(&self) -> Result<(), Error> {
        let conn = self.shared.conn.read().unwrap().clone();
        conn.handshake().await
    }

    /// The service this client calls.
    ///
    /// See [`Client`] for an example.
    pub fn service(&self) -> &'static ServiceInfo {
        self.shared.info
    }

    /// The current connection's count of callers whose replies are not yet taken.
    #[cfg(test)]
    pub(crate) fn woken_count(&self) -> usize {
        self.shared.conn.read().unwrap().woken_count()
    }

    /// The connection to use now: the current one, or a new one if it was lost and a
    /// reconnect policy is set.
    async fn connection(&self) -> Result<Arc<Connection>, Error> {
        let current = self.shared.conn.read().unwrap().clone();
        if current.is_usable() {
            return Ok(current);
        }
        // Boxed: a call's future would otherwise carry a reconnect's state all along. In the
        // runtime's context: dialing makes a socket and a task there, and backing off a timer,
        // whether or not the caller is polled by that runtime.
        let runtime = current.runtime().clone();
        let fut = Box::pin(self.reconnect(current));
        deadline::InRuntime { runtime, fut }.await
    }

    /// Dials again, if the client may, after `current` became unusable.
    async fn reconnect(&self, current: Arc<Connection>) -> Result<Arc<Connection>, Error> {
        let Some(redial) = &self.shared.redial else {
            return Err(current.unusable_error());
        };
        let _one_at_a_time = self.shared.reconnecting.lock().await;
        let current = self.shared.conn.read().unwrap().clone();
        if current.is_usable() {
            return Ok(current); // someone else reconnected meanwhile
        }
        let mut delay = redial.policy.initial_backoff;
        let mut attempt = 1;
        loop {
            match dial(&redial.name, &redial.options, &self.shared.setup).await {
                Ok(conn) => {
                    tracing::debug!(attempt, "reconnected");
                    *self.shared.conn.write().unwrap() = conn.clone();
                    return Ok(conn);
                }
                Err(e) if attempt >= redial.policy.max_attempts => return Err(e),
                Err(e) => {
                    tracing::debug!(attempt, error = %e, "reconnect failed; backing off");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(redial.policy.max_backoff);
                    attempt += 1;
                }
            }
        }
    }

    /// Performs one call. This is what the `tower::Service` implementation runs.
    ///
    /// See [`CallRequest`] for building a request by hand.
    pub async fn request(&self, req: CallRequest) -> Result<CallResponse, Error> {
        let conn = self.connection().await?;
        let out = Outgoing::new(req.timeout.or(self.shared.timeout));
        let (deadline, trace_id) = (out.deadline, out.trace_id);
        // Clones of a request share its stream: only the first to get here sends it.
        let upstream = req.stream.take();
        if req.stream.is_some() && upstream.is_none() {
            return Err(Error::Protocol(
                "the request stream was already sent by a clone of this request".into(),
            ));
        }
        let id = conn.next_call_id();
        let method = req.method_name();
        let response_window = req.response_stream.then_some(self.shared.stream_window);
        let frame = req.into_frame(
            id,
            &out,
            upstream.is_some(),
            response_window,
            conn.max_frame_len(),
        )?;
        let span = tracing::debug_span!(
            "rpc.call",
            service = self.shared.info.name(),
            method,
            call_id = id,
            peer_pid = ?conn.server_pid(),
            trace_id = %format_args!("{trace_id:032x}"),
        );
        // Each future is made where it is awaited, so the call's state is held once.
        // Entering a span costs even when nothing listens; skip it then.
        let traced = !span.is_disabled();
        if response_window.is_some() || upstream.is_some() {
            // Boxed: a streaming call's state would make every unary call's future larger.
            let call = Box::pin(streaming_call(
                conn,
                id,
                frame,
                response_window,
                upstream,
                deadline,
            ));
            if traced {
                call.instrument(span).await
            } else {
                call.await
            }
        } else if traced {
            unary_call(conn, id, frame, deadline).instrument(span).await
        } else {
            unary_call(conn, id, frame, deadline).await
        }
    }
}

impl tower::Service<CallRequest> for Client {
    type Response = CallResponse;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<CallResponse, Error>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: CallRequest) -> Self::Future {
        let client = self.clone();
        Box::pin(async move { client.request(req).await })
    }
}

/// A new random trace id (not cryptographic; unique enough to correlate logs): a per-process
/// random seed mixed with a counter, without a system call per call.
pub(crate) fn new_trace_id() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEED: OnceLock<(u64, u64)> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (hi, lo) = *SEED.get_or_init(|| {
        let state = std::collections::hash_map::RandomState::new();
        let mut h = state.build_hasher();
        h.write_u32(std::process::id());
        let hi = h.finish();
        h.write_u64(hi);
        (hi, h.finish())
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    (u128::from(splitmix64(hi ^ n)) << 64) | u128::from(splitmix64(lo.wrapping_add(n)))
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
