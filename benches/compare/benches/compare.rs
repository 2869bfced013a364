//! localrpc against tarpc and tonic, every case across two processes over a Unix socket, with
//! raw Tokio ping-pong as the baseline.
//!
//! The bench binary re-executes itself as the server (see `compare/server.rs`), so client and
//! server are separate processes, as in `benches/rpc.rs`. After criterion's report, a summary
//! measures every case again and prints each figure with its ratio to raw Tokio from the same
//! run. A filter argument (`cargo bench -p localrpc-compare -- latency`) narrows both.
use std::path::Path;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use tokio::runtime::Runtime;

#[path = "compare/contender.rs"]
mod contender;
#[path = "compare/raw.rs"]
mod raw;
#[path = "compare/server.rs"]
mod server;
#[path = "../../shared/raw.rs"]
mod shared_raw;
#[path = "compare/streaming.rs"]
mod streaming;
#[path = "compare/summary.rs"]
mod summary;
#[path = "compare/with_localrpc.rs"]
mod with_localrpc;
#[path = "compare/with_tarpc.rs"]
mod with_tarpc;
#[path = "compare/with_tonic.rs"]
mod with_tonic;

use contender::{Contender, calls, connect_calls, pipelined};
use server::ServerProc;
use with_localrpc::Localrpc;
use with_tarpc::Tarpc;
use with_tonic::Tonic;

/// The server role of the raw baseline.
const RAW: &str = "raw_tokio";
/// Criterion group names, apart from those of `benches/rpc.rs` so that criterion's saved
/// baselines do not mix; the summary uses them to honour a filter.
const LATENCY: &str = "compare_latency_16B";
const THROUGHPUT: &str = "compare_throughput_64_in_flight_32B";
const BULK: &str = "compare_bulk_echo";
const CONNECT: &str = "compare_connect_and_first_call";
/// Calls in flight for the throughput case.
const DEPTH: usize = 64;
/// Bulk echo sizes. Payloads are `ENVELOPE` bytes short of them for every contender, so that
/// localrpc's envelope fits its default 16 MiB frame limit.
const BULK_SIZES: [usize; 2] = [1 << 20, 16 << 20];
const ENVELOPE: usize = 64;

fn main() {
    if let Some((role, path)) = server::role() {
        return serve(&role, &path);
    }
    let mut c = Criterion::default().configure_from_args();
    latency(&mut c);
    throughput(&mut c);
    bulk(&mut c);
    connect(&mut c);
    streaming::bench(&mut c);
    c.final_summary();
    summary::run();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--list" || a == "--test") {
        streaming::summary(summary::filter(&args).as_deref());
    }
}

/// Server process: runs the server of `role` until killed.
fn serve(role: &str, path: &Path) {
    if let Some(contender) = role.strip_prefix(streaming::CLIENT_ROLE) {
        return streaming::client_role(contender, path);
    }
    server::server_runtime().block_on(async {
        match role {
            RAW => raw::serve(path).await,
            Localrpc::NAME => Localrpc::serve(path).await,
            Tarpc::NAME => Tarpc::serve(path).await,
            Tonic::NAME => Tonic::serve(path).await,
            other => panic!("unknown role {other}"),
        }
    });
}

/// The client runtime for sequential cases.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The client runtime for calls in flight and for streams: two workers, like the servers,
/// unless `COMPARE_CLIENT_RUNTIME=current-thread` asks for one thread for both (callers and
/// connections then wake each other without crossing threads).
fn multi_runtime() -> Runtime {
    match std::env::var("COMPARE_CLIENT_RUNTIME").as_deref() {
        Ok("current-thread") => runtime(),
        Ok(other) if !other.is_empty() => panic!("COMPARE_CLIENT_RUNTIME: unknown {other:?}"),
        _ => server::server_runtime(),
    }
}

// ------------------------------------------------------------------------------------------
// Criterion groups: raw Tokio first, then each contender against its own server process.

type Group<'a> = BenchmarkGroup<'a, WallTime>;

fn latency(c: &mut Criterion) {
    fn one<C: Contender>(g: &mut Group<'_>, rt: &Runtime, payload: &[u8]) {
        let server = ServerProc::start(C::NAME);
        let mut client = rt.block_on(C::connect(server.path()));
        let payload = C::payload(payload.to_vec());
        g.bench_function(C::NAME, |b| {
            b.iter_custom(|iters| rt.block_on(calls(&mut client, &payload, iters)))
        });
    }
    let mut g = c.benchmark_group(LATENCY);
    let payload = vec![7u8; 16];
    let rt = runtime();
    {
        let server = ServerProc::start(RAW);
        let mut s = rt.block_on(raw::connect(server.path()));
        g.bench_function(RAW, |b| {
            b.iter_custom(|iters| rt.block_on(raw::pingpong(&mut s, &payload, iters)))
        });
    }
    one::<Localrpc>(&mut g, &rt, &payload);
    one::<Tarpc>(&mut g, &rt, &payload);
    one::<Tonic>(&mut g, &rt, &payload);
    g.finish();
}

fn throughput(c: &mut Criterion) {
    fn one<C: Contender>(g: &mut Group<'_>, rt: &Runtime, payload: &[u8]) {
        let server = ServerProc::start(C::NAME);
        let client = rt.block_on(C::connect(server.path()));
        let payload = C::payload(payload.to_vec());
        g.bench_function(format!("{}_1_connection", C::NAME), |b| {
            b.iter_custom(|iters| rt.block_on(pipelined(&client, &payload, DEPTH, iters)))
        });
    }
    let mut g = c.benchmark_group(THROUGHPUT);
    g.throughput(Throughput::Elements(1));
    let payload = vec![7u8; 32];
    let rt = multi_runtime();
    {
        let server = ServerProc::start(RAW);
        g.bench_function(format!("{RAW}_{DEPTH}_connections"), |b| {
            b.iter_custom(|iters| rt.block_on(raw::many(server.path(), DEPTH, &payload, iters)))
        });
    }
    one::<Localrpc>(&mut g, &rt, &payload);
    one::<Tarpc>(&mut g, &rt, &payload);
    one::<Tonic>(&mut g, &rt, &payload);
    g.finish();
}

fn bulk(c: &mut Criterion) {
    fn one<C: Contender>(g: &mut Group<'_>, rt: &Runtime) {
        let server = ServerProc::start(C::NAME);
        let mut client = rt.block_on(C::connect(server.path()));
        for size in BULK_SIZES {
            g.throughput(Throughput::Bytes(size as u64));
            let payload = C::payload(vec![7u8; size - ENVELOPE]);
            g.bench_with_input(BenchmarkId::new(C::NAME, size), &payload, |b, p| {
                b.iter_custom(|iters| rt.block_on(calls(&mut client, p, iters)))
            });
        }
    }
    let mut g = c.benchmark_group(BULK);
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let rt = runtime();
    {
        let server = ServerProc::start(RAW);
        let mut s = rt.block_on(raw::connect(server.path()));
        for size in BULK_SIZES {
            g.throughput(Throughput::Bytes(size as u64));
            let payload = vec![7u8; size - ENVELOPE];
            g.bench_with_input(BenchmarkId::new(RAW, size), &payload, |b, p| {
                b.iter_custom(|iters| rt.block_on(raw::pingpong(&mut s, p, iters)))
            });
        }
    }
    one::<Localrpc>(&mut g, &rt);
    one::<Tarpc>(&mut g, &rt);
    one::<Tonic>(&mut g, &rt);
    g.finish();
}

fn connect(c: &mut Criterion) {
    fn one<C: Contender>(g: &mut Group<'_>, rt: &Runtime, payload: &[u8]) {
        let server = ServerProc::start(C::NAME);
        let payload = C::payload(payload.to_vec());
        g.bench_function(C::NAME, |b| {
            b.iter_custom(|iters| rt.block_on(connect_calls::<C>(server.path(), &payload, iters)))
        });
    }
    let mut g = c.benchmark_group(CONNECT);
    let payload = vec![7u8; 16];
    let rt = runtime();
    {
        let server = ServerProc::start(RAW);
        g.bench_function(RAW, |b| {
            b.iter_custom(|iters| rt.block_on(raw::connect_calls(server.path(), &payload, iters)))
        });
    }
    one::<Localrpc>(&mut g, &rt, &payload);
    one::<Tarpc>(&mut g, &rt, &payload);
    one::<Tonic>(&mut g, &rt, &payload);
    g.finish();
}
