//! One server connection, driven by a single task: it reads requests, runs the calls
//! concurrently (as futures of this task, not tasks of their own, so a call costs no task
//! hop), and writes the responses, batching those that are ready together.
//!
//! Calls interleave at their `.await` points; a handler that computes for long without
//! awaiting holds up the other calls of its connection (not those of other connections), so
//! heavy work belongs in `tokio::task::spawn_blocking`.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::{AbortHandle, Abortable};
use futures_util::stream::FuturesUnordered;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tracing::Instrument;

use super::catch::CatchUnwind;
use super::request::{Reply, ServerRequest, ServerResponse};
use super::{BoxError, Config};
use crate::ipc::{LocalStream, PeerCredentials};
use crate::transport::{FrameReader, FrameWriter, Parts};
use crate::wire::{self, Code, envelope, response};
use crate::{CallContext, Metadata, ServiceInfo};

/// How long a client has to send its hello.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type CallFuture = Pin<Box<dyn Future<Output = (u64, Option<Reply>)> + Send>>;

pub(crate) async fn serve_connection<S>(
    stream: LocalStream,
    svc: S,
    info: &'static ServiceInfo,
    config: Arc<Config>,
    stop: watch::Receiver<bool>,
) where
    S: tower::Service<ServerRequest, Response = ServerResponse> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    let peer = stream.peer_credentials().ok();
    let peer_pid = peer.and_then(|p| p.pid());
    let peer_addr = stream.peer_addr().ok();
    let (r, w) = stream.into_split();
    let mut reader = FrameReader::with_max_frame_len(r, config.max_frame_len);
    let mut writer = FrameWriter::with_max_frame_len(w, config.max_frame_len);

    // Handshake.
    let hello = match tokio::time::timeout(HANDSHAKE_TIMEOUT, reader.next()).await {
        Ok(Some(Ok(frame))) => wire::Hello::decode(frame).ok(),
        Ok(Some(Err(e))) => {
            config.connection_error(&e.into(), peer);
            return;
        }
        Ok(None) => return,
        Err(_) => {
            tracing::debug!(?peer_pid, "no handshake in time");
            None
        }
    };
    let reply = wire::answer(hello.as_ref(), info);
    let refused = reply.refusal.clone();
    // An accepted reply is not flushed on its own: it goes out with the first response,
    // since a client sends its first call right behind the hello.
    if writer.feed(wire::encode(&reply)).await.is_err() {
        return;
    }
    if let Some(refusal) = refused {
        let error = crate::Error::HandshakeRefused {
            reason: wire::refuse_reason(refusal.reason),
            message: refusal.message,
        };
        config.connection_error(&error, peer);
        let _ = writer.close().await; // flushes the refusal
        return;
    }
    tracing::debug!(
        ?peer_pid,
        ?peer_addr,
        service = info.name(),
        "connection accepted"
    );

    let mut stop = stop;
    let mut driver = Driver {
        reader,
        writer,
        svc,
        info,
        peer,
        peer_addr,
        config,
        calls: FuturesUnordered::new(),
        aborts: HashMap::new(),
        stop: Box::pin(async move {
            let _ = stop.changed().await;
        }),
        going_away: false,
        unflushed: true,
    };
    std::future::poll_fn(|cx| driver.poll(cx)).await;
    let _ = driver.writer.close().await;
}

struct Driver<R, W, S> {
    reader: FrameReader<R>,
    writer: FrameWriter<W>,
    svc: S,
    info: &'static ServiceInfo,
    peer: Option<PeerCredentials>,
    peer_addr: Option<SocketAddr>,
    config: Arc<Config>,
    calls: FuturesUnordered<CallFuture>,
    aborts: HashMap<u64, AbortHandle>,
    stop: Pin<Box<dyn Future<Output = ()> + Send>>,
    going_away: bool,
    unflushed: bool,
}

impl<R, W, S> Driver<R, W, S>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    S: tower::Service<ServerRequest, Response = ServerResponse> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    /// Drives the connection; ready when it is over. Dropping the driver drops the calls
    /// still running: nobody is left to answer.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let mut progress = false;

            if !self.going_away && self.stop.as_mut().poll(cx).is_ready() {
                self.going_away = true;
                let go_away = wire::encode_envelope(envelope::Kind::GoAway(wire::GoAway {}));
                self.respond(Parts::whole(go_away));
                progress = true;
            }

            // Read while there is room for more calls; at the limit, stop reading until a
            // call finishes: back-pressure to the client.
            while self.calls.len() < self.config.max_concurrent_calls {
                match Pin::new(&mut self.reader).poll_next(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        progress = true;
                        if !self.on_frame(frame) {
                            return Poll::Ready(());
                        }
                    }
                    Poll::Ready(Some(Err(e))) => {
                        self.config.connection_error(&e.into(), self.peer);
                        return Poll::Ready(());
                    }
                    // The client closed its side: nobody waits for the calls in flight.
                    Poll::Ready(None) => return Poll::Ready(()),
                    Poll::Pending => break,
                }
            }

            while let Poll::Ready(Some((id, reply))) = self.calls.poll_next_unpin(cx) {
                progress = true;
                self.aborts.remove(&id);
                if let Some(reply) = reply {
                    let frame = response_frame(id, reply, &self.config);
                    self.respond(frame);
                }
            }

            if self.unflushed {
                match Pin::new(&mut self.writer).poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.unflushed = false,
                    Poll::Ready(Err(e)) => {
                        tracing::debug!(error = %e, "server connection write failed");
                        return Poll::Ready(());
                    }
                    Poll::Pending => {}
                }
            }

            if self.going_away && self.calls.is_empty() && !self.unflushed {
                return Poll::Ready(());
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    fn respond(&mut self, frame: Parts) {
        // Responses are bounded by the calls in flight, so the write buffer is too.
        if let Err(e) = self.writer.push_parts(&frame.head, frame.payload) {
            tracing::error!(error = %e, "response refused by the framing layer");
        }
        self.unflushed = true;
    }

    /// Handles one frame; `false` ends the connection.
    fn on_frame(&mut self, frame: Bytes) -> bool {
        let kind = match wire::Envelope::decode(frame) {
            Ok(wire::Envelope { kind: Some(kind) }) => kind,
            Ok(_) => return true,
            Err(e) => {
                let error = crate::Error::Protocol(format!("undecodable envelope: {e}"));
                self.config.connection_error(&error, self.peer);
                return false;
            }
        };
        match kind {
            envelope::Kind::Request(req) if self.going_away => {
                let status = wire::Status::new(Code::ShuttingDown, "server is shutting down");
                let frame = response_frame(req.call_id, Reply::Error(status), &self.config);
                self.respond(frame);
            }
            envelope::Kind::Request(req) => {
                let id = req.call_id;
                let request = server_request(req, self.info, self.peer, self.peer_addr);
                let (abort, registration) = AbortHandle::new_pair();
                let fut = Abortable::new(run_call(self.svc.clone(), request), registration);
                self.aborts.insert(id, abort);
                self.calls
                    .push(Box::pin(async move { (id, fut.await.ok()) }));
            }
            envelope::Kind::Cancel(cancel) => {
                tracing::debug!(call_id = cancel.call_id, "call cancelled by the client");
                if let Some(abort) = self.aborts.remove(&cancel.call_id) {
                    abort.abort();
                }
            }
            envelope::Kind::Response(_) | envelope::Kind::GoAway(_) => {
                tracing::debug!("ignoring a server-bound response or go-away from the client");
            }
        }
        true
    }
}

fn server_request(
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
        },
    }
}

/// Runs one call through the service stack: its deadline, its context, panics caught.
async fn run_call<S>(mut svc: S, req: ServerRequest) -> Reply
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
    let deadline = ctx.deadline;
    let call = ctx.scope(async move {
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await?;
        svc.call(req).await
    });
    // Entering a span costs even when nothing listens; skip it then.
    let call: Pin<Box<dyn Future<Output = _> + Send>> = if span.is_disabled() {
        Box::pin(call)
    } else {
        Box::pin(call.instrument(span.clone()))
    };
    let call = CatchUnwind(call);
    let outcome = match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline.into(), call).await.ok(),
        None => Some(call.await),
    };
    match outcome {
        None => {
            tracing::debug!(parent: &span, "deadline exceeded; handler dropped");
            Reply::Error(wire::Status::new(
                Code::DeadlineExceeded,
                "deadline exceeded",
            ))
        }
        Some(Err(panic)) => {
            tracing::error!(parent: &span, panic = %panic, "handler panicked");
            Reply::Error(wire::Status::new(Code::Panicked, panic))
        }
        Some(Ok(Err(e))) => layer_error(e.into()),
        Some(Ok(Ok(resp))) => resp.reply,
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

fn response_frame(call_id: u64, reply: Reply, config: &Config) -> Parts {
    let frame = match reply {
        Reply::Ok(value) => wire::response_parts(call_id, false, value),
        Reply::AppError(err) => wire::response_parts(call_id, true, err),
        Reply::Error(status) => status_frame(call_id, status),
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
