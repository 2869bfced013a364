//! What a handler knows about the call it serves: the peer, the deadline, the trace id.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::ipc::PeerCredentials;

/// Key-value metadata that travels with a call (like gRPC metadata). Client layers can add to
/// it ([`CallRequest::metadata_mut`](crate::CallRequest::metadata_mut)); server layers and
/// handlers read it.
///
/// ```
/// let mut md = localrpc::Metadata::default();
/// md.insert("tenant", "blue");
/// assert_eq!(md.get("tenant"), Some("blue"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    entries: Vec<(String, String)>,
}

impl Metadata {
    /// Sets `key` to `value`, replacing an earlier value.
    ///
    /// See the [type docs](Metadata) for an example.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let (key, value) = (key.into(), value.into());
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// The value of `key`.
    ///
    /// See the [type docs](Metadata) for an example.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All entries, in insertion order.
    ///
    /// See the [type docs](Metadata) for an example.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether there are no entries.
    ///
    /// See the [type docs](Metadata) for an example.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn from_entries(entries: Vec<(String, String)>) -> Self {
        Metadata { entries }
    }

    pub(crate) fn into_entries(self) -> Vec<(String, String)> {
        self.entries
    }
}

/// The context of the call being served: available to server layers through
/// [`ServerRequest::context`](crate::ServerRequest::context) and to handlers through
/// [`CallContext::current`].
///
/// Calls a handler makes to other localrpc services inherit its remaining deadline and trace
/// id automatically.
///
/// ```
/// use localrpc::CallContext;
///
/// // Outside a handler there is no call.
/// assert!(CallContext::current().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct CallContext {
    pub(crate) call_id: u64,
    pub(crate) method: &'static str,
    pub(crate) peer: Option<PeerCredentials>,
    pub(crate) peer_addr: Option<SocketAddr>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) trace_id: u128,
    pub(crate) metadata: Metadata,
    /// The service the caller offered on its connection, for calls back.
    pub(crate) callbacks: Option<crate::PeerClient>,
}

tokio::task_local! {
    static CURRENT: CallContext;
}

impl CallContext {
    /// The context of the call the current task serves, if it is a localrpc handler.
    ///
    /// See the [type docs](CallContext) for an example.
    pub fn current() -> Option<CallContext> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Runs `fut` with `self` as the current context.
    pub(crate) fn scope<F: Future>(self, fut: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self, fut)
    }

    pub(crate) fn with_current<R>(f: impl FnOnce(&CallContext) -> R) -> Option<R> {
        CURRENT.try_with(f).ok()
    }

    /// The call id on this connection.
    ///
    /// See the [type docs](CallContext) for an example.
    pub fn call_id(&self) -> u64 {
        self.call_id
    }

    /// The method being called.
    ///
    /// See the [type docs](CallContext) for an example.
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// Who is calling: uid, gid and pid as the OS reports them (`None` where the transport has
    /// no credentials, as over TCP).
    ///
    /// See the [type docs](CallContext) for an example.
    pub fn peer(&self) -> Option<&PeerCredentials> {
        self.peer.as_ref()
    }

    /// The caller's IP address and port when the call came over TCP (feature `tcp`); `None`
    /// over a local socket, where [`peer`](Self::peer) tells who is calling.
    ///
    /// TCP has no authentication: anyone who can reach the port can call, and an address is
    /// not an identity. Put TLS in front of the port, or check callers in a tower layer (see
    /// `examples/auth_layer.rs`).
    ///
    /// ```
    /// fn transport(ctx: &localrpc::CallContext) -> &'static str {
    ///     match (ctx.peer(), ctx.peer_addr()) {
    ///         (_, Some(_)) => "tcp",
    ///         (Some(_), None) => "local socket",
    ///         (None, None) => "in-process or unknown",
    ///     }
    /// }
    /// ```
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer_addr
    }

    /// When the caller stops waiting.
    ///
    /// See the [type docs](CallContext) for an example.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The time left until the deadline (zero once it has passed).
    ///
    /// See the [type docs](CallContext) for an example.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// The trace id that travels with the call (the same in the client's and server's spans).
    ///
    /// See the [type docs](CallContext) for an example.
    pub fn trace_id(&self) -> u128 {
        self.trace_id
    }

    /// The call's metadata.
    ///
    /// See the [type docs](CallContext) for an example.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }
}
