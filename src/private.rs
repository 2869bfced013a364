//! What `#[localrpc::service]` expands to calls. Not public API: no stability promise.
#![allow(missing_docs, unreachable_pub, missing_debug_implementations)]

use std::convert::Infallible;
use std::future::poll_fn;

use bytes::BytesMut;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::decoding_from;
use crate::codec::postcard::{decode, encode as encode_into, encode_payload};
use crate::server::Reply;
use crate::stream::Budget;
use crate::transport::Payload;
use crate::wire::{Code, ItemFrame};

pub use ::bytes::Bytes;
pub use ::serde;
pub use ::std::boxed::Box;
pub use ::std::clone::Clone;
pub use ::std::convert::{From, Into};
pub use ::std::default::Default;
pub use ::std::fmt::{Debug, Formatter, Result as FmtResult};
pub use ::std::future::Future;
pub use ::std::marker::{Send, Sized, Sync};
pub use ::std::option::Option::{self, None, Some};
pub use ::std::pin::Pin;
pub use ::std::result::Result::{self, Err, Ok};
pub use ::std::string::String;
pub use ::std::sync::Arc;
pub use ::std::task::{Context, Poll};
pub use ::std::time::Duration;
pub use ::std::{concat, stringify};
pub use ::tower::Service;
pub use std::convert::Infallible as Never;

pub use crate::blocking::{Call as BlockingCall, Client as BlockingClient};
pub use crate::client::CallOptions;
pub use crate::{
    CallRequest, CallResponse, Client, Error, IntoName, NamedService, PeerClient, ServerRequest,
    ServerResponse, ServiceInfo, Streaming, method_table_hash,
};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The future a generated server returns for one call.
pub type ServeFuture = BoxFuture<Result<ServerResponse, Infallible>>;

/// Connects a generated client.
pub async fn connect(name: impl IntoName, info: &'static ServiceInfo) -> Result<Client, Error> {
    Client::connect(name, info).await
}

fn request<A: Serialize>(
    opts: &CallOptions,
    info: &'static ServiceInfo,
    method: u32,
    args: &A,
) -> Result<CallRequest, Error> {
    let mut req = CallRequest::with_payload(info, method, encode_payload(args)?);
    req.timeout = opts.timeout;
    Ok(req)
}

/// `req` with `items` as its request stream.
fn with_stream<U: Serialize + 'static>(mut req: CallRequest, items: Streaming<U>) -> CallRequest {
    req.stream = crate::client::SharedStream::new(encode_stream(items));
    req
}

/// Encodes each item of a stream about to be sent (straight into the frame that carries it,
/// when the connection sends it).
pub fn encode_stream<T: Serialize + 'static>(items: Streaming<T>) -> Streaming<Bytes> {
    Streaming::encoded(Box::new(Encoder(items)))
}

/// Decodes each item of a stream received (where it lies in the frame that carried it).
pub fn decode_stream<T: DeserializeOwned + 'static>(items: Streaming<Bytes>) -> Streaming<T> {
    items.decode_with(|body, range| {
        let item = &body[range];
        decoding_from(body, || decode(item)).map_err(Error::from)
    })
}

/// The typed items of a stream, encoded as they are taken.
struct Encoder<T>(Streaming<T>);

impl<T: Serialize + 'static> crate::stream::EncodeItems<Bytes> for Encoder<T> {
    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Error>>> {
        let mut buf = BytesMut::new();
        self.poll_encode(cx, &mut buf)
            .map(|item| item.map(|item| item.map(|()| buf.freeze())))
    }

    fn poll_encode(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<Option<Result<(), Error>>> {
        use futures_util::StreamExt;
        self.0
            .poll_next_unpin(cx)
            .map(|item| item.map(|item| item.and_then(|item| Ok(encode_into(&item, buf)?))))
    }

    fn poll_encode_batch(
        &mut self,
        cx: &mut Context<'_>,
        frame: &mut ItemFrame,
        budget: &mut Budget,
    ) -> Poll<Option<Result<(), Error>>> {
        use futures_util::StreamExt;
        while budget.has_room() {
            let item = match self.0.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(item))) => item,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            if let Err(e) = encode_into(&item, frame.open_item()) {
                frame.discard_item();
                return Poll::Ready(Some(Err(e.into())));
            }
            if !budget.admit(frame) {
                break;
            }
        }
        Poll::Ready(Some(Ok(())))
    }
}

/// The value of a method that takes a stream and returns a single result.
pub async fn call_with_stream<S, A, U, T>(
    svc: &S,
    opts: &CallOptions,
    info: &'static ServiceInfo,
    method: u32,
    args: &A,
    items: Streaming<U>,
) -> Result<T, Error>
where
    S: Service<CallRequest, Response = CallResponse, Error = Error> + Clone + 'static,
    A: Serialize,
    U: Serialize + 'static,
    T: DeserializeOwned,
{
    reply(send(svc, with_stream(request(opts, info, method, args)?, items)).await?)
}

/// The value or application error of a method that takes a stream and is declared
/// `-> Result<T, E>`.
pub async fn call_fallible_with_stream<S, A, U, T, E>(
    svc: &S,
    opts: &CallOptions,
    info: &'static ServiceInfo,
    method: u32,
    args: &A,
    items: Streaming<U>,
) -> Result<Result<T, E>, Error>
where
    S: Service<CallRequest, Response = CallResponse, Error = Error> + Clone + 'static,
    A: Serialize,
    U: Serialize + 'static,
    T: DeserializeOwned,
    E: DeserializeOwned,
{
    reply_fallible(send(svc, with_stream(request(opts, info, method, args)?, items)).await?)
}

/// Calls a method that returns a stream (and may take one).
pub async fn call_streaming<S, A, U, T>(
    svc: &S,
    opts: &CallOptions,
    info: &'static ServiceInfo,
    method: u32,
    args: &A,
    items: Option<Streaming<U>>,
) -> Result<Streaming<T>, Error>
where
    S: Service<CallRequest, Response = CallResponse, Error = Error> + Clone + 'static,
    A: Serialize,
    U: Serialize + 'static,
    T: DeserializeOwned + 'static,
{
    let mut req = request(opts, info, method, args)?;
    if let Some(items) = items {
        req = with_stream(req, items);
    }
    req.response_stream = true;
    match send(svc, req).await? {
        CallResponse::Stream(items) => Ok(decode_stream(items)),
        _ => Err(Error::Protocol(
            "a single response to a method that returns a stream".into(),
        )),
    }
}

async fn send<S>(svc: &S, req: CallRequest) -> Result<CallResponse, Error>
where
    S: Service<CallRequest, Response = CallResponse, Error = Error> + Clone + 'static,
{
    // The plain client needs none of tower's plumbing: no clone, no boxed future.
    if let Some(client) = (svc as &dyn std::any::Any).downcast_ref::<crate::Client>() {
        return client.request(req).await;
    }
    let mut svc = svc.clone();
    poll_fn(|cx| svc.poll_ready(cx)).await?;
    svc.call(req).await
}

/// The value of a method that declares no application error.
fn reply<T: DeserializeOwned>(resp: CallResponse) -> Result<T, Error> {
    match resp {
        CallResponse::Ok(value) => Ok(decoding_from(&value, || decode(&value))?),
        CallResponse::AppError(_) => Err(Error::Protocol(
            "application error for a method that declares none".into(),
        )),
        CallResponse::Stream(_) => Err(not_a_stream()),
    }
}

fn not_a_stream() -> Error {
    Error::Protocol("a stream for a method that returns a single result".into())
}

/// The value or application error of a method declared `-> Result<T, E>`.
fn reply_fallible<T: DeserializeOwned, E: DeserializeOwned>(
    resp: CallResponse,
) -> Result<Result<T, E>, Error> {
    match resp {
        CallResponse::Ok(value) => Ok(Ok(decoding_from(&value, || decode(&value))?)),
        CallResponse::AppError(err) => Ok(Err(decoding_from(&err, || decode(&err))?)),
        CallResponse::Stream(_) => Err(not_a_stream()),
    }
}

/// Calls a method whose return type is not a `Result`.
pub async fn call<S, A, T>(
    svc: &S,
    opts: &CallOptions,
    info: &'static ServiceInfo,
    method: u32,
    args: &A,
) -> Result<T, Error>
where
    S: Service<CallRequest, Response = CallResponse, Error = Error> + Clone + 'static,
    A: Serialize,
    T: DeserializeOwned,
{
    reply(send(svc, request(opts, info, method, args)?).await?)
}

/// Calls a method declared `-> Result<T, E>`.
pub async fn call_fallible<S, A, T, E>(
    svc: &S,
    opts: &CallOptions,
    info: &'static ServiceInfo,
    method: u32,
    args: &A,
) -> Result<Result<T, E>, Error>
where
    S: Service<CallRequest, Response = CallResponse, Error = Error> + Clone + 'static,
    A: Serialize,
    T: DeserializeOwned,
    E: DeserializeOwned,
{
    reply_fallible(send(svc, request(opts, info, method, args)?).await?)
}

fn blocking_call_raw<S, A>(
    svc: &S,
    opts: &CallOptions,
    info: &'static ServiceInfo,
    method: u32,
    args: &A,
) -> Result<CallResponse, Error>
where
    S: BlockingCall,
    A: Serialize,
{
    svc.call(request(opts, info, method, args)?)
}

/// Calls a method whose return type is not a `Result`, blocking.
pub fn call_blocking<S, A, T>(
    svc: &S,
    opts: &CallOptions,
    info: &'static ServiceInfo,
    method: u32,
    args: &A,
) -> Result<T, Error>
where
    S: BlockingCall,
    A: Serialize,
    T: DeserializeOwned,
{
    reply(blocking_call_raw(svc, opts, info, method, args)?)
}

/// Calls a method declared `-> Result<T, E>`, blocking.
pub fn call_blocking_fallible<S, A, T, E>(
    svc: &S,
    opts: &CallOptions,
    info: &'static ServiceInfo,
    method: u32,
    args: &A,
) -> Result<Result<T, E>, Error>
where
    S: BlockingCall,
    A: Serialize,
    T: DeserializeOwned,
    E: DeserializeOwned,
{
    reply_fallible(blocking_call_raw(svc, opts, info, method, args)?)
}

fn bad_request(e: crate::codec::DecodeError) -> ServeFuture {
    let resp = ServerResponse::status(Code::BadRequest, e.to_string());
    Box::pin(std::future::ready(Ok(resp)))
}

fn encode_reply<T: Serialize>(value: &T, wrap: fn(Payload) -> Reply) -> ServerResponse {
    match encode_payload(value) {
        Ok(payload) => ServerResponse {
            reply: wrap(payload),
        },
        Err(e) => ServerResponse::status(Code::Internal, format!("cannot encode the reply: {e}")),
    }
}

/// Serves a method whose return type is not a `Result`.
pub fn handle<A, T, F, Fut>(req: ServerRequest, f: F) -> ServeFuture
where
    A: DeserializeOwned,
    T: Serialize,
    F: FnOnce(A) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let args: A = match decoding_from(req.payload(), || decode(req.payload())) {
        Ok(args) => args,
        Err(e) => return bad_request(e),
    };
    let fut = f(args);
    Box::pin(async move { Ok(encode_reply(&fut.await, Reply::Ok)) })
}

/// Serves a method declared `-> Result<T, E>`.
pub fn handle_fallible<A, T, E, F, Fut>(req: ServerRequest, f: F) -> ServeFuture
where
    A: DeserializeOwned,
    T: Serialize,
    E: Serialize,
    F: FnOnce(A) -> Fut,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    let args: A = match decoding_from(req.payload(), || decode(req.payload())) {
        Ok(args) => args,
        Err(e) => return bad_request(e),
    };
    let fut = f(args);
    Box::pin(async move {
        Ok(match fut.await {
            Ok(value) => encode_reply(&value, Reply::Ok),
            Err(err) => encode_reply(&err, Reply::AppError),
        })
    })
}

/// The request stream of a call to a method that takes one. A call without one (a client
/// that does not match the server) gets a stream that fails at once.
pub fn take_stream<U: DeserializeOwned + 'static>(req: &mut ServerRequest) -> Streaming<U> {
    match req.stream.take() {
        Some(items) => decode_stream(items),
        None => Streaming::from_results(
            futures_util::stream::iter(std::iter::once_with(|| {
                Err(Error::BadRequest {
                    message: "the call carries no request stream".into(),
                })
            })),
            None,
        ),
    }
}

/// Serves a method that returns a stream.
pub fn handle_streaming<A, T, F, Fut>(req: ServerRequest, f: F) -> ServeFuture
where
    A: DeserializeOwned,
    T: Serialize + 'static,
    F: FnOnce(A) -> Fut,
    Fut: Future<Output = Streaming<T>> + Send + 'static,
{
    let args: A = match decoding_from(req.payload(), || decode(req.payload())) {
        Ok(args) => args,
        Err(e) => return bad_request(e),
    };
    let fut = f(args);
    Box::pin(async move { Ok(ServerResponse::stream(encode_stream(fut.await))) })
}

/// Answers a method index outside the table.
pub fn unknown_method(req: ServerRequest) -> ServeFuture {
    let resp = ServerResponse::status(
        Code::UnknownMethod,
        format!(
            "{} has no method #{}",
            req.service().name(),
            req.method_index()
        ),
    );
    Box::pin(std::future::ready(Ok(resp)))
}

/// Runs calls in-process through a server, without a transport: for unit tests of generated
/// code. The call context has no peer; the deadline comes from the call's timeout.
#[derive(Clone, Debug)]
pub struct Loopback<S>(pub S);

/// A [`Loopback`] over `server`.
pub fn loopback<S>(server: S) -> Loopback<S> {
    Loopback(server)
}

impl<S> Service<CallRequest> for Loopback<S>
where
    S: Service<ServerRequest, Response = ServerResponse> + Clone + Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: Send + 'static,
{
    type Response = CallResponse;
    type Error = Error;
    type Future = BoxFuture<Result<CallResponse, Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: CallRequest) -> Self::Future {
        let mut svc = self.0.clone();
        Box::pin(async move {
            let req = ServerRequest {
                service: req.service,
                method: req.method,
                payload: req.payload().clone(),
                context: crate::CallContext {
                    call_id: 0,
                    method: req.service.method_name(req.method).unwrap_or("?"),
                    peer: None,
                    peer_addr: None,
                    deadline: req.timeout.map(|t| std::time::Instant::now() + t),
                    trace_id: 0,
                    metadata: req.metadata,
                    callbacks: None,
                },
                stream: req.stream.take(),
            };
            poll_fn(|cx| svc.poll_ready(cx))
                .await
                .map_err(|e| Error::Server {
                    message: e.into().to_string(),
                })?;
            let resp = svc.call(req).await.map_err(|e| Error::Server {
                message: e.into().to_string(),
            })?;
            match resp.reply {
                crate::server::Reply::Ok(value) => Ok(CallResponse::Ok(value.join())),
                crate::server::Reply::AppError(err) => Ok(CallResponse::AppError(err.join())),
                crate::server::Reply::Error(status) => Err(crate::wire::status_error(status)),
                crate::server::Reply::Stream(items) => Ok(CallResponse::Stream(items)),
            }
        })
    }
}
