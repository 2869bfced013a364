//! The connection's reader task: the handshake's answer, then every frame from the server,
//! routed to the calls waiting for it.
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use futures_util::StreamExt;
use prost::Message;
use tokio::io::AsyncRead;
use tokio::sync::oneshot;

use super::{Closed, Connection, HANDSHAKE_TIMEOUT, Handshake};
use crate::Error;
use crate::transport::{FrameReader, Parts};
use crate::wire::{self, envelope};

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

pub(super) async fn read_until_dropped<R: AsyncRead + Unpin>(
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
        if let Some((id, items)) = wire::stream_items(&frame) {
            conn.on_items(id, items);
            continue;
        }
        if let Some(resp) = wire::fast::response(&frame) {
            conn.complete(resp.call_id, wire::reply_of(resp));
            continue;
        }
        let kind = match wire::Envelope::decode(frame) {
            Ok(wire::Envelope { kind: Some(kind) }) => kind,
            Ok(_) => continue, // an empty envelope carries nothing
            Err(e) => {
                break Closed::Lost(format!("undecodable envelope from the server: {e}").into());
            }
        };
        match kind {
            envelope::Kind::Response(resp) => conn.complete(resp.call_id, wire::reply_of(resp)),
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

impl Connection {
    /// Routes a frame of items of a call's response stream.
    pub(super) fn on_items(self: &Arc<Self>, id: u64, items: wire::ItemBatch) {
        let mut pending = self.pending.lock().unwrap();
        let admitted = match pending.calls.get(&id).and_then(|w| w.inbox.as_ref()) {
            Some(inbox) if inbox.admits(&items) => {
                inbox.items(items);
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
                waiter.fail(
                    Error::Protocol("the server sent more than its credit allowed".into()),
                    &self.writer,
                );
            }
            let cancel = wire::Cancel { call_id: id };
            self.write_later(Parts::whole(wire::encode_envelope(envelope::Kind::Cancel(
                cancel,
            ))));
        }
    }

    /// Routes a frame of a call's stream.
    pub(super) fn on_stream_frame(self: &Arc<Self>, kind: envelope::Kind) {
        let mut pending = self.pending.lock().unwrap();
        match kind {
            envelope::Kind::StreamItem(item) => {
                drop(pending);
                self.on_items(item.call_id, wire::ItemBatch::of(&item.items));
            }
            envelope::Kind::StreamEnd(end) => {
                // The response stream is over, and with it the call.
                if let Some(waiter) = pending.calls.remove(&end.call_id) {
                    drop(pending);
                    match (waiter.inbox, waiter.reply) {
                        (Some(inbox), _) => inbox.end(end.error.map(wire::status_error)),
                        (None, Some(tx)) => super::deliver(
                            &self.writer,
                            tx,
                            Err(Error::Protocol(
                                "a stream end for a method that returns no stream".into(),
                            )),
                        ),
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
}
