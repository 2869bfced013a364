//! One client connection: a write side shared by the callers (see `writer.rs`: whoever finds it
//! idle writes every queued request) and a reader task that routes responses to the callers
//! waiting for them.
use crate::ids::{CallMap, call_map};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::time::Instant;

use bytes::Bytes;
use futures_util::future::AbortHandle;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{oneshot, watch};

use super::CallResponse;
use super::writer::{PumpGuard, SharedWriter, pump_later};
use crate::ipc::PeerCredentials;
use crate::stream::{self, CreditSlot, Inbox, Link, SendFlow};
use crate::transport::{FrameError, FrameReader, Parts};
use crate::wire::{self, envelope};
use crate::{Error, RefuseReason, ServiceInfo, Streaming};

mod callbacks;
mod limit;
mod read;
mod streams;

pub(crate) use callbacks::Offered;
use limit::{CallLimit, Slot};
use read::read_until_dropped;
pub(crate) use streams::ClientSink;
use streams::ConnLink;

type Reply = Result<CallResponse, Error>;

/// How long the server has to answer the hello.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) struct Connection {
    writer: Arc<SharedWriter>,
    pending: Mutex<Pending>,
    next_id: AtomicU64,
    going_away: AtomicBool,
    /// Set with `pending.closed`, to be read without the lock.
    closed: AtomicBool,
    handshake: watch::Sender<Handshake>,
    max_frame_len: usize,
    /// The server's credentials, where the transport tells them.
    server: Option<PeerCredentials>,
    /// The service this client offers for calls back, and those running.
    offered: Option<Offered>,
    callbacks: Mutex<CallMap<AbortHandle>>,
    callback_config: crate::server::Config,
    /// Calls (streams included) that may be in flight: the server's limit once its answer
    /// to the hello is in, `wire::INITIAL_CALLS` until then.
    permits: Arc<CallLimit>,
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
    _permit: Option<Slot>,
}

impl Waiter {
    /// Fails the call: its caller or its response stream (and, as it is dropped, stops its
    /// request stream).
    fn fail(self, error: Error, writer: &SharedWriter) {
        match (self.reply, self.inbox) {
            (Some(tx), _) => deliver(writer, tx, Err(error)),
            (None, Some(inbox)) => inbox.end(Some(error)),
            (None, None) => {}
        }
    }
}

/// Hands a caller its reply, counted among the callers woken until it takes it (see
/// [`SharedWriter::queue`]).
fn deliver(writer: &SharedWriter, tx: oneshot::Sender<Reply>, reply: Reply) {
    writer.reply_sent();
    if tx.send(reply).is_err() {
        writer.reply_taken(); // nobody waits for it
    }
}

/// Where a caller waits for its reply.
#[derive(Debug)]
pub(crate) struct ReplyRx<'a> {
    rx: oneshot::Receiver<Reply>,
    writer: &'a SharedWriter,
}

impl ReplyRx<'_> {
    async fn recv(mut self) -> Result<Reply, oneshot::error::RecvError> {
        let reply = (&mut self.rx).await;
        if reply.is_ok() {
            self.writer.reply_taken();
        }
        reply
    }
}

impl Drop for ReplyRx<'_> {
    /// A reply delivered but never taken: its caller is not about to run after all.
    fn drop(&mut self) {
        // Closed first, so that no reply can slip in between the look and the drop.
        self.rx.close();
        if self.rx.try_recv().is_ok() {
            self.writer.reply_taken();
        }
    }
}

/// What a streaming call gets from [`Connection::start_streaming`].
pub(crate) struct Started<'a> {
    pub(crate) reply: Option<ReplyRx<'a>>,
    pub(crate) stream: Option<Streaming<Bytes>>,
    pub(crate) credit: Option<Arc<SendFlow>>,
}

#[derive(Debug, Default)]
struct Pending {
    calls: CallMap<Waiter>,
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
            closed: AtomicBool::new(false),
            handshake: watch::channel(Handshake::Pending).0,
            max_frame_len,
            server,
            offered,
            callbacks: Mutex::new(call_map()),
            callback_config: crate::server::Config {
                max_frame_len,
                ..Default::default()
            },
            permits: CallLimit::new(wire::INITIAL_CALLS),
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

    /// Whether new calls should go elsewhere (closed, or the server said it is going away).
    pub(crate) fn is_usable(&self) -> bool {
        !self.going_away.load(Ordering::Acquire) && !self.closed.load(Ordering::Acquire)
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
    ) -> Result<ReplyRx<'_>, Error> {
        if self.going_away.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        let (tx, rx) = oneshot::channel();
        let rx = ReplyRx {
            rx,
            writer: &self.writer,
        };
        let waiter = Waiter {
            reply: Some(tx),
            ..Waiter::default()
        };
        self.register(id, waiter).await?;
        self.write(frame).await;
        Ok(rx)
    }

    /// The runtime the connection was made on, which runs its reading and any task a call
    /// needs, wherever the call itself is polled.
    pub(crate) fn runtime(&self) -> &tokio::runtime::Handle {
        self.writer.runtime()
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
    ) -> Result<Started<'_>, Error> {
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
                // The stream's timer, if any, is made on the connection's runtime: the
                // caller may be outside any.
                let _entered = deadline.map(|_| self.runtime().enter());
                let (inbox, stream) = stream::incoming(id, window, link, deadline);
                waiter.inbox = Some(inbox);
                started.stream = Some(stream);
            }
            None => {
                let (tx, rx) = oneshot::channel();
                waiter.reply = Some(tx);
                started.reply = Some(ReplyRx {
                    rx,
                    writer: &self.writer,
                });
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
        let permit = self.permits.take().await;
        waiter._permit = Some(permit);
        let mut pending = self.pending.lock().unwrap();
        if let Some(closed) = &pending.closed {
            return Err(closed.error());
        }
        pending.calls.insert(id, waiter);
        Ok(())
    }

    /// Queues a request and writes it, with any others queued meanwhile, unless another
    /// caller is writing, which then writes it, or callers woken with this one are about
    /// to queue theirs (see [`SharedWriter::queue`]).
    async fn write(self: &Arc<Self>, frame: Parts) {
        if self.writer.queue(frame, || self.on_write_error()) {
            self.pump().await;
        }
    }

    /// Queues `frame` and writes it, with any others queued meanwhile, unless another
    /// caller is writing, which then writes it.
    async fn write_now(self: &Arc<Self>, frame: Parts) {
        self.writer.push(frame);
        self.pump().await;
    }

    /// Writes what is queued; if the write fails, the connection is lost.
    async fn pump(self: &Arc<Self>) {
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

    /// Callers whose replies are delivered but not yet taken.
    #[cfg(test)]
    pub(crate) fn woken_count(&self) -> usize {
        self.writer.woken_count()
    }

    /// Queues a frame and has it written from another task.
    fn write_later(self: &Arc<Self>, frame: Parts) {
        self.writer.push(frame);
        pump_later(self.writer.clone(), self.on_write_error());
    }

    /// Waits for the reply of a call [`start`](Self::start)ed.
    pub(crate) async fn reply(&self, rx: ReplyRx<'_>) -> Reply {
        rx.recv()
            .await
            .unwrap_or_else(|_| Err(self.unusable_error()))
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
            (Some(tx), _, reply) => deliver(&self.writer, tx, reply),
            // A stream that never began: the server refused the call.
            (None, Some(inbox), Err(e)) => inbox.end(Some(e)),
            (None, Some(inbox), Ok(_)) => inbox.end(Some(Error::Protocol(
                "a single response to a method that returns a stream".into(),
            ))),
            (None, None, _) => {}
        }
    }

    /// Applies the server's limit on calls in flight.
    fn set_call_limit(&self, limit: u32) {
        if limit != 0 {
            self.permits.set(limit as usize);
        }
    }

    /// Fails every call in flight and refuses new ones.
    fn close(&self, why: Closed) {
        // Marked closed before anyone waiting for the handshake hears of it, so that a call
        // made right after the verdict sees the same reason instead of trying to write.
        let calls = {
            let mut pending = self.pending.lock().unwrap();
            pending.closed.get_or_insert(why.clone());
            self.closed.store(true, Ordering::Release);
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
            waiter.fail(why.error(), &self.writer);
        }
        for (_, abort) in self.callbacks.lock().unwrap().drain() {
            abort.abort();
        }
    }
}
