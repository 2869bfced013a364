//! One server connection: handshake, then a reader that dispatches each call to its own task
//! (bounded per connection), and a writer task that coalesces responses.
use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use prost::Message;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::AbortHandle;
use tracing::Instrument;

use super::catch::CatchUnwind;
use super::request::{Reply, ServerRequest, ServerResponse};
use super::{BoxError, Config};
use crate::ipc::{LocalStream, PeerCredentials};
use crate::transport::{FrameReader, FrameWriter, Parts, write_loop};
use crate::wire::{self, Code, envelope, response};
use crate::{CallContext, Metadata, ServiceInfo};

/// How long a client has to send its hello.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Calls in flight on one connection, so that they can be cancelled one by one or all at once.
#[derive(Default)]
struct InFlight {
    calls: Mutex<HashMap<u64, AbortHandle>>,
    idle: Notify,
}

impl InFlight {
    fn finish(&self, id: u64) {
        let mut calls = self.calls.lock().unwrap();
        calls.remove(&id);
        if calls.is_empty() {
            self.idle.notify_waiters();
        }
    }

    fn cancel(&self, id: u64) {
        if let Some(handle) = self.calls.lock().unwrap().remove(&id) {
            handle.abort();
        }
        self.finish(id);
    }

    fn is_empty(&self) -> bool {
        self.calls.lock().unwrap().is_empty()
    }
}

struct AbortOnDrop(Arc<InFlight>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort_all();
    }
}

impl InFlight {
    fn abort_all(&self) {
        for (_, handle) in self.calls.lock().unwrap().drain() {
            handle.abort();
        }
    }
}

pub(crate) async fn serve_connection<S>(
    stream: LocalStream,
    svc: S,
    info: &'static ServiceInfo,
    config: Arc<Config>,
    mut stop: watch::Receiver<bool>,
) where
    S: tower::Service<ServerRequest, Response = ServerResponse> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    let peer = stream.peer_credentials().ok();
    let peer_pid = peer.and_then(|p| p.pid());
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
    if writer.send(wire::encode(&reply)).await.is_err() {
        return;
    }
    if let Some(refusal) = refused {
        let error = crate::Error::HandshakeRefused {
            reason: wire::refuse_reason(refusal.reason),
            message: refusal.message,
        };
        config.connection_error(&error, peer);
        let _ = writer.close().await;
        return;
    }
    tracing::debug!(?peer_pid, service = info.name(), "connection accepted");

    let (out, rx) = mpsc::unbounded_channel();
    let writer_task = tokio::spawn(async move {
        if let Err(e) = write_loop(writer, rx).await {
            tracing::debug!(error = %e, "server connection write failed");
        }
    });
    let in_flight = Arc::new(InFlight::default());
    // However this task ends (even aborted at the end of a grace period), calls still
    // running have nobody to answer to.
    let _abort_on_exit = AbortOnDrop(in_flight.clone());
    let permits = Arc::new(Semaphore::new(config.max_concurrent_calls));
    let mut going_away = false;

    loop {
        let frame = tokio::select! {
            frame = reader.next() => frame,
            _ = stop.changed(), if !going_away => {
                going_away = true;
                let go_away = wire::encode_envelope(envelope::Kind::GoAway(wire::GoAway {}));
                let _ = out.send(Parts::whole(go_away));
                if in_flight.is_empty() { break }
                continue;
            }
            () = in_flight.idle.notified(), if going_away => {
                if in_flight.is_empty() { break }
                continue;
            }
        };
        let frame = match frame {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                config.connection_error(&e.into(), peer);
                break;
            }
            None => break,
        };
        let kind = match wire::Envelope::decode(frame) {
            Ok(wire::Envelope { kind: Some(kind) }) => kind,
            Ok(_) => continue,
            Err(e) => {
                let error = crate::Error::Protocol(format!("undecodable envelope: {e}"));
                config.connection_error(&error, peer);
                break;
            }
        };
        match kind {
            envelope::Kind::Request(req) => {
                if going_away {
                    let status = wire::Status::new(Code::ShuttingDown, "server is shutting down");
                    let _ = out.send(response_frame(req.call_id, Reply::Error(status), &config));
                    continue;
                }
                // At the limit, stop reading until a call finishes: back-pressure to the client.
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let id = req.call_id;
                let request = server_request(req, info, peer);
                let mut calls = in_flight.calls.lock().unwrap();
                let task = tokio::spawn(run_call(
                    svc.clone(),
                    request,
                    out.clone(),
                    in_flight.clone(),
                    permit,
                    config.clone(),
                ));
                calls.insert(id, task.abort_handle());
            }
            envelope::Kind::Cancel(cancel) => {
                tracing::debug!(call_id = cancel.call_id, "call cancelled by the client");
                in_flight.cancel(cancel.call_id);
            }
            envelope::Kind::Response(_) | envelope::Kind::GoAway(_) => {
                tracing::debug!(
                    ?peer_pid,
                    "ignoring a server-bound response or go-away from the client"
                );
            }
        }
    }
    drop(_abort_on_exit);
    drop(out);
    let _ = writer_task.await;
}

fn server_request(
    req: wire::Request,
    info: &'static ServiceInfo,
    peer: Option<PeerCredentials>,
) -> ServerRequest {
    let now = Instant::now();
    let deadline = req
        .timeout_micros
        .and_then(|us| now.checked_add(Duration::from_micros(us)));
    ServerRequest {
        service: info,
        method: req.method,
        payload: req.payload,
        context: CallContext {
            call_id: req.call_id,
            method: info.method_name(req.method).unwrap_or("?"),
            peer,
            deadline,
            trace_id: wire::trace_id(req.trace),
            metadata: Metadata::from_entries(req.metadata.into_iter().collect()),
        },
    }
}

async fn run_call<S>(
    mut svc: S,
    req: ServerRequest,
    out: mpsc::UnboundedSender<Parts>,
    in_flight: Arc<InFlight>,
    _permit: OwnedSemaphorePermit,
    config: Arc<Config>,
) where
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
    let call = ctx.clone().scope(async move {
        poll_fn(|cx| svc.poll_ready(cx)).await?;
        svc.call(req).await
    });
    let call = CatchUnwind(Box::pin(call.instrument(span.clone())));
    let outcome = match ctx.deadline {
        Some(deadline) => tokio::time::timeout_at(deadline.into(), call).await.ok(),
        None => Some(call.await),
    };
    let reply = match outcome {
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
    };
    let _ = out.send(response_frame(ctx.call_id, reply, &config));
    in_flight.finish(ctx.call_id);
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
