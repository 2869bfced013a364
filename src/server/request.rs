use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use crate::ipc::PeerCredentials;
use crate::transport::Payload;
use crate::{CallContext, Metadata, ServiceInfo, Streaming};

/// One call as the server's tower stack sees it: method, encoded arguments, and the call's
/// [`CallContext`] (peer identity, deadline, trace id, metadata).
///
/// An authorization layer is a few lines over it; see `examples/auth_layer.rs`.
///
/// ```
/// fn only_root(req: &localrpc::ServerRequest) -> bool {
///     req.peer().and_then(|p| p.uid()) == Some(0)
/// }
/// ```
#[derive(Debug)]
pub struct ServerRequest {
    pub(crate) service: &'static ServiceInfo,
    pub(crate) method: u32,
    pub(crate) payload: Bytes,
    pub(crate) context: CallContext,
    /// The encoded items of the request stream, for a method that takes one.
    pub(crate) stream: Option<Streaming<Bytes>>,
}

impl ServerRequest {
    /// The method's index in the service's method table.
    ///
    /// See the [type docs](ServerRequest) for an example.
    pub fn method_index(&self) -> u32 {
        self.method
    }

    /// The method's name.
    ///
    /// See the [type docs](ServerRequest) for an example.
    pub fn method_name(&self) -> &'static str {
        self.context.method
    }

    /// The service served.
    ///
    /// See the [type docs](ServerRequest) for an example.
    pub fn service(&self) -> &'static ServiceInfo {
        self.service
    }

    /// The encoded arguments.
    ///
    /// See the [type docs](ServerRequest) for an example.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The caller's credentials (`None` where the transport has none, as over TCP).
    ///
    /// See the [type docs](ServerRequest) for an example.
    pub fn peer(&self) -> Option<&PeerCredentials> {
        self.context.peer.as_ref()
    }

    /// The caller's IP address and port when the call came over TCP (feature `tcp`); `None`
    /// over a local socket.
    ///
    /// TCP has no authentication: anyone who can reach the port can call, and an address is
    /// not an identity. A layer that needs to know who calls should refuse calls without
    /// [`peer`](Self::peer) credentials, or the server should sit behind TLS.
    ///
    /// ```
    /// // Fail closed: only callers the OS vouches for.
    /// fn admit(req: &localrpc::ServerRequest) -> bool {
    ///     req.peer_addr().is_none() && req.peer().is_some()
    /// }
    /// ```
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.context.peer_addr
    }

    /// When the caller stops waiting.
    ///
    /// See the [type docs](ServerRequest) for an example.
    pub fn deadline(&self) -> Option<Instant> {
        self.context.deadline
    }

    /// The call's metadata.
    ///
    /// See the [type docs](ServerRequest) for an example.
    pub fn metadata(&self) -> &Metadata {
        &self.context.metadata
    }

    /// Whether the call carries a request stream (its method takes a [`Streaming`]).
    ///
    /// See the [type docs](ServerRequest) for an example.
    pub fn has_stream(&self) -> bool {
        self.stream.is_some()
    }

    /// The whole call context.
    ///
    /// See the [type docs](ServerRequest) for an example.
    pub fn context(&self) -> &CallContext {
        &self.context
    }
}

/// The outcome of a call on the server, as the server's tower stack returns it.
///
/// Layers can answer a call themselves, e.g. refuse it:
///
/// ```
/// let resp = localrpc::ServerResponse::refused("uid 1001 may not call this");
/// assert!(!resp.is_ok());
/// ```
#[derive(Debug)]
pub struct ServerResponse {
    pub(crate) reply: Reply,
}

#[derive(Debug)]
pub(crate) enum Reply {
    Ok(Payload),
    AppError(Payload),
    Error(crate::wire::Status),
    /// The encoded items of a response stream.
    Stream(Streaming<Bytes>),
}

impl ServerResponse {
    /// A successful return with an encoded value.
    ///
    /// See the [type docs](ServerResponse) for an example.
    pub fn ok(payload: Bytes) -> Self {
        ServerResponse {
            reply: Reply::Ok(payload.into()),
        }
    }

    /// An application error (the `E` of `Result<T, E>`), encoded.
    ///
    /// See the [type docs](ServerResponse) for an example.
    pub fn app_error(payload: Bytes) -> Self {
        ServerResponse {
            reply: Reply::AppError(payload.into()),
        }
    }

    /// The call is refused by a layer; the client gets
    /// [`Error::Refused`](crate::Error::Refused) with this message.
    ///
    /// See the [type docs](ServerResponse) for an example.
    pub fn refused(message: impl Into<String>) -> Self {
        Self::status(crate::wire::Code::Refused, message)
    }

    pub(crate) fn status(code: crate::wire::Code, message: impl Into<String>) -> Self {
        ServerResponse {
            reply: Reply::Error(crate::wire::Status::new(code, message)),
        }
    }

    /// A response stream of encoded items, for a method that returns a [`Streaming`].
    ///
    /// ```
    /// use localrpc::{ServerResponse, Streaming};
    /// let items = Streaming::from_iter([bytes::Bytes::from_static(b"\x01")]);
    /// assert!(ServerResponse::stream(items).is_ok());
    /// ```
    pub fn stream(items: Streaming<Bytes>) -> Self {
        ServerResponse {
            reply: Reply::Stream(items),
        }
    }

    /// Whether the call returned a value (not an application error, not a refusal).
    ///
    /// See the [type docs](ServerResponse) for an example.
    pub fn is_ok(&self) -> bool {
        matches!(self.reply, Reply::Ok(_) | Reply::Stream(_))
    }
}
