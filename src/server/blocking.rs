//! Connections served from threads of their own, as
//! [`crate::ServerBuilder::serve_blocking`] serves them: a connection's thread reads requests
//! with blocking reads, runs each call, and writes its answer, so a call costs no reactor
//! wake-up and no task switch between the request and its answer.
//!
//! Only what completes at once is served that way: unary calls whose handler is ready at
//! its first poll. The first time a connection needs more (a handler that awaits, a stream,
//! a cancellation, a client that offers a service of its own, answers the client does not
//! read as fast as they come), it moves to the Tokio runtime for good and is served there
//! by the same driver as [`connection::serve_connection`]'s, with what was read and not yet
//! handled, what was answered and not yet written, and the call in hand. Writes on the
//! connection's thread never wait, so a client that writes a large request without reading
//! cannot block the thread that alone would read it.
//!
//! What differs from the runtime's connections: no shutdown, and the runtime's single
//! thread is shared by all the connections that moved.
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use tokio::runtime::{Handle, Runtime};

use super::call::{response_frame, server_request};
use super::connection::{self, First, Handoff};
use super::request::{ServerRequest, ServerResponse};
use super::serve_call;
use super::{BoxError, Config};
use crate::ipc::LocalStream;
use crate::ipc::blocking::{LocalListener, LocalStream as BlockingStream};
use crate::transport::{FrameError, ReadState, WriteState};
use crate::wire::{self, envelope};
use crate::{Error, ServiceInfo};

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
    // Never told to stop: the server runs as long as the process.
    let (_never, stop) = tokio::sync::watch::channel(false);
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
        // The stream goes to the thread once it runs; if none can be started, the
        // connection is served on the runtime instead.
        let (give, take) = std::sync::mpsc::sync_channel::<BlockingStream>(1);
        let spawned = {
            let (svc, config, runtime) = (svc.clone(), config.clone(), handle.clone());
            std::thread::Builder::new()
                .name("localrpc-conn".into())
                .spawn(move || {
                    if let Ok(stream) = take.recv() {
                        serve_connection(stream, svc, info, config, &runtime);
                    }
                })
        };
        match spawned {
            Ok(_) => {
                let _ = give.send(stream);
            }
            Err(e) => {
                tracing::warn!(error = %e, "no thread for a connection; served on the runtime");
                let (svc, config, stop) = (svc.clone(), config.clone(), stop.clone());
                let handshake = Some(config.accepted_handshake_timeout());
                handle.spawn(async move {
                    match stream.into_either().into_async() {
                        Ok(stream) => {
                            let stream = LocalStream::from_either(stream);
                            connection::serve_connection(
                                stream, svc, info, config, handshake, stop,
                            )
                            .await;
                        }
                        Err(e) => tracing::warn!(error = %e, "connection dropped"),
                    }
                });
            }
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
    let io = stream.into_either();
    let peer = io.peer_credentials().ok();
    let peer_addr = io.peer_addr().ok();
    let mut read = ReadState::new(config.max_frame_len.min(u32::MAX as usize));
    let mut write = WriteState::new(config.max_frame_len.min(u32::MAX as usize));
    // Reads into the read buffer, waiting as long as it takes.
    let recv = |buf: &mut [MaybeUninit<u8>]| io.recv_uninit(buf);
    // Writes what is queued, as far as the socket takes it without waiting: a client that
    // is busy writing a large request and not reading must not hold this thread, which
    // alone would read that request.
    let send = |buf: &[IoSlice<'_>]| io.send_now(buf);

    // The hello, within the handshake's time in all (not per read); a limit too far off
    // to reach is none.
    let deadline = Instant::now().checked_add(config.accepted_handshake_timeout());
    let until_deadline = |buf: &mut [MaybeUninit<u8>]| {
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::from(io::ErrorKind::TimedOut));
            }
            io.set_read_timeout(Some(left))?;
        }
        io.recv_uninit(buf)
    };
    // SAFETY: `recv_uninit` initializes the bytes it reports read, as `recv(2)` does.
    let hello = match unsafe { read.next_blocking(until_deadline) } {
        Some(Ok(frame)) => wire::Hello::decode(frame).ok(),
        Some(Err(FrameError::Io(e)))
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
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
        // Best effort: a small frame into an empty socket buffer.
        let _ = write.flush_now(send);
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
                match write.flush_now(send) {
                    Ok(true) => {}
                    // The client is not reading: the runtime writes the rest, reading on.
                    Ok(false) => break First::Nothing,
                    Err(e) => {
                        tracing::debug!(error = %e, "server connection write failed");
                        return;
                    }
                }
            }
            // SAFETY: as for the hello.
            let frame = match unsafe { read.next_blocking(recv) } {
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
            let (mut call, abort) = serve_call::unary_call(id, svc.clone(), request);
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

    // Over to the runtime, with what was read and not handled, what was answered and not
    // yet written, and what is in hand.
    let stream = match io.into_async() {
        Ok(stream) => LocalStream::from_either(stream),
        Err(e) => {
            tracing::warn!(error = %e, "cannot move a connection to the runtime");
            return;
        }
    };
    tracing::debug!("connection moves to the runtime");
    let handoff = Handoff {
        read,
        write,
        hello,
        first,
    };
    runtime.spawn(connection::resume(stream, handoff, svc, info, config));
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
    let req = match wire::fast::request(&frame) {
        Some(req) => req,
        // Laid out otherwise (with metadata, say): prost decodes it, or the runtime reports
        // what is wrong with it.
        None => match wire::Envelope::decode(frame.clone()) {
            Ok(wire::Envelope {
                kind: Some(envelope::Kind::Request(req)),
            }) => req,
            _ => return Incoming::Other(First::Frame(frame)),
        },
    };
    if !req.request_stream && req.response_window.is_none() {
        Incoming::Unary(req)
    } else {
        Incoming::Other(First::Request(req))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    use super::*;
    use crate::server::ServerResponse;

    static INFO: ServiceInfo = ServiceInfo::new("Echo", &["echo"], 7);

    fn frame(bytes: &[u8]) -> Vec<u8> {
        let mut out = (bytes.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(bytes);
        out
    }

    /// Every frame in `wire`, as envelopes (the first is the hello's reply).
    fn frames(mut wire: &[u8]) -> Vec<Bytes> {
        let mut out = Vec::new();
        while wire.len() >= 4 {
            let len = u32::from_le_bytes(wire[..4].try_into().unwrap()) as usize;
            out.push(Bytes::copy_from_slice(&wire[4..4 + len]));
            wire = &wire[4 + len..];
        }
        out
    }

    /// Serves one connection of a socket pair on a thread, with `config`; returns the
    /// client's end and the thread.
    fn serve_pair(config: Config) -> (UnixStream, std::thread::JoinHandle<()>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let handle = runtime.handle().clone();
        let driver = std::thread::spawn(move || runtime.block_on(std::future::pending::<()>()));
        drop(driver); // runs until the test process ends
        let (client, server) = UnixStream::pair().unwrap();
        let server = BlockingStream::from_os(server);
        let svc = tower::service_fn(|req: ServerRequest| async move {
            Ok::<_, Infallible>(ServerResponse::ok(req.payload().clone()))
        });
        let config = Arc::new(config);
        let serving = std::thread::spawn(move || {
            serve_connection(server, svc, &INFO, config, &handle);
        });
        (client, serving)
    }

    /// The hello, then a call of each id in `ids` with the payload `[id; 3]`.
    fn hello_and_calls(ids: &[u64]) -> Vec<u8> {
        let mut wire = frame(&wire::encode(&wire::hello(&INFO, None)));
        for &id in ids {
            let req = wire::Request {
                call_id: id,
                method: 0,
                ..Default::default()
            };
            let call = wire::request_parts(req, Bytes::from(vec![id as u8; 3]).into());
            let mut bytes = call.head.to_vec();
            for piece in call.payload.pieces() {
                bytes.extend_from_slice(piece);
            }
            wire.extend_from_slice(&frame(&bytes));
        }
        wire
    }

    #[test]
    fn a_handshake_limit_too_far_off_to_reach_is_none() {
        let config = Config {
            handshake_timeout: Some(Duration::MAX),
            ..Config::default()
        };
        let (mut client, serving) = serve_pair(config);
        client.write_all(&hello_and_calls(&[5])).unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).unwrap();
        serving
            .join()
            .expect("the connection's thread does not panic");
        let frames = frames(&back);
        assert_eq!(
            frames.len(),
            2,
            "the hello's reply and the answer: {frames:?}"
        );
        assert_eq!(wire::fast::response(&frames[1]).unwrap().call_id, 5);
    }

    #[test]
    fn answers_queued_on_the_thread_go_out_before_a_bad_frame_ends_the_connection() {
        let (mut client, serving) = serve_pair(Config::default());
        // One write: the hello, two calls, and a frame that is no envelope at all.
        let mut wire = hello_and_calls(&[1, 2]);
        wire.extend_from_slice(&frame(&[0xff; 9]));
        client.write_all(&wire).unwrap();

        let mut back = Vec::new();
        client.read_to_end(&mut back).unwrap();
        serving.join().unwrap();
        let frames = frames(&back);
        assert_eq!(
            frames.len(),
            3,
            "the hello's reply and both answers: {frames:?}"
        );
        for (frame, id) in frames[1..].iter().zip([1u64, 2]) {
            let resp = wire::fast::response(frame).expect("an answer");
            assert_eq!(resp.call_id, id);
            assert!(matches!(
                resp.result,
                Some(wire::response::Result::Ok(ref v)) if v[..] == [id as u8; 3]
            ));
        }
    }
}
