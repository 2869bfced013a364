//! The envelope and the handshake, as specified in `proto/localrpc.proto`.
mod messages;

use bytes::{Bytes, BytesMut};
use prost::Message;

pub(crate) use messages::{
    Cancel, Code, Envelope, GoAway, Hello, HelloReply, Refusal, RefusalReason, Request, Response,
    Status, TraceContext, envelope, response,
};

use crate::{Error, RefuseReason, ServiceInfo};

/// The protocol version this crate speaks.
pub(crate) const PROTOCOL_VERSION: u32 = 1;
/// The only payload codec so far.
pub(crate) const CODEC: &str = "postcard";

pub(crate) fn encode(msg: &impl Message) -> Bytes {
    let mut buf = BytesMut::with_capacity(msg.encoded_len());
    msg.encode(&mut buf).expect("BytesMut grows as needed");
    buf.freeze()
}

pub(crate) fn encode_envelope(kind: envelope::Kind) -> Bytes {
    encode(&Envelope { kind: Some(kind) })
}

pub(crate) fn hello(info: &ServiceInfo) -> Hello {
    Hello {
        protocol_version: PROTOCOL_VERSION,
        service: info.name().to_owned(),
        method_table_hash: info.hash(),
        codec: CODEC.to_owned(),
    }
}

/// The server's answer to a client's hello.
pub(crate) fn answer(hello: Option<&Hello>, info: &ServiceInfo) -> HelloReply {
    let refusal = match hello {
        None => Some((
            RefusalReason::Malformed,
            "the first frame is not a hello".to_owned(),
        )),
        Some(h) if h.protocol_version != PROTOCOL_VERSION => Some((
            RefusalReason::Version,
            format!(
                "client speaks protocol version {}, server {PROTOCOL_VERSION}",
                h.protocol_version
            ),
        )),
        Some(h) if h.service != info.name() => Some((
            RefusalReason::Service,
            format!(
                "client wants service {:?}, server serves {:?}",
                h.service,
                info.name()
            ),
        )),
        Some(h) if h.method_table_hash != info.hash() => Some((
            RefusalReason::MethodTable,
            format!(
                "service {:?}: client method table {:016x}, server {:016x} (methods: {})",
                info.name(),
                h.method_table_hash,
                info.hash(),
                info.methods().join(", ")
            ),
        )),
        Some(h) if h.codec != CODEC => Some((
            RefusalReason::Codec,
            format!("client codec {:?}, server {CODEC:?}", h.codec),
        )),
        Some(_) => None,
    };
    HelloReply {
        refusal: refusal.map(|(reason, message)| Refusal {
            reason: reason as i32,
            message,
        }),
        protocol_version: PROTOCOL_VERSION,
        service: info.name().to_owned(),
        method_table_hash: info.hash(),
        codec: CODEC.to_owned(),
    }
}

pub(crate) fn refuse_reason(reason: i32) -> RefuseReason {
    match RefusalReason::try_from(reason) {
        Ok(RefusalReason::Version) => RefuseReason::Version,
        Ok(RefusalReason::Service) => RefuseReason::Service,
        Ok(RefusalReason::MethodTable) => RefuseReason::MethodTable,
        Ok(RefusalReason::Codec) => RefuseReason::Codec,
        _ => RefuseReason::Malformed,
    }
}

/// The client-side error for a status the server sent.
pub(crate) fn status_error(status: Status) -> Error {
    let message = status.message;
    match Code::try_from(status.code).unwrap_or(Code::Unspecified) {
        Code::UnknownMethod => Error::UnknownMethod { method: message },
        Code::BadRequest => Error::BadRequest { message },
        Code::DeadlineExceeded => Error::DeadlineExceeded,
        Code::Cancelled => Error::Cancelled,
        Code::Panicked => Error::ServerPanicked { message },
        Code::Refused => Error::Refused { message },
        Code::ShuttingDown => Error::ShuttingDown,
        Code::FrameTooLarge => Error::Server { message },
        Code::Internal | Code::Unspecified => Error::Server { message },
    }
}

pub(crate) fn trace_context(trace_id: u128) -> TraceContext {
    TraceContext {
        trace_id_high: (trace_id >> 64) as u64,
        trace_id_low: trace_id as u64,
    }
}

pub(crate) fn trace_id(trace: Option<TraceContext>) -> u128 {
    trace.map_or(0, |t| {
        (u128::from(t.trace_id_high) << 64) | u128::from(t.trace_id_low)
    })
}
