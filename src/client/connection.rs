//! One client connection: a writer task that coalesces outgoing frames and a reader task that
//! routes responses to the callers waiting for them.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

use super::CallResponse;
use crate::transport::{FrameReader, FrameWriter};
use crate::wire::{self, envelope, response};
use crate::{Error, ServiceInfo};

type Reply = Result<CallResponse, Error>;

/// How long the server has to answer the hello.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) struct Connection {
    out: mpsc::UnboundedSender<Bytes>,
    pending: Mutex<Pending>,
    next_id: AtomicU64,
    going_away: AtomicBool,
    max_frame_len: usize,
    /// The server's pid, where the transport tells it (for tracing).
    server_pid: Option<u32>,
}

#[derive(Debug, Default)]
struct Pending {
    calls: HashMap<u64, oneshot::Sender<Reply>>,
    /// Set once the reader has stopped; no call may be registered after that.
    closed: Option<Closed>,
}

#[derive(Debug, Clone)]
enum Closed {
    Lost(Arc<str>),
    ShutDown,
}

impl Closed {
    fn error(&self) -> Error {
        match self {
            Closed::Lost(why) => Error::lost(why.to_string()),
            Closed::ShutDown => Error::ShuttingDown,
        }
    }
}

impl Connection {
    /// Says hello, waits for the answer, then starts the reader and writer tasks.
    pub(crate) async fn open<R, W>(
        reader: R,
        writer: W,
        info: &'static ServiceInfo,
        max_frame_len: usize,
        server_pid: Option<u32>,
    ) -> Result<Arc<Connection>, Error>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let mut reader = FrameReader::with_max_frame_len(reader, max_frame_len);
        let mut writer = FrameWriter::with_max_frame_len(writer, max_frame_len);
        writer.send(wire::encode(&wire::hello(info))).await?;
        let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, reader.next())
            .await
            .map_err(|_| Error::lost("the server did not answer the handshake"))?;
        let frame = match first {
            Some(frame) => frame?,
            None => {
                return Err(Error::lost(
                    "the server closed the connection during the handshake",
                ));
            }
        };
        let reply = wire::HelloReply::decode(frame)
            .map_err(|e| Error::Protocol(format!("handshake reply does not decode: {e}")))?;
        if let Some(refusal) = reply.refusal {
            return Err(Error::HandshakeRefused {
                reason: wire::refuse_reason(refusal.reason),
                message: refusal.message,
            });
        }
        let (out, rx) = mpsc::unbounded_channel();
        let conn = Arc::new(Connection {
            out,
            pending: Mutex::new(Pending::default()),
            next_id: AtomicU64::new(1),
            going_away: AtomicBool::new(false),
            max_frame_len,
            server_pid,
        });
        tokio::spawn(write_loop(writer, rx, Arc::downgrade(&conn)));
        tokio::spawn(read_loop(reader, Arc::downgrade(&conn)));
        Ok(conn)
    }

    pub(crate) fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    pub(crate) fn server_pid(&self) -> Option<u32> {
        self.server_pid
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

    /// Registers call `id` and queues its request frame.
    pub(crate) fn start(&self, id: u64, frame: Bytes) -> Result<oneshot::Receiver<Reply>, Error> {
        if self.going_away.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.lock().unwrap();
            if let Some(closed) = &pending.closed {
                return Err(closed.error());
            }
            pending.calls.insert(id, tx);
        }
        if self.out.send(frame).is_err() {
            self.pending.lock().unwrap().calls.remove(&id);
            return Err(Error::lost("the connection's writer has stopped"));
        }
        Ok(rx)
    }

    /// The caller stopped waiting: forget the call and tell the server to drop its handler.
    pub(crate) fn cancel(&self, id: u64) {
        let was_pending = self.pending.lock().unwrap().calls.remove(&id).is_some();
        if was_pending {
            let frame = wire::encode_envelope(envelope::Kind::Cancel(wire::Cancel { call_id: id }));
            let _ = self.out.send(frame);
        }
    }

    fn complete(&self, id: u64, reply: Reply) {
        if let Some(tx) = self.pending.lock().unwrap().calls.remove(&id) {
            let _ = tx.send(reply);
        }
    }

    /// Fails every call in flight and refuses new ones.
    fn close(&self, why: Closed) {
        let calls = {
            let mut pending = self.pending.lock().unwrap();
            pending.closed.get_or_insert(why.clone());
            std::mem::take(&mut pending.calls)
        };
        for (_, tx) in calls {
            let _ = tx.send(Err(why.error()));
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: FrameWriter<W>,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    conn: Weak<Connection>,
) {
    while let Some(frame) = rx.recv().await {
        let mut result = writer.feed(frame).await;
        // Everything queued meanwhile goes out in the same write.
        while result.is_ok() {
            match rx.try_recv() {
                Ok(frame) => result = writer.feed(frame).await,
                Err(_) => break,
            }
        }
        if let Err(e) = result.and(writer.flush().await) {
            tracing::debug!(error = %e, "client connection write failed");
            if let Some(conn) = conn.upgrade() {
                conn.close(Closed::Lost(format!("write failed: {e}").into()));
            }
            return;
        }
    }
    // Every handle to the connection is gone: close our side so the server sees a clean end.
    let _ = writer.close().await;
}

async fn read_loop<R: AsyncRead + Unpin>(mut reader: FrameReader<R>, conn: Weak<Connection>) {
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
            envelope::Kind::Request(_) | envelope::Kind::Cancel(_) => {
                tracing::debug!("ignoring a client-bound request or cancel from the server");
            }
        }
    };
    tracing::debug!(reason = ?why, "client connection closed");
    if let Some(conn) = conn.upgrade() {
        conn.close(why);
    }
}
