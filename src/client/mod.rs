//! The client: many calls in flight on one connection, deadlines, cancellation on drop.
mod call;
#[allow(clippy::module_inception)]
mod client;
mod connection;
mod request;
mod writer;

use std::time::Duration;

pub(crate) use client::new_trace_id;
pub use client::{Client, ClientBuilder};
pub use request::{CallRequest, CallResponse};
pub(crate) use request::{Outgoing, SharedStream};

/// Options a generated client applies to each call, e.g. a timeout.
///
/// ```
/// use std::time::Duration;
/// let opts = localrpc::CallOptions::new().timeout(Duration::from_secs(1));
/// assert_eq!(opts.get_timeout(), Some(Duration::from_secs(1)));
/// ```
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    pub(crate) timeout: Option<Duration>,
}

impl CallOptions {
    /// No options: the client's default timeout applies.
    ///
    /// See the [type docs](CallOptions) for an example.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long to wait for each call; sent to the server as the call's deadline.
    ///
    /// See the [type docs](CallOptions) for an example.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The timeout set, if any.
    ///
    /// See the [type docs](CallOptions) for an example.
    pub fn get_timeout(&self) -> Option<Duration> {
        self.timeout
    }
}

/// When and how often a [`Client`] reconnects after losing its connection: exponential
/// backoff from `initial_backoff` up to `max_backoff`, at most `max_attempts` tries per call
/// that finds the connection lost.
///
/// ```
/// use std::time::Duration;
/// let policy = localrpc::ReconnectPolicy::default()
///     .initial_backoff(Duration::from_millis(20))
///     .max_attempts(10);
/// # let _ = policy;
/// ```
#[derive(Debug, Clone)]
pub struct ReconnectPolicy {
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) max_attempts: u32,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            max_attempts: 5,
        }
    }
}

impl ReconnectPolicy {
    /// The first wait between attempts (default 50 ms); it doubles each time.
    ///
    /// See the [type docs](ReconnectPolicy) for an example.
    pub fn initial_backoff(mut self, d: Duration) -> Self {
        self.initial_backoff = d;
        self
    }

    /// The longest wait between attempts (default 2 s).
    ///
    /// See the [type docs](ReconnectPolicy) for an example.
    pub fn max_backoff(mut self, d: Duration) -> Self {
        self.max_backoff = d;
        self
    }

    /// How many connection attempts a call makes before it fails (default 5, at least 1).
    ///
    /// See the [type docs](ReconnectPolicy) for an example.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }
}
