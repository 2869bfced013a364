//! Server streaming: items/s of 32-byte items on one connection, one stream and 64 at once,
//! localrpc against tonic (tarpc has no streams).
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};

use crate::contender::Contender;
use crate::server::ServerProc;
use crate::with_localrpc::Localrpc;
use crate::with_tonic::Tonic;

/// The criterion group; the summary uses it to honour a filter.
pub(crate) const STREAM: &str = "compare_stream_32B";
const ITEM: u32 = 32;
/// Items of the one-stream case, and per stream of the 64-stream case.
const ONE_STREAM: u32 = 100_000;
const STREAMS: usize = 64;
const PER_STREAM: u32 = 5_000;
const ROUNDS: usize = 5;

/// A contender that can stream.
pub(crate) trait Streamer: Contender {
    /// Receives a server stream of `count` items of `size` bytes; returns how many came.
    fn items(&mut self, count: u32, size: u32) -> impl Future<Output = u64> + Send;
}

async fn one_stream<C: Streamer>(c: &mut C, count: u32) -> Duration {
    let start = Instant::now();
    assert_eq!(c.items(count, ITEM).await, u64::from(count));
    start.elapsed()
}

async fn many_streams<C: Streamer>(c: &C, per_stream: u32) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = (0..STREAMS)
        .map(|_| {
            let mut c = c.clone();
            tokio::spawn(async move { c.items(per_stream, ITEM).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), u64::from(per_stream));
    }
    start.elapsed()
}

pub(crate) fn bench(c: &mut Criterion) {
    fn one<C: Streamer>(c: &mut Criterion) {
        let server = ServerProc::start(C::NAME);
        let rt = crate::multi_runtime();
        let client = rt.block_on(C::connect(server.path()));
        let mut g = c.benchmark_group(STREAM);
        g.throughput(Throughput::Elements(u64::from(ONE_STREAM)));
        g.bench_function(BenchmarkId::new(C::NAME, "1_stream"), |b| {
            b.iter_custom(|iters| {
                let mut client = client.clone();
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += one_stream(&mut client, ONE_STREAM).await;
                    }
                    total
                })
            })
        });
        g.throughput(Throughput::Elements(STREAMS as u64 * u64::from(PER_STREAM)));
        g.bench_function(BenchmarkId::new(C::NAME, "64_streams"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += many_streams(&client, PER_STREAM).await;
                    }
                    total
                })
            })
        });
        g.finish();
    }
    one::<Localrpc>(c);
    one::<Tonic>(c);
}

/// Items/s, median of `ROUNDS`: one stream, then 64 streams.
fn measure<C: Streamer>() -> [f64; 2] {
    let server = ServerProc::start(C::NAME);
    let rt = crate::multi_runtime();
    rt.block_on(async {
        let mut client = C::connect(server.path()).await;
        one_stream(&mut client, 10_000).await; // warm-up
        let mut single = Vec::new();
        let mut many = Vec::new();
        for _ in 0..ROUNDS {
            let t = one_stream(&mut client, ONE_STREAM).await;
            single.push(f64::from(ONE_STREAM) / t.as_secs_f64());
            let t = many_streams(&client, PER_STREAM).await;
            many.push((STREAMS as f64 * f64::from(PER_STREAM)) / t.as_secs_f64());
        }
        [median(single), median(many)]
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Prints items/s for both contenders and localrpc's ratio to tonic, if the filter allows.
pub(crate) fn summary(filter: Option<&str>) {
    if filter.is_some_and(|f| !STREAM.contains(f) && !f.starts_with(STREAM)) {
        return;
    }
    let ours = measure::<Localrpc>();
    let tonic = measure::<Tonic>();
    println!("\nstreaming summary (this run; {ITEM}-byte items, server streaming, items/s)");
    println!("{:<36}{:>16}{:>16}{:>12}", "", "localrpc", "tonic", "ratio");
    let rows = [
        format!("1 stream ({ONE_STREAM} items)"),
        format!("{STREAMS} streams ({PER_STREAM} items each)"),
    ];
    for (i, label) in rows.iter().enumerate() {
        println!(
            "{label:<36}{:>16.0}{:>16.0}{:>12.2}",
            ours[i],
            tonic[i],
            ours[i] / tonic[i]
        );
    }
}
