//! Server streaming: items/s of 32-byte items on one connection, one stream and 64 at once,
//! localrpc against tonic (tarpc has no streams).
use std::io::Write;
use std::path::Path;
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
/// The same for the summary's rounds, ten and four times as long: a round of 100,000 items
/// lasts about 10 ms for the faster contender, so a pause of a few milliseconds from a shared
/// machine (which a fixed number of items leaves the same length for both) cut its figure by
/// half and the slower one's by a sixth.
const SUMMARY_ONE_STREAM: u32 = 1_000_000;
const SUMMARY_PER_STREAM: u32 = 20_000;
const ROUNDS: usize = 9;

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

/// A contender's server and client, ready to measure a round.
struct Measured<C> {
    _server: ServerProc,
    client: C,
    /// Items/s of each round: one stream, then 64 streams.
    rounds: [Vec<f64>; 2],
}

impl<C: Streamer> Measured<C> {
    async fn start(server: ServerProc) -> Self {
        let mut client = C::connect(server.path()).await;
        one_stream(&mut client, 10_000).await; // warm-up
        Measured {
            _server: server,
            client,
            rounds: [Vec::new(), Vec::new()],
        }
    }

    async fn round(&mut self) {
        let t = one_stream(&mut self.client, SUMMARY_ONE_STREAM).await;
        self.rounds[0].push(f64::from(SUMMARY_ONE_STREAM) / t.as_secs_f64());
        let t = many_streams(&self.client, SUMMARY_PER_STREAM).await;
        self.rounds[1].push((STREAMS as f64 * f64::from(SUMMARY_PER_STREAM)) / t.as_secs_f64());
    }

    fn medians(self) -> [f64; 2] {
        self.rounds.map(median)
    }
}

/// Items/s of both contenders, median of `ROUNDS`: one stream, then 64 streams. The two take
/// turns round by round, so that a shared machine's slow and fast moments fall on both alike.
fn measure() -> [[f64; 2]; 2] {
    let (ours, tonic) = (
        ServerProc::start(Localrpc::NAME),
        ServerProc::start(Tonic::NAME),
    );
    let rt = crate::multi_runtime();
    rt.block_on(async {
        let mut ours = Measured::<Localrpc>::start(ours).await;
        let mut tonic = Measured::<Tonic>::start(tonic).await;
        for _ in 0..ROUNDS {
            ours.round().await;
            tonic.round().await;
        }
        [ours.medians(), tonic.medians()]
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The role prefix of a client process for counting instructions per item under callgrind
/// (see benches/README.md): `stream-client-localrpc` or `stream-client-tonic`.
pub(crate) const CLIENT_ROLE: &str = "stream-client-";

/// A client process: receives `LOCALRPC_COMPARE_ITEMS` items (default 100,000) from the
/// server at `path`, on one stream, or spread over 64 at once if `LOCALRPC_COMPARE_STREAMS`
/// is 64, after a warm-up, pausing for a line on stdin before and after so that
/// `callgrind_control -d` can frame the measured part.
pub(crate) fn client_role(contender: &str, path: &Path) {
    async fn run<C: Streamer>(path: &Path) {
        let items =
            std::env::var("LOCALRPC_COMPARE_ITEMS").map_or(ONE_STREAM, |n| n.parse().unwrap());
        let many = std::env::var("LOCALRPC_COMPARE_STREAMS").is_ok_and(|n| n == "64");
        let pause = |what: &str| {
            println!("{what}");
            std::io::stdout().flush().unwrap();
            std::io::stdin().read_line(&mut String::new()).unwrap();
        };
        let mut client = C::connect(path).await;
        one_stream(&mut client, 10_000).await;
        pause("warm");
        if many {
            many_streams(&client, items / STREAMS as u32).await;
        } else {
            one_stream(&mut client, items).await;
        }
        pause("done");
    }
    let rt = crate::multi_runtime();
    match contender {
        Localrpc::NAME => rt.block_on(run::<Localrpc>(path)),
        Tonic::NAME => rt.block_on(run::<Tonic>(path)),
        other => panic!("no streaming client for {other}"),
    }
}

/// Prints items/s for both contenders and localrpc's ratio to tonic, if the filter allows.
pub(crate) fn summary(filter: Option<&str>) {
    if filter.is_some_and(|f| !STREAM.contains(f) && !f.starts_with(STREAM)) {
        return;
    }
    let [ours, tonic] = measure();
    println!("\nstreaming summary (this run; {ITEM}-byte items, server streaming, items/s)");
    println!("{:<36}{:>16}{:>16}{:>12}", "", "localrpc", "tonic", "ratio");
    let rows = [
        format!("1 stream ({SUMMARY_ONE_STREAM} items)"),
        format!("{STREAMS} streams ({SUMMARY_PER_STREAM} items each)"),
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
