//! A call as a connection's driver runs it: the service's future, its response stream if
//! the client asked for one, the handle that cancels it, and its id on the way out.
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{AbortHandle, Abortable};

use super::BoxError;
use super::call::run_call;
use super::request::{Reply, ServerRequest, ServerResponse};
use super::streams::{ServerSink, send_response_stream};
use crate::stream::SendFlow;
use crate::wire::{self, Code};

/// A call as the driver holds it.
pub(crate) type CallFuture = Pin<Box<dyn Future<Output = (u64, Option<Reply>)> + Send>>;

/// A call's future as the driver runs it, with the handle that cancels it: `stream_to` is
/// where its response stream goes, if the client asked for one.
pub(super) fn call_future<S>(
    id: u64,
    svc: S,
    request: ServerRequest,
    stream_to: Option<StreamTo>,
) -> (CallFuture, AbortHandle)
where
    S: tower::Service<ServerRequest, Response = ServerResponse> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    let (abort, registration) = AbortHandle::new_pair();
    let call = ServeCall {
        id,
        run: run_call(svc, request),
        stream_to,
        sending: None,
    };
    let call = Box::pin(Tagged {
        id,
        fut: Abortable::new(call, registration),
    });
    (call, abort)
}

/// A unary call (no streams either way) as [`call_future`] makes it.
#[cfg(unix)]
pub(crate) fn unary_call<S>(id: u64, svc: S, request: ServerRequest) -> (CallFuture, AbortHandle)
where
    S: tower::Service<ServerRequest, Response = ServerResponse> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    call_future(id, svc, request, None)
}

/// Where a call's response stream goes, for a call made as one that returns a stream.
pub(super) struct StreamTo {
    pub(super) flow: Arc<SendFlow>,
    pub(super) out: ServerSink,
    pub(super) deadline: Option<std::time::Instant>,
    pub(super) max_frame_len: usize,
}

/// A call on the connection: its reply, or, for a response stream, the sending of it (then
/// `None`: the stream's end frame is the answer).
struct ServeCall<F> {
    id: u64,
    run: F,
    stream_to: Option<StreamTo>,
    /// The response stream being sent, boxed: most calls have none, and their futures stay
    /// small.
    sending: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl<F: Future<Output = Reply>> Future for ServeCall<F> {
    type Output = Option<Reply>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Reply>> {
        // SAFETY: `run` is pinned with `self`: never moved out, no `Drop` or `Unpin` by hand.
        let this = unsafe { self.get_unchecked_mut() };
        if this.sending.is_none() {
            // SAFETY: as above.
            let run = unsafe { Pin::new_unchecked(&mut this.run) };
            match (std::task::ready!(run.poll(cx)), this.stream_to.take()) {
                (Reply::Stream(items), Some(to)) => {
                    this.sending = Some(Box::pin(send_response_stream(
                        this.id,
                        items,
                        to.flow,
                        to.out,
                        to.deadline,
                        to.max_frame_len,
                    )));
                }
                (Reply::Stream(_), None) => {
                    return Poll::Ready(Some(Reply::Error(wire::Status::new(
                        Code::Internal,
                        "the handler returned a stream, but the client called the method as \
                         one without a response stream",
                    ))));
                }
                (reply, _) => return Poll::Ready(Some(reply)),
            }
        }
        let sending = this.sending.as_mut().expect("set above");
        sending.as_mut().poll(cx).map(|()| None)
    }
}

/// A call's future, with its id on the way out: `None` if it was aborted or has nothing to
/// send. (An `async` block would hold the future twice over.)
struct Tagged<F> {
    id: u64,
    fut: Abortable<F>,
}

impl<F: Future<Output = Option<Reply>>> Future for Tagged<F> {
    type Output = (u64, Option<Reply>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `fut` is pinned with `self`: never moved out, no `Drop` or `Unpin` by hand.
        let this = unsafe { self.get_unchecked_mut() };
        let id = this.id;
        // SAFETY: as above.
        let fut = unsafe { Pin::new_unchecked(&mut this.fut) };
        fut.poll(cx).map(|out| (id, out.ok().flatten()))
    }
}
