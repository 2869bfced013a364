use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::transport::{Parts, Payload};
use crate::{CallContext, Error, Metadata, ServiceInfo, Streaming, wire};

/// Where a call stands in time and in its trace as it leaves this process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outgoing {
    pub(crate) deadline: Option<Instant>,
    pub(crate) trace_id: u128,
}

impl Outgoing {
    /// The deadline is the earlier of `timeout` from now and the deadline of the call this
    /// task serves, if any (the clock is read only for a timeout); the trace id is that
    /// call's, or a new one.
    pub(crate) fn new(timeout: Option<Duration>) -> Outgoing {
        let inherited = CallContext::with_current(|c| (c.deadline, c.trace_id));
        let outer = inherited.and_then(|(deadline, _)| deadline);
        let deadline = match timeout {
            None => outer,
            Some(t) => {
                let own = Instant::now() + t;
                Some(outer.map_or(own, |o| o.min(own)))
            }
        };
        let trace_id = inherited
            .map(|(_, t)| t)
            .filter(|&t| t != 0)
            .unwrap_or_else(super::new_trace_id);
        Outgoing { deadline, trace_id }
    }

    /// The time left, in microseconds for the wire; `DeadlineExceeded` once it has passed.
    fn timeout_micros(&self) -> Result<Option<u64>, Error> {
        let Some(deadline) = self.deadline else {
            return Ok(None);
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::DeadlineExceeded);
        }
        Ok(Some(u64::try_from(left.as_micros()).unwrap_or(u64::MAX)))
    }
}

/// A request stream that clones of a request share: the first to send it takes it.
#[derive(Clone, Default)]
pub(crate) struct SharedStream(Option<std::sync::Arc<std::sync::Mutex<Option<Streaming<Bytes>>>>>);

impl SharedStream {
    pub(crate) fn new(items: Streaming<Bytes>) -> Self {
        SharedStream(Some(std::sync::Arc::new(std::sync::Mutex::new(Some(
            items,
        )))))
    }

    pub(crate) fn is_some(&self) -> bool {
        self.0.is_some()
    }

    /// The stream, if this request has one that no clone has taken.
    pub(crate) fn take(&self) -> Option<Streaming<Bytes>> {
        self.0.as_ref().and_then(|s| s.lock().unwrap().take())
    }
}

impl std::fmt::Debug for SharedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_some() { "Some(..)" } else { "None" })
    }
}

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
/// assert!(!req.has_request_stream() && !req.has_response_stream());
/// ```
#[derive(Debug, Clone)]
pub struct CallRequest {
    pub(crate) service: &'static ServiceInfo,
    pub(crate) method: u32,
    pub(crate) payload: Payload,
    /// The payload as one buffer, joined when [`CallRequest::payload`] is first asked for a
    /// payload that is in pieces.
    joined: OnceLock<Bytes>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) metadata: Metadata,
    /// The encoded items of the method's request stream, if it takes one. Clones of the
    /// request share it.
    pub(crate) stream: SharedStream,
    /// Whether the method returns a stream.
    pub(crate) response_stream: bool,
}

impl CallRequest {
    /// A call of method number `method` of `service` with encoded arguments.
    ///
    /// See the [type docs](CallRequest) for an example.
    pub fn new(service: &'static ServiceInfo, method: u32, payload: Bytes) -> Self {
        Self::with_payload(service, method, payload.into())
    }

    /// A call whose encoded arguments may be in pieces.
    pub(crate) fn with_payload(
        service: &'static ServiceInfo,
        method: u32,
        payload: Payload,
    ) -> Self {
        CallRequest {
            service,
            method,
            payload,
            joined: OnceLock::new(),
            timeout: None,
            metadata: Metadata::default(),
            stream: SharedStream::default(),
            response_stream: false,
        }
    }

    /// The request frame of call `id`, the payload in a buffer of its own; `FrameTooLarge`
    /// beyond `max_frame_len`, `DeadlineExceeded` if `out`'s deadline has passed.
    pub(crate) fn into_frame(
        self,
        id: u64,
        out: &Outgoing,
        request_stream: bool,
        response_window: Option<u32>,
        max_frame_len: usize,
    ) -> Result<Parts, Error> {
        let request = wire::Request {
            call_id: id,
            method: self.method,
            timeout_micros: out.timeout_micros()?,
            trace: Some(wire::trace_context(out.trace_id)),
            payload: Bytes::new(),
            metadata: self.metadata.into_entries().into_iter().collect(),
            request_stream,
            response_window,
        };
        let frame = wire::request_parts(request, self.payload);
        if frame.len() > max_frame_len {
            return Err(Error::FrameTooLarge {
                len: frame.len() as u64,
                max: max_frame_len,
            });
        }
        Ok(frame)
    }

    /// Whether the method takes a stream ([`Streaming`]) after its arguments. Clones of a
    /// request share its stream: only one of them can send it.
    ///
    /// See the [type docs](CallRequest) for an example.
    pub fn has_request_stream(&self) -> bool {
        self.stream.is_some()
    }

    /// Whether the method returns a stream: the response is then [`CallResponse::Stream`].
    ///
    /// See the [type docs](CallRequest) for an example.
    pub fn has_response_stream(&self) -> bool {
        self.response_stream
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
    /// Large [`Blob`](crate::codec::Blob)s among the arguments are sent from their own
    /// buffers, not copied into the encoding; the first call of this method copies the
    /// pieces into one buffer, so a layer that looks at payloads costs that copy.
    ///
    /// See the [type docs](CallRequest) for an example.
    pub fn payload(&self) -> &Bytes {
        match self.payload.as_whole() {
            Some(whole) => whole,
            None => self.joined.get_or_init(|| self.payload.join()),
        }
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
#[derive(Debug)]
pub enum CallResponse {
    /// The encoded return value (`T` of `Result<T, E>`).
    Ok(Bytes),
    /// The encoded application error (`E` of `Result<T, E>`).
    AppError(Bytes),
    /// The encoded items of the stream a streaming method returns.
    Stream(Streaming<Bytes>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_in_pieces_is_seen_whole_by_layers() {
        static INFO: ServiceInfo = ServiceInfo::new("Echo", &["echo"], 7);
        let large = Bytes::from(vec![4u8; 50_000]);
        let payload = Payload::from_pieces([Bytes::from_static(b"\x01\x02"), large.clone()]);
        let req = CallRequest::with_payload(&INFO, 0, payload);
        let whole = req.payload().clone();
        assert_eq!(whole.len(), 50_002);
        assert_eq!(&whole[..2], b"\x01\x02");
        assert_eq!(&whole[2..], &large[..]);
        // Joined once: the same buffer the next time.
        assert_eq!(req.payload().as_ptr(), whole.as_ptr());
        // The frame still carries the large piece uncopied.
        let out = Outgoing::new(None);
        let frame = req
            .clone()
            .into_frame(1, &out, false, None, 1 << 20)
            .unwrap();
        assert!(frame.payload.pieces().any(|p| p.as_ptr() == large.as_ptr()));
    }
}
