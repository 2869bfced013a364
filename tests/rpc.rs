//! The RPC contract across real processes: a generated client in this process, a generated
//! server in a child process. Every contract test runs over a local socket (`local::*`),
//! against a server with a thread per connection (`threads::*`, all but graceful shutdown,
//! which that server does not offer) and, with the `tcp` feature, over TCP on the loopback
//! interface (`tcp::*`).
mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ChildProc, TempDir, Watchdog, block_on_outside, report, rt, unique};
use localrpc::codec::Blob;
use localrpc::{CallContext, CallRequest, Client, Endpoint, Error, NamedService, RefuseReason};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct DivByZero;

#[localrpc::service]
trait Calculator {
    async fn add(&self, a: i64, b: i64) -> i64;
    async fn div(&self, a: i64, b: i64) -> Result<i64, DivByZero>;
    async fn slow(&self, ms: u64) -> u64;
    /// Sleeps, then creates `path`: a side effect that must not happen if the call is stopped.
    async fn mark(&self, ms: u64, path: String) -> bool;
    /// What the handler knows of its call: peer pid, peer address, trace id, time left in ms,
    /// a metadata value.
    async fn whoami(
        &self,
    ) -> (
        Option<u32>,
        Option<SocketAddr>,
        u128,
        Option<u64>,
        Option<String>,
    );
    /// Calls `whoami` on the calculator at `name` from inside this handler.
    async fn relay(&self, name: String) -> Result<(u128, Option<u64>), String>;
    async fn boom(&self) -> u64;
    /// How many calls the server's tower layer has seen.
    async fn layer_count(&self) -> u64;
    /// The peer pid and address the server's tower layer saw for this very call.
    async fn layer_saw(&self) -> (Option<u32>, Option<SocketAddr>);
    /// The bytes in reverse order (a `Blob`, decoded without a copy on both sides).
    async fn reverse(&self, data: Blob) -> Blob;
    /// Never finishes, always busy: uses up the task's coop budget on every poll. Creates
    /// `path` when dropped.
    async fn spin(&self, path: String) -> u64;
}

/// The same service name with another method table: refused at connect time.
#[allow(dead_code, reason = "only the client of this version is used")]
mod v2 {
    #[localrpc::service(name = "Calculator")]
    pub(crate) trait Calculator {
        async fn add(&self, a: i64, b: i64, c: i64) -> i64;
    }
}

struct Calc {
    seen_by_layer: Arc<AtomicU64>,
    last_peer_in_layer: LastPeer,
}

/// The peer pid and address of the latest call the layer saw.
type LastPeer = Arc<Mutex<(Option<u32>, Option<SocketAddr>)>>;

impl Calculator for Calc {
    async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
    async fn div(&self, a: i64, b: i64) -> Result<i64, DivByZero> {
        if b == 0 { Err(DivByZero) } else { Ok(a / b) }
    }
    async fn slow(&self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }
    async fn mark(&self, ms: u64, path: String) -> bool {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        std::fs::write(path, b"ran").is_ok()
    }
    async fn whoami(
        &self,
    ) -> (
        Option<u32>,
        Option<SocketAddr>,
        u128,
        Option<u64>,
        Option<String>,
    ) {
        let ctx = CallContext::current().expect("handlers run inside a call context");
        (
            ctx.peer().and_then(|p| p.pid()),
            ctx.peer_addr(),
            ctx.trace_id(),
            ctx.remaining().map(|d| d.as_millis() as u64),
            ctx.metadata().get("tenant").map(str::to_owned),
        )
    }
    async fn relay(&self, name: String) -> Result<(u128, Option<u64>), String> {
        let other = CalculatorClient::connect(name)
            .await
            .map_err(|e| e.to_string())?;
        let (_, _, trace, remaining, _) = other.whoami().await.map_err(|e| e.to_string())?;
        Ok((trace, remaining))
    }
    async fn boom(&self) -> u64 {
        panic!("boom on purpose")
    }
    async fn layer_count(&self) -> u64 {
        self.seen_by_layer.load(Ordering::SeqCst)
    }
    async fn layer_saw(&self) -> (Option<u32>, Option<SocketAddr>) {
        *self.last_peer_in_layer.lock().unwrap()
    }
    async fn reverse(&self, data: Blob) -> Blob {
        let mut v = data.to_vec();
        v.reverse();
        Blob::from(v)
    }
    async fn spin(&self, path: String) -> u64 {
        struct MarkOnDrop(String);
        impl Drop for MarkOnDrop {
            fn drop(&mut self) {
                let _ = std::fs::write(&self.0, b"dropped");
            }
        }
        let _mark = MarkOnDrop(path);
        loop {
            tokio::task::coop::consume_budget().await;
        }
    }
}

/// A server-side tower layer that counts calls, notes each caller's pid and address, and
/// refuses any call whose metadata says `tenant=blocked`.
#[derive(Clone)]
struct Gate {
    seen: Arc<AtomicU64>,
    last_peer: LastPeer,
}

impl<S> tower::Layer<S> for Gate {
    type Service = GateService<S>;
    fn layer(&self, inner: S) -> GateService<S> {
        GateService {
            inner,
            seen: self.seen.clone(),
            last_peer: self.last_peer.clone(),
        }
    }
}

#[derive(Clone)]
struct GateService<S> {
    inner: S,
    seen: Arc<AtomicU64>,
    last_peer: LastPeer,
}

impl<S> tower::Service<localrpc::ServerRequest> for GateService<S>
where
    S: tower::Service<localrpc::ServerRequest, Response = localrpc::ServerResponse>,
    S::Future: Send + 'static,
{
    type Response = localrpc::ServerResponse;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: localrpc::ServerRequest) -> Self::Future {
        self.seen.fetch_add(1, Ordering::SeqCst);
        *self.last_peer.lock().unwrap() = (req.peer().and_then(|p| p.pid()), req.peer_addr());
        if req.metadata().get("tenant") == Some("blocked") {
            let method = req.method_name();
            return Box::pin(async move {
                Ok(localrpc::ServerResponse::refused(format!(
                    "tenant blocked from {method}"
                )))
            });
        }
        Box::pin(self.inner.call(req))
    }
}

#[test]
fn child_entry() {
    let Some((role, args)) = common::child_role() else {
        return;
    };
    let seen = Arc::new(AtomicU64::new(0));
    let last_peer = LastPeer::default();
    let builder = localrpc::Server::builder()
        .layer(Gate {
            seen: seen.clone(),
            last_peer: last_peer.clone(),
        })
        .layer(tower::limit::ConcurrencyLimitLayer::new(64))
        .grace_period(Duration::from_secs(5))
        .on_connection_error(|error, peer| {
            if let Error::HandshakeRefused { reason, .. } = error {
                let pid = peer.and_then(|p| p.pid());
                report(format!("REFUSED {reason:?} {}", show(pid)));
            }
        });
    let calc = Calc {
        seen_by_layer: seen,
        last_peer_in_layer: last_peer,
    };
    match role.as_str() {
        "calc-server-threads" => {
            let name = args[0].clone();
            std::thread::spawn(move || {
                let served = builder.serve_blocking(name.as_str(), CalculatorServer::new(calc));
                panic!("serve_blocking returned: {served:?}");
            });
            // Bound once a connection gets through.
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while localrpc::ipc::blocking::LocalStream::connect(args[0].as_str()).is_err() {
                assert!(std::time::Instant::now() < deadline, "never bound");
                std::thread::sleep(Duration::from_millis(10));
            }
            report(format!("BOUND {}", args[0]));
            std::thread::park();
        }
        "calc-server" => rt().block_on(async {
            let server = builder.bind(args[0].as_str()).unwrap();
            // The name a client reaches this server at: for TCP, the port the OS picked.
            let reach = match server.endpoint() {
                Endpoint::Tcp(addr) => format!("tcp:{addr}"),
                _ => args[0].clone(),
            };
            report(format!("BOUND {reach}"));
            // Closing our stdin asks for a graceful shutdown.
            let stop = async {
                use tokio::io::AsyncReadExt;
                let _ = tokio::io::stdin().read(&mut [0u8; 1]).await;
            };
            server
                .serve_with_shutdown(CalculatorServer::new(calc), stop)
                .await
                .unwrap();
            report("STOPPED");
        }),
        "calc-client-mark" => rt().block_on(async {
            let calc = CalculatorClient::connect(args[0].as_str()).await.unwrap();
            report("CONNECTED");
            let _ = calc.mark(args[1].parse().unwrap(), args[2].clone()).await;
            report("MARK-RETURNED");
        }),
        other => panic!("unknown role {other}"),
    }
}

/// The transports the contract tests run over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// A portable name: a Unix socket file or a Windows named pipe.
    Local,
    /// The same, served by `ServerBuilder::serve_blocking`: a thread per connection.
    Threads,
    /// TCP on the loopback interface, port picked by the OS.
    #[cfg(feature = "tcp")]
    Tcp,
}

/// Runs each contract test over every transport, as `local::<test>` and `tcp::<test>`.
macro_rules! over_every_transport {
    ($($test:ident),+ $(,)?) => {
        mod local {
            $(#[test]
            fn $test() {
                super::$test(super::Transport::Local)
            })+
        }
        #[cfg(feature = "tcp")]
        mod tcp {
            $(#[test]
            fn $test() {
                super::$test(super::Transport::Tcp)
            })+
        }
    };
}

/// Runs each contract test against a server with a thread per connection, as
/// `threads::<test>`.
macro_rules! with_threads {
    ($($test:ident),+ $(,)?) => {
        mod threads {
            $(#[test]
            fn $test() {
                super::$test(super::Transport::Threads)
            })+
        }
    };
}

with_threads! {
    the_contract,
    slow_calls_do_not_delay_fast_ones,
    deadline_exceeded_stops_the_handler,
    dropping_a_call_cancels_it_on_the_server,
    server_killed_mid_call_fails_in_flight_calls,
    client_killed_mid_call_drops_the_handler,
    method_table_mismatch_is_refused_at_connect,
    bad_calls_get_typed_errors_and_the_connection_survives,
    handlers_see_peer_deadline_trace_and_metadata,
    tower_layers_run_on_both_sides,
    reconnect_policy_reaches_a_restarted_server,
    oversize_requests_are_refused_before_sending,
}

over_every_transport! {
    the_contract,
    slow_calls_do_not_delay_fast_ones,
    deadline_exceeded_stops_the_handler,
    dropping_a_call_cancels_it_on_the_server,
    server_killed_mid_call_fails_in_flight_calls,
    client_killed_mid_call_drops_the_handler,
    method_table_mismatch_is_refused_at_connect,
    bad_calls_get_typed_errors_and_the_connection_survives,
    handlers_see_peer_deadline_trace_and_metadata,
    tower_layers_run_on_both_sides,
    graceful_shutdown_drains_calls_in_flight,
    reconnect_policy_reaches_a_restarted_server,
    oversize_requests_are_refused_before_sending,
}

/// Starts a calc server in a child process on a fresh endpoint of `transport`; returns it and
/// the name a client reaches it at.
fn start_server(transport: Transport, tag: &str) -> (ChildProc, String) {
    match transport {
        Transport::Local | Transport::Threads => start_server_at(transport, &unique(tag)),
        #[cfg(feature = "tcp")]
        Transport::Tcp => start_server_at(transport, "tcp:127.0.0.1:0"),
    }
}

/// Starts a calc server for `transport` bound to `name`; returns it and the name a client
/// reaches it at.
fn start_server_at(transport: Transport, name: &str) -> (ChildProc, String) {
    let role = match transport {
        Transport::Threads => "calc-server-threads",
        _ => "calc-server",
    };
    let server = ChildProc::spawn_with(role, &[name], |cmd| {
        cmd.stdin(std::process::Stdio::piped());
    });
    let reach = server.expect("BOUND");
    (server, reach)
}

/// The pid a server sees for a call from this process: none over TCP.
fn expected_pid(transport: Transport) -> Option<u32> {
    match transport {
        Transport::Local | Transport::Threads => Some(std::process::id()),
        #[cfg(feature = "tcp")]
        Transport::Tcp => None,
    }
}

/// A pid as the server reports it, `-` for none.
fn show(pid: Option<u32>) -> String {
    pid.map_or_else(|| "-".to_owned(), |pid| pid.to_string())
}

fn marker(dir: &TempDir, tag: &str) -> PathBuf {
    dir.0.join(tag)
}

fn exists(path: &Path) -> bool {
    path.exists()
}

fn the_contract(transport: Transport) {
    let _wd = Watchdog::arm("the_contract");
    let (_server, name) = start_server(transport, "calc");

    rt().block_on(async {
        let calc = CalculatorClient::connect(name.as_str()).await.unwrap();
        let sum: i64 = calc.add(1, 2).await.unwrap();
        assert_eq!(sum, 3);
        let q: Result<i64, DivByZero> = calc.div(7, 2).await.unwrap();
        assert_eq!(q, Ok(3));
        assert_eq!(calc.div(1, 0).await.unwrap(), Err(DivByZero));
        // Clones share the connection.
        let other = calc.clone();
        assert_eq!(other.slow(1).await.unwrap(), 1);
        // A byte payload large enough to travel in its own buffer (vectored write).
        let data: Vec<u8> = (0..300 * 1024).map(|i| (i % 251) as u8).collect();
        let back = calc.reverse(Blob::from(data.clone())).await.unwrap();
        assert!(back.iter().eq(data.iter().rev()));
    });
}

fn slow_calls_do_not_delay_fast_ones(transport: Transport) {
    let _wd = Watchdog::arm("slow_calls_do_not_delay_fast_ones");
    let (_server, name) = start_server(transport, "mix");

    rt().block_on(async {
        let calc = CalculatorClient::connect(name.as_str()).await.unwrap();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..64u64 {
            let (calc, order) = (calc.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                if i % 2 == 0 {
                    assert_eq!(calc.slow(400).await.unwrap(), 400);
                    order.lock().unwrap().push("slow");
                } else {
                    assert_eq!(calc.add(i as i64, 1).await.unwrap(), i as i64 + 1);
                    order.lock().unwrap().push("fast");
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap();
        assert_eq!(order.len(), 64);
        assert!(
            order[..32].iter().all(|&k| k == "fast"),
            "all 32 fast calls finish before any slow one: {order:?}"
        );
    });
}

fn deadline_exceeded_stops_the_handler(transport: Transport) {
    let _wd = Watchdog::arm("deadline_exceeded_stops_the_handler");
    let (_server, name) = start_server(transport, "deadline");
    let dir = TempDir::new("deadline");
    rt().block_on(async {
        let calc = CalculatorClient::connect(name.as_str()).await.unwrap();
        let stopped = marker(&dir, "stopped");
        let err = calc
            .clone()
            .with_timeout(Duration::from_millis(100))
            .mark(600, stopped.display().to_string())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::DeadlineExceeded), "{err}");
        // Positive control: the same call with time to spare leaves its mark.
        let done = marker(&dir, "done");
        assert!(calc.mark(600, done.display().to_string()).await.unwrap());
        assert!(exists(&done));
        // By now the stopped call's handler would have written its file long ago.
        assert!(
            !exists(&stopped),
            "the handler past its deadline was dropped on the server"
        );
        // The connection is still good.
        assert_eq!(calc.add(2, 2).await.unwrap(), 4);

        // A handler that never runs out of work uses up its task's coop budget on every
        // poll; its deadline must fire all the same. The client gives up at its own
        // deadline without a cancel, so only the server's timer can drop the handler.
        let dropped = marker(&dir, "spin");
        let err = calc
            .clone()
            .with_timeout(Duration::from_millis(200))
            .spin(dropped.display().to_string())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::DeadlineExceeded), "{err}");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !exists(&dropped) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            exists(&dropped),
            "a busy handler past its deadline was dropped on the server"
        );
        assert_eq!(calc.add(3, 3).await.unwrap(), 6);
    });
}

fn dropping_a_call_cancels_it_on_the_server(transport: Transport) {
    let _wd = Watchdog::arm("dropping_a_call_cancels_it_on_the_server");
    let (_server, name) = start_server(transport, "cancel");
    let dir = TempDir::new("cancel");
    rt().block_on(async {
        let calc = CalculatorClient::connect(name.as_str()).await.unwrap();
        let dropped = marker(&dir, "dropped");
        let call = {
            let (calc, path) = (calc.clone(), dropped.display().to_string());
            tokio::spawn(async move { calc.mark(600, path).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        call.abort(); // drops the call future
        let done = marker(&dir, "done");
        assert!(calc.mark(800, done.display().to_string()).await.unwrap());
        assert!(
            !exists(&dropped),
            "the cancelled handler was dropped on the server"
        );
    });
}

fn server_killed_mid_call_fails_in_flight_calls(transport: Transport) {
    let _wd = Watchdog::arm("server_killed_mid_call_fails_in_flight_calls");
    let (mut server, name) = start_server(transport, "kill");

    rt().block_on(async {
        let calc = CalculatorClient::connect(name.as_str()).await.unwrap();
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let calc = calc.clone();
                tokio::spawn(async move { calc.slow(60_000).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.kill();
        for call in calls {
            let outcome = tokio::time::timeout(Duration::from_secs(10), call)
                .await
                .expect("in-flight calls fail promptly, not after their own minute")
                .unwrap();
            assert!(
                matches!(outcome, Err(Error::ConnectionLost { .. })),
                "{outcome:?}"
            );
        }
        // Later calls fail fast too.
        let later = calc.add(1, 1).await;
        assert!(
            matches!(later, Err(Error::ConnectionLost { .. })),
            "{later:?}"
        );
    });
}

fn client_killed_mid_call_drops_the_handler(transport: Transport) {
    let _wd = Watchdog::arm("client_killed_mid_call_drops_the_handler");
    let (_server, name) = start_server(transport, "ckill");
    let dir = TempDir::new("ckill");
    let orphan = marker(&dir, "orphan");
    let mut client = ChildProc::spawn(
        "calc-client-mark",
        &[&name, "1000", &orphan.display().to_string()],
    );
    client.expect("CONNECTED");
    std::thread::sleep(Duration::from_millis(200));
    client.kill();
    rt().block_on(async {
        // A call that outlives the orphan's sleep, as a clock.
        let calc = CalculatorClient::connect(name.as_str()).await.unwrap();
        let done = marker(&dir, "done");
        assert!(calc.mark(1500, done.display().to_string()).await.unwrap());
    });
    assert!(!exists(&orphan), "the dead client's handler was dropped");
}

fn method_table_mismatch_is_refused_at_connect(transport: Transport) {
    let _wd = Watchdog::arm("method_table_mismatch_is_refused_at_connect");
    let (server, name) = start_server(transport, "v2");

    rt().block_on(async {
        // connect() does not wait for the verdict (the first call follows the hello without a
        // round trip of its own); the handshake and every call report the typed refusal.
        let old = v2::CalculatorClient::connect(name.as_str()).await.unwrap();
        for outcome in [
            old.get_ref().handshake().await.map(|_| 0),
            old.add(1, 2, 3).await,
        ] {
            match outcome {
                Err(Error::HandshakeRefused { reason, message }) => {
                    assert_eq!(reason, RefuseReason::MethodTable);
                    assert!(message.contains("method table"), "{message}");
                }
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
        // The server saw the same typed refusal, from this process.
        assert_eq!(
            server.line(),
            format!("REFUSED MethodTable {}", show(expected_pid(transport)))
        );
        // The server goes on serving matching clients.
        let calc = CalculatorClient::connect(name.as_str()).await.unwrap();
        calc.get_ref().handshake().await.unwrap();
        assert_eq!(calc.add(1, 1).await.unwrap(), 2);
    });
}

fn bad_calls_get_typed_errors_and_the_connection_survives(transport: Transport) {
    let _wd = Watchdog::arm("bad_calls_get_typed_errors_and_the_connection_survives");
    let (_server, name) = start_server(transport, "bad");

    rt().block_on(async {
        let client = Client::connect(name.as_str(), CalculatorClient::<Client>::INFO)
            .await
            .unwrap();
        let info = CalculatorClient::<Client>::INFO;
        let calc = CalculatorClient::new(client.clone());

        let unknown = client
            .request(CallRequest::new(info, 99, bytes::Bytes::new()))
            .await;
        assert!(
            matches!(unknown, Err(Error::UnknownMethod { .. })),
            "{unknown:?}"
        );
        assert_eq!(calc.add(1, 2).await.unwrap(), 3);

        let garbage = client
            .request(CallRequest::new(
                info,
                0,
                bytes::Bytes::from_static(&[0xff, 0xff, 0xff]),
            ))
            .await;
        assert!(
            matches!(garbage, Err(Error::BadRequest { .. })),
            "{garbage:?}"
        );
        assert_eq!(calc.add(3, 4).await.unwrap(), 7);

        match calc.boom().await {
            Err(Error::ServerPanicked { message }) => assert!(message.contains("boom on purpose")),
            other => panic!("expected ServerPanicked, got {other:?}"),
        }
        assert_eq!(calc.add(5, 6).await.unwrap(), 11);
    });
}

fn handlers_see_peer_deadline_trace_and_metadata(transport: Transport) {
    let _wd = Watchdog::arm("handlers_see_peer_deadline_trace_and_metadata");
    let (_server, name) = start_server(transport, "ctx");

    rt().block_on(async {
        let calc = CalculatorClient::connect(name.as_str()).await.unwrap();
        let (pid, addr, trace, remaining, tenant) = calc
            .clone()
            .with_timeout(Duration::from_secs(30))
            .whoami()
            .await
            .unwrap();
        // A local socket says which process calls; TCP only where from.
        assert_eq!(pid, expected_pid(transport));
        match transport {
            Transport::Local | Transport::Threads => assert_eq!(addr, None),
            #[cfg(feature = "tcp")]
            Transport::Tcp => {
                let addr = addr.expect("a TCP caller has an address");
                assert!(addr.ip().is_loopback(), "{addr}");
            }
        }
        // A server layer sees the same in its `ServerRequest`.
        assert_eq!(calc.layer_saw().await.unwrap(), (pid, addr));
        assert_ne!(trace, 0);
        let remaining = remaining.expect("the deadline travels with the call");
        assert!(remaining > 1_000 && remaining <= 30_000, "{remaining}");
        assert_eq!(tenant, None);

        // A handler's own calls inherit the remaining deadline and the trace id.
        let (inner_trace, inner_remaining) = calc
            .clone()
            .with_timeout(Duration::from_secs(20))
            .relay(name.clone())
            .await
            .unwrap()
            .unwrap();
        assert_ne!(inner_trace, 0);
        let inner_remaining = inner_remaining.expect("inherited deadline");
        assert!(inner_remaining <= 20_000, "{inner_remaining}");
    });
}

fn tower_layers_run_on_both_sides(transport: Transport) {
    let _wd = Watchdog::arm("tower_layers_run_on_both_sides");
    let (_server, name) = start_server(transport, "layers");

    rt().block_on(async {
        let client = Client::connect(name.as_str(), CalculatorClient::<Client>::INFO)
            .await
            .unwrap();
        // A client-side layer that tags every call with metadata.
        let tagged = tower::ServiceBuilder::new()
            .map_request(|mut req: CallRequest| {
                req.metadata_mut().insert("tenant", "blocked");
                req
            })
            .service(client.clone());
        let blocked = CalculatorClient::new(tagged);
        match blocked.add(1, 2).await {
            Err(Error::Refused { message }) => assert!(message.contains("add"), "{message}"),
            other => panic!("the server layer refuses the tagged client: {other:?}"),
        }
        let plain = CalculatorClient::new(client);
        let before = plain.layer_count().await.unwrap();
        assert_eq!(plain.add(1, 2).await.unwrap(), 3);
        let after = plain.layer_count().await.unwrap();
        assert_eq!(
            after,
            before + 2,
            "the server layer saw add and layer_count"
        );
    });
}

fn graceful_shutdown_drains_calls_in_flight(transport: Transport) {
    let _wd = Watchdog::arm("graceful_shutdown_drains_calls_in_flight");
    let (mut server, name) = start_server(transport, "drain");

    rt().block_on(async {
        let calc = CalculatorClient::connect(name.as_str()).await.unwrap();
        let in_flight = {
            let calc = calc.clone();
            tokio::spawn(async move { calc.slow(700).await })
        };
        tokio::time::sleep(Duration::from_millis(150)).await;
        drop(server.child.stdin.take()); // ask for a graceful shutdown
        assert_eq!(
            in_flight.await.unwrap().unwrap(),
            700,
            "the call in flight completes"
        );
        let later = calc.add(1, 1).await;
        assert!(
            matches!(
                later,
                Err(Error::ShuttingDown | Error::ConnectionLost { .. })
            ),
            "{later:?}"
        );
    });
    assert_stopped(&mut server);
}

/// Checks that `server`, asked to stop, reported it and exited with success.
fn assert_stopped(server: &mut ChildProc) {
    assert_eq!(server.line(), "STOPPED");
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status}");
}

fn reconnect_policy_reaches_a_restarted_server(transport: Transport) {
    let _wd = Watchdog::arm("reconnect_policy_reaches_a_restarted_server");
    let (mut server, name) = start_server(transport, "redial");

    rt().block_on(async {
        let client = Client::builder(CalculatorClient::<Client>::INFO)
            .reconnect(
                localrpc::ReconnectPolicy::default()
                    .initial_backoff(Duration::from_millis(20))
                    .max_attempts(20),
            )
            .connect(name.as_str())
            .await
            .unwrap();
        let calc = CalculatorClient::new(client);
        assert_eq!(calc.add(1, 1).await.unwrap(), 2);
        end_server(transport, &mut server);
        // Give the client's reader time to see the connection end.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (_restarted, _) = start_server_at(transport, &name);
        // Called on a thread outside the runtime: dialing again and backing off still work.
        let on_a_thread = calc.clone();
        let sum = std::thread::spawn(move || block_on_outside(on_a_thread.add(2, 2)));
        assert_eq!(sum.join().unwrap().unwrap(), 4, "the call reconnected");
        // A fresh server: its layer has seen only the two calls since the restart.
        assert_eq!(calc.layer_count().await.unwrap(), 2);
    });
}

/// Ends `server` so that its clients see their connections end: killed, except over TCP on
/// Windows. Wine now and then keeps a killed process's TCP socket open for good, so the client would
/// never learn that its connection is gone; a server that stops closes its sockets itself.
fn end_server(transport: Transport, server: &mut ChildProc) {
    #[cfg(feature = "tcp")]
    if transport == Transport::Tcp && cfg!(windows) {
        drop(server.child.stdin.take()); // ask for a graceful shutdown
        assert_stopped(server);
        return;
    }
    let _ = transport;
    server.kill();
}

fn oversize_requests_are_refused_before_sending(transport: Transport) {
    let _wd = Watchdog::arm("oversize_requests_are_refused_before_sending");
    let (_server, name) = start_server(transport, "big");

    rt().block_on(async {
        let client = Client::builder(CalculatorClient::<Client>::INFO)
            .max_frame_len(1024)
            .connect(name.as_str())
            .await
            .unwrap();
        let calc = CalculatorClient::new(client);
        match calc.relay("x".repeat(4096)).await {
            Err(Error::FrameTooLarge { len, max }) => {
                assert!(len > 4096, "{len}");
                assert_eq!(max, 1024);
            }
            other => panic!("expected FrameTooLarge, got {other:?}"),
        }
        assert_eq!(
            calc.add(1, 2).await.unwrap(),
            3,
            "the connection is unharmed"
        );
    });
}
