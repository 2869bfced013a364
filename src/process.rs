//! Helper processes: start a child already connected to its parent, and talk RPC over that
//! connection. No path on disk, no name another process could race for.
//!
//! The parent calls [`spawn`] with a [`std::process::Command`] and gets a [`Child`]; the
//! child calls [`serve_parent`] (or [`connect_parent`]) once. On Unix the connection is one
//! end of a socketpair that only that child inherits (the descriptor number travels in the
//! `LOCALRPC_PARENT` environment variable). On Windows it is a uniquely named pipe, created
//! with the first-instance flag and an owner-only security descriptor, that admits only a
//! client whose process id is the child's, and is closed to everyone once the child is in.
//!
//! ```no_run
//! #[localrpc::service]
//! pub trait Worker {
//!     async fn square(&self, x: u64) -> u64;
//! }
//!
//! struct Impl;
//! impl Worker for Impl {
//!     async fn square(&self, x: u64) -> u64 { x * x }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     if localrpc::process::is_spawned() {
//!         // The helper: serve the parent until it goes away, then exit.
//!         return Ok(localrpc::process::serve_parent(WorkerServer::new(Impl)).await?);
//!     }
//!     // The app: start this same executable as its helper.
//!     let mut helper = localrpc::process::spawn(std::process::Command::new(
//!         std::env::current_exe()?,
//!     ))
//!     .await?;
//!     let worker: WorkerClient = helper.client()?;
//!     assert_eq!(worker.square(12).await?, 144);
//!     drop(worker);
//!     helper.close();                              // the helper sees the end and exits
//!     println!("helper exited: {}", helper.wait().await?);
//!     Ok(())
//! }
//! ```
//!
//! # Lifecycle
//! - **The parent dies or drops its handle**: the child's connection ends, [`serve_parent`]
//!   returns and the child can exit. With [`SpawnOptions::kill_with_parent`] (Linux and
//!   Android) the kernel kills the child when the parent dies, even if the child is stuck.
//! - **The child dies**: the parent's calls in flight fail with
//!   [`Error::ConnectionLost`], later ones too; [`Child::wait`] returns the exit status.
//! - **Dropping the [`Child`]** closes the connection and, by default, gives the child
//!   [`OnDrop::Wait`]`(2 s)` to exit on its own before it is killed; [`OnDrop::Kill`] kills it
//!   at once. Either way it is reaped in the background: no zombies.
//! - Nothing else leaks: every descriptor localrpc opens is close-on-exec (not inheritable
//!   on Windows); the child's end is made inheritable only for that one child, and the child
//!   marks it close-on-exec again when it takes it, so its own children inherit nothing.
use std::io;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::ipc::{self, LocalStream};
use crate::server::BoxError;
use crate::{Client, ClientBuilder, Error, NamedService, ServerRequest, ServerResponse, os};

/// The environment variable that tells a child where its channel to the parent is.
const PARENT_VAR: &str = "LOCALRPC_PARENT";

/// What dropping a [`Child`] does to the process. See the [module docs](self#lifecycle).
///
/// ```
/// use std::time::Duration;
/// use localrpc::process::{OnDrop, SpawnOptions};
/// let opts = SpawnOptions::new().on_drop(OnDrop::Wait(Duration::from_secs(5)));
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnDrop {
    /// Kill the child at once (SIGKILL on Unix, `TerminateProcess` on Windows).
    Kill,
    /// Close the connection and give the child this long to exit by itself, then kill it.
    /// Needs a Tokio runtime at drop time to wait; without one the child is killed at once.
    Wait(Duration),
}

/// How to start a helper: see [`SpawnOptions::spawn`], or [`spawn`] for the defaults.
///
/// ```no_run
/// use localrpc::process::{OnDrop, SpawnOptions};
/// # async fn demo() -> std::io::Result<()> {
/// let helper = SpawnOptions::new()
///     .on_drop(OnDrop::Kill)
///     .spawn(std::process::Command::new("my-helper"))
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SpawnOptions {
    kill_with_parent: bool,
    on_drop: OnDrop,
    connect_timeout: Duration,
}

impl Default for SpawnOptions {
    fn default() -> Self {
        SpawnOptions {
            kill_with_parent: false,
            on_drop: OnDrop::Wait(Duration::from_secs(2)),
            connect_timeout: Duration::from_secs(30),
        }
    }
}

impl SpawnOptions {
    /// The defaults: the child lives on if the parent dies (and sees its connection end),
    /// [`OnDrop::Wait`]`(2 s)`, 30 s for the child to connect (Windows).
    ///
    /// See [`SpawnOptions`] for an example.
    pub fn new() -> Self {
        Self::default()
    }

    /// Have the kernel kill the child (SIGKILL) when the parent dies (Linux and Android:
    /// the parent-death signal; elsewhere [`spawn`](Self::spawn) fails with
    /// [`io::ErrorKind::Unsupported`]).
    ///
    /// The signal follows the *thread* that spawned the child: if that thread ends while
    /// the parent lives on, the child is killed too. Spawn from a thread that lives as long
    /// as the helper should (a Tokio worker thread of a runtime that lives that long, or the
    /// main thread), not from `spawn_blocking`.
    ///
    /// See [`SpawnOptions`] for an example.
    pub fn kill_with_parent(mut self, yes: bool) -> Self {
        self.kill_with_parent = yes;
        self
    }

    /// What dropping the [`Child`] does (default [`OnDrop::Wait`]`(2 s)`).
    ///
    /// See [`SpawnOptions`] for an example.
    pub fn on_drop(mut self, on_drop: OnDrop) -> Self {
        self.on_drop = on_drop;
        self
    }

    /// How long the child has to connect back (Windows only; on Unix the channel exists
    /// before the child starts). Default 30 s.
    ///
    /// See [`SpawnOptions`] for an example.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Starts `cmd` with a channel to this process. Stdio, arguments, environment and
    /// working directory are `cmd`'s own.
    ///
    /// Fails if the program cannot be started, if the child exits (or, on Windows, does
    /// not connect within the timeout) before the channel is up, or if
    /// [`kill_with_parent`](Self::kill_with_parent) is asked for where it does not exist.
    /// Must be called inside a Tokio runtime.
    ///
    /// See [`SpawnOptions`] for an example.
    pub async fn spawn(&self, mut cmd: std::process::Command) -> io::Result<Child> {
        let pending = os::spawn::prepare(&mut cmd, PARENT_VAR, self.kill_with_parent)?;
        let mut child = tokio::process::Command::from(cmd).spawn()?;
        let pid = child.id().expect("a child that was just spawned has a pid");
        let stream = tokio::select! {
            // A child that connected is taken even if it has exited by now: its end of
            // the channel says so to whoever uses it.
            biased;
            stream = pending.established(pid) => stream?,
            status = child.wait() => {
                let status = status?;
                return Err(io::Error::other(format!(
                    "the child exited before connecting to its parent: {status}"
                )));
            }
            () = tokio::time::sleep(self.connect_timeout) => {
                let _ = child.start_kill();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the child (pid {pid}) did not connect within {:?}; is it calling \
                         localrpc::process::serve_parent or connect_parent?",
                        self.connect_timeout
                    ),
                ));
            }
        };
        tracing::debug!(pid, "helper spawned and connected");
        Ok(Child {
            pid,
            child: Some(child),
            stream: Some(LocalStream::from_os(stream)),
            client: None,
            on_drop: self.on_drop,
        })
    }
}

/// Starts `cmd` as a helper with default [`SpawnOptions`]; see the [module docs](self) for
/// an example.
pub async fn spawn(cmd: std::process::Command) -> io::Result<Child> {
    SpawnOptions::new().spawn(cmd).await
}

/// A running helper process and its connection. See the [module docs](self) for an example.
#[derive(Debug)]
pub struct Child {
    pid: u32,
    child: Option<tokio::process::Child>,
    stream: Option<LocalStream>,
    client: Option<Client>,
    on_drop: OnDrop,
}

impl Child {
    /// The child's process id.
    ///
    /// See the [module docs](self) for an example.
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// A typed client for the service the child serves (with [`serve_parent`]), e.g.
    /// `let worker: WorkerClient = helper.client()?;`. The handshake travels with the
    /// first call. Calling it again returns a client on the same connection.
    ///
    /// One connection carries one service: asking for a client of another service fails
    /// with [`Error::Protocol`]; so does asking after [`take_stream`](Self::take_stream).
    ///
    /// See the [module docs](self) for an example.
    pub fn client<C>(&mut self) -> Result<C, Error>
    where
        C: NamedService + From<Client>,
    {
        self.make_client(None)
    }

    /// Like [`client`](Self::client), with the connection's client configured by
    /// `configure`: a default timeout, stream windows, or a service the parent offers for the
    /// child's handlers to call back ([`ClientBuilder::offer`], reached in the child with
    /// [`peer_client`](crate::peer_client)). It must make the connection's first client:
    /// afterwards it fails with [`Error::Protocol`] rather than ignore `configure`.
    ///
    /// ```no_run
    /// # #[localrpc::service]
    /// # pub trait Worker { async fn work(&self) -> u64; }
    /// # #[localrpc::service]
    /// # pub trait Progress { async fn report(&self, percent: u8); }
    /// # struct Printer;
    /// # impl Progress for Printer { async fn report(&self, _: u8) {} }
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut helper = localrpc::process::spawn(std::process::Command::new("my-helper")).await?;
    /// // The helper's handlers can call Progress back on the same connection.
    /// let worker: WorkerClient =
    ///     helper.client_with(|b| b.offer(ProgressServer::new(Printer)))?;
    /// worker.work().await?;
    /// # Ok(()) }
    /// ```
    pub fn client_with<C>(
        &mut self,
        configure: impl FnOnce(ClientBuilder) -> ClientBuilder,
    ) -> Result<C, Error>
    where
        C: NamedService + From<Client>,
    {
        if self.client.is_some() {
            return Err(Error::Protocol(
                "the connection to the child already has its client: configure it with the \
                 first call"
                    .into(),
            ));
        }
        self.make_client(Some(Box::new(configure)))
    }

    fn make_client<C>(
        &mut self,
        configure: Option<Box<dyn FnOnce(ClientBuilder) -> ClientBuilder + '_>>,
    ) -> Result<C, Error>
    where
        C: NamedService + From<Client>,
    {
        if let Some(client) = &self.client {
            if client.service() != C::INFO {
                return Err(Error::Protocol(format!(
                    "the connection to the child already carries service {:?}, not {:?}",
                    client.service().name(),
                    C::INFO.name()
                )));
            }
            return Ok(C::from(client.clone()));
        }
        let stream = self.stream.take().ok_or_else(|| {
            Error::Protocol("the connection to the child was taken as a raw stream".into())
        })?;
        let builder = Client::builder(C::INFO);
        let builder = match configure {
            Some(configure) => configure(builder),
            None => builder,
        };
        let client = builder.over(stream);
        self.client = Some(client.clone());
        Ok(C::from(client))
    }

    /// The raw connection, for a protocol of your own (the child takes its end with
    /// [`parent_stream`]). `None` once taken or once a [`client`](Self::client) was made.
    ///
    /// ```no_run
    /// # async fn demo() -> std::io::Result<()> {
    /// use tokio::io::AsyncWriteExt;
    /// let mut helper = localrpc::process::spawn(std::process::Command::new("my-helper")).await?;
    /// let mut stream = helper.take_stream().expect("not taken yet");
    /// stream.write_all(b"hello").await?;
    /// # Ok(()) }
    /// ```
    pub fn take_stream(&mut self) -> Option<LocalStream> {
        self.stream.take()
    }

    /// Closes this handle's side of the connection (clients already handed out keep it open
    /// until they are dropped). A child in [`serve_parent`] sees the end and returns.
    ///
    /// See the [module docs](self) for an example.
    pub fn close(&mut self) {
        self.stream = None;
        self.client = None;
    }

    /// Waits for the child to exit and returns its status (also after it was killed).
    ///
    /// See the [module docs](self) for an example.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.process().wait().await
    }

    /// The exit status if the child has exited, without waiting.
    ///
    /// See the [module docs](self) for an example of [`wait`](Self::wait).
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.process().try_wait()
    }

    /// Kills the child and waits for it to exit.
    ///
    /// See the [module docs](self) for an example of [`wait`](Self::wait).
    pub async fn kill(&mut self) -> io::Result<()> {
        self.process().kill().await
    }

    fn process(&mut self) -> &mut tokio::process::Child {
        self.child.as_mut().expect("present until drop")
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.close();
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return; // exited and reaped
        }
        let grace = match self.on_drop {
            OnDrop::Kill => Duration::ZERO,
            OnDrop::Wait(grace) => grace,
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if tokio::time::timeout(grace, child.wait()).await.is_err() {
                        tracing::debug!("helper did not exit within {grace:?}; killing it");
                        let _ = child.kill().await;
                    }
                });
            }
            Err(_) => {
                // No runtime to wait on: kill now; Tokio reaps the orphan.
                let _ = child.start_kill();
            }
        }
    }
}

/// Whether this process was started by [`spawn`] (its channel may already be taken).
///
/// See the [module docs](self) for an example.
pub fn is_spawned() -> bool {
    std::env::var_os(PARENT_VAR).is_some()
}

/// The raw connection to the parent that started this process with [`spawn`]. It can be
/// taken once per process; must be called inside a Tokio runtime.
///
/// Fails with [`ipc::Error::NotSpawned`] if this process was not started that way, if the
/// variable was inherited from an ancestor, or if the channel was taken already.
///
/// ```no_run
/// # async fn demo() -> Result<(), localrpc::ipc::Error> {
/// use tokio::io::AsyncReadExt;
/// let mut stream = localrpc::process::parent_stream().await?;
/// let mut hello = [0u8; 5];
/// stream.read_exact(&mut hello).await.map_err(|e| localrpc::ipc::Error::NotSpawned {
///     reason: e.to_string(),
/// })?;
/// # Ok(()) }
/// ```
pub async fn parent_stream() -> Result<LocalStream, ipc::Error> {
    static TAKEN: AtomicBool = AtomicBool::new(false);
    let not_spawned = |reason: String| ipc::Error::NotSpawned { reason };
    let value = std::env::var(PARENT_VAR).map_err(|_| {
        not_spawned(format!(
            "{PARENT_VAR} is not set: this process was not started by localrpc::process::spawn"
        ))
    })?;
    if TAKEN.swap(true, Ordering::AcqRel) {
        return Err(not_spawned(
            "the channel to the parent was already taken by this process".into(),
        ));
    }
    os::spawn::parent_stream(&value)
        .await
        .map(LocalStream::from_os)
        .map_err(|why| not_spawned(format!("{PARENT_VAR}={value}: {why}")))
}

/// A typed client for the service the parent serves on the channel, e.g.
/// `let host: HostClient = localrpc::process::connect_parent().await?;`.
///
/// ```no_run
/// # #[localrpc::service]
/// # pub trait Host { async fn log(&self, line: String); }
/// # async fn demo() -> Result<(), localrpc::Error> {
/// let host: HostClient = localrpc::process::connect_parent().await?;
/// host.log("plugin ready".into()).await?;
/// # Ok(()) }
/// ```
pub async fn connect_parent<C>() -> Result<C, Error>
where
    C: NamedService + From<Client>,
{
    let stream = parent_stream().await?;
    Ok(C::from(Client::builder(C::INFO).over(stream)))
}

/// Serves `service` to the parent until the parent closes the connection (or dies); then
/// returns `Ok(())`, and the helper can exit. For tower layers and limits, use
/// [`ServerBuilder::serve_stream`](crate::ServerBuilder::serve_stream) with
/// [`parent_stream`].
///
/// See the [module docs](self) for an example.
pub async fn serve_parent<S>(service: S) -> Result<(), Error>
where
    S: NamedService
        + tower::Service<ServerRequest, Response = ServerResponse>
        + Clone
        + Send
        + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    let stream = parent_stream().await?;
    crate::Server::builder().serve_stream(stream, service).await
}
