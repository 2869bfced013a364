//! The blocking client and serving from sync code, across real processes: a blocking client
//! against an async server and against a server started from sync code (a thread per
//! connection on Unix), and an async client against the latter.
mod common;

use std::time::Duration;

use common::{ChildProc, Watchdog, report, rt, unique};
use futures_util::StreamExt;
use localrpc::codec::Blob;
use localrpc::{Error, RefuseReason, Streaming};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Empty;

#[localrpc::service]
trait Store {
    async fn echo(&self, data: Vec<u8>) -> Vec<u8>;
    async fn first(&self, data: Vec<u8>) -> Result<u8, Empty>;
    async fn slow(&self, ms: u64) -> u64;
    async fn pid(&self) -> u32;
    /// The arguments back in another order: large blobs go out from their own buffers.
    async fn swap(&self, head: String, a: Blob, n: u32, b: Blob) -> (Blob, u32, Blob, String);
    /// The name of the thread the handler runs on.
    async fn thread(&self) -> String;
    /// `0..n` as a stream.
    async fn count(&self, n: u32) -> Streaming<u32>;
    /// `len` bytes, after blocking the handler's thread for `ms` milliseconds.
    async fn big_after(&self, ms: u64, len: u32) -> Blob;
    /// What a task spawned from the handler returns.
    async fn spawned(&self, x: u32) -> u32;
}

/// The same service name with another method table: refused at the handshake.
#[allow(dead_code, reason = "only the client of this version is used")]
mod v2 {
    #[localrpc::service(name = "Store")]
    pub(crate) trait Store {
        async fn echo(&self, data: String) -> String;
    }
}

struct Impl;

impl Store for Impl {
    async fn echo(&self, data: Vec<u8>) -> Vec<u8> {
        data
    }
    async fn first(&self, data: Vec<u8>) -> Result<u8, Empty> {
        data.first().copied().ok_or(Empty)
    }
    async fn slow(&self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }
    async fn pid(&self) -> u32 {
        std::process::id()
    }
    async fn swap(&self, head: String, a: Blob, n: u32, b: Blob) -> (Blob, u32, Blob, String) {
        (b, n, a, head)
    }
    async fn thread(&self) -> String {
        std::thread::current().name().unwrap_or("").to_owned()
    }
    async fn count(&self, n: u32) -> Streaming<u32> {
        Streaming::from_iter(0..n)
    }
    async fn big_after(&self, ms: u64, len: u32) -> Blob {
        std::thread::sleep(Duration::from_millis(ms));
        vec![0xab; len as usize].into()
    }
    async fn spawned(&self, x: u32) -> u32 {
        tokio::spawn(async move { x + 1 }).await.unwrap()
    }
}

/// A layer that spawns a task as it is built, as tower's `Buffer` does.
struct SpawnsWhenBuilt;

impl<S> tower::Layer<S> for SpawnsWhenBuilt {
    type Service = S;
    fn layer(&self, inner: S) -> S {
        tokio::spawn(async {});
        inner
    }
}

/// Checks `swap` with blobs large and small, so that a message goes out in pieces.
fn check_swap(swap: impl Fn(String, Blob, u32, Blob) -> (Blob, u32, Blob, String)) {
    let pattern = |len: usize, seed: usize| -> Blob {
        (0..len)
            .map(|i| ((i + seed) % 251) as u8)
            .collect::<Vec<u8>>()
            .into()
    };
    for (a_len, b_len) in [(300 * 1024, 40 * 1024), (64 * 1024, 10), (5, 2 << 20)] {
        let (a, b) = (pattern(a_len, 1), pattern(b_len, 2));
        let (b2, n, a2, head) = swap("head".into(), a.clone(), 77, b.clone());
        assert_eq!((n, head.as_str()), (77, "head"));
        assert!(a2 == a && b2 == b, "{a_len} and {b_len} bytes");
    }
}

#[test]
fn child_entry() {
    let Some((role, args)) = common::child_role() else {
        return;
    };
    match role.as_str() {
        // An async server in a Tokio runtime.
        "store-async" => rt().block_on(async {
            let server = localrpc::Server::builder().bind(args[0].as_str()).unwrap();
            report("BOUND");
            server.serve(StoreServer::new(Impl)).await.unwrap();
        }),
        // A server started from sync code: no runtime of ours.
        // The same, with a layer and a hook that reports connection-level failures.
        "store-sync" => {
            let name = args[0].clone();
            std::thread::spawn(move || {
                localrpc::Server::builder()
                    .layer(SpawnsWhenBuilt)
                    .handshake_timeout(Duration::from_millis(500))
                    .on_connection_error(|error, _| {
                        let kind = match error {
                            Error::FrameTooLarge { .. } => "too-large".to_owned(),
                            Error::HandshakeRefused { reason, .. } => format!("refused {reason:?}"),
                            other => format!("other {other:?}"),
                        };
                        report(format!("CONNECTION-ERROR {kind}"));
                    })
                    .serve_blocking(name.as_str(), StoreServer::new(Impl))
                    .unwrap();
            });
            // Ready once a blocking client gets through.
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            loop {
                let up = StoreBlockingClient::connect(args[0].as_str())
                    .and_then(|c| c.pid())
                    .is_ok();
                if up {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "server never came up");
                std::thread::sleep(Duration::from_millis(20));
            }
            report("BOUND");
            std::thread::park();
        }
        other => panic!("unknown role {other}"),
    }
}

fn start(role: &str, name: &str) -> ChildProc {
    let server = ChildProc::spawn(role, &[name]);
    server.expect("BOUND");
    server
}

#[test]
fn blocking_client_calls_an_async_server() {
    let _wd = Watchdog::arm("blocking_client_calls_an_async_server");
    blocking_client_calls("store-async");
}

#[test]
fn blocking_client_calls_a_server_started_from_sync_code() {
    let _wd = Watchdog::arm("blocking_client_calls_a_server_started_from_sync_code");
    blocking_client_calls("store-sync");
}

/// A blocking client's calls against the server of `role`.
fn blocking_client_calls(role: &str) {
    let name = unique("store");
    let server = start(role, &name);
    // No runtime anywhere in this thread.
    let store = StoreBlockingClient::connect(name.as_str()).unwrap();
    assert_eq!(store.pid().unwrap(), server.pid());
    for len in [0usize, 16, 70 * 1024, 1 << 20] {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        assert_eq!(store.echo(data.clone()).unwrap(), data, "{len} bytes");
    }
    assert_eq!(store.first(vec![7, 8]).unwrap(), Ok(7));
    assert_eq!(store.first(vec![]).unwrap(), Err(Empty));
    check_swap(|h, a, n, b| store.swap(h, a, n, b).unwrap());
    // Clones on several threads share the connection and take turns. The threads end at
    // different times, each with the connection still in use by the others.
    let per_thread = 200u8;
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    let data = vec![t, i, t ^ i];
                    assert_eq!(store.echo(data.clone()).unwrap(), data);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn a_missed_deadline_is_typed_and_the_connection_goes_on() {
    let _wd = Watchdog::arm("a_missed_deadline_is_typed_and_the_connection_goes_on");
    a_missed_deadline("store-async");
}

#[test]
fn a_missed_deadline_on_a_server_started_from_sync_code() {
    let _wd = Watchdog::arm("a_missed_deadline_on_a_server_started_from_sync_code");
    a_missed_deadline("store-sync");
}

fn a_missed_deadline(role: &str) {
    let name = unique("store");
    let _server = start(role, &name);
    let store = StoreBlockingClient::connect(name.as_str()).unwrap();
    let hurried = store.clone().with_timeout(Duration::from_millis(100));
    assert!(matches!(hurried.slow(400), Err(Error::DeadlineExceeded)));
    // The same connection goes on. (The server drops the cancelled handler, so no late
    // answer arrives here; one that did would be skipped by its call id.)
    assert_eq!(store.slow(500).unwrap(), 500);
    assert_eq!(store.echo(vec![1, 2, 3]).unwrap(), vec![1, 2, 3]);
    // A deadline that leaves enough time is met.
    let patient = store.with_timeout(Duration::from_secs(20));
    assert_eq!(patient.slow(10).unwrap(), 10);
}

#[test]
fn a_killed_server_fails_the_call_in_flight_and_later_ones() {
    let _wd = Watchdog::arm("a_killed_server_fails_the_call_in_flight_and_later_ones");
    let name = unique("store");
    let mut server = start("store-async", &name);
    let store = StoreBlockingClient::connect(name.as_str()).unwrap();
    assert_eq!(store.slow(1).unwrap(), 1);
    let in_flight = {
        let store = store.clone();
        std::thread::spawn(move || store.slow(30_000))
    };
    std::thread::sleep(Duration::from_millis(200));
    server.kill();
    let outcome = in_flight.join().unwrap();
    assert!(
        matches!(outcome, Err(Error::ConnectionLost { .. })),
        "{outcome:?}"
    );
    assert!(matches!(store.pid(), Err(Error::ConnectionLost { .. })));
}

#[test]
fn a_different_method_table_is_refused_at_the_handshake() {
    let _wd = Watchdog::arm("a_different_method_table_is_refused_at_the_handshake");
    let name = unique("store");
    let _server = start("store-async", &name);
    let old = v2::StoreBlockingClient::connect(name.as_str()).unwrap();
    match old.get_ref().handshake() {
        Err(Error::HandshakeRefused { reason, .. }) => {
            assert_eq!(reason, RefuseReason::MethodTable)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Calls on the refused connection fail the same way.
    assert!(matches!(
        old.echo("x".into()),
        Err(Error::HandshakeRefused { .. })
    ));
    // Without an explicit handshake, the first call reports the refusal.
    let old = v2::StoreBlockingClient::connect(name.as_str()).unwrap();
    assert!(matches!(
        old.echo("x".into()),
        Err(Error::HandshakeRefused {
            reason: RefuseReason::MethodTable,
            ..
        })
    ));
}

#[test]
fn connecting_to_nothing_is_a_typed_error() {
    let name = unique("nothing");
    match StoreBlockingClient::connect(name.as_str()) {
        Err(Error::Connect(e)) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}"),
        other => panic!("expected a connect error, got {other:?}"),
    }
}

#[test]
fn async_client_calls_a_server_started_from_sync_code() {
    let _wd = Watchdog::arm("async_client_calls_a_server_started_from_sync_code");
    let name = unique("store");
    let server = start("store-sync", &name);
    rt().block_on(async {
        let store = StoreClient::connect(name.as_str()).await.unwrap();
        assert_eq!(store.pid().await.unwrap(), server.pid());
        let calls = (0..64u8).map(|i| {
            let store = store.clone();
            async move { store.echo(vec![i; i as usize]).await.unwrap() }
        });
        let results = futures_util::future::join_all(calls).await;
        for (i, r) in results.into_iter().enumerate() {
            assert_eq!(r, vec![i as u8; i]);
        }
        assert_eq!(store.first(vec![]).await.unwrap(), Err(Empty));
    });
    let runtime = rt();
    let store = runtime
        .block_on(StoreClient::connect(name.as_str()))
        .unwrap();
    check_swap(|h, a, n, b| runtime.block_on(store.swap(h, a, n, b)).unwrap());
    // And a blocking client too.
    let store = StoreBlockingClient::connect(name.as_str()).unwrap();
    assert_eq!(store.echo(vec![9; 100_000]).unwrap(), vec![9; 100_000]);
    check_swap(|h, a, n, b| store.swap(h, a, n, b).unwrap());
}

#[test]
fn a_connection_served_from_its_thread_moves_to_the_runtime_when_a_handler_waits() {
    let _wd = Watchdog::arm("a_connection_served_from_its_thread_moves_to_the_runtime");
    let name = unique("store");
    let _server = start("store-sync", &name);
    let store = StoreBlockingClient::connect(name.as_str()).unwrap();
    // Unix: a handler that is ready at once runs on the connection's own thread, until
    // one waits; from then on the connection is the runtime's. Windows: the runtime's from
    // the start. Either way, every call is answered, in order, on the same connection.
    let on_own_thread = cfg!(unix);
    assert_eq!(store.thread().unwrap() == "localrpc-conn", on_own_thread);
    assert_eq!(store.echo(vec![1; 10]).unwrap(), vec![1; 10]);
    assert_eq!(store.slow(30).unwrap(), 30);
    assert_ne!(store.thread().unwrap(), "localrpc-conn");
    assert_eq!(store.echo(vec![2; 70_000]).unwrap(), vec![2; 70_000]);
    check_swap(|h, a, n, b| store.swap(h, a, n, b).unwrap());
    // Another connection starts on a thread of its own again.
    let other = StoreBlockingClient::connect(name.as_str()).unwrap();
    assert_eq!(other.thread().unwrap() == "localrpc-conn", on_own_thread);
    assert_eq!(other.pid().unwrap(), store.pid().unwrap());
}

#[test]
fn streams_and_many_calls_on_a_server_started_from_sync_code() {
    let _wd = Watchdog::arm("streams_and_many_calls_on_a_server_started_from_sync_code");
    let name = unique("store");
    let _server = start("store-sync", &name);
    rt().block_on(async {
        let store = StoreClient::connect(name.as_str()).await.unwrap();
        assert_eq!(store.echo(vec![5; 3]).await.unwrap(), vec![5; 3]);
        // A stream moves the connection to the runtime, with calls of all kinds around it.
        let items: Vec<u32> = store
            .count(5000)
            .await
            .unwrap()
            .map(|item| item.unwrap())
            .collect()
            .await;
        assert_eq!(items, (0..5000).collect::<Vec<_>>());
        let calls = (0..32u64).map(|i| {
            let store = store.clone();
            async move {
                if i % 4 == 0 {
                    assert_eq!(store.slow(i).await.unwrap(), i);
                } else {
                    let n = store.count(i as u32).await.unwrap().count().await;
                    assert_eq!(n, i as usize);
                }
            }
        });
        futures_util::future::join_all(calls).await;
        // A stream dropped early is stopped; the connection goes on.
        let mut endless = store.count(u32::MAX).await.unwrap();
        assert_eq!(endless.next().await.unwrap().unwrap(), 0);
        drop(endless);
        assert_eq!(store.echo(vec![6; 4]).await.unwrap(), vec![6; 4]);
    });
}

#[test]
fn bad_frames_end_only_their_own_connection_on_a_server_started_from_sync_code() {
    use std::io::{Read, Write};
    let _wd = Watchdog::arm("bad_frames_end_only_their_own_connection");
    let name = unique("store");
    let server = start("store-sync", &name);
    let good = StoreBlockingClient::connect(name.as_str()).unwrap();
    assert_eq!(good.echo(vec![1]).unwrap(), vec![1]);
    let raw = || localrpc::ipc::blocking::LocalStream::connect(name.as_str()).unwrap();
    // Reads until the server closes the connection; returns what it sent first.
    let until_closed = |mut s: localrpc::ipc::blocking::LocalStream| {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got)
            .expect("the server closes the connection");
        got
    };

    // A frame announced far over the limit: nothing is allocated, the connection closes.
    let mut huge = raw();
    huge.write_all(&u32::MAX.to_le_bytes()).unwrap();
    assert_eq!(until_closed(huge), b"");
    assert_eq!(server.expect("CONNECTION-ERROR"), "too-large");

    // A frame cut short by the end of the stream.
    let mut cut = raw();
    cut.write_all(&100u32.to_le_bytes()).unwrap();
    cut.write_all(&[0; 10]).unwrap();
    drop(cut);
    let error = server.expect("CONNECTION-ERROR");
    assert!(error.contains("Truncated"), "{error}");

    // Garbage where the hello should be: refused with a reply, then closed.
    let mut garbage = raw();
    garbage.write_all(&8u32.to_le_bytes()).unwrap();
    garbage.write_all(&[0xff; 8]).unwrap();
    let reply = until_closed(garbage);
    assert!(reply.len() > 4, "a refusal comes back: {reply:?}");
    assert!(server.expect("CONNECTION-ERROR").starts_with("refused"));

    // No hello at all: refused once the handshake's time is up.
    let silent = raw();
    let reply = until_closed(silent);
    assert!(reply.len() > 4, "a refusal comes back: {reply:?}");
    assert!(server.expect("CONNECTION-ERROR").starts_with("refused"));

    // Everyone else is still served.
    assert_eq!(good.echo(vec![2; 100]).unwrap(), vec![2; 100]);
    let fresh = StoreBlockingClient::connect(name.as_str()).unwrap();
    assert_eq!(fresh.echo(vec![3]).unwrap(), vec![3]);
}

#[test]
fn a_client_that_writes_while_its_answer_is_written_does_not_block_the_connection() {
    let _wd = Watchdog::arm("a_client_that_writes_while_its_answer_is_written");
    let name = unique("store");
    let _server = start("store-sync", &name);
    let store = StoreBlockingClient::connect(name.as_str()).unwrap();
    let big = 8usize << 20;
    // The handler blocks its thread past the client's deadline, then answers 8 MiB, while
    // the client, done waiting, writes an 8 MiB request and reads nothing until it is
    // written: the server must read on while it writes.
    let hurried = store.clone().with_timeout(Duration::from_millis(100));
    assert!(matches!(
        hurried.big_after(500, big as u32),
        Err(Error::DeadlineExceeded)
    ));
    let data = vec![0x5a; big];
    assert!(store.echo(data.clone()).unwrap() == data);
    assert_eq!(store.big_after(0, 3).unwrap().to_vec(), vec![0xab; 3]);
}

#[test]
fn handlers_on_a_connection_thread_can_spawn_on_the_runtime() {
    let _wd = Watchdog::arm("handlers_on_a_connection_thread_can_spawn_on_the_runtime");
    let name = unique("store");
    let _server = start("store-sync", &name);
    let store = StoreBlockingClient::connect(name.as_str()).unwrap();
    assert_eq!(store.spawned(41).unwrap(), 42);
    assert_eq!(store.spawned(1).unwrap(), 2);
    assert_eq!(store.echo(vec![4]).unwrap(), vec![4]);
}

#[test]
fn frames_read_together_are_each_answered_once_when_the_connection_moves() {
    let _wd = Watchdog::arm("frames_read_together_are_each_answered_once");
    let name = unique("store");
    let _server = start("store-sync", &name);
    rt().block_on(async {
        // Calls made at once go out in one write, so the server reads them together: the
        // one that waits moves the connection with the others still in its read buffer.
        for round in 0..20u8 {
            let store = StoreClient::connect(name.as_str()).await.unwrap();
            let (a, slow, b, thread, c) = tokio::join!(
                store.echo(vec![round, 1]),
                store.slow(5),
                store.echo(vec![round, 2]),
                store.thread(),
                store.echo(vec![round, 3]),
            );
            assert_eq!(a.unwrap(), vec![round, 1]);
            assert_eq!(slow.unwrap(), 5);
            assert_eq!(b.unwrap(), vec![round, 2]);
            thread.unwrap();
            assert_eq!(c.unwrap(), vec![round, 3]);
            assert_eq!(store.echo(vec![round, 4]).await.unwrap(), vec![round, 4]);
        }
    });
}

#[cfg(feature = "tcp")]
#[test]
fn a_server_started_from_sync_code_over_tcp() {
    let _wd = Watchdog::arm("a_server_started_from_sync_code_over_tcp");
    // A port free a moment ago, for a server that does not report the one it binds.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let name = format!("tcp:127.0.0.1:{port}");
    let _server = start("store-sync", &name);
    let store = StoreBlockingClient::connect(name.as_str()).unwrap();
    assert_eq!(store.thread().unwrap() == "localrpc-conn", cfg!(unix));
    assert_eq!(store.echo(vec![1; 100]).unwrap(), vec![1; 100]);
    assert_eq!(store.slow(10).unwrap(), 10);
    assert_ne!(store.thread().unwrap(), "localrpc-conn");
    check_swap(|h, a, n, b| store.swap(h, a, n, b).unwrap());
}
