//! One call of a [`Client`](super::Client) on its connection: until its answer or its
//! deadline, telling the server when the caller stops waiting.
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::CallResponse;
use super::connection::{ClientSink, Connection};
use crate::{Error, Streaming, deadline, stream};

/// A call with one request and one response.
pub(super) async fn unary_call(
    conn: Arc<Connection>,
    id: u64,
    frame: crate::transport::Parts,
    deadline: Option<Instant>,
) -> Result<CallResponse, Error> {
    // Armed before the request is written: a caller that goes away (or runs out of time)
    // while its request is still being written cancels it all the same.
    let mut guard = CancelOnDrop::armed(&conn, id);
    let outcome = {
        // The timer is made on the connection's runtime: the caller may be outside any.
        let _entered = deadline.map(|_| conn.runtime().enter());
        deadline::deadline(deadline, async {
            let rx = conn.start(id, frame).await?;
            conn.reply(rx).await
        })
    }
    .await;
    // Answered, or failed on the way: nothing to cancel. Out of time here: the guard tells
    // the server (whose handler may still run, were its clock behind) and forgets the call.
    guard.armed = outcome.is_none();
    in_time(outcome)
}

/// The outcome of a call run until its deadline ([`deadline::deadline`]): when it ran out,
/// `DeadlineExceeded`, and the caller's [`CancelOnDrop`] tells the server.
fn in_time(outcome: Option<Result<CallResponse, Error>>) -> Result<CallResponse, Error> {
    outcome.unwrap_or_else(|| {
        tracing::debug!("deadline exceeded; cancelling on the server");
        Err(Error::DeadlineExceeded)
    })
}

/// A call that takes or returns a stream.
pub(super) async fn streaming_call(
    conn: Arc<Connection>,
    id: u64,
    frame: crate::transport::Parts,
    response_window: Option<u32>,
    upstream: Option<Streaming<Bytes>>,
    deadline: Option<Instant>,
) -> Result<CallResponse, Error> {
    let mut guard = CancelOnDrop::armed(&conn, id);
    let started = conn
        .start_streaming(id, frame, response_window, upstream.is_some(), deadline)
        .await?;
    // The request stream is sent from a task of its own, stopped when the call is over.
    let sender = match (upstream, started.credit) {
        (Some(items), Some(credit)) => {
            let mut sink = ClientSink(conn.clone());
            let max_frame_len = conn.max_frame_len();
            // On the connection's runtime: the caller may be outside any.
            let task = conn.runtime().spawn(async move {
                stream::send_stream(id, items, &credit, &mut sink, max_frame_len).await;
            });
            Some(AbortOnDrop(task.abort_handle()))
        }
        _ => None,
    };
    if let Some(items) = started.stream {
        // From here the stream cancels the call if dropped before its end.
        guard.armed = false;
        return Ok(CallResponse::Stream(match sender {
            Some(sender) => items.keep(sender),
            None => items,
        }));
    }
    let rx = started
        .reply
        .expect("a call without a response stream has a reply");
    let outcome = {
        let _entered = deadline.map(|_| conn.runtime().enter());
        deadline::deadline(deadline, conn.reply(rx))
    }
    .await;
    guard.armed = outcome.is_none();
    drop(sender);
    in_time(outcome)
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends a cancel for a call whose caller stopped waiting.
struct CancelOnDrop<'a> {
    conn: &'a Arc<Connection>,
    id: u64,
    armed: bool,
}

impl<'a> CancelOnDrop<'a> {
    /// A guard that cancels call `id` unless disarmed first.
    fn armed(conn: &'a Arc<Connection>, id: u64) -> Self {
        CancelOnDrop {
            conn,
            id,
            armed: true,
        }
    }
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.conn.cancel(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{SinkExt, StreamExt};
    use prost::Message;

    use std::time::Duration;

    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};

    use bytes::Bytes;

    use super::*;
    use crate::ServiceInfo;
    use crate::client::{CallRequest, Client};
    use crate::transport::{FrameReader, FrameWriter};
    use crate::wire::{self, envelope};

    static INFO: ServiceInfo = ServiceInfo::new("Slow", &["wait"], 7);

    /// The next envelope a fake server reads.
    async fn next_kind<R: tokio::io::AsyncRead + Unpin>(
        reader: &mut FrameReader<R>,
    ) -> envelope::Kind {
        let frame = reader.next().await.unwrap().unwrap();
        wire::Envelope::decode(frame).unwrap().kind.unwrap()
    }

    #[tokio::test]
    async fn a_call_out_of_time_is_cancelled_on_the_server_and_an_answered_one_is_not() {
        let (client_end, server_end) = tokio::io::duplex(64 * 1024);
        let (cr, cw) = tokio::io::split(client_end);
        let (sr, sw) = tokio::io::split(server_end);
        let client = Client::builder(&INFO).connect_io(cr, cw).await.unwrap();
        let mut reader = FrameReader::new(sr);
        let mut writer = FrameWriter::new(sw);
        let server = tokio::spawn(async move {
            let hello = wire::Hello::decode(reader.next().await.unwrap().unwrap()).unwrap();
            let reply = wire::answer(Some(&hello), &INFO, 16);
            writer.send(wire::encode(&reply)).await.unwrap();
            // The first call is answered; the second is not, and must be cancelled.
            let envelope::Kind::Request(first) = next_kind(&mut reader).await else {
                panic!("expected a request");
            };
            let answer = wire::Response {
                call_id: first.call_id,
                result: Some(wire::response::Result::Ok(Bytes::from_static(b"ok"))),
            };
            writer
                .send(wire::encode_envelope(envelope::Kind::Response(answer)))
                .await
                .unwrap();
            let envelope::Kind::Request(second) = next_kind(&mut reader).await else {
                panic!("expected a request");
            };
            match next_kind(&mut reader).await {
                envelope::Kind::Cancel(cancel) => assert_eq!(cancel.call_id, second.call_id),
                other => panic!("expected the second call's cancel, got {other:?}"),
            }
        });
        let answered = client
            .request(CallRequest::new(&INFO, 0, Bytes::new()))
            .await
            .unwrap();
        assert!(matches!(answered, CallResponse::Ok(ref b) if b.as_ref() == b"ok"));
        let mut req = CallRequest::new(&INFO, 0, Bytes::new());
        req.set_timeout(Some(Duration::from_millis(50)));
        let late = client.request(req).await;
        assert!(matches!(late, Err(Error::DeadlineExceeded)), "{late:?}");
        // Only the second call is cancelled: the server sees no cancel before it.
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the cancel arrives")
            .unwrap();
    }

    /// Counts the writes made to the socket.
    struct Counting<W> {
        inner: W,
        writes: Arc<AtomicUsize>,
    }

    impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Counting<W> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.writes.fetch_add(1, Ordering::Relaxed);
            Pin::new(&mut self.inner).poll_write(cx, buf)
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            self.writes.fetch_add(1, Ordering::Relaxed);
            Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
        }

        fn is_write_vectored(&self) -> bool {
            self.inner.is_write_vectored()
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// Tells a test that a batch of requests is in, and waits for its word to answer.
    type Gate = (
        tokio::sync::mpsc::UnboundedSender<()>,
        tokio::sync::mpsc::UnboundedReceiver<()>,
    );

    /// A fake server that answers requests `batch` at a time, every batch's answers in one
    /// write, each batch once `gate` (if any) allows.
    async fn batch_server<R, W>(
        mut reader: FrameReader<R>,
        mut writer: FrameWriter<W>,
        batch: usize,
        mut gate: Option<Gate>,
    ) where
        R: tokio::io::AsyncRead + Unpin,
        W: tokio::io::AsyncWrite + Unpin,
    {
        let hello = wire::Hello::decode(reader.next().await.unwrap().unwrap()).unwrap();
        writer
            .send(wire::encode(&wire::answer(Some(&hello), &INFO, 1024)))
            .await
            .unwrap();
        loop {
            let mut ids = Vec::new();
            while ids.len() < batch {
                match reader.next().await {
                    Some(Ok(frame)) => {
                        if let Ok(wire::Envelope {
                            kind: Some(envelope::Kind::Request(req)),
                        }) = wire::Envelope::decode(frame)
                        {
                            ids.push(req.call_id);
                        }
                    }
                    _ => return,
                }
            }
            if let Some((batch_in, go)) = &mut gate {
                let _ = batch_in.send(());
                if go.recv().await.is_none() {
                    return;
                }
            }
            for call_id in ids {
                let answer = wire::Response {
                    call_id,
                    result: Some(wire::response::Result::Ok(Bytes::from_static(b"ok"))),
                };
                writer
                    .feed(wire::encode_envelope(envelope::Kind::Response(answer)))
                    .await
                    .unwrap();
            }
            writer.flush().await.unwrap();
        }
    }

    /// Callers woken by one batch of replies send their next requests in a few writes, not
    /// one each, and the count of woken callers is back to zero once they are done.
    #[tokio::test]
    async fn a_burst_of_calls_shares_its_writes() {
        const CALLERS: usize = 16;
        let (client_end, server_end) = tokio::io::duplex(1 << 20);
        let (cr, cw) = tokio::io::split(client_end);
        let (sr, sw) = tokio::io::split(server_end);
        let writes = Arc::new(AtomicUsize::new(0));
        let counting = Counting {
            inner: cw,
            writes: writes.clone(),
        };
        let client = Client::builder(&INFO)
            .connect_io(cr, counting)
            .await
            .unwrap();
        let (batch_in, mut batches) = tokio::sync::mpsc::unbounded_channel();
        let (go, go_rx) = tokio::sync::mpsc::unbounded_channel();
        let server = tokio::spawn(batch_server(
            FrameReader::new(sr),
            FrameWriter::new(sw),
            CALLERS,
            Some((batch_in, go_rx)),
        ));
        let callers: Vec<_> = (0..CALLERS)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(async move {
                    for _ in 0..2 {
                        let resp = client
                            .request(CallRequest::new(&INFO, 0, Bytes::new()))
                            .await
                            .unwrap();
                        assert!(matches!(resp, CallResponse::Ok(ref b) if b.as_ref() == b"ok"));
                    }
                })
            })
            .collect();
        // The first round's requests go out as their callers come. Once all are in, the
        // server answers them together, which wakes every caller at once.
        let ten_s = Duration::from_secs(10);
        tokio::time::timeout(ten_s, batches.recv()).await.unwrap();
        let first_round = writes.load(Ordering::Relaxed);
        go.send(()).unwrap();
        tokio::time::timeout(ten_s, batches.recv()).await.unwrap();
        let second_round = writes.load(Ordering::Relaxed) - first_round;
        go.send(()).unwrap();
        for caller in callers {
            tokio::time::timeout(Duration::from_secs(10), caller)
                .await
                .expect("every call is answered")
                .unwrap();
        }
        assert!(
            second_round <= CALLERS / 4,
            "{CALLERS} requests of callers woken together took {second_round} writes"
        );
        assert_eq!(client.woken_count(), 0);
        server.abort();
    }

    /// A reply delivered to a call dropped before it took it leaves no caller counted as
    /// about to run (which would make every later call wait for a deferred write).
    #[tokio::test]
    async fn replies_never_taken_are_not_counted() {
        let (client_end, server_end) = tokio::io::duplex(1 << 20);
        let (cr, cw) = tokio::io::split(client_end);
        let (sr, sw) = tokio::io::split(server_end);
        let client = Client::builder(&INFO).connect_io(cr, cw).await.unwrap();
        let server = tokio::spawn(batch_server(
            FrameReader::new(sr),
            FrameWriter::new(sw),
            1,
            None,
        ));
        // Polled once (so its request is out), then left alone while its reply comes in.
        let mut call = Box::pin(client.request(CallRequest::new(&INFO, 0, Bytes::new())));
        let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
        assert!(first.is_pending());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while client.woken_count() == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the reply never came"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(client.woken_count(), 1, "delivered, not yet taken");
        drop(call);
        assert_eq!(client.woken_count(), 0, "dropped unread");
        // An ordinary call after that is still answered.
        client
            .request(CallRequest::new(&INFO, 0, Bytes::new()))
            .await
            .unwrap();
        assert_eq!(client.woken_count(), 0);
        server.abort();
    }
}
