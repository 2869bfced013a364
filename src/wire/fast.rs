//! Requests and responses decoded without prost's generic machinery: they are most of the
//! frames on a connection, and most are laid out one way (the fields this crate writes, each
//! once, no metadata). Anything else gets `None`, and the caller decodes it with prost, so
//! what these accept they decode exactly as prost would.
use bytes::Bytes;

use super::{
    ENVELOPE_REQUEST, ENVELOPE_RESPONSE, Request, Response, TraceContext, response, varint,
};

/// `Envelope { request }` without metadata.
pub(crate) fn request(frame: &Bytes) -> Option<Request> {
    let mut rest = body(frame, ENVELOPE_REQUEST)?;
    let mut req = Request::default();
    let mut seen = 0u32;
    while !rest.is_empty() {
        let (field, wire_type) = key(&mut rest, &mut seen)?;
        match (field, wire_type) {
            (1, VARINT) => req.call_id = varint(&mut rest)?,
            // prost reads a `uint32` as a varint cut to 32 bits, and a `bool` as "not zero".
            (2, VARINT) => req.method = varint(&mut rest)? as u32,
            (3, VARINT) => req.timeout_micros = Some(varint(&mut rest)?),
            (4, DELIMITED) => req.trace = Some(trace(delimited(&mut rest)?)?),
            (5, DELIMITED) => req.payload = frame.slice_ref(delimited(&mut rest)?),
            (7, VARINT) => req.request_stream = varint(&mut rest)? != 0,
            (8, VARINT) => req.response_window = Some(varint(&mut rest)? as u32),
            // Metadata, or anything unexpected.
            _ => return None,
        }
    }
    Some(req)
}

/// `Envelope { response }` with a value or an application error.
pub(crate) fn response(frame: &Bytes) -> Option<Response> {
    let mut rest = body(frame, ENVELOPE_RESPONSE)?;
    let mut resp = Response::default();
    let mut seen = 0u32;
    while !rest.is_empty() {
        let (field, wire_type) = key(&mut rest, &mut seen)?;
        match (field, wire_type) {
            (1, VARINT) => resp.call_id = varint(&mut rest)?,
            // The result is a oneof: one of the two, once.
            (2, DELIMITED) if resp.result.is_none() => {
                resp.result = Some(response::Result::Ok(frame.slice_ref(delimited(&mut rest)?)));
            }
            (3, DELIMITED) if resp.result.is_none() => {
                let err = frame.slice_ref(delimited(&mut rest)?);
                resp.result = Some(response::Result::AppError(err));
            }
            // A status, or anything unexpected.
            _ => return None,
        }
    }
    Some(resp)
}

const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const DELIMITED: u64 = 2;

/// The message inside an envelope whose only field is `tag`, if the frame is exactly that.
fn body(frame: &[u8], tag: u8) -> Option<&[u8]> {
    let mut rest = frame.strip_prefix(&[tag])?;
    (varint(&mut rest)? == rest.len() as u64).then_some(rest)
}

/// A field's number and wire type; `None` for a field seen before (prost would merge or
/// replace: left to it) or beyond the first 31.
fn key(rest: &mut &[u8], seen: &mut u32) -> Option<(u64, u64)> {
    let key = varint(rest)?;
    let field = key >> 3;
    if field == 0 || field > 31 || *seen & (1 << field) != 0 {
        return None;
    }
    *seen |= 1 << field;
    Some((field, key & 7))
}

fn trace(mut rest: &[u8]) -> Option<TraceContext> {
    let mut trace = TraceContext::default();
    let mut seen = 0u32;
    while !rest.is_empty() {
        let (field, wire_type) = key(&mut rest, &mut seen)?;
        let value = match (wire_type, rest.split_first_chunk::<8>()) {
            (FIXED64, Some((bytes, after))) => {
                rest = after;
                u64::from_le_bytes(*bytes)
            }
            _ => return None,
        };
        match field {
            1 => trace.trace_id_high = value,
            2 => trace.trace_id_low = value,
            _ => return None,
        }
    }
    Some(trace)
}

fn delimited<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(varint(rest)?).ok()?;
    let (value, after) = rest.split_at_checked(len)?;
    *rest = after;
    Some(value)
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::super::{Envelope, envelope, request_parts, response_parts, trace_context};
    use super::*;

    /// A small deterministic generator (xorshift), so that failures repeat.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        /// Values of every varint length, small ones often.
        fn varint_value(&mut self) -> u64 {
            let bits = self.below(65);
            if bits == 64 {
                self.next()
            } else {
                self.next() & ((1 << bits) - 1)
            }
        }
    }

    fn random_request(rng: &mut Rng, metadata: bool) -> Request {
        Request {
            call_id: rng.varint_value(),
            method: rng.varint_value() as u32,
            timeout_micros: (rng.below(2) == 0).then(|| rng.varint_value()),
            trace: (rng.below(3) != 0)
                .then(|| trace_context(u128::from(rng.next()) << 64 | u128::from(rng.next()))),
            payload: Bytes::from(
                (0..rng.below(300))
                    .map(|_| rng.next() as u8)
                    .collect::<Vec<_>>(),
            ),
            metadata: if metadata {
                [("k".to_string(), "v".to_string())].into_iter().collect()
            } else {
                Default::default()
            },
            request_stream: rng.below(2) == 0,
            response_window: (rng.below(2) == 0).then(|| rng.varint_value() as u32),
        }
    }

    fn by_prost(frame: &Bytes) -> Option<envelope::Kind> {
        Envelope::decode(frame.clone()).ok().and_then(|e| e.kind)
    }

    /// Whatever the fast path accepts, prost decodes the same; what prost rejects, the
    /// fast path rejects too. Never a panic.
    fn agrees(frame: &Bytes) {
        if let Some(req) = request(frame) {
            assert_eq!(
                by_prost(frame),
                Some(envelope::Kind::Request(req)),
                "{frame:?}"
            );
        }
        if let Some(resp) = response(frame) {
            assert_eq!(
                by_prost(frame),
                Some(envelope::Kind::Response(resp)),
                "{frame:?}"
            );
        }
    }

    #[test]
    fn requests_decode_as_prost_decodes_them() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for i in 0..3000 {
            let metadata = i % 10 == 0;
            let req = random_request(&mut rng, metadata);
            // As prost writes it, and as this crate writes it (payload last).
            let plain = Bytes::from(
                Envelope {
                    kind: Some(envelope::Kind::Request(req.clone())),
                }
                .encode_to_vec(),
            );
            let parts = request_parts(req.clone(), req.payload.clone().into());
            let ours = Bytes::from([&parts.head[..], &parts.payload.join()[..]].concat());
            for frame in [&plain, &ours] {
                match request(frame) {
                    Some(fast) => assert_eq!(fast, req),
                    None => assert!(metadata, "a request without metadata fell back: {req:?}"),
                }
                agrees(frame);
                // Every truncation, and a flipped byte.
                for cut in 0..frame.len() {
                    agrees(&frame.slice(..cut));
                }
                let mut bent = frame.to_vec();
                let at = rng.below(bent.len() as u64) as usize;
                bent[at] ^= 1 << rng.below(8);
                agrees(&Bytes::from(bent));
            }
        }
    }

    #[test]
    fn responses_decode_as_prost_decodes_them() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for _ in 0..3000 {
            let call_id = rng.varint_value();
            let payload = Bytes::from(
                (0..rng.below(300))
                    .map(|_| rng.next() as u8)
                    .collect::<Vec<_>>(),
            );
            let app_error = rng.below(2) == 0;
            let parts = response_parts(call_id, app_error, payload.clone().into());
            let frame = Bytes::from([&parts.head[..], &parts.payload.join()[..]].concat());
            let fast = response(&frame).expect("a response with a value takes the fast path");
            assert_eq!(fast.call_id, call_id);
            let expected = if app_error {
                response::Result::AppError(payload)
            } else {
                response::Result::Ok(payload)
            };
            assert_eq!(fast.result, Some(expected));
            agrees(&frame);
            for cut in 0..frame.len() {
                agrees(&frame.slice(..cut));
            }
        }
        // A status goes to prost.
        let status = super::super::encode_envelope(envelope::Kind::Response(Response {
            call_id: 3,
            result: Some(response::Result::Error(super::super::Status::new(
                super::super::Code::Internal,
                "x",
            ))),
        }));
        assert!(response(&status).is_none());
        // Garbage never panics, and what it yields prost agrees with.
        for _ in 0..20_000 {
            let len = rng.below(40) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if let Some(first) = bytes.first_mut() {
                *first = [ENVELOPE_REQUEST, ENVELOPE_RESPONSE][rng.below(2) as usize];
            }
            if bytes.len() > 1 {
                bytes[1] = (bytes.len() - 2) as u8;
            }
            agrees(&Bytes::from(bytes));
        }
    }
}
