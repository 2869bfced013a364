//! The blocking client and serving from sync code, across real processes: a blocking client
//! against an async server, and an async client against a server started from sync code.
mod common;

use std::time::Duration;

use common::{ChildProc, Watchdog, report, rt, unique};
use localrpc::codec::Blob;
use localrpc::{Error, RefuseReason};
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
        "store-sync" => {
            let name = args[0].clone();
            std::thread::spawn(move || {
                localrpc::blocking::serve(name.as_str(), StoreServer::new(Impl)).unwrap();
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
    let name = unique("store");
    let server = start("store-async", &name);
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
    let name = unique("store");
    let _server = start("store-async", &name);
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
