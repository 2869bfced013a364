//! One call on the server: the request and its context as the wire brought them, run
//! through the service stack, and the reply as a frame.
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::Either;
use tracing::Instrument;

use super::catch::CatchUnwind;
use super::request::{Reply, ServerRequest, ServerResponse};
use super::{BoxError, Config};
use crate::deadline::{Deadline, deadline};
use crate::ipc::PeerCredentials;
use crate::transport::Parts;
use crate::wire::{self, Code, envelope, response};
use crate::{CallContext, Metadata, ServiceInfo};

/// The request of a call as the service stack sees it.
pub(crate) fn server_request(
    req: wire::Request,
    info: &'static ServiceInfo,
    peer: Option<PeerCredentials>,
    peer_addr: Option<SocketAddr>,
) -> ServerRequest {
    let deadline = req
        .timeout_micros
        .and_then(|us| Instant::now().checked_add(Duration::from_micros(us)));
    ServerRequest {
        service: info,
        method: req.method,
        payload: req.payload,
        context: CallContext {
            call_id: req.call_id,
            method: info.method_name(req.method).unwrap_or("?"),
            peer,
            peer_addr,
            deadline,
            trace_id: wire::trace_id(req.trace),
            metadata: Metadata::from_entries(req.metadata.into_iter().collect()),
            callbacks: None,
        },
        stream: None,
    }
}

/// Runs one call through the service stack: its deadline, its context, panics caught.
pub(crate) fn run_call<S>(mut svc: S, req: ServerRequest) -> impl Future<Output = Reply> + Send
where
    S: tower::Service<ServerRequest, Response = ServerResponse> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    let ctx = req.context.clone();
    let span = tracing::info_span!(
        "rpc.serve",
        method = ctx.method,
        call_id = ctx.call_id,
        peer_pid = ?ctx.peer.and_then(|p| p.pid()),
        trace_id = %format_args!("{:032x}", ctx.trace_id),
    );
    let at = ctx.deadline;
    let call = ctx.scope(async move {
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
        svc.call(req).await
    });
    // Entering a span costs even when nothing listens; skip it then.
    let call = if span.is_disabled() {
        Either::Left(call)
    } else {
        Either::Right(call.instrument(span.clone()))
    };
    RunCall {
        call: Some(deadline(at, CatchUnwind(call))),
        span,
    }
}

/// The future of [`run_call`]: written out rather than `async`, which would hold the call's
/// future once as a value and once more while awaiting it, and copy it from one to the other.
struct RunCall<F> {
    /// The call, until it is over.
    call: Option<Deadline<CatchUnwind<F>>>,
    span: tracing::Span,
}

impl<F, E> Future for RunCall<F>
where
    F: Future<Output = Result<ServerResponse, E>>,
    E: Into<BoxError>,
{
    type Output = Reply;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Reply> {
        // SAFETY: `call` is pinned with `self`: it is never moved, only dropped in place (by
        // `Pin::set`); `RunCall` implements neither `Drop` nor `Unpin` by hand.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as above.
        let mut call = unsafe { Pin::new_unchecked(&mut this.call) };
        let Some(running) = call.as_mut().as_pin_mut() else {
            return Poll::Pending; // over; not polled again by its owner
        };
        let outcome = std::task::ready!(running.poll(cx));
        // The handler is dropped as soon as the call is over.
        call.set(None);
        Poll::Ready(match outcome {
            None => {
                tracing::debug!(parent: &this.span, "deadline exceeded; handler dropped");
                Reply::Error(wire::Status::new(
                    Code::DeadlineExceeded,
                    "deadline exceeded",
                ))
            }
            Some(Err(panic)) => {
                tracing::error!(parent: &this.span, panic = %panic, "handler panicked");
                Reply::Error(wire::Status::new(Code::Panicked, panic))
            }
            Some(Ok(Err(e))) => layer_error(e.into()),
            Some(Ok(Ok(resp))) => resp.reply,
        })
    }
}

/// A tower layer's error, as the client will see it.
fn layer_error(e: BoxError) -> Reply {
    let code = if e.is::<tower::timeout::error::Elapsed>() {
        Code::DeadlineExceeded
    } else {
        Code::Internal
    };
    Reply::Error(wire::Status::new(code, e.to_string()))
}

pub(crate) fn response_frame(call_id: u64, reply: Reply, config: &Config) -> Parts {
    let frame = match reply {
        Reply::Ok(value) => wire::response_parts(call_id, false, value),
        Reply::AppError(err) => wire::response_parts(call_id, true, err),
        Reply::Error(status) => status_frame(call_id, status),
        Reply::Stream(_) => status_frame(
            call_id,
            wire::Status::new(Code::Internal, "a response stream where none was expected"),
        ),
    };
    if frame.len() <= config.max_frame_len {
        return frame;
    }
    let status = wire::Status::new(
        Code::FrameTooLarge,
        format!(
            "response of {} bytes exceeds the limit of {} bytes",
            frame.len(),
            config.max_frame_len
        ),
    );
    status_frame(call_id, status)
}

fn status_frame(call_id: u64, status: wire::Status) -> Parts {
    Parts::whole(wire::encode_envelope(envelope::Kind::Response(
        wire::Response {
            call_id,
            result: Some(response::Result::Error(status)),
        },
    )))
}
