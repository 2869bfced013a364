//! One server connection, driven by a single task: it reads requests, runs the calls
//! concurrently (as futures of this task, not tasks of their own, so a call costs no task
//! hop), and writes the responses, batching those that are ready together.
//!
//! Calls interleave at their `.await` points; a handler that computes for long without
//! awaiting holds up the other calls of its connection (not those of other connections), so
//! heavy work belongs in `tokio::task::spawn_blocking`.
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::AbortHandle;
use futures_util::stream::FuturesUnordered;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};

use super::call::{response_frame, server_request};
use super::request::{Reply, ServerRequest, ServerResponse};
use super::serve_call::{CallFuture, StreamTo, call_future};
use super::streams::{ServerLink, ServerSink, stop_sending_frame};
use super::{BoxError, Config};
use crate::ServiceInfo;
use crate::ids::{CallMap, call_map};
use crate::ipc::{LocalStream, PeerCredentials};
use crate::stream::{self, CreditSlot, Inbox, Link, SendFlow};
use crate::transport::{FrameReader, FrameWriter, Parts};
use crate::wire::{self, Code, envelope};

pub(crate) async fn serve_connection<S>(
    stream: LocalStream,
    svc: S,
    info: &'static ServiceInfo,
    config: Arc<Config>,
    handshake: Option<Duration>,
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
    // Without a limit, a time that never comes.
    let limit = handshake.unwrap_or(Duration::MAX);
    let hello = match tokio::time::timeout(limit, reader.next()).await {
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
    let reply = wire::answer(hello.as_ref(), info, config.max_concurrent_calls);
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
    let stop = Box::pin(async move {
        let _ = stop.changed().await;
    });
    let ends = Ends {
        info,
        peer,
        peer_addr,
    };
    let driver = Driver::new(reader, writer, svc, ends, config, hello.as_ref(), stop);
    driver.run().await;
}

/// The service a connection serves and who it serves it to.
#[derive(Clone, Copy)]
struct Ends {
    info: &'static ServiceInfo,
    peer: Option<PeerCredentials>,
    peer_addr: Option<SocketAddr>,
}

/// What a connection served from a thread of its own had in hand when it moved to the
/// runtime.
#[cfg(unix)]
pub(crate) enum First {
    /// Nothing beyond what is in the read buffer.
    Nothing,
    /// A frame to handle before reading on.
    Frame(Bytes),
    /// A request to start before reading on.
    Request(wire::Request),
    /// A call already started, not finished at its first poll.
    Call(u64, CallFuture, AbortHandle),
}

/// A connection served from a thread of its own, as it moves to the runtime.
#[cfg(unix)]
pub(crate) struct Handoff {
    /// What was read and not handled yet.
    pub(crate) read: crate::transport::ReadState,
    /// What was answered (the handshake's reply included) and not written yet.
    pub(crate) write: crate::transport::WriteState,
    /// The client's hello, if it sent one that decodes.
    pub(crate) hello: Option<wire::Hello>,
    pub(crate) first: First,
}

/// Goes on serving, on the current runtime, a connection whose handshake is done: see
/// `server::blocking`.
#[cfg(unix)]
pub(crate) async fn resume<S>(
    stream: LocalStream,
    handoff: Handoff,
    svc: S,
    info: &'static ServiceInfo,
    config: Arc<Config>,
) where
    S: tower::Service<ServerRequest, Response = ServerResponse> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    let ends = Ends {
        info,
        peer: stream.peer_credentials().ok(),
        peer_addr: stream.peer_addr().ok(),
    };
    let (r, w) = stream.into_split();
    let reader = FrameReader::resume(r, handoff.read);
    let writer = FrameWriter::resume(w, handoff.write);
    // Served until the process ends: never told to stop.
    let stop = Box::pin(std::future::pending());
    let hello = handoff.hello.as_ref();
    let mut driver = Driver::new(reader, writer, svc, ends, config, hello, stop);
    match handoff.first {
        First::Nothing => {}
        First::Frame(frame) => {
            if !driver.on_frame(frame) {
                // Answers the connection's thread queued still go out.
                return driver.close().await;
            }
        }
        First::Request(req) => driver.on_request(req),
        First::Call(id, call, abort) => {
            driver.aborts.insert(id, abort);
            driver.calls.push(call);
        }
    }
    driver.run().await;
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
    aborts: CallMap<AbortHandle>,
    /// The request streams of running calls.
    inboxes: CallMap<Inbox>,
    /// The credit of running calls' response streams.
    credits: CallMap<CreditSlot>,
    /// The client's offered service.
    callbacks: Option<crate::PeerClient>,
    /// Requests beyond the concurrency limit, sent before the client knew it.
    waiting: VecDeque<wire::Request>,
    /// Frames of streams and credit grants, from the calls' futures.
    out_tx: mpsc::UnboundedSender<Parts>,
    out_rx: mpsc::UnboundedReceiver<Parts>,
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
    fn new(
        reader: FrameReader<R>,
        writer: FrameWriter<W>,
        svc: S,
        ends: Ends,
        config: Arc<Config>,
        hello: Option<&wire::Hello>,
        stop: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Self {
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        // The service the client offers, for handlers to call back.
        let callbacks = hello.filter(|h| !h.peer_service.is_empty()).map(|h| {
            crate::PeerClient::new(
                h.peer_service.clone(),
                h.peer_method_table_hash,
                out_tx.clone(),
                config.max_frame_len,
            )
        });
        Driver {
            reader,
            writer,
            svc,
            info: ends.info,
            peer: ends.peer,
            peer_addr: ends.peer_addr,
            config,
            calls: FuturesUnordered::new(),
            aborts: call_map(),
            inboxes: call_map(),
            credits: call_map(),
            callbacks,
            waiting: VecDeque::new(),
            out_tx,
            out_rx,
            stop,
            going_away: false,
            unflushed: true,
        }
    }

    /// Serves until the connection is over, then closes it.
    async fn run(mut self) {
        std::future::poll_fn(|cx| self.poll(cx)).await;
        self.close().await;
    }

    /// Ends the connection: what is queued is written, then the stream is closed.
    async fn close(mut self) {
        if let Some(callbacks) = &self.callbacks {
            callbacks.close();
        }
        let _ = self.writer.close().await;
    }

    /// Drives the connection; ready when it is over. Dropping the driver drops the calls
    /// still running: nobody is left to answer.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        // One round handles whatever woke the connection: frames read start calls, calls
        // polled in the same round answer, answers are written. Each source is polled until
        // it is pending, so it has the waker for what comes next; only a reader that ran
        // out of budget (more frames waiting) needs another round.
        loop {
            let mut more_to_read = true;

            if !self.going_away && self.stop.as_mut().poll(cx).is_ready() {
                self.going_away = true;
                let go_away = wire::encode_envelope(envelope::Kind::GoAway(wire::GoAway {}));
                self.respond(Parts::whole(go_away));
            }

            // Always read: the streams of running calls must flow even at the call limit.
            // Clients keep to the limit the handshake told them; a budget per round keeps
            // a fast client from starving the writes.
            for _ in 0..READ_BUDGET {
                match Pin::new(&mut self.reader).poll_next(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
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
                    Poll::Pending => {
                        more_to_read = false;
                        break;
                    }
                }
            }

            while let Poll::Ready(Some((id, reply))) = self.calls.poll_next_unpin(cx) {
                self.finished(id);
                if let Some(reply) = reply {
                    let frame = response_frame(id, reply, &self.config);
                    self.respond(frame);
                }
                if let Some(req) = self.waiting.pop_front() {
                    self.start_call(req);
                }
            }

            while let Poll::Ready(Some(frame)) = self.out_rx.poll_recv(cx) {
                self.respond(frame);
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

            if self.going_away
                && self.calls.is_empty()
                && self.waiting.is_empty()
                && !self.unflushed
            {
                return Poll::Ready(());
            }
            if !more_to_read {
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
        if let Some((id, items)) = wire::stream_items(&frame) {
            self.on_items(id, items);
            return true;
        }
        if let Some(req) = wire::fast::request(&frame) {
            self.on_request(req);
            return true;
        }
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
            envelope::Kind::Request(req) => self.on_request(req),
            envelope::Kind::Cancel(cancel) => {
                let id = cancel.call_id;
                tracing::debug!(call_id = id, "call cancelled by the client");
                if let Some(abort) = self.aborts.remove(&id) {
                    abort.abort();
                }
                self.waiting.retain(|r| r.call_id != id);
            }
            envelope::Kind::StreamItem(item) => {
                self.on_items(item.call_id, wire::ItemBatch::of(&item.items));
            }
            envelope::Kind::StreamEnd(end) => {
                if let Some(inbox) = self.inboxes.remove(&end.call_id) {
                    inbox.end(end.error.map(wire::status_error));
                }
            }
            envelope::Kind::Credit(credit) => {
                if let Some(flow) = self.credits.get(&credit.call_id) {
                    flow.grant(credit.bytes);
                }
            }
            envelope::Kind::Response(resp) => match &self.callbacks {
                Some(callbacks) => callbacks.complete(resp.call_id, wire::reply_of(resp)),
                None => tracing::debug!("ignoring a response from a client that offers nothing"),
            },
            envelope::Kind::GoAway(_) | envelope::Kind::StopSending(_) => {
                tracing::debug!("ignoring a go-away or stop-sending from the client");
            }
        }
        true
    }

    /// Starts a call, queues it until a running one ends, or refuses it.
    fn on_request(&mut self, req: wire::Request) {
        if self.going_away {
            let status = wire::Status::new(Code::ShuttingDown, "server is shutting down");
            let frame = response_frame(req.call_id, Reply::Error(status), &self.config);
            self.respond(frame);
        } else if self.calls.len() < self.config.max_concurrent_calls {
            self.start_call(req);
        } else if self.waiting.len() < wire::INITIAL_CALLS {
            self.waiting.push_back(req);
        } else {
            let status = wire::Status::new(
                Code::Refused,
                format!(
                    "too many calls in flight on this connection (the limit is {})",
                    self.config.max_concurrent_calls
                ),
            );
            let frame = response_frame(req.call_id, Reply::Error(status), &self.config);
            self.respond(frame);
        }
    }

    /// Routes a frame of items of a call's request stream.
    fn on_items(&mut self, id: u64, items: wire::ItemBatch) {
        let Some(inbox) = self.inboxes.get(&id) else {
            return; // a call that is over
        };
        if inbox.admits(&items) {
            inbox.items(items);
        } else {
            tracing::debug!(call_id = id, "client sent beyond its credit");
            let inbox = self.inboxes.remove(&id).expect("just found");
            inbox.end(Some(crate::Error::Protocol(
                "the client sent more than its credit allowed".into(),
            )));
            self.respond(stop_sending_frame(id));
        }
    }

    /// Starts a call: its request stream's inbox, its response stream's credit, its future.
    fn start_call(&mut self, req: wire::Request) {
        let id = req.call_id;
        let response_window = req.response_window;
        let request_stream = req.request_stream;
        let mut request = server_request(req, self.info, self.peer, self.peer_addr);
        request.context.callbacks = self.callbacks.clone();
        if request_stream {
            let window = self.config.stream_window;
            let link: Arc<dyn Link> = Arc::new(ServerLink(self.out_tx.clone()));
            let (inbox, items) = stream::incoming(id, window, link, None);
            self.inboxes.insert(id, inbox);
            request.stream = Some(items);
            self.respond(stream::credit_frame(id, window));
        }
        let stream_to = response_window.map(|window| {
            let flow = SendFlow::new(window.max(stream::MIN_WINDOW));
            self.credits.insert(id, CreditSlot::new(&flow));
            StreamTo {
                flow,
                out: ServerSink(self.out_tx.clone()),
                deadline: request.context.deadline,
                max_frame_len: self.config.max_frame_len,
            }
        });
        let (call, abort) = call_future(id, self.svc.clone(), request, stream_to);
        self.aborts.insert(id, abort);
        self.calls.push(call);
    }

    /// Forgets what a call that is over had registered.
    fn finished(&mut self, id: u64) {
        self.aborts.remove(&id);
        // Most connections carry no streams: spare them the hashing.
        if !self.inboxes.is_empty() {
            self.inboxes.remove(&id);
        }
        if !self.credits.is_empty() {
            self.credits.remove(&id);
        }
    }
}

/// How many frames the driver reads before it looks at its calls and writes.
const READ_BUDGET: usize = 64;
