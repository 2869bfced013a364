//! The server: accept loop, a task per connection, calls dispatched concurrently under a
//! per-connection limit, a tower stack around every call, graceful shutdown.
#[cfg(unix)]
pub(crate) mod blocking;
mod call;
mod catch;
pub(crate) use catch::panic_message;
mod connection;
mod request;
mod serve_call;
mod streams;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::layer::util::{Identity, Stack};

pub(crate) use call::{response_frame, run_call, server_request};
pub(crate) use request::Reply;
pub use request::{ServerRequest, ServerResponse};

use crate::ipc::{ListenerOptions, LocalListener, LocalStream, PeerCredentials};
use crate::transport::DEFAULT_MAX_FRAME_LEN;
use crate::{Endpoint, Error, IntoName, NamedService};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Entry point for serving: [`Server::builder`].
///
/// ```no_run
/// # #[localrpc::service]
/// # pub trait Calculator { async fn add(&self, a: i64, b: i64) -> i64; }
/// # struct MyCalc;
/// # impl Calculator for MyCalc { async fn add(&self, a: i64, b: i64) -> i64 { a + b } }
/// use std::time::Duration;
///
/// # async fn demo() -> Result<(), localrpc::Error> {
/// localrpc::Server::builder()
///     .layer(tower::limit::ConcurrencyLimitLayer::new(64))
///     .grace_period(Duration::from_secs(5))
///     .bind("myapp.calc")?
///     .serve_with_shutdown(CalculatorServer::new(MyCalc), async {
///         let _ = tokio::signal::ctrl_c().await;
///     })
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Server;

impl Server {
    /// A builder with no layers and default limits.
    ///
    /// See [`Server`] for an example.
    pub fn builder() -> ServerBuilder<Identity> {
        ServerBuilder {
            layer: Identity::new(),
            config: Config::default(),
            listener: ListenerOptions::new(),
        }
    }
}

/// Called with connection-level failures, which no call reports: refused handshakes,
/// oversize or truncated frames, undecodable envelopes.
pub(crate) type ErrorHook = Arc<dyn Fn(&Error, Option<PeerCredentials>) + Send + Sync>;

#[derive(Clone)]
pub(crate) struct Config {
    /// Set by the user; otherwise the default of each way of serving (see
    /// [`ServerBuilder::handshake_timeout`]).
    pub(crate) handshake_timeout: Option<Duration>,
    pub(crate) max_concurrent_calls: usize,
    pub(crate) stream_window: u32,
    pub(crate) max_frame_len: usize,
    pub(crate) grace_period: Duration,
    pub(crate) on_connection_error: Option<ErrorHook>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_concurrent_calls", &self.max_concurrent_calls)
            .field("stream_window", &self.stream_window)
            .field("max_frame_len", &self.max_frame_len)
            .field("grace_period", &self.grace_period)
            .field("on_connection_error", &self.on_connection_error.is_some())
            .finish()
    }
}

/// How long a client a listener accepted has to send its hello, unless set.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl Config {
    /// The time limit on the hello of a connection a listener accepted.
    pub(crate) fn accepted_handshake_timeout(&self) -> Duration {
        self.handshake_timeout.unwrap_or(HANDSHAKE_TIMEOUT)
    }

    pub(crate) fn connection_error(&self, error: &Error, peer: Option<PeerCredentials>) {
        tracing::debug!(peer_pid = ?peer.and_then(|p| p.pid()), %error, "connection failed");
        if let Some(hook) = &self.on_connection_error {
            hook(error, peer);
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            handshake_timeout: None,
            max_concurrent_calls: 1024,
            stream_window: crate::stream::DEFAULT_WINDOW,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            grace_period: Duration::from_secs(10),
            on_connection_error: None,
        }
    }
}

/// Configures a server: tower layers, limits, the listener. See [`Server`].
#[derive(Debug, Clone)]
pub struct ServerBuilder<L> {
    layer: L,
    config: Config,
    listener: ListenerOptions,
}

impl<L> ServerBuilder<L> {
    /// Wraps every call in `layer` (any [`tower::Layer`]). The first layer added is the
    /// outermost, as with `tower::ServiceBuilder`.
    ///
    /// See [`Server`] for an example.
    pub fn layer<N>(self, layer: N) -> ServerBuilder<Stack<N, L>> {
        ServerBuilder {
            layer: Stack::new(layer, self.layer),
            config: self.config,
            listener: self.listener,
        }
    }

    /// How many calls (streams included) one connection may have running at once (default
    /// 1024). The server tells the client in the handshake, and the client holds further
    /// calls back until one finishes. The server goes on reading the connection at the limit,
    /// so the streams of running calls keep flowing.
    ///
    /// See [`Server`] for an example.
    pub fn max_concurrent_calls(mut self, n: usize) -> Self {
        self.config.max_concurrent_calls = n.max(1);
        self
    }

    /// The receive window of each request stream, in bytes (default
    /// [`stream::DEFAULT_WINDOW`](crate::stream::DEFAULT_WINDOW), at least 64): how much a
    /// client may send ahead of what the handler has taken from the stream. Handlers that
    /// stop reading hold at most this much each, up to
    /// [`max_concurrent_calls`](Self::max_concurrent_calls) of them per connection.
    ///
    /// See [`Server`] for an example.
    pub fn stream_window(mut self, bytes: u32) -> Self {
        self.config.stream_window = bytes.max(crate::stream::MIN_WINDOW);
        self
    }

    /// The largest frame accepted or sent (default 16 MiB).
    ///
    /// See [`Server`] for an example.
    pub fn max_frame_len(mut self, max: usize) -> Self {
        self.config.max_frame_len = max;
        self
    }

    /// How long a client has to send its hello once connected; a connection without one in
    /// time is refused and closed. The default is 10 s for the connections a listener
    /// accepts ([`bind`](Self::bind), [`serve_blocking`](Self::serve_blocking)), which keeps
    /// idle strangers from holding a connection open, and no limit for the one stream given
    /// to [`serve_stream`](Self::serve_stream), whose peer is known (a helper's parent says
    /// hello with its first call, which may come long after it started the helper).
    ///
    /// See [`Server`] for an example.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.handshake_timeout = Some(timeout);
        self
    }

    /// How long a graceful shutdown waits for calls in flight before dropping them
    /// (default 10 s).
    ///
    /// See [`Server`] for an example.
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.config.grace_period = grace;
        self
    }

    /// Calls `hook` with each connection-level failure, which no call can report: a refused
    /// handshake ([`Error::HandshakeRefused`], naming what differs), an oversize or truncated
    /// frame, an undecodable envelope. The connection is closed; the server goes on serving
    /// the others. Each is also logged with `tracing` at debug level.
    ///
    /// ```no_run
    /// # #[localrpc::service]
    /// # pub trait Calculator { async fn add(&self, a: i64, b: i64) -> i64; }
    /// # struct MyCalc;
    /// # impl Calculator for MyCalc { async fn add(&self, a: i64, b: i64) -> i64 { a + b } }
    /// # async fn demo() -> Result<(), localrpc::Error> {
    /// localrpc::Server::builder()
    ///     .on_connection_error(|error, peer| {
    ///         eprintln!("client {:?}: {error}", peer.and_then(|p| p.pid()));
    ///     })
    ///     .bind("myapp.calc")?
    ///     .serve(CalculatorServer::new(MyCalc))
    ///     .await
    /// # }
    /// ```
    pub fn on_connection_error(
        mut self,
        hook: impl Fn(&Error, Option<PeerCredentials>) + Send + Sync + 'static,
    ) -> Self {
        self.config.on_connection_error = Some(Arc::new(hook));
        self
    }

    /// Options for the listening socket (file mode, Windows security descriptor, ...).
    ///
    /// See [`Server`] for an example.
    pub fn listener_options(mut self, options: ListenerOptions) -> Self {
        self.listener = options;
        self
    }

    /// Serves `service` on one already connected stream (for example a helper's channel to
    /// its parent, [`process::parent_stream`](crate::process::parent_stream)) until the
    /// peer closes it, with this builder's layers and limits. Connection-level failures go
    /// to [`on_connection_error`](Self::on_connection_error); the stream ending is `Ok(())`.
    ///
    /// ```no_run
    /// # #[localrpc::service]
    /// # pub trait Calculator { async fn add(&self, a: i64, b: i64) -> i64; }
    /// # struct MyCalc;
    /// # impl Calculator for MyCalc { async fn add(&self, a: i64, b: i64) -> i64 { a + b } }
    /// # async fn demo() -> Result<(), localrpc::Error> {
    /// let parent = localrpc::process::parent_stream().await?;
    /// localrpc::Server::builder()
    ///     .max_concurrent_calls(8)
    ///     .serve_stream(parent, CalculatorServer::new(MyCalc))
    ///     .await
    /// # }
    /// ```
    pub async fn serve_stream<S>(self, stream: LocalStream, service: S) -> Result<(), Error>
    where
        S: NamedService,
        L: tower::Layer<S>,
        L::Service:
            tower::Service<ServerRequest, Response = ServerResponse> + Clone + Send + 'static,
        <L::Service as tower::Service<ServerRequest>>::Error: Into<BoxError>,
        <L::Service as tower::Service<ServerRequest>>::Future: Send + 'static,
    {
        let svc = self.layer.layer(service);
        // Never told to stop: the connection ends when the peer closes it.
        let (_stop_tx, stop_rx) = watch::channel(false);
        let handshake = self.config.handshake_timeout;
        let config = Arc::new(self.config);
        connection::serve_connection(stream, svc, S::INFO, config, handshake, stop_rx).await;
        Ok(())
    }

    /// Serves `service` at `name` from synchronous code, with this builder's layers and
    /// limits, and blocks the calling thread for as long as the process runs. There is no
    /// shutdown (the process ending ends it), so [`grace_period`](Self::grace_period) does
    /// not apply. Do not call it from async code: it would block that runtime's thread.
    ///
    /// On Unix, each connection gets a thread of its own, which reads requests with blocking
    /// reads and answers them: a call whose handler finishes without waiting (most handlers
    /// of a synchronous program) costs no reactor wake-up and no task switch, so a
    /// [blocking client](crate::blocking::Client) sees close to the latency of a plain socket
    /// exchange. Handlers are still the service's `async fn`s, run inside the context of a
    /// Tokio runtime this server starts on one more thread: its timers work and
    /// `tokio::spawn` spawns on it.
    ///
    /// The first time a connection needs more — a handler that awaits something not yet
    /// ready, a stream, a cancelled call, a client that offers a service of its own, a
    /// client that does not read its answers as fast as they come — it moves to that
    /// runtime for good and is served there as [`serve`](BoundServer::serve) serves any
    /// connection, the call in hand included. All connections that moved share the
    /// runtime's one thread, so there a handler that computes without awaiting holds up the
    /// others, and `tokio::task::block_in_place` panics (it works on a connection's own
    /// thread). A thread per connection suits tens of clients, not thousands; if no thread
    /// can be started for a connection, it is served on the runtime. On Windows, every
    /// connection is served on the runtime.
    ///
    /// # Errors
    ///
    /// Fails if the runtime cannot be built or the endpoint cannot be bound; otherwise it
    /// does not return.
    ///
    /// ```no_run
    /// # #[localrpc::service]
    /// # pub trait Calculator { async fn add(&self, a: i64, b: i64) -> i64; }
    /// # struct MyCalc;
    /// # impl Calculator for MyCalc { async fn add(&self, a: i64, b: i64) -> i64 { a + b } }
    /// fn main() -> Result<(), localrpc::Error> {
    ///     localrpc::Server::builder()
    ///         .max_frame_len(1 << 20)
    ///         .serve_blocking("myapp.calc", CalculatorServer::new(MyCalc))
    /// }
    /// ```
    pub fn serve_blocking<S>(self, name: impl IntoName, service: S) -> Result<(), Error>
    where
        S: NamedService,
        L: tower::Layer<S>,
        L::Service:
            tower::Service<ServerRequest, Response = ServerResponse> + Clone + Send + 'static,
        <L::Service as tower::Service<ServerRequest>>::Error: Into<BoxError>,
        <L::Service as tower::Service<ServerRequest>>::Future: Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Io)?;
        #[cfg(unix)]
        {
            let listener = self.listener.bind_blocking(name)?;
            // Layers may spawn tasks as they are built (tower's `Buffer` does).
            let svc = {
                let _runtime = runtime.enter();
                self.layer.layer(service)
            };
            blocking::serve_threads(listener, svc, S::INFO, Arc::new(self.config), runtime)
        }
        #[cfg(not(unix))]
        {
            runtime.block_on(async { self.bind(name)?.serve(service).await })
        }
    }

    /// Binds the endpoint. Must be called inside a Tokio runtime.
    ///
    /// See [`Server`] for an example.
    pub fn bind(self, name: impl IntoName) -> Result<BoundServer<L>, Error> {
        let listener = self.listener.bind(name)?;
        tracing::info!(endpoint = %listener.endpoint(), "listening");
        Ok(BoundServer {
            listener,
            layer: self.layer,
            config: Arc::new(self.config),
        })
    }
}

/// A bound server, ready to serve one service. See [`Server`].
#[derive(Debug)]
pub struct BoundServer<L> {
    listener: LocalListener,
    layer: L,
    config: Arc<Config>,
}

impl<L> BoundServer<L> {
    /// The real endpoint the server listens on.
    ///
    /// See [`Server`] for an example.
    pub fn endpoint(&self) -> &Endpoint {
        self.listener.endpoint()
    }

    /// Serves `service` until the process ends.
    ///
    /// See [`Server`] for an example.
    pub async fn serve<S>(self, service: S) -> Result<(), Error>
    where
        S: NamedService,
        L: tower::Layer<S>,
        L::Service:
            tower::Service<ServerRequest, Response = ServerResponse> + Clone + Send + 'static,
        <L::Service as tower::Service<ServerRequest>>::Error: Into<BoxError>,
        <L::Service as tower::Service<ServerRequest>>::Future: Send + 'static,
    {
        self.serve_with_shutdown(service, std::future::pending())
            .await
    }

    /// Serves `service` until `signal` completes, then shuts down gracefully: stops
    /// accepting, tells every client (new calls fail with
    /// [`Error::ShuttingDown`](crate::Error::ShuttingDown)), lets calls in flight finish
    /// within the grace period, then closes the connections.
    ///
    /// See [`Server`] for an example.
    pub async fn serve_with_shutdown<S, F>(self, service: S, signal: F) -> Result<(), Error>
    where
        S: NamedService,
        L: tower::Layer<S>,
        L::Service:
            tower::Service<ServerRequest, Response = ServerResponse> + Clone + Send + 'static,
        <L::Service as tower::Service<ServerRequest>>::Error: Into<BoxError>,
        <L::Service as tower::Service<ServerRequest>>::Future: Send + 'static,
        F: Future<Output = ()>,
    {
        let info = S::INFO;
        let svc = self.layer.layer(service);
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut connections = JoinSet::new();
        let mut signal = std::pin::pin!(signal);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(stream) => {
                        connections.spawn(connection::serve_connection(
                            stream,
                            svc.clone(),
                            info,
                            self.config.clone(),
                            Some(self.config.accepted_handshake_timeout()),
                            stop_rx.clone(),
                        ));
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: keep serving the others.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                },
                () = &mut signal => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        tracing::info!(connections = connections.len(), "shutting down");
        drop(self.listener);
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(self.config.grace_period, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                connections = connections.len(),
                "grace period over; dropping calls still in flight"
            );
            connections.shutdown().await;
        }
        Ok(())
    }
}
