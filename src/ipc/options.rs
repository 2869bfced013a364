use std::time::Duration;

use super::{Error, LocalListener, LocalStream, blocking, either};
use crate::IntoName;
use crate::os;

/// How to bind a [`LocalListener`]: reclaiming stale sockets, and the OS-specific access
/// rules (`mode` on Unix, `security_descriptor` on Windows). None of them applies to a `tcp:`
/// name, which has no file and no access control.
///
/// ```no_run
/// use localrpc::ipc::ListenerOptions;
/// # async fn demo() -> Result<(), localrpc::ipc::Error> {
/// let listener = ListenerOptions::new().reclaim_stale(false).bind("myapp.calc")?;
/// println!("listening at {}", listener.endpoint());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ListenerOptions {
    pub(crate) reclaim: bool,
    pub(crate) os: os::ListenerOptionsExt,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        ListenerOptions {
            reclaim: true,
            os: os::ListenerOptionsExt::default(),
        }
    }
}

impl ListenerOptions {
    /// Default options: owner-only access, stale sockets reclaimed.
    ///
    /// See the [type docs](ListenerOptions) for an example.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a stale socket file (one no server answers on, as left by a crashed server)
    /// is replaced. Default `true`. A live server's socket is never taken over, and a file
    /// that is not a socket is never removed, whatever this says.
    ///
    /// See the [type docs](ListenerOptions) for an example.
    pub fn reclaim_stale(mut self, reclaim: bool) -> Self {
        self.reclaim = reclaim;
        self
    }

    /// Binds a Tokio listener. Must be called inside a Tokio runtime.
    ///
    /// See the [type docs](ListenerOptions) for an example.
    pub fn bind(&self, name: impl IntoName) -> Result<LocalListener, Error> {
        let name = name.into_name()?;
        either::Listener::bind(&name, self).map(LocalListener::from_either)
    }

    /// Binds a blocking listener.
    ///
    /// ```no_run
    /// use localrpc::ipc::ListenerOptions;
    /// let listener = ListenerOptions::new().bind_blocking("myapp.calc")?;
    /// # Ok::<(), localrpc::ipc::Error>(())
    /// ```
    pub fn bind_blocking(&self, name: impl IntoName) -> Result<blocking::LocalListener, Error> {
        let name = name.into_name()?;
        either::BlockingListener::bind(&name, self).map(blocking::LocalListener::from_either)
    }
}

/// How to connect a [`LocalStream`].
///
/// ```no_run
/// use std::time::Duration;
/// use localrpc::ipc::ConnectOptions;
/// # async fn demo() -> Result<(), localrpc::ipc::Error> {
/// let stream = ConnectOptions::new()
///     .busy_timeout(Duration::from_secs(1))
///     .connect("myapp.calc")
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub(crate) busy_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            busy_timeout: Duration::from_secs(5),
        }
    }
}

impl ConnectOptions {
    /// Default options.
    ///
    /// See the [type docs](ConnectOptions) for an example.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long to keep retrying while the server has no free pipe instance (Windows,
    /// `ERROR_PIPE_BUSY`) before failing with [`Error::Busy`]. Default 5 seconds. Unix
    /// sockets queue connections in the listen backlog and do not use it.
    ///
    /// See the [type docs](ConnectOptions) for an example.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Connects a Tokio stream.
    ///
    /// See the [type docs](ConnectOptions) for an example.
    pub async fn connect(&self, name: impl IntoName) -> Result<LocalStream, Error> {
        let name = name.into_name()?;
        either::Stream::connect(&name, self)
            .await
            .map(LocalStream::from_either)
    }

    /// Connects a blocking stream.
    ///
    /// ```no_run
    /// let stream = localrpc::ipc::ConnectOptions::new().connect_blocking("myapp.calc")?;
    /// # Ok::<(), localrpc::ipc::Error>(())
    /// ```
    pub fn connect_blocking(&self, name: impl IntoName) -> Result<blocking::LocalStream, Error> {
        let name = name.into_name()?;
        either::BlockingStream::connect(&name, self).map(blocking::LocalStream::from_either)
    }
}
