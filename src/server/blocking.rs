//! Connections served from threads of their own, as [`crate::ServerBuilder::serve_blocking`]
//! serves them:
//! the thread reads requests with blocking reads, runs each call, and writes its answer, so
//! a call costs no reactor wake-up and no task switch between the request and its answer.
//!
//! Only what completes at once is served that way: unary calls whose handler is ready at
//! its first poll. The first time a connection needs more (a handler that awaits, a stream,
//! a cancellation, a client that offers a service of its own), it moves to the Tokio
//! runtime for good and is served there as [`connection::serve_connection`] serves any
//! other, the call in hand included: the same semantics, just no longer on its own thread.
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use tokio::runtime::{Handle, Runtime};

use super::call::{response_frame, server_request};
use super::connection::{self, First};
use super::request::{ServerRequest, ServerResponse};
use super::{BoxError, Config};
use crate::ipc::LocalStream;
use crate::ipc::blocking::{LocalListener, LocalStream as BlockingStream};
use crate::transport::{FrameError, ReadState, WriteState};
use crate::wire;
use crate::{Error, ServiceInfo};

/// How long a client has to send its hello (as on the runtime).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the connections `listener` accepts, each on a thread of its own, with `runtime`
/// (run on a thread of its own) for what cannot be served there. Returns only if that
/// thread cannot be started.
pub(crate) fn serve_threads<S>(
    listener: LocalListener,
    svc: S,
    info: &'static ServiceInfo,
    config: Arc<Config>,
    runtime: Runtime,
) -> Result<(), Error>
where
    S: tower::Service<ServerRequest, Response = ServerResponse> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    tracing::info!(endpoint = %listener.endpoint(), "listening, a thread per connection");
    let handle = runtime.handle().clone();
    // The runtime's thread: runs its I/O and timers, and the connections that moved to it.
    std::thread::Builder::new()
        .name("localrpc-serve".into())
        .spawn(move || runtime.block_on(std::future::pending::<()>()))
        .map_err(Error::Io)?;
    loop {
        let stream = match listener.accept() {
            Ok(stream) => stream,
            Err(e) => {
                // Out of file descriptors and the like: keep serving the others.
                tracing::warn!(error = %e, "accept failed");
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let svc = svc.clone();
        let config = config.clone();
        let runtime = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("localrpc-conn".into())
            .spawn(move || serve_connection(stream, svc, info, config, &runtime));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a thread for a connection; it is dropped");
        }
    }
}

/// Serves one connection on the calling thread until it ends or moves to `runtime`.
/// Handlers run inside `runtime`'s context, so they can use its timers and spawn on it.
pub(crate) fn serve_connection<S>(
    stream: BlockingStream,
    svc: S,
    info: &'static ServiceInfo,
    config: Arc<Config>,
    runtime: &Handle,
) where
    S: tower::Service<ServerRequest, Response = ServerResponse> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    let _runtime = runtime.enter();
    let mut io = stream.into_either();
    let peer = io.peer_credentials().ok();
    let peer_addr = io.peer_addr().ok();
    let mut read = ReadState::new(config.max_frame_len.min(u32::MAX as usize));
    let mut write = WriteState::new(config.max_frame_len);

    if let Err(e) = io.set_read_timeout(Some(HANDSHAKE_TIMEOUT)) {
        tracing::debug!(error = %e, "cannot set the handshake's read timeout");
        return;
    }
    let hello = match read.next_blocking(|buf| io.recv_uninit(buf)) {
        Some(Ok(frame)) => wire::Hello::decode(frame).ok(),
        Some(Err(FrameError::Io(e)))
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            tracing::debug!(peer_pid = ?peer.and_then(|p| p.pid()), "no handshake in time");
            None
        }
        Some(Err(e)) => {
            config.connection_error(&e.into(), peer);
            return;
        }
        None => return,
    };
    if let Err(e) = io.set_read_timeout(None) {
        tracing::debug!(error = %e, "cannot clear the handshake's read timeout");
        return;
    }
    let reply = wire::answer(hello.as_ref(), info, config.max_concurrent_calls);
    // Like the runtime's connections, an accepted reply goes out with the first answer.
    let _ = write.push(wire::encode(&reply));
    if let Some(refusal) = reply.refusal {
        let error = crate::Error::HandshakeRefused {
            reason: wire::refuse_reason(refusal.reason),
            message: refusal.message,
        };
        config.connection_error(&error, peer);
        let _ = write.flush_blocking(&mut io);
        return;
    }
    tracing::debug!(
        peer_pid = ?peer.and_then(|p| p.pid()),
        ?peer_addr,
        service = info.name(),
        "connection accepted, served from its own thread"
    );

    let first = if hello.as_ref().is_some_and(|h| !h.peer_service.is_empty()) {
        // Calls back to the client need the runtime's machinery from the start.
        First::Nothing
    } else {
        loop {
            if !read.has_frame() {
                if let Err(e) = write.flush_blocking(&mut io) {
                    tracing::debug!(error = %e, "server connection write failed");
                    return;
                }
            }
            let frame = match read.next_blocking(|buf| io.recv_uninit(buf)) {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => {
                    config.connection_error(&e.into(), peer);
                    return;
                }
                // The client closed its side.
                None => return,
            };
            let req = match sort(frame) {
                Incoming::Unary(req) => req,
                Incoming::Other(other) => break other,
            };
            let id = req.call_id;
            let request = server_request(req, info, peer, peer_addr);
            let (mut call, abort) = connection::unary_call(id, svc.clone(), request);
            match call.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                Poll::Ready((_, Some(reply))) => {
                    let frame = response_frame(id, reply, &config);
                    if let Err(e) = write.push_parts(&frame.head, frame.payload) {
                        tracing::error!(error = %e, "response refused by the framing layer");
                    }
                }
                Poll::Ready((_, None)) => {}
                // Polled again, with a real waker, as soon as the runtime has it.
                Poll::Pending => break First::Call(id, call, abort),
            }
        }
    };

    // Over to the runtime: what was answered goes out first, then the stream is registered.
    if let Err(e) = write.flush_blocking(&mut io) {
        tracing::debug!(error = %e, "server connection write failed");
        return;
    }
    let stream = match io.into_async() {
        Ok(stream) => LocalStream::from_either(stream),
        Err(e) => {
            tracing::warn!(error = %e, "cannot move a connection to the runtime");
            return;
        }
    };
    tracing::debug!("connection moves to the runtime");
    runtime.spawn(connection::resume(
        stream, read, hello, svc, info, config, first,
    ));
}

/// A frame as the connection's own thread sees it.
enum Incoming {
    /// A request for a call with no streams: served here.
    Unary(wire::Request),
    /// Anything else: for the runtime.
    Other(First),
}

fn sort(frame: Bytes) -> Incoming {
    if wire::stream_items(&frame).is_some() {
        return Incoming::Other(First::Frame(frame));
    }
    match wire::fast::request(&frame) {
        Some(req) if !req.request_stream && req.response_window.is_none() => Incoming::Unary(req),
        Some(req) => Incoming::Other(First::Request(req)),
        None => Incoming::Other(First::Frame(frame)),
    }
}
