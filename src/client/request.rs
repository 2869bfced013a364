use std::time::Duration;

use bytes::Bytes;

use crate::{Metadata, ServiceInfo};

/// One call as the client's tower stack sees it: the method, the encoded arguments, the
/// timeout and the metadata. [`Client`](crate::Client) is a
/// `tower::Service<CallRequest, Response = CallResponse, Error = localrpc::Error>`, so any
/// tower layer can wrap it.
///
/// ```
/// use localrpc::{CallRequest, ServiceInfo};
///
/// static INFO: ServiceInfo = ServiceInfo::new("Echo", &["echo"], 7);
/// let mut req = CallRequest::new(&INFO, 0, bytes::Bytes::from_static(b"\x01a"));
/// req.metadata_mut().insert("tenant", "blue");
/// assert_eq!(req.method_name(), "echo");
/// ```
#[derive(Debug, Clone)]
pub struct CallRequest {
    pub(crate) service: &'static ServiceInfo,
    pub(crate) method: u32,
    pub(crate) payload: Bytes,
    pub(crate) timeout: Option<Duration>,
    pub(crate) metadata: Metadata,
}

impl CallRequest {
    /// A call of method number `method` of `service` with encoded arguments.
    ///
    /// See the [type docs](CallRequest) for an example.
    pub fn new(service: &'static ServiceInfo, method: u32, payload: Bytes) -> Self {
        CallRequest {
            service,
            method,
            payload,
            timeout: None,
            metadata: Metadata::default(),
        }
    }

    /// The service called.
    ///
    /// See the [type docs](CallRequest) for an example.
    pub fn service(&self) -> &'static ServiceInfo {
        self.service
    }

    /// The method's index in the service's method table.
    ///
    /// See the [type docs](CallRequest) for an example.
    pub fn method_index(&self) -> u32 {
        self.method
    }

    /// The method's name (`"?"` for an index outside the table).
    ///
    /// See the [type docs](CallRequest) for an example.
    pub fn method_name(&self) -> &'static str {
        self.service.method_name(self.method).unwrap_or("?")
    }

    /// The encoded arguments.
    ///
    /// See the [type docs](CallRequest) for an example.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// How long the caller waits; `None` means the client's default.
    ///
    /// See the [type docs](CallRequest) for an example.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Sets how long the caller waits (sent to the server as the call's deadline).
    ///
    /// See the [type docs](CallRequest) for an example.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// The call's metadata.
    ///
    /// See the [type docs](CallRequest) for an example.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The call's metadata, to add to.
    ///
    /// See the [type docs](CallRequest) for an example.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }
}

/// What a successful call returned: the encoded value, or the encoded application error of a
/// method declared `-> Result<T, E>`.
///
/// ```
/// let resp = localrpc::CallResponse::Ok(bytes::Bytes::from_static(b"\x06"));
/// assert!(matches!(resp, localrpc::CallResponse::Ok(_)));
/// ```
#[derive(Debug, Clone)]
pub enum CallResponse {
    /// The encoded return value (`T` of `Result<T, E>`).
    Ok(Bytes),
    /// The encoded application error (`E` of `Result<T, E>`).
    AppError(Bytes),
}
