//! Streams across real processes: server, client and bidirectional streams, cancellation in
//! both directions, flow control under a stalled consumer and under many streams, and how
//! the end, an error item and an abort are told apart.
mod common;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::{ChildProc, Watchdog, block_on_outside, report, rt, unique};
use futures_util::{Stream, StreamExt};
use localrpc::{Error, NamedService, Streaming, stream};

#[localrpc::service]
trait Streams {
    /// 0, 1, ... n-1.
    async fn count(&self, n: u32) -> Streaming<u32>;
    /// The same, one item every `ms` milliseconds.
    async fn slow_count(&self, n: u32, ms: u64) -> Streaming<u32>;
    /// Endless, as fast as credit allows; what it produced is kept under `tag`.
    async fn ticks(&self, tag: String) -> Streaming<u64>;
    /// Items produced under `tag`, and whether that stream was dropped.
    async fn stats(&self, tag: String) -> (u64, bool);
    /// Client streaming: the sum of the items.
    async fn sum(&self, items: Streaming<u32>) -> u64;
    /// Takes `n` items, then drops the stream.
    async fn take(&self, n: u32, items: Streaming<u32>) -> Vec<u32>;
    /// Bidirectional: each line back upper-cased.
    async fn shout(&self, lines: Streaming<String>) -> Streaming<String>;
    /// Every third item is an application error; the stream goes on after it.
    async fn mixed(&self, n: u32) -> Streaming<Result<u32, String>>;
    /// Panics after `n` items.
    async fn panics_after(&self, n: u32) -> Streaming<u32>;
    /// `n` items from a stream that panics when it is dropped.
    async fn panics_on_drop(&self, n: u32) -> Streaming<u32>;
    /// Items of the given sizes.
    async fn sizes(&self, sizes: Vec<u32>) -> Streaming<Vec<u8>>;
    async fn ping(&self, x: u32) -> u32;
}

/// What an endless stream produced, and whether it was dropped.
type Tally = (Arc<AtomicU64>, Arc<AtomicBool>);

#[derive(Default, Clone)]
struct Impl {
    produced: Arc<Mutex<HashMap<String, Tally>>>,
}

/// An endless stream that counts what it produced and notes when it is dropped.
struct Ticks {
    produced: Arc<AtomicU64>,
    dropped: Arc<AtomicBool>,
}

impl Stream for Ticks {
    type Item = u64;
    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<u64>> {
        Poll::Ready(Some(self.produced.fetch_add(1, Ordering::SeqCst)))
    }
}

impl Drop for Ticks {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

impl Streams for Impl {
    async fn count(&self, n: u32) -> Streaming<u32> {
        Streaming::from_iter(0..n)
    }
    async fn slow_count(&self, n: u32, ms: u64) -> Streaming<u32> {
        Streaming::new(futures_util::stream::unfold(0, move |i| async move {
            if i == n {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Some((i, i + 1))
        }))
    }
    async fn ticks(&self, tag: String) -> Streaming<u64> {
        let produced = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(AtomicBool::new(false));
        self.produced
            .lock()
            .unwrap()
            .insert(tag, (produced.clone(), dropped.clone()));
        Streaming::new(Ticks { produced, dropped })
    }
    async fn stats(&self, tag: String) -> (u64, bool) {
        match self.produced.lock().unwrap().get(&tag) {
            Some((p, d)) => (p.load(Ordering::SeqCst), d.load(Ordering::SeqCst)),
            None => (0, false),
        }
    }
    async fn sum(&self, mut items: Streaming<u32>) -> u64 {
        let mut sum = 0;
        while let Some(item) = items.next().await {
            sum += u64::from(item.expect("no abort"));
        }
        sum
    }
    async fn take(&self, n: u32, items: Streaming<u32>) -> Vec<u32> {
        items
            .take(n as usize)
            .map(|i| i.expect("no abort"))
            .collect()
            .await
    }
    async fn shout(&self, lines: Streaming<String>) -> Streaming<String> {
        Streaming::new(lines.map(|l| l.map(|l| l.to_uppercase()).unwrap_or_default()))
    }
    async fn mixed(&self, n: u32) -> Streaming<Result<u32, String>> {
        Streaming::from_iter((0..n).map(|i| {
            if i % 3 == 2 {
                Err(format!("item {i} is bad"))
            } else {
                Ok(i)
            }
        }))
    }
    async fn panics_after(&self, n: u32) -> Streaming<u32> {
        Streaming::from_iter((0..=n).inspect(move |&i| {
            assert!(i < n, "the stream panics at item {i}");
        }))
    }
    async fn panics_on_drop(&self, n: u32) -> Streaming<u32> {
        struct PanicOnDrop;
        impl Drop for PanicOnDrop {
            fn drop(&mut self) {
                panic!("the stream panics as it is dropped");
            }
        }
        let guard = PanicOnDrop;
        Streaming::from_iter((0..n).inspect(move |_| {
            let _ = &guard;
        }))
    }
    async fn sizes(&self, sizes: Vec<u32>) -> Streaming<Vec<u8>> {
        Streaming::from_iter(sizes.into_iter().map(|n| vec![1u8; n as usize]))
    }
    async fn ping(&self, x: u32) -> u32 {
        x
    }
}

#[test]
fn child_entry() {
    let Some((role, args)) = common::child_role() else {
        return;
    };
    match role.as_str() {
        "streams" => rt().block_on(async {
            let window: u32 = args[1].parse().unwrap();
            let server = localrpc::Server::builder()
                .stream_window(window)
                .bind(args[0].as_str())
                .unwrap();
            report("BOUND");
            server
                .serve(StreamsServer::new(Impl::default()))
                .await
                .unwrap();
        }),
        other => panic!("unknown role {other}"),
    }
}

fn start(window: u32) -> (ChildProc, String) {
    let name = unique("streams");
    let server = ChildProc::spawn("streams", &[&name, &window.to_string()]);
    server.expect("BOUND");
    (server, name)
}

async fn connect(name: &str, window: u32) -> StreamsClient {
    let client = localrpc::Client::builder(<StreamsClient>::INFO)
        .stream_window(window)
        .connect(name)
        .await
        .unwrap();
    StreamsClient::new(client)
}

/// Waits until `check` holds, failing after 20 s.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn a_thousand_items_arrive_in_order_in_each_direction() {
    let _wd = Watchdog::arm("a_thousand_items_arrive_in_order_in_each_direction");
    let (_server, name) = start(4096);
    rt().block_on(async {
        let client = connect(&name, 4096).await;
        // Server streaming, with a window far smaller than the stream.
        let items: Vec<u32> = client
            .count(1000)
            .await
            .unwrap()
            .map(|i| i.unwrap())
            .collect()
            .await;
        assert_eq!(items, (0..1000).collect::<Vec<_>>());
        // Client streaming.
        let sum = client.sum(Streaming::from_iter(0..1000u32)).await.unwrap();
        assert_eq!(sum, (0..1000u64).sum::<u64>());
        // Both ways at once.
        let lines = Streaming::from_iter((0..1000).map(|i| format!("line {i}")));
        let back: Vec<String> = client
            .shout(lines)
            .await
            .unwrap()
            .map(|l| l.unwrap())
            .collect()
            .await;
        let expected: Vec<String> = (0..1000).map(|i| format!("LINE {i}")).collect();
        assert_eq!(back, expected);
        // An empty stream is a stream too.
        assert_eq!(client.sum(Streaming::empty()).await.unwrap(), 0);
        assert_eq!(client.count(0).await.unwrap().count().await, 0);
    });
}

#[test]
fn a_stream_read_on_a_thread_outside_the_runtime_keeps_its_credit_coming() {
    let _wd =
        Watchdog::arm("a_stream_read_on_a_thread_outside_the_runtime_keeps_its_credit_coming");
    let (_server, name) = start(4096);
    let rt = rt();
    let (client, stream) = rt.block_on(async {
        let client = connect(&name, 1024).await;
        let stream = client.count(1000).await.unwrap();
        (client, stream)
    });
    // A thread of its own, with no runtime: the grants it owes still have to go out.
    let items: Vec<u32> =
        std::thread::spawn(move || block_on_outside(stream.map(|i| i.unwrap()).collect()))
            .join()
            .unwrap();
    assert_eq!(items, (0..1000).collect::<Vec<_>>());
    drop(client);
}

#[test]
fn calls_made_on_a_thread_outside_the_runtime_keep_their_deadline_and_their_request_stream() {
    let _wd = Watchdog::arm(
        "calls_made_on_a_thread_outside_the_runtime_keep_their_deadline_and_their_request_stream",
    );
    let (_server, name) = start(4096);
    let rt = rt();
    let client = rt.block_on(connect(&name, 1024));
    let on_a_thread = move || {
        // A deadline: its timer belongs to the connection's runtime.
        let hurried = client.clone().with_timeout(Duration::from_secs(30));
        assert_eq!(block_on_outside(hurried.ping(7)).unwrap(), 7);
        let late = client.clone().with_timeout(Duration::from_millis(50));
        let stream = block_on_outside(late.slow_count(3, 5_000)).unwrap();
        let first = block_on_outside(stream.into_future()).0;
        assert!(
            matches!(first, Some(Err(Error::DeadlineExceeded))),
            "{first:?}"
        );
        // A request stream: sent from a task of the connection's runtime.
        let items = Streaming::from_iter(1..=100u32);
        assert_eq!(block_on_outside(client.sum(items)).unwrap(), 5050);
    };
    std::thread::spawn(on_a_thread).join().unwrap();
}

#[test]
fn dropping_a_response_stream_stops_the_server_side() {
    let _wd = Watchdog::arm("dropping_a_response_stream_stops_the_server_side");
    let (_server, name) = start(4096);
    rt().block_on(async {
        let client = connect(&name, 1024).await;
        let mut ticks = client.ticks("t".into()).await.unwrap();
        for expected in 0..10u64 {
            assert_eq!(ticks.next().await.unwrap().unwrap(), expected);
        }
        assert!(!client.stats("t".into()).await.unwrap().1);
        drop(ticks);
        // The server drops the handler's stream...
        eventually("the server drops the stream", async || {
            client.stats("t".into()).await.unwrap().1
        })
        .await;
        // ...having produced no more than the window allowed ahead of what was taken:
        // 1024 bytes at 17 or more bytes an item.
        let (produced, _) = client.stats("t".into()).await.unwrap();
        assert!(produced <= 10 + 1024 / 17 + 1, "produced {produced}");
        // And the connection goes on.
        assert_eq!(client.ping(5).await.unwrap(), 5);
    });
}

#[test]
fn a_handler_that_drops_the_request_stream_stops_the_client_side() {
    let _wd = Watchdog::arm("a_handler_that_drops_the_request_stream_stops_the_client_side");
    let (_server, name) = start(1024);
    rt().block_on(async {
        let client = connect(&name, 4096).await;
        let pulled = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(AtomicBool::new(false));
        let source = Ticks {
            produced: pulled.clone(),
            dropped: dropped.clone(),
        };
        let source = Streaming::new(source.map(|i| i as u32));
        let taken = client.take(5, source).await.unwrap();
        assert_eq!(taken, [0, 1, 2, 3, 4]);
        eventually("the client drops its source", async || {
            dropped.load(Ordering::SeqCst)
        })
        .await;
        // The server's window (1024 bytes, 17 or more an item) bounds what was pulled.
        let pulled = pulled.load(Ordering::SeqCst);
        assert!(pulled <= 5 + 1024 / 17 + 2, "pulled {pulled}");
        assert_eq!(client.ping(6).await.unwrap(), 6);
    });
}

#[test]
fn a_stalled_consumer_does_not_hold_up_other_calls_and_stays_within_its_window() {
    let _wd = Watchdog::arm("a_stalled_consumer_does_not_hold_up_other_calls");
    let window = 2048;
    let (_server, name) = start(window);
    rt().block_on(async {
        let client = connect(&name, window).await;
        let mut stalled = client.ticks("stalled".into()).await.unwrap();
        assert_eq!(stalled.next().await.unwrap().unwrap(), 0);
        // The stream is not read from here on; 100 unary calls on the same connection.
        let calls = (0..100u32).map(|i| {
            let client = client.clone();
            async move { client.ping(i).await.unwrap() }
        });
        let answers = futures_util::future::join_all(calls).await;
        assert_eq!(answers, (0..100).collect::<Vec<_>>());
        tokio::time::sleep(Duration::from_millis(200)).await;
        let buffered = stalled.buffered_bytes();
        assert!(buffered > 0, "the server did send ahead");
        assert!(buffered <= window as usize, "buffered {buffered}");
        let (produced, dropped) = client.stats("stalled".into()).await.unwrap();
        assert!(!dropped);
        assert!(
            produced <= 1 + u64::from(window) / 17 + 1,
            "produced {produced}"
        );
        // Reading again resumes the stream in order.
        for expected in 1..500u64 {
            assert_eq!(stalled.next().await.unwrap().unwrap(), expected);
        }
    });
}

#[test]
fn sixty_four_streams_and_sixty_four_calls_with_small_windows() {
    let _wd = Watchdog::arm("sixty_four_streams_and_sixty_four_calls_with_small_windows");
    let window = 256;
    let (_server, name) = start(window);
    rt().block_on(async {
        let client = connect(&name, window).await;
        let streams = (0..64u32).map(|s| {
            let client = client.clone();
            async move {
                let mut items = client.count(200 + s).await.unwrap();
                let mut next = 0;
                let mut max_buffered = 0;
                while let Some(item) = items.next().await {
                    assert_eq!(item.unwrap(), next);
                    next += 1;
                    max_buffered = max_buffered.max(items.buffered_bytes());
                    if next % 16 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                assert_eq!(next, 200 + s);
                max_buffered
            }
        });
        let uploads = (0..64u32).map(|s| {
            let client = client.clone();
            async move {
                let sum = client.sum(Streaming::from_iter(0..s)).await.unwrap();
                assert_eq!(sum, (0..u64::from(s)).sum::<u64>());
            }
        });
        let calls = (0..64u32).map(|i| {
            let client = client.clone();
            async move { assert_eq!(client.ping(i).await.unwrap(), i) }
        });
        let (buffered, _, _) = tokio::join!(
            futures_util::future::join_all(streams),
            futures_util::future::join_all(uploads),
            futures_util::future::join_all(calls),
        );
        let max = buffered.into_iter().max().unwrap();
        assert!(max <= window as usize, "a stream buffered {max} bytes");
    });
}

#[test]
fn the_end_an_error_item_and_an_abort_are_told_apart() {
    let _wd = Watchdog::arm("the_end_an_error_item_and_an_abort_are_told_apart");
    let (mut server, name) = start(4096);
    rt().block_on(async {
        let client = connect(&name, 4096).await;
        // Application errors are items; the stream goes on and ends normally.
        let items: Vec<Result<u32, String>> = client
            .mixed(6)
            .await
            .unwrap()
            .map(|i| i.unwrap())
            .collect()
            .await;
        assert_eq!(
            items,
            [
                Ok(0),
                Ok(1),
                Err("item 2 is bad".into()),
                Ok(3),
                Ok(4),
                Err("item 5 is bad".into())
            ]
        );
        // A panic aborts the stream: the items so far, then the error, then the end.
        let mut items = client.panics_after(3).await.unwrap();
        for expected in 0..3 {
            assert_eq!(items.next().await.unwrap().unwrap(), expected);
        }
        match items.next().await {
            Some(Err(Error::ServerPanicked { message })) => {
                assert!(message.contains("panics at item 3"), "{message}")
            }
            other => panic!("expected a panic abort, got {other:?}"),
        }
        assert!(items.next().await.is_none());
        // A stream that panics as it is dropped, after its end: every item arrives, and the
        // connection goes on serving.
        let items: Vec<u32> = client
            .panics_on_drop(5)
            .await
            .unwrap()
            .map(|i| i.unwrap())
            .collect()
            .await;
        assert_eq!(items, [0, 1, 2, 3, 4]);
        assert_eq!(client.ping(7).await.unwrap(), 7);
        // A deadline covers the whole stream.
        let hurried = client.clone().with_timeout(Duration::from_millis(300));
        let mut items = hurried.slow_count(1000, 20).await.unwrap();
        let mut got = 0;
        let outcome = loop {
            match items.next().await {
                Some(Ok(_)) => got += 1,
                other => break other,
            }
        };
        assert!(
            matches!(outcome, Some(Err(Error::DeadlineExceeded))),
            "{outcome:?}"
        );
        assert!(got < 1000, "the deadline cut the stream short; got {got}");
        assert!(items.next().await.is_none());
        // A peer that vanishes mid-stream.
        let mut ticks = client.ticks("k".into()).await.unwrap();
        ticks.next().await.unwrap().unwrap();
        server.kill();
        let outcome = loop {
            match ticks.next().await {
                Some(Ok(_)) => continue,
                other => break other,
            }
        };
        assert!(
            matches!(outcome, Some(Err(Error::ConnectionLost { .. }))),
            "{outcome:?}"
        );
        assert!(ticks.next().await.is_none());
    });
}

#[test]
fn items_larger_than_the_window_or_the_frame_limit() {
    let _wd = Watchdog::arm("items_larger_than_the_window_or_the_frame_limit");
    let (_server, name) = start(4096);
    rt().block_on(async {
        let client = connect(&name, 4096).await;
        // Small items, then items larger than the whole 4 KiB window: each goes once the
        // consumer has given back everything it took, however little that was.
        let sizes = vec![10, 5000, 10, 10, 9000, 1, 4096, 0];
        let got: Vec<usize> = client
            .sizes(sizes.clone())
            .await
            .unwrap()
            .map(|i| i.unwrap().len())
            .collect()
            .await;
        assert_eq!(got, sizes.iter().map(|&n| n as usize).collect::<Vec<_>>());
        // An item beyond the frame limit (16 MiB) aborts the stream after the items before
        // it, with a typed error, and the connection goes on.
        let mut items = client.sizes(vec![10, 17 << 20, 10]).await.unwrap();
        assert_eq!(items.next().await.unwrap().unwrap().len(), 10);
        match items.next().await {
            Some(Err(Error::Server { message })) => {
                assert!(message.contains("frame limit"), "{message}")
            }
            other => panic!("expected a frame-limit abort, got {other:?}"),
        }
        assert!(items.next().await.is_none());
        assert_eq!(client.ping(9).await.unwrap(), 9);
    });
}

#[test]
fn items_of_every_size_around_the_batching_limits_arrive_intact() {
    let _wd = Watchdog::arm("items_of_every_size_around_the_batching_limits_arrive_intact");
    let (_server, name) = start(stream::DEFAULT_WINDOW);
    rt().block_on(async {
        let client = connect(&name, stream::DEFAULT_WINDOW).await;
        // Items are batched in place with a one- or two-byte length, up to 4 KiB each; a
        // larger one travels alone. Every length across those edges, in one stream.
        let sizes: Vec<u32> = (0..300).chain(4090..4110).chain(0..300).collect();
        let got: Vec<Vec<u8>> = client
            .sizes(sizes.clone())
            .await
            .unwrap()
            .map(|i| i.unwrap())
            .collect()
            .await;
        assert_eq!(got.len(), sizes.len());
        for (item, &size) in got.iter().zip(&sizes) {
            assert_eq!(item.len(), size as usize);
            assert!(
                item.iter().all(|&b| b == 1),
                "an item of {size} bytes changed"
            );
        }
        // The same lengths from the client to the server and back.
        let lines: Vec<String> = sizes.iter().map(|&n| "a".repeat(n as usize)).collect();
        let back: Vec<String> = client
            .shout(Streaming::from_iter(lines.clone()))
            .await
            .unwrap()
            .map(|l| l.unwrap())
            .collect()
            .await;
        let expected: Vec<String> = lines.iter().map(|l| l.to_uppercase()).collect();
        assert!(back == expected, "lines changed on the way");
    });
}
