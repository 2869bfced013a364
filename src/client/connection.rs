//! One client connection: a write side shared by the callers (see `writer.rs`: whoever finds it
//! idle writes every queued request) and a reader task that routes responses to the callers
//! waiting for them.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::{AbortHandle, Abortable};
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot, watch};

use super::CallResponse;
use super::writer::{PumpGuard, SharedWriter, pump_later};
use crate::ipc::PeerCredentials;
use crate::server::{BoxError, ServerRequest, ServerResponse};
use crate::stream::{self, CreditSlot, FrameSink, Inbox, Link, SendFlow};
use crate::transport::{FrameError, FrameReader, Parts};
use crate::wire::{self, envelope, response};
use crate::{Error, RefuseReason, ServiceInfo, Streaming};

type Reply = Result<CallResponse, Error>;

/// How many calls back a client runs at once; more are refused.
const MAX_CALLBACKS: usize = 1024;

/// How long the server has to answer the hello.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) struct Connection {
    writer: Arc<SharedWriter>,
    pending: Mutex<Pending>,
    next_id: AtomicU64,
    going_away: AtomicBool,
    handshake: watch::Sender<Handshake>,
    max_frame_len: usize,
    /// The server's credentials, where the transport tells them.
    server: Option<PeerCredentials>,
    /// The service this client offers for calls back, and those running.
    offered: Option<Offered>,
    callbacks: Mutex<HashMap<u64, AbortHandle>>,
    callback_config: crate::server::Config,
    /// Calls (streams included) that may be in flight: the server's limit once its answer
    /// to the hello is in, `wire::INITIAL_CALLS` until then.
    permits: Arc<Semaphore>,
    /// Dropped with the last handle: stops the reader, which closes the stream even where
    /// the write half cannot shut down on its own (Windows pipes).
    _dropped: oneshot::Sender<()>,
}

/// A call in flight: who waits for what.
#[derive(Debug, Default)]
struct Waiter {
    /// The caller of a method with a single result.
    reply: Option<oneshot::Sender<Reply>>,
    /// The response stream's receiver.
    inbox: Option<Inbox>,
    /// The request stream's credit (dropping it stops the sender).
    credit: Option<CreditSlot>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Waiter {
    /// Fails the call: its caller or its response stream (and, as it is dropped, stops its
    /// request stream).
    fn fail(self, error: Error) {
        match (self.reply, self.inbox) {
            (Some(tx), _) => {
                let _ = tx.send(Err(error));
            }
            (None, Some(inbox)) => inbox.end(Some(error)),
            (None, None) => {}
        }
    }
}

/// What a streaming call gets from [`Connection::start_streaming`].
pub(crate) struct Started {
    pub(crate) reply: Option<oneshot::Receiver<Reply>>,
    pub(crate) stream: Option<Streaming<Bytes>>,
    pub(crate) credit: Option<Arc<SendFlow>>,
}

#[derive(Debug, Default)]
struct Pending {
    calls: HashMap<u64, Waiter>,
    /// Set once the reader has stopped; no call may be registered after that.
    closed: Option<Closed>,
}

#[derive(Debug, Clone)]
enum Closed {
    Lost(Arc<str>),
    ShutDown,
    Refused(RefuseReason, Arc<str>),
}

impl Closed {
    fn error(&self) -> Error {
        match self {
            Closed::Lost(why) => Error::lost(why.to_string()),
            Closed::ShutDown => Error::ShuttingDown,
            Closed::Refused(reason, message) => Error::HandshakeRefused {
                reason: *reason,
                message: message.to_string(),
            },
        }
    }
}

/// Where the handshake stands.
#[derive(Debug, Clone)]
enum Handshake {
    Pending,
    Accepted,
    Failed(Closed),
}

impl Connection {
    /// Queues the hello, has it written, and starts the reader task, without waiting for the
    /// server's answer: calls made meanwhile follow the hello on the wire, so the first call
    /// costs no extra round trip. A refusal fails those calls with
    /// [`Error::HandshakeRefused`]; [`Connection::handshake`] waits for the verdict.
    pub(crate) fn open<R, W>(
        reader: R,
        writer: W,
        info: &'static ServiceInfo,
        max_frame_len: usize,
        server: Option<PeerCredentials>,
        offered: Option<Offered>,
    ) -> Arc<Connection>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let reader = FrameReader::with_max_frame_len(reader, max_frame_len);
        let writer = Arc::new(SharedWriter::new(writer, max_frame_len));
        let offered_info = offered.as_ref().map(|o| o.info);
        writer.push(Parts::whole(wire::encode(&wire::hello(info, offered_info))));
        let (dropped_tx, dropped) = oneshot::channel();
        let conn = Arc::new(Connection {
            writer: writer.clone(),
            pending: Mutex::new(Pending::default()),
            next_id: AtomicU64::new(1),
            going_away: AtomicBool::new(false),
            handshake: watch::channel(Handshake::Pending).0,
            max_frame_len,
            server,
            offered,
            callbacks: Mutex::new(HashMap::new()),
            callback_config: crate::server::Config {
                max_frame_len,
                ..Default::default()
            },
            permits: Arc::new(Semaphore::new(wire::INITIAL_CALLS)),
            _dropped: dropped_tx,
        });
        // The hello goes out even if no call follows (handshake() may be waiting for it).
        pump_later(writer, conn.on_write_error());
        tokio::spawn(read_until_dropped(reader, Arc::downgrade(&conn), dropped));
        conn
    }

    /// Waits until the server has accepted or refused the handshake.
    pub(crate) async fn handshake(&self) -> Result<(), Error> {
        let mut state = self.handshake.subscribe();
        let state = state
            .wait_for(|s| !matches!(s, Handshake::Pending))
            .await
            .map_err(|_| Error::lost("connection closed during the handshake"))?;
        match &*state {
            Handshake::Failed(closed) => Err(closed.error()),
            _ => Ok(()),
        }
    }

    pub(crate) fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    pub(crate) fn server_pid(&self) -> Option<u32> {
        self.server.and_then(|s| s.pid())
    }

    /// Serves a call back from the server with the offered service, on a task of its own.
    fn on_callback(self: &Arc<Self>, req: wire::Request) {
        let id = req.call_id;
        let refusal = match &self.offered {
            None => Some((
                wire::Code::UnknownMethod,
                "this client offers no service to call back".to_owned(),
            )),
            Some(_) if self.callbacks.lock().unwrap().len() >= MAX_CALLBACKS => Some((
                wire::Code::Refused,
                format!("this client runs at most {MAX_CALLBACKS} calls back at once"),
            )),
            Some(_) => None,
        };
        let (Some(offered), None) = (&self.offered, refusal.as_ref()) else {
            let (code, message) = refusal.expect("refused");
            let status = wire::Status::new(code, message);
            let reply = crate::server::Reply::Error(status);
            let frame = crate::server::response_frame(id, reply, &self.callback_config);
            self.write_later(frame);
            return;
        };
        let mut request = crate::server::server_request(req, offered.info, self.server, None);
        request.context.peer = self.server;
        let call = crate::server::run_call(offered.svc.clone(), request);
        let (abort, registration) = AbortHandle::new_pair();
        self.callbacks.lock().unwrap().insert(id, abort);
        let conn = Arc::downgrade(self);
        tokio::spawn(async move {
            let reply = Abortable::new(call, registration).await;
            let Some(conn) = conn.upgrade() else { return };
            conn.callbacks.lock().unwrap().remove(&id);
            if let Ok(reply) = reply {
                let frame = crate::server::response_frame(id, reply, &conn.callback_config);
                conn.write_later(frame);
            }
        });
    }

    /// The server dropped a call back: drop its handler.
    fn cancel_callback(&self, id: u64) {
        if let Some(abort) = self.callbacks.lock().unwrap().remove(&id) {
            abort.abort();
        }
    }

    /// Whether new calls should go elsewhere (closed, or the server said it is going away).
    pub(crate) fn is_usable(&self) -> bool {
        !self.going_away.load(Ordering::Acquire) && self.pending.lock().unwrap().closed.is_none()
    }

    /// The error for a call on a connection that is not usable.
    pub(crate) fn unusable_error(&self) -> Error {
        if self.going_away.load(Ordering::Acquire) {
            return Error::ShuttingDown;
        }
        match &self.pending.lock().unwrap().closed {
            Some(closed) => closed.error(),
            None => Error::lost("connection closed"),
        }
    }

    pub(crate) fn next_call_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// What to do when a write fails: fail every call, since the stream is broken.
    fn on_write_error(self: &Arc<Self>) -> impl FnOnce(FrameError) + Send + 'static {
        let conn = Arc::downgrade(self);
        move |e| {
            tracing::debug!(error = %e, "client connection write failed");
            if let Some(conn) = conn.upgrade() {
                conn.close(Closed::Lost(format!("write failed: {e}").into()));
            }
        }
    }

    /// Registers call `id`, then writes its request (with any others queued meanwhile)
    /// unless another caller is writing, which then writes it.
    pub(crate) async fn start(
        self: &Arc<Self>,
        id: u64,
        frame: Parts,
    ) -> Result<oneshot::Receiver<Reply>, Error> {
        if self.going_away.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        let (tx, rx) = oneshot::channel();
        let waiter = Waiter {
            reply: Some(tx),
            ..Waiter::default()
        };
        self.register(id, waiter).await?;
        self.write(frame).await;
        Ok(rx)
    }

    /// Registers a call that takes or returns a stream, then writes its request.
    /// `response_window` is set for a method that returns a stream.
    pub(crate) async fn start_streaming(
        self: &Arc<Self>,
        id: u64,
        frame: Parts,
        response_window: Option<u32>,
        request_stream: bool,
        deadline: Option<Instant>,
    ) -> Result<Started, Error> {
        if self.going_away.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        let mut waiter = Waiter::default();
        let mut started = Started {
            reply: None,
            stream: None,
            credit: None,
        };
        match response_window {
            Some(window) => {
                let link: Arc<dyn Link> = Arc::new(ConnLink(self.clone()));
                let (inbox, stream) = stream::incoming(id, window, link, deadline);
                waiter.inbox = Some(inbox);
                started.stream = Some(stream);
            }
            None => {
                let (tx, rx) = oneshot::channel();
                waiter.reply = Some(tx);
                started.reply = Some(rx);
            }
        }
        if request_stream {
            // No credit until the server grants its window.
            let credit = SendFlow::new(0);
            waiter.credit = Some(CreditSlot::new(&credit));
            started.credit = Some(credit);
        }
        self.register(id, waiter).await?;
        self.write(frame).await;
        Ok(started)
    }

    /// Takes a call permit and enters the call in the table.
    async fn register(&self, id: u64, mut waiter: Waiter) -> Result<(), Error> {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => self
                .permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| Error::lost("connection closed"))?,
        };
        waiter._permit = Some(permit);
        let mut pending = self.pending.lock().unwrap();
        if let Some(closed) = &pending.closed {
            return Err(closed.error());
        }
        pending.calls.insert(id, waiter);
        Ok(())
    }

    /// Queues `frame` and writes it, with any others queued meanwhile, unless another
    /// caller is writing, which then writes it.
    async fn write(self: &Arc<Self>, frame: Parts) {
        self.writer.push(frame);
        let mut guard = PumpGuard {
            writer: Some(self.writer.clone()),
            on_error: Some(self.on_write_error()),
        };
        let written = self.writer.pump().await;
        guard.writer = None;
        if let Err(e) = written {
            (guard.on_error.take().expect("not taken yet"))(e);
        }
    }

    /// Queues a frame and has it written from another task.
    fn write_later(self: &Arc<Self>, frame: Parts) {
        self.writer.push(frame);
        pump_later(self.writer.clone(), self.on_write_error());
    }

    /// Waits for the reply of a call [`start`](Self::start)ed.
    pub(crate) async fn reply(&self, rx: oneshot::Receiver<Reply>) -> Reply {
        rx.await.unwrap_or_else(|_| Err(self.unusable_error()))
    }

    /// The caller stopped waiting: forget the call and tell the server to drop its handler.
    pub(crate) fn cancel(self: &Arc<Self>, id: u64) {
        // Dropping the entry also stops a request stream being sent.
        let was_pending = self.pending.lock().unwrap().calls.remove(&id).is_some();
        if was_pending {
            let frame = wire::encode_envelope(envelope::Kind::Cancel(wire::Cancel { call_id: id }));
            self.write_later(Parts::whole(frame));
        }
    }

    /// A response: the end of the call.
    fn complete(&self, id: u64, reply: Reply) {
        let Some(waiter) = self.pending.lock().unwrap().calls.remove(&id) else {
            return;
        };
        match (waiter.reply, waiter.inbox, reply) {
            (Some(tx), _, reply) => {
                let _ = tx.send(reply);
            }
            // A stream that never began: the server refused the call.
            (None, Some(inbox), Err(e)) => inbox.end(Some(e)),
            (None, Some(inbox), Ok(_)) => inbox.end(Some(Error::Protocol(
                "a single response to a method that returns a stream".into(),
            ))),
            (None, None, _) => {}
        }
    }

    /// Routes a frame of a call's stream.
    fn on_stream_frame(self: &Arc<Self>, kind: envelope::Kind) {
        let mut pending = self.pending.lock().unwrap();
        match kind {
            envelope::Kind::StreamItem(item) => {
                let id = item.call_id;
                let admitted = match pending.calls.get(&id).and_then(|w| w.inbox.as_ref()) {
                    Some(inbox) if inbox.admits(&item.items) => {
                        inbox.items(item.items);
                        true
                    }
                    Some(_) => false,
                    None => true, // a call that is over
                };
                if !admitted {
                    tracing::debug!(call_id = id, "server sent beyond its credit");
                    let waiter = pending.calls.remove(&id);
                    drop(pending);
                    if let Some(waiter) = waiter {
                        waiter.fail(Error::Protocol(
                            "the server sent more than its credit allowed".into(),
                        ));
                    }
                    let cancel = wire::Cancel { call_id: id };
                    self.write_later(Parts::whole(wire::encode_envelope(envelope::Kind::Cancel(
                        cancel,
                    ))));
                }
            }
            envelope::Kind::StreamEnd(end) => {
                // The response stream is over, and with it the call.
                if let Some(waiter) = pending.calls.remove(&end.call_id) {
                    drop(pending);
                    match (waiter.inbox, waiter.reply) {
                        (Some(inbox), _) => inbox.end(end.error.map(wire::status_error)),
                        (None, Some(tx)) => {
                            let _ = tx.send(Err(Error::Protocol(
                                "a stream end for a method that returns no stream".into(),
                            )));
                        }
                        (None, None) => {}
                    }
                }
            }
            envelope::Kind::Credit(credit) => {
                if let Some(flow) = pending
                    .calls
                    .get(&credit.call_id)
                    .and_then(|w| w.credit.as_ref())
                {
                    flow.grant(credit.bytes);
                }
            }
            envelope::Kind::StopSending(stop) => {
                if let Some(flow) = pending
                    .calls
                    .get(&stop.call_id)
                    .and_then(|w| w.credit.as_ref())
                {
                    flow.stop();
                }
            }
            _ => {}
        }
    }

    /// Applies the server's limit on calls in flight.
    fn set_call_limit(&self, limit: u32) {
        let limit = limit as usize;
        if limit == 0 || limit == wire::INITIAL_CALLS {
            return;
        }
        if limit > wire::INITIAL_CALLS {
            self.permits
                .add_permits((limit - wire::INITIAL_CALLS).min(Semaphore::MAX_PERMITS / 2));
        } else {
            let excess = (wire::INITIAL_CALLS - limit) as u32;
            let permits = self.permits.clone();
            tokio::spawn(async move {
                if let Ok(p) = permits.acquire_many(excess).await {
                    p.forget();
                }
            });
        }
    }

    /// Fails every call in flight and refuses new ones.
    fn close(&self, why: Closed) {
        // Marked closed before anyone waiting for the handshake hears of it, so that a call
        // made right after the verdict sees the same reason instead of trying to write.
        let calls = {
            let mut pending = self.pending.lock().unwrap();
            pending.closed.get_or_insert(why.clone());
            std::mem::take(&mut pending.calls)
        };
        self.handshake.send_if_modified(|state| {
            let pending = matches!(state, Handshake::Pending);
            if pending {
                *state = Handshake::Failed(why.clone());
            }
            pending
        });
        for (_, waiter) in calls {
            waiter.fail(why.error());
        }
        for (_, abort) in self.callbacks.lock().unwrap().drain() {
            abort.abort();
        }
    }
}

/// Reads the server's answer to the hello: its call limit if the connection may go on.
async fn read_hello_reply<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
) -> Result<u32, Closed> {
    let frame = match tokio::time::timeout(HANDSHAKE_TIMEOUT, reader.next()).await {
        Err(_) => {
            return Err(Closed::Lost(
                "the server did not answer the handshake".into(),
            ));
        }
        Ok(None) => {
            return Err(Closed::Lost(
                "the server closed the connection during the handshake".into(),
            ));
        }
        Ok(Some(Err(e))) => return Err(Closed::Lost(e.to_string().into())),
        Ok(Some(Ok(frame))) => frame,
    };
    match wire::HelloReply::decode(frame) {
        Err(e) => Err(Closed::Lost(
            format!("handshake reply does not decode: {e}").into(),
        )),
        Ok(wire::HelloReply {
            refusal: Some(refusal),
            ..
        }) => Err(Closed::Refused(
            wire::refuse_reason(refusal.reason),
            refusal.message.into(),
        )),
        Ok(reply) => Ok(reply.max_concurrent_calls),
    }
}

async fn read_until_dropped<R: AsyncRead + Unpin>(
    reader: FrameReader<R>,
    conn: Weak<Connection>,
    dropped: oneshot::Receiver<()>,
) {
    tokio::select! {
        biased;
        () = read_loop(reader, conn) => {}
        _ = dropped => tracing::trace!("every client handle is gone; closing the connection"),
    }
}

async fn read_loop<R: AsyncRead + Unpin>(mut reader: FrameReader<R>, conn: Weak<Connection>) {
    let limit = match read_hello_reply(&mut reader).await {
        Ok(limit) => limit,
        Err(why) => {
            tracing::debug!(reason = ?why, "handshake failed");
            if let Some(conn) = conn.upgrade() {
                conn.close(why);
            }
            return;
        }
    };
    match conn.upgrade() {
        Some(conn) => {
            conn.set_call_limit(limit);
            conn.handshake.send_replace(Handshake::Accepted)
        }
        None => return,
    };
    let why = loop {
        let next = reader.next().await;
        // Once every client handle is gone, nobody waits for anything.
        let Some(conn) = conn.upgrade() else { return };
        let frame = match next {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => break Closed::Lost(e.to_string().into()),
            None if conn.going_away.load(Ordering::Acquire) => break Closed::ShutDown,
            None => break Closed::Lost("the server closed the connection".into()),
        };
        let kind = match wire::Envelope::decode(frame) {
            Ok(wire::Envelope { kind: Some(kind) }) => kind,
            Ok(_) => continue, // an empty envelope carries nothing
            Err(e) => {
                break Closed::Lost(format!("undecodable envelope from the server: {e}").into());
            }
        };
        match kind {
            envelope::Kind::Response(resp) => {
                let reply = match resp.result {
                    Some(response::Result::Ok(value)) => Ok(CallResponse::Ok(value)),
                    Some(response::Result::AppError(err)) => Ok(CallResponse::AppError(err)),
                    Some(response::Result::Error(status)) => Err(wire::status_error(status)),
                    None => Err(Error::Protocol("response without a result".into())),
                };
                conn.complete(resp.call_id, reply);
            }
            envelope::Kind::GoAway(_) => {
                tracing::debug!("server is going away");
                conn.going_away.store(true, Ordering::Release);
            }
            envelope::Kind::Request(req) => conn.on_callback(req),
            envelope::Kind::Cancel(cancel) => conn.cancel_callback(cancel.call_id),
            kind => conn.on_stream_frame(kind),
        }
    };
    tracing::debug!(reason = ?why, "client connection closed");
    if let Some(conn) = conn.upgrade() {
        conn.close(why);
    }
}

/// The connection as the receiver of a response stream talks back through it.
struct ConnLink(Arc<Connection>);

impl Link for ConnLink {
    fn grant(&self, id: u64, bytes: u32) {
        self.0.write_later(stream::credit_frame(id, bytes));
    }

    fn abandon(&self, id: u64) {
        self.0.cancel(id);
    }
}

/// Where a request stream's items go: the connection's shared writer.
pub(crate) struct ClientSink(pub(crate) Arc<Connection>);

impl FrameSink for ClientSink {
    async fn send(&mut self, frame: Parts) -> bool {
        if self.0.pending.lock().unwrap().closed.is_some() {
            return false;
        }
        self.0.write(frame).await;
        true
    }
}

/// A service a client offers on its connection for the server to call back.
#[derive(Clone)]
pub(crate) struct Offered {
    pub(crate) info: &'static ServiceInfo,
    pub(crate) svc: tower::util::BoxCloneSyncService<ServerRequest, ServerResponse, BoxError>,
}

impl std::fmt::Debug for Offered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offered")
            .field("service", &self.info.name())
            .finish_non_exhaustive()
    }
}

impl Drop for Connection {
    /// Calls back still running have nobody to answer to.
    fn drop(&mut self) {
        for (_, abort) in self.callbacks.get_mut().unwrap().drain() {
            abort.abort();
        }
    }
}
