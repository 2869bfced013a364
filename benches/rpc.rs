//! localrpc against raw local sockets, every case across two processes.
//!
//! The bench binary re-executes itself as the server (`LOCALRPC_BENCH_ROLE`), so client and
//! server are separate processes talking over a real socket. After criterion's own report,
//! a summary prints medians and each localrpc figure as a ratio to raw Tokio, measured in the
//! same run. See benches/README.md for the commands and recorded figures.
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
#[path = "shared/raw.rs"]
mod raw;

use localrpc::codec::Blob;
use localrpc::ipc;
use serde_bytes::ByteBuf;

/// The echo service under test.
#[localrpc::service]
trait Echo {
    async fn echo(&self, data: ByteBuf) -> ByteBuf;
}

struct EchoImpl;

impl Echo for EchoImpl {
    async fn echo(&self, data: ByteBuf) -> ByteBuf {
        data
    }
}

/// The same echo with localrpc's `Blob`, which decodes without a copy.
#[localrpc::service]
trait BlobEcho {
    async fn echo(&self, data: Blob) -> Blob;
}

impl BlobEcho for EchoImpl {
    async fn echo(&self, data: Blob) -> Blob {
        data
    }
}

const ROLE: &str = "LOCALRPC_BENCH_ROLE";
/// The CPU a server process is to run on, if set.
const CPU: &str = "LOCALRPC_BENCH_CPU";

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        let name = std::env::var("LOCALRPC_BENCH_NAME").unwrap();
        if let Ok(cpu) = std::env::var(CPU) {
            placement::pin(cpu.parse().unwrap());
        }
        return serve(&role, &name);
    }
    let mut c = Criterion::default().configure_from_args();
    latency(&mut c);
    throughput(&mut c);
    bulk(&mut c);
    connect(&mut c);
    c.final_summary();
    summary();
}

// ------------------------------------------------------------------------------------------
// Servers.

fn serve(role: &str, name: &str) {
    match role {
        // Not servers: clients for counting instructions per call under callgrind, with
        // `callgrind_control -d` run at each pause (see benches/README.md).
        "rpc-client" | "rpc-blocking-client" | "rpc-pipelined-client" | "raw-pipelined-client" => {
            let calls: u64 =
                std::env::var("LOCALRPC_BENCH_CALLS").map_or(20_000, |n| n.parse().unwrap());
            let payload = ByteBuf::from(vec![7u8; 16]);
            let pause = |what: &str| {
                println!("{what}");
                std::io::stdout().flush().unwrap();
                std::io::stdin().read_line(&mut String::new()).unwrap();
            };
            if role == "rpc-blocking-client" {
                let client = EchoBlockingClient::connect(name).unwrap();
                rpc_blocking_calls(&client, &payload, 1000);
                pause("warm");
                rpc_blocking_calls(&client, &payload, calls);
                pause("done");
                return;
            }
            if role == "rpc-pipelined-client" || role == "raw-pipelined-client" {
                // The throughput case: 64 calls in flight, 32 bytes each (the raw baseline
                // over 64 connections, against a `raw-tokio` server).
                // LOCALRPC_BENCH_CLIENT_RUNTIME=current-thread: the client on one thread.
                let rt = match std::env::var("LOCALRPC_BENCH_CLIENT_RUNTIME").as_deref() {
                    Ok("current-thread") => runtime(),
                    _ => tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                        .unwrap(),
                };
                let depth: usize =
                    std::env::var("LOCALRPC_BENCH_DEPTH").map_or(64, |n| n.parse().unwrap());
                if role == "raw-pipelined-client" {
                    let payload = vec![7u8; 32];
                    rt.block_on(raw::many(name, depth, &payload, 6400));
                    pause("warm");
                    rt.block_on(raw::many(name, depth, &payload, calls));
                    pause("done");
                    return;
                }
                let client = rt.block_on(EchoClient::connect(name)).unwrap();
                let payload = ByteBuf::from(vec![7u8; 32]);
                rt.block_on(rpc_pipelined(&client, &payload, depth, 6400));
                pause("warm");
                rt.block_on(rpc_pipelined(&client, &payload, depth, calls));
                pause("done");
                return;
            }
            let rt = runtime();
            let client = rt.block_on(EchoClient::connect(name)).unwrap();
            rt.block_on(rpc_calls(&client, &payload, 1000));
            pause("warm");
            rt.block_on(rpc_calls(&client, &payload, calls));
            pause("done");
        }
        "raw-std" => {
            let listener = ipc::blocking::LocalListener::bind(name).unwrap();
            ready();
            loop {
                let mut s = listener.accept().unwrap();
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    while let Ok(n) = read_frame_std(&mut s, &mut buf) {
                        write_frame_std(&mut s, &buf[..n]).unwrap();
                    }
                });
            }
        }
        // The server a synchronous program would run: a thread per connection.
        "rpc-sync" => {
            let bound = name.to_owned();
            std::thread::spawn(move || {
                localrpc::blocking::serve(bound.as_str(), EchoServer::new(EchoImpl)).unwrap()
            });
            // Ready once it answers.
            while EchoBlockingClient::connect(name)
                .and_then(|c| c.echo(ByteBuf::new()))
                .is_err()
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            ready();
            std::thread::park();
        }
        "raw-tokio" | "rpc" | "rpc-blob" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if role == "rpc" {
                    let server = localrpc::Server::builder().bind(name).unwrap();
                    ready();
                    server.serve(EchoServer::new(EchoImpl)).await.unwrap();
                } else if role == "rpc-blob" {
                    let server = localrpc::Server::builder().bind(name).unwrap();
                    ready();
                    server.serve(BlobEchoServer::new(EchoImpl)).await.unwrap();
                } else {
                    raw::serve(name, ready).await;
                }
            });
        }
        other => panic!("unknown role {other}"),
    }
}

fn ready() {
    println!("ready");
    std::io::stdout().flush().unwrap();
}

fn read_frame_std(s: &mut ipc::blocking::LocalStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let n = u32::from_le_bytes(len) as usize;
    buf.resize(n, 0);
    s.read_exact(&mut buf[..n])?;
    Ok(n)
}

fn write_frame_std(s: &mut ipc::blocking::LocalStream, data: &[u8]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(4 + data.len());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    s.write_all(&out)
}

/// A server process, killed on drop.
struct ServerProc {
    child: Child,
    name: String,
}

impl ServerProc {
    fn start(role: &str) -> ServerProc {
        Self::start_on(role, None)
    }

    /// A server process whose threads all run on `cpu`, if given.
    fn start_on(role: &str, cpu: Option<usize>) -> ServerProc {
        let name = format!("lrbench-{role}-{}-{}", std::process::id(), fastrand());
        let mut command = Command::new(std::env::current_exe().unwrap());
        if let Some(cpu) = cpu {
            command.env(CPU, cpu.to_string());
        }
        let mut child = command
            .env(ROLE, role)
            .env("LOCALRPC_BENCH_NAME", &name)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        ServerProc { child, name }
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fastrand() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

// ------------------------------------------------------------------------------------------
// Clients: each returns the time `iters` operations took.

fn raw_std_pingpong(s: &mut ipc::blocking::LocalStream, payload: &[u8], iters: u64) -> Duration {
    let mut buf = Vec::new();
    let start = Instant::now();
    for _ in 0..iters {
        write_frame_std(s, payload).unwrap();
        read_frame_std(s, &mut buf).unwrap();
    }
    start.elapsed()
}

fn rpc_blocking_calls(c: &EchoBlockingClient, payload: &ByteBuf, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let back = c.echo(payload.clone()).unwrap();
        assert_eq!(back.len(), payload.len());
    }
    start.elapsed()
}

async fn rpc_calls(c: &EchoClient, payload: &ByteBuf, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let back = c.echo(payload.clone()).await.unwrap();
        assert_eq!(back.len(), payload.len());
    }
    start.elapsed()
}

async fn blob_calls(c: &BlobEchoClient, payload: &Blob, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let back = c.echo(payload.clone()).await.unwrap();
        assert_eq!(back.len(), payload.len());
    }
    start.elapsed()
}

/// `iters` calls with `depth` in flight on one connection.
async fn rpc_pipelined(c: &EchoClient, payload: &ByteBuf, depth: usize, iters: u64) -> Duration {
    let start = Instant::now();
    let per_task = iters.div_ceil(depth as u64);
    let tasks: Vec<_> = (0..depth)
        .map(|_| {
            let (c, p) = (c.clone(), payload.clone());
            tokio::spawn(async move {
                for _ in 0..per_task {
                    c.echo(p.clone()).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

// ------------------------------------------------------------------------------------------
// Criterion groups.

fn latency(c: &mut Criterion) {
    let mut g = c.benchmark_group("latency_16B");
    let payload = vec![7u8; 16];
    let rt = runtime();
    {
        let server = ServerProc::start("raw-tokio");
        let mut s = rt.block_on(raw::connect(&server.name));
        g.bench_function("raw_tokio", |b| {
            b.iter_custom(|iters| rt.block_on(raw::pingpong(&mut s, &payload, iters)))
        });
    }
    {
        let server = ServerProc::start("raw-std");
        let mut s = ipc::blocking::LocalStream::connect(server.name.as_str()).unwrap();
        g.bench_function("raw_std", |b| {
            b.iter_custom(|iters| raw_std_pingpong(&mut s, &payload, iters))
        });
    }
    {
        let server = ServerProc::start("rpc");
        let client = rt
            .block_on(EchoClient::connect(server.name.as_str()))
            .unwrap();
        let payload = ByteBuf::from(payload.clone());
        g.bench_function("localrpc", |b| {
            b.iter_custom(|iters| rt.block_on(rpc_calls(&client, &payload, iters)))
        });
        // The blocking client, against the same async server: compare with raw_std.
        let blocking = EchoBlockingClient::connect(server.name.as_str()).unwrap();
        g.bench_function("localrpc_blocking", |b| {
            b.iter_custom(|iters| rpc_blocking_calls(&blocking, &payload, iters))
        });
    }
    {
        // Both sides synchronous programs: blocking client, server from blocking::serve.
        let server = ServerProc::start("rpc-sync");
        let blocking = EchoBlockingClient::connect(server.name.as_str()).unwrap();
        let payload = ByteBuf::from(payload.clone());
        g.bench_function("localrpc_blocking_sync_server", |b| {
            b.iter_custom(|iters| rpc_blocking_calls(&blocking, &payload, iters))
        });
    }
    g.finish();
}

fn throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("throughput_64_in_flight_32B");
    g.throughput(Throughput::Elements(1));
    let payload = vec![7u8; 32];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    {
        let server = ServerProc::start("raw-tokio");
        g.bench_function("raw_tokio_64_connections", |b| {
            b.iter_custom(|iters| rt.block_on(raw::many(&server.name, 64, &payload, iters)))
        });
    }
    {
        let server = ServerProc::start("rpc");
        let client = rt
            .block_on(EchoClient::connect(server.name.as_str()))
            .unwrap();
        let payload = ByteBuf::from(payload.clone());
        g.bench_function("localrpc_1_connection", |b| {
            b.iter_custom(|iters| rt.block_on(rpc_pipelined(&client, &payload, 64, iters)))
        });
    }
    g.finish();
}

fn bulk(c: &mut Criterion) {
    let mut g = c.benchmark_group("bulk_echo");
    g.sample_size(10);
    let rt = runtime();
    let raw = ServerProc::start("raw-tokio");
    let rpc = ServerProc::start("rpc");
    let blob_srv = ServerProc::start("rpc-blob");
    let mut s = rt.block_on(raw::connect(&raw.name));
    let client = rt.block_on(EchoClient::connect(rpc.name.as_str())).unwrap();
    let blob_client = rt
        .block_on(BlobEchoClient::connect(blob_srv.name.as_str()))
        .unwrap();
    for size in [1usize << 20, 16 << 20] {
        g.throughput(Throughput::Bytes(size as u64));
        let payload = vec![7u8; size - 64]; // leave room for the envelope under 16 MiB
        g.bench_with_input(BenchmarkId::new("raw_tokio", size), &payload, |b, p| {
            b.iter_custom(|iters| rt.block_on(raw::pingpong(&mut s, p, iters)))
        });
        let blob = Blob::from(payload.clone());
        let payload = ByteBuf::from(payload);
        g.bench_with_input(BenchmarkId::new("localrpc", size), &payload, |b, p| {
            b.iter_custom(|iters| rt.block_on(rpc_calls(&client, p, iters)))
        });
        g.bench_with_input(BenchmarkId::new("localrpc_blob", size), &blob, |b, p| {
            b.iter_custom(|iters| rt.block_on(blob_calls(&blob_client, p, iters)))
        });
    }
    g.finish();
}

fn connect(c: &mut Criterion) {
    let mut g = c.benchmark_group("connect_and_first_call");
    let rt = runtime();
    let payload = vec![7u8; 16];
    let raw = ServerProc::start("raw-tokio");
    let rpc = ServerProc::start("rpc");
    g.bench_function("raw_tokio", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut s = raw::connect(&raw.name).await;
                    raw::pingpong(&mut s, &payload, 1).await;
                }
                start.elapsed()
            })
        })
    });
    let bytes = ByteBuf::from(payload.clone());
    g.bench_function("localrpc", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let client = EchoClient::connect(rpc.name.as_str()).await.unwrap();
                    client.echo(bytes.clone()).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

// ------------------------------------------------------------------------------------------
// The summary: medians measured in this run, localrpc as a ratio to raw Tokio.

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Runs the cases in turn, `rounds` times, and gives the median of each.
/// Calls per second with 64 calls of 32 bytes in flight, driven by `rt`: raw Tokio over 64
/// connections to `raw_name`, then `client` over its one connection, taking turns (median of
/// 7 rounds each).
fn throughput_pair(
    rt: &tokio::runtime::Runtime,
    raw_name: &str,
    client: &EchoClient,
    calls: u64,
) -> [f64; 2] {
    let small = vec![7u8; 32];
    let small_bytes = ByteBuf::from(small.clone());
    interleaved_medians(
        7,
        [
            &mut || {
                calls as f64
                    / rt.block_on(raw::many(raw_name, 64, &small, calls))
                        .as_secs_f64()
            },
            &mut || {
                calls as f64
                    / rt.block_on(rpc_pipelined(client, &small_bytes, 64, calls))
                        .as_secs_f64()
            },
        ],
    )
}

fn interleaved_medians<const N: usize>(
    rounds: usize,
    mut cases: [&mut dyn FnMut() -> f64; N],
) -> [f64; N] {
    let mut results: [Vec<f64>; N] = std::array::from_fn(|_| Vec::with_capacity(rounds));
    for _ in 0..rounds {
        for (case, out) in cases.iter_mut().zip(&mut results) {
            out.push(case());
        }
    }
    results.map(median)
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize]
}

fn summary() {
    // Listing, testing and profiling (`--profile-time`) want criterion's cases only.
    if std::env::args().any(|a| a == "--list" || a == "--test" || a == "--profile-time") {
        return;
    }
    let rt = runtime();
    println!("\nsummary (this run; ratio = localrpc / raw tokio, lower is better for times)");
    // Latency: per-call samples for p50 and p99, the cases taking turns in rounds of 500
    // calls, so that the machine's slow and fast moments fall on all of them alike.
    let payload = vec![7u8; 16];
    let raw = ServerProc::start("raw-tokio");
    let mut s = rt.block_on(raw::connect(&raw.name));
    let std_srv = ServerProc::start("raw-std");
    let mut ss = ipc::blocking::LocalStream::connect(std_srv.name.as_str()).unwrap();
    let rpc = ServerProc::start("rpc");
    let client = rt.block_on(EchoClient::connect(rpc.name.as_str())).unwrap();
    let bytes = ByteBuf::from(payload.clone());
    let blocking = EchoBlockingClient::connect(rpc.name.as_str()).unwrap();
    // How much of a blocking client's gap to raw std is the Tokio server's: the raw std
    // client against the raw Tokio server (same framing).
    let mut sr = ipc::blocking::LocalStream::connect(raw.name.as_str()).unwrap();
    let sync_srv = ServerProc::start("rpc-sync");
    let sync_client = EchoBlockingClient::connect(sync_srv.name.as_str()).unwrap();
    let sync_async_client = rt
        .block_on(EchoClient::connect(sync_srv.name.as_str()))
        .unwrap();
    let mut cases: Vec<Box<dyn FnMut() -> Duration + '_>> = vec![
        Box::new(|| rt.block_on(raw::pingpong(&mut s, &payload, 1))),
        Box::new(|| raw_std_pingpong(&mut ss, &payload, 1)),
        Box::new(|| rt.block_on(rpc_calls(&client, &bytes, 1))),
        Box::new(|| rpc_blocking_calls(&blocking, &bytes, 1)),
        Box::new(|| raw_std_pingpong(&mut sr, &payload, 1)),
        Box::new(|| rpc_blocking_calls(&sync_client, &bytes, 1)),
        Box::new(|| rt.block_on(rpc_calls(&sync_async_client, &bytes, 1))),
    ];
    let mut samples = vec![Vec::with_capacity(20_000); cases.len()];
    for _round in 0..40 {
        for (case, out) in cases.iter_mut().zip(&mut samples) {
            out.extend((0..500).map(|_| case()));
        }
    }
    drop(cases);
    let [
        raw_samples,
        std_samples,
        rpc_samples,
        blocking_samples,
        std_tokio_samples,
        sync_samples,
        sync_async_samples,
    ] = &mut samples[..]
    else {
        unreachable!()
    };
    let (r50, r99) = (percentile(raw_samples, 0.5), percentile(raw_samples, 0.99));
    let (s50, s99) = (percentile(std_samples, 0.5), percentile(std_samples, 0.99));
    let (l50, l99) = (percentile(rpc_samples, 0.5), percentile(rpc_samples, 0.99));
    println!("latency 16 B   raw tokio p50 {r50:>9.1?} p99 {r99:>9.1?}");
    println!("latency 16 B   raw std   p50 {s50:>9.1?} p99 {s99:>9.1?}");
    println!(
        "latency 16 B   localrpc  p50 {l50:>9.1?} p99 {l99:>9.1?}   ratio p50 {:.2}",
        l50.as_secs_f64() / r50.as_secs_f64()
    );
    let (b50, b99) = (
        percentile(blocking_samples, 0.5),
        percentile(blocking_samples, 0.99),
    );
    println!(
        "latency 16 B   localrpc blocking client p50 {b50:>9.1?} p99 {b99:>9.1?}   ratio p50 to raw std {:.2}",
        b50.as_secs_f64() / s50.as_secs_f64()
    );
    let t50 = percentile(std_tokio_samples, 0.5);
    println!(
        "latency 16 B   raw std client, raw tokio server p50 {t50:>9.1?}   ratio p50 to raw std {:.2}",
        t50.as_secs_f64() / s50.as_secs_f64()
    );
    let (y50, y99) = (
        percentile(sync_samples, 0.5),
        percentile(sync_samples, 0.99),
    );
    println!(
        "latency 16 B   localrpc blocking client, blocking::serve server p50 {y50:>9.1?} p99 {y99:>9.1?}   ratio p50 to raw std {:.2}",
        y50.as_secs_f64() / s50.as_secs_f64()
    );
    let (a50, a99) = (
        percentile(sync_async_samples, 0.5),
        percentile(sync_async_samples, 0.99),
    );
    println!(
        "latency 16 B   localrpc async client, blocking::serve server p50 {a50:>9.1?} p99 {a99:>9.1?}   ratio p50 to raw tokio {:.2}",
        a50.as_secs_f64() / r50.as_secs_f64()
    );
    // The other cases also take turns, raw and localrpc round by round, for the same reason.
    // Throughput: calls per second, median of 7 rounds.
    let mt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let calls = 50_000u64;
    let client_mt = mt.block_on(EchoClient::connect(rpc.name.as_str())).unwrap();
    let [raw_tp, rpc_tp] = throughput_pair(&mt, &raw.name, &client_mt, calls);
    println!("throughput     raw tokio (64 connections) {raw_tp:>10.0} calls/s");
    println!(
        "throughput     localrpc (1 connection)    {rpc_tp:>10.0} calls/s   ratio {:.2}",
        rpc_tp / raw_tp
    );
    // The same from a current-thread client runtime: the callers, the connection's reader and
    // the raw connections' tasks share one thread, so no wake-up crosses threads.
    let client_ct = rt.block_on(EchoClient::connect(rpc.name.as_str())).unwrap();
    let [raw_ct, rpc_ct] = throughput_pair(&rt, &raw.name, &client_ct, calls);
    println!(
        "throughput     current-thread client: raw tokio {raw_ct:>10.0} calls/s   localrpc {rpc_ct:>10.0} calls/s   ratio {:.2}",
        rpc_ct / raw_ct
    );
    drop(client_ct);
    // The same with fixed placement (see `placement`): the client's runtime on one CPU, the
    // servers on the other.
    let cpus = placement::two_cpus();
    let server_cpu = cpus.map(|(_, server)| server);
    if let Some((client_cpu, _)) = cpus {
        let raw_p = ServerProc::start_on("raw-tokio", server_cpu);
        let rpc_p = ServerProc::start_on("rpc", server_cpu);
        // Threads inherit the CPU set of the thread that starts them.
        let placed = placement::pinned(client_cpu, || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
        });
        let client_p = placed
            .block_on(EchoClient::connect(rpc_p.name.as_str()))
            .unwrap();
        let [raw_tp, rpc_tp] = throughput_pair(&placed, &raw_p.name, &client_p, calls);
        println!(
            "throughput     placed: raw tokio {raw_tp:>10.0} calls/s   localrpc {rpc_tp:>10.0} calls/s   ratio {:.2}",
            rpc_tp / raw_tp
        );
    }
    // Bulk: MiB/s per round of 16 echoes of 1 MiB or 3 of 16 MiB, median of 9 rounds; on
    // two CPUs, the client on one and the servers on the other.
    let raw_b = ServerProc::start_on("raw-tokio", server_cpu);
    let rpc_b = ServerProc::start_on("rpc", server_cpu);
    let blob_b = ServerProc::start_on("rpc-blob", server_cpu);
    let mut raw_s = rt.block_on(raw::connect(&raw_b.name));
    let rpc_client = rt
        .block_on(EchoClient::connect(rpc_b.name.as_str()))
        .unwrap();
    let blob_client = rt
        .block_on(BlobEchoClient::connect(blob_b.name.as_str()))
        .unwrap();
    let mut bulk = || {
        for size in [1usize << 20, 16 << 20] {
            let p = vec![7u8; size - 64];
            let pb = ByteBuf::from(p.clone());
            let blob = Blob::from(p.clone());
            let echoes = (16usize << 20).div_ceil(size).max(3) as u64;
            let mib_s =
                |d: Duration| (echoes * size as u64) as f64 / (1 << 20) as f64 / d.as_secs_f64();
            let [raw_mb, rpc_mb, blob_mb] = interleaved_medians(
                9,
                [
                    &mut || mib_s(rt.block_on(raw::pingpong(&mut raw_s, &p, echoes))),
                    &mut || mib_s(rt.block_on(rpc_calls(&rpc_client, &pb, echoes))),
                    &mut || mib_s(rt.block_on(blob_calls(&blob_client, &blob, echoes))),
                ],
            );
            println!(
                "bulk {:>2} MiB    raw tokio {raw_mb:>8.0} MiB/s   localrpc {rpc_mb:>8.0} MiB/s   ratio {:.2}   with Blob {blob_mb:>8.0} MiB/s   ratio {:.2}",
                size >> 20,
                rpc_mb / raw_mb,
                blob_mb / raw_mb
            );
        }
    };
    match cpus {
        Some((client_cpu, _)) => placement::pinned(client_cpu, bulk),
        None => bulk(),
    }
    drop((raw_s, rpc_client, blob_client, raw_b, rpc_b, blob_b));
    // Connect + first call, median of 300 each.
    let [raw_c, rpc_c] = interleaved_medians(
        300,
        [
            &mut || {
                rt.block_on(async {
                    let t = Instant::now();
                    let mut s = raw::connect(&raw.name).await;
                    raw::pingpong(&mut s, &payload, 1).await;
                    t.elapsed().as_secs_f64()
                })
            },
            &mut || {
                rt.block_on(async {
                    let t = Instant::now();
                    let c = EchoClient::connect(rpc.name.as_str()).await.unwrap();
                    c.echo(bytes.clone()).await.unwrap();
                    t.elapsed().as_secs_f64()
                })
            },
        ],
    );
    println!(
        "connect+call   raw tokio {:>8.1} µs   localrpc {:>8.1} µs   ratio {:.2}",
        raw_c * 1e6,
        rpc_c * 1e6,
        rpc_c / raw_c
    );
    idle_memory(&mt);
}

/// Where the processes of a case run. On two CPUs, the scheduler places a client and its
/// server on the same CPU in some runs and on two in others, and a bulk echo's speed depends
/// on which; fixing the placement (client on one CPU, server on the other) makes runs
/// comparable. Linux only; elsewhere, and when this process may use one CPU only (as under
/// `taskset -c 0`), nothing is moved.
mod placement {
    /// Two CPUs this process may use: one for the client, one for the servers.
    #[cfg(target_os = "linux")]
    pub(crate) fn two_cpus() -> Option<(usize, usize)> {
        let mask = current()?;
        let mut cpus = (0..libc::CPU_SETSIZE as usize).filter(|&c| {
            // SAFETY: `c` is below `CPU_SETSIZE`, within the set.
            unsafe { libc::CPU_ISSET(c, &mask) }
        });
        Some((cpus.next()?, cpus.next()?))
    }

    #[cfg(target_os = "linux")]
    fn current() -> Option<libc::cpu_set_t> {
        // SAFETY: `mask` is a plain bit set, written by the kernel for this thread.
        unsafe {
            let mut mask: libc::cpu_set_t = std::mem::zeroed();
            let size = std::mem::size_of::<libc::cpu_set_t>();
            (libc::sched_getaffinity(0, size, &mut mask) == 0).then_some(mask)
        }
    }

    /// Runs the calling thread, and the threads it starts from now on, on `cpu` only.
    #[cfg(target_os = "linux")]
    pub(crate) fn pin(cpu: usize) {
        // SAFETY: as above; the kernel reads the set.
        unsafe {
            let mut mask: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut mask);
            let size = std::mem::size_of::<libc::cpu_set_t>();
            assert_eq!(
                libc::sched_setaffinity(0, size, &mask),
                0,
                "cannot pin to CPU {cpu}"
            );
        }
    }

    /// Runs `f` on the calling thread with it pinned to `cpu`, then lets it run anywhere
    /// it could before.
    #[cfg(target_os = "linux")]
    pub(crate) fn pinned<R>(cpu: usize, f: impl FnOnce() -> R) -> R {
        let before = current().expect("the thread's CPU set");
        pin(cpu);
        let r = f();
        // SAFETY: as above.
        unsafe {
            let size = std::mem::size_of::<libc::cpu_set_t>();
            libc::sched_setaffinity(0, size, &before);
        }
        r
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn two_cpus() -> Option<(usize, usize)> {
        None
    }

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn pin(_cpu: usize) {}

    #[cfg(not(target_os = "linux"))]
    pub(crate) fn pinned<R>(_cpu: usize, f: impl FnOnce() -> R) -> R {
        f()
    }
}

/// Resident memory of a server process per idle client connection.
#[cfg(target_os = "linux")]
fn idle_memory(rt: &tokio::runtime::Runtime) {
    fn rss_kib(pid: u32) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
    const CONNECTIONS: usize = 1000;
    let server = ServerProc::start("rpc");
    let pid = server.child.id();
    // Warm the server up with one connection, so that what follows is per connection.
    let warm = rt
        .block_on(EchoClient::connect(server.name.as_str()))
        .unwrap();
    rt.block_on(warm.echo(ByteBuf::from(vec![1u8; 16])))
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_kib(pid);
    let clients: Vec<_> = rt.block_on(async {
        let mut clients = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            let c = EchoClient::connect(server.name.as_str()).await.unwrap();
            c.get_ref().handshake().await.unwrap();
            clients.push(c);
        }
        clients
    });
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(pid);
    println!(
        "idle memory    {CONNECTIONS} connections: server RSS {before} KiB -> {after} KiB, {:.1} KiB per connection",
        (after.saturating_sub(before)) as f64 / CONNECTIONS as f64
    );
    drop(clients);
}

#[cfg(not(target_os = "linux"))]
fn idle_memory(_rt: &tokio::runtime::Runtime) {}
