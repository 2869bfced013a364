//! The envelope and the handshake, as specified in `proto/localrpc.proto`.
pub(crate) mod fast;
mod items;
mod messages;

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;

pub(crate) use messages::{
    Cancel, Code, Credit, Envelope, GoAway, Hello, HelloReply, Refusal, RefusalReason, Request,
    Response, Status, StopSending, StreamEnd, TraceContext, envelope, response,
};

pub(crate) use items::{ItemBatch, ItemFrame, stream_item_parts, stream_items};

use crate::transport::{Parts, Payload, Segment};
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

pub(crate) fn hello(info: &ServiceInfo, offered: Option<&ServiceInfo>) -> Hello {
    Hello {
        protocol_version: PROTOCOL_VERSION,
        service: info.name().to_owned(),
        method_table_hash: info.hash(),
        codec: CODEC.to_owned(),
        peer_service: offered.map_or_else(String::new, |o| o.name().to_owned()),
        peer_method_table_hash: offered.map_or(0, ServiceInfo::hash),
    }
}

/// What a response says, as the caller sees it.
pub(crate) fn reply_of(resp: Response) -> Result<crate::CallResponse, Error> {
    match resp.result {
        Some(response::Result::Ok(value)) => Ok(crate::CallResponse::Ok(value)),
        Some(response::Result::AppError(err)) => Ok(crate::CallResponse::AppError(err)),
        Some(response::Result::Error(status)) => Err(status_error(status)),
        None => Err(Error::Protocol("response without a result".into())),
    }
}

/// The server's answer to a client's hello.
pub(crate) fn answer(
    hello: Option<&Hello>,
    info: &ServiceInfo,
    max_concurrent_calls: usize,
) -> HelloReply {
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
        max_concurrent_calls: u32::try_from(max_concurrent_calls).unwrap_or(u32::MAX),
    }
}

/// How many calls a client may have in flight before the server's answer to its hello.
pub(crate) const INITIAL_CALLS: usize = 64;

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

/// The varint at the start of `rest`, which then starts after it; `None` if there is none.
#[inline(always)]
fn varint(rest: &mut &[u8]) -> Option<u64> {
    // Most varints here are tags and small lengths: one byte.
    if let Some((&byte, after)) = rest.split_first()
        && byte < 0x80
    {
        *rest = after;
        return Some(u64::from(byte));
    }
    prost::encoding::decode_varint(rest).ok()
}

/// Tag bytes of length-delimited fields: (field number << 3) | 2.
const ENVELOPE_REQUEST: u8 = 1 << 3 | 2;
const ENVELOPE_RESPONSE: u8 = 2 << 3 | 2;
const REQUEST_PAYLOAD: u8 = 5 << 3 | 2;
const RESPONSE_OK: u8 = 2 << 3 | 2;
const RESPONSE_APP_ERROR: u8 = 3 << 3 | 2;
const ENVELOPE_STREAM_ITEM: u8 = 5 << 3 | 2;
const STREAM_ITEM_PAYLOAD: u8 = 2 << 3 | 2;

/// Encodes `Envelope { request }` with the payload field last. Protobuf lets fields come in
/// any order, so this is a valid encoding of the message in `proto/localrpc.proto`; putting
/// the payload last lets it travel as a separate buffer.
pub(crate) fn request_parts(mut request: Request, payload: Payload) -> Parts {
    request.payload = Bytes::new();
    let payload_field =
        1 + prost::encoding::encoded_len_varint(payload.len() as u64) + payload.len();
    let request_len = request.encoded_len() + payload_field;
    let head = envelope_head(
        ENVELOPE_REQUEST,
        request_len,
        payload.len(),
        REQUEST_PAYLOAD,
        |buf| request.encode_raw(buf),
    );
    Parts { head, payload }
}

/// Encodes `Envelope { response { call_id, ok | app_error } }` with the payload last.
pub(crate) fn response_parts(call_id: u64, app_error: bool, payload: Payload) -> Parts {
    let response = Response {
        call_id,
        result: None,
    };
    let tag = if app_error {
        RESPONSE_APP_ERROR
    } else {
        RESPONSE_OK
    };
    let payload_field =
        1 + prost::encoding::encoded_len_varint(payload.len() as u64) + payload.len();
    let response_len = response.encoded_len() + payload_field;
    let head = envelope_head(ENVELOPE_RESPONSE, response_len, payload.len(), tag, |buf| {
        response.encode_raw(buf)
    });
    Parts { head, payload }
}

fn envelope_head(
    envelope_tag: u8,
    message_len: usize,
    payload_len: usize,
    payload_tag: u8,
    fields: impl FnOnce(&mut &mut [u8]),
) -> Segment {
    let head_len =
        1 + prost::encoding::encoded_len_varint(message_len as u64) + message_len - payload_len;
    Segment::build(head_len, |head| {
        head.put_u8(envelope_tag);
        prost::encoding::encode_varint(message_len as u64, head);
        fields(head);
        head.put_u8(payload_tag);
        prost::encoding::encode_varint(payload_len as u64, head);
    })
}

#[cfg(test)]
mod parts_tests {
    use super::*;

    fn joined(parts: &Parts) -> Vec<u8> {
        [&parts.head[..], &parts.payload.join()[..]].concat()
    }

    #[test]
    fn request_parts_decode_as_the_message() {
        let request = Request {
            call_id: 300,
            method: 2,
            timeout_micros: Some(1_000_000),
            trace: Some(trace_context(0x1234_5678_9abc_def0_1122_3344_5566_7788)),
            payload: Bytes::new(),
            metadata: [("tenant".to_string(), "blue".to_string())]
                .into_iter()
                .collect(),
            request_stream: true,
            response_window: Some(4096),
        };
        for payload in [
            Bytes::new(),
            Bytes::from(vec![7u8; 200]),
            Bytes::from(vec![1u8; 70_000]),
        ] {
            let parts = request_parts(request.clone(), payload.clone().into());
            let decoded = Envelope::decode(&joined(&parts)[..]).unwrap();
            let mut expected = request.clone();
            expected.payload = payload;
            assert_eq!(decoded.kind, Some(envelope::Kind::Request(expected)));
        }
    }

    #[test]
    fn response_parts_decode_as_the_message() {
        for (app_error, payload) in [
            (false, Bytes::from_static(b"ok")),
            (true, Bytes::from(vec![3u8; 300])),
        ] {
            let parts = response_parts(99, app_error, payload.clone().into());
            let decoded = Envelope::decode(&joined(&parts)[..]).unwrap();
            let result = if app_error {
                response::Result::AppError(payload)
            } else {
                response::Result::Ok(payload)
            };
            assert_eq!(
                decoded.kind,
                Some(envelope::Kind::Response(Response {
                    call_id: 99,
                    result: Some(result)
                }))
            );
        }
    }
}
