//! The messages of `proto/localrpc.proto`, written out for prost (no protoc needed to build).
//! Field tags and types must match the .proto file; `tests` below pins the encoding.
#![allow(missing_docs, unreachable_pub)]

use std::collections::BTreeMap;

use bytes::Bytes;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Hello {
    #[prost(uint32, tag = "1")]
    pub protocol_version: u32,
    #[prost(string, tag = "2")]
    pub service: String,
    #[prost(fixed64, tag = "3")]
    pub method_table_hash: u64,
    #[prost(string, tag = "4")]
    pub codec: String,
    #[prost(string, tag = "5")]
    pub peer_service: String,
    #[prost(fixed64, tag = "6")]
    pub peer_method_table_hash: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    #[prost(message, optional, tag = "1")]
    pub refusal: Option<Refusal>,
    #[prost(uint32, tag = "2")]
    pub protocol_version: u32,
    #[prost(string, tag = "3")]
    pub service: String,
    #[prost(fixed64, tag = "4")]
    pub method_table_hash: u64,
    #[prost(string, tag = "5")]
    pub codec: String,
    #[prost(uint32, tag = "6")]
    pub max_concurrent_calls: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Refusal {
    #[prost(enumeration = "RefusalReason", tag = "1")]
    pub reason: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum RefusalReason {
    Unspecified = 0,
    Version = 1,
    Service = 2,
    MethodTable = 3,
    Codec = 4,
    Malformed = 5,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Envelope {
    #[prost(oneof = "envelope::Kind", tags = "1, 2, 3, 4, 5, 6, 7, 8")]
    pub kind: Option<envelope::Kind>,
}

pub mod envelope {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        #[prost(message, tag = "1")]
        Request(super::Request),
        #[prost(message, tag = "2")]
        Response(super::Response),
        #[prost(message, tag = "3")]
        Cancel(super::Cancel),
        #[prost(message, tag = "4")]
        GoAway(super::GoAway),
        #[prost(message, tag = "5")]
        StreamItem(super::StreamItem),
        #[prost(message, tag = "6")]
        StreamEnd(super::StreamEnd),
        #[prost(message, tag = "7")]
        Credit(super::Credit),
        #[prost(message, tag = "8")]
        StopSending(super::StopSending),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Request {
    #[prost(uint64, tag = "1")]
    pub call_id: u64,
    #[prost(uint32, tag = "2")]
    pub method: u32,
    #[prost(uint64, optional, tag = "3")]
    pub timeout_micros: Option<u64>,
    #[prost(message, optional, tag = "4")]
    pub trace: Option<TraceContext>,
    #[prost(bytes = "bytes", tag = "5")]
    pub payload: Bytes,
    #[prost(btree_map = "string, string", tag = "6")]
    pub metadata: BTreeMap<String, String>,
    #[prost(bool, tag = "7")]
    pub request_stream: bool,
    #[prost(uint32, optional, tag = "8")]
    pub response_window: Option<u32>,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct TraceContext {
    #[prost(fixed64, tag = "1")]
    pub trace_id_high: u64,
    #[prost(fixed64, tag = "2")]
    pub trace_id_low: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {
    #[prost(uint64, tag = "1")]
    pub call_id: u64,
    #[prost(oneof = "response::Result", tags = "2, 3, 4")]
    pub result: Option<response::Result>,
}

pub mod response {
    use bytes::Bytes;

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Result {
        #[prost(bytes = "bytes", tag = "2")]
        Ok(Bytes),
        #[prost(bytes = "bytes", tag = "3")]
        AppError(Bytes),
        #[prost(message, tag = "4")]
        Error(super::Status),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(enumeration = "Code", tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Code {
    Unspecified = 0,
    UnknownMethod = 1,
    BadRequest = 2,
    DeadlineExceeded = 3,
    Cancelled = 4,
    Panicked = 5,
    Refused = 6,
    ShuttingDown = 7,
    Internal = 8,
    FrameTooLarge = 9,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Cancel {
    #[prost(uint64, tag = "1")]
    pub call_id: u64,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct GoAway {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamItem {
    #[prost(uint64, tag = "1")]
    pub call_id: u64,
    #[prost(bytes = "bytes", repeated, tag = "2")]
    pub items: Vec<Bytes>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamEnd {
    #[prost(uint64, tag = "1")]
    pub call_id: u64,
    #[prost(message, optional, tag = "2")]
    pub error: Option<Status>,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Credit {
    #[prost(uint64, tag = "1")]
    pub call_id: u64,
    #[prost(uint32, tag = "2")]
    pub bytes: u32,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct StopSending {
    #[prost(uint64, tag = "1")]
    pub call_id: u64,
}

impl Status {
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status {
            code: code as i32,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn encoding_matches_the_proto_file() {
        // Hello { protocol_version: 1, service: "S", method_table_hash: 2, codec: "p" }
        let hello = Hello {
            protocol_version: 1,
            service: "S".into(),
            method_table_hash: 2,
            codec: "p".into(),
            peer_service: String::new(),
            peer_method_table_hash: 0,
        };
        assert_eq!(
            hello.encode_to_vec(),
            [
                0x08, 1, // field 1, varint
                0x12, 1, b'S', // field 2, length-delimited
                0x19, 2, 0, 0, 0, 0, 0, 0, 0, // field 3, fixed64
                0x22, 1, b'p', // field 4, length-delimited
            ]
        );
        // Envelope { request { call_id: 5, method: 1, payload: [9] } }
        let env = Envelope {
            kind: Some(envelope::Kind::Request(Request {
                call_id: 5,
                method: 1,
                timeout_micros: None,
                trace: None,
                payload: Bytes::from_static(&[9]),
                metadata: BTreeMap::new(),
                request_stream: false,
                response_window: None,
            })),
        };
        assert_eq!(env.encode_to_vec(), [0x0a, 7, 0x08, 5, 0x10, 1, 0x2a, 1, 9]);
        let back = Envelope::decode(&env.encode_to_vec()[..]).unwrap();
        assert_eq!(back, env);
    }
}
