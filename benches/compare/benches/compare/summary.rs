//! The summary: every case measured again in this run, each figure with its ratio to raw
//! Tokio.
use std::time::{Duration, Instant};

use crate::contender::{Contender, calls, connect_calls, pipelined};
use crate::server::ServerProc;
use crate::with_localrpc::Localrpc;
use crate::with_tarpc::Tarpc;
use crate::with_tonic::Tonic;
use crate::{BULK, BULK_SIZES, CONNECT, DEPTH, ENVELOPE, LATENCY, RAW, THROUGHPUT, raw};

/// Per-call latency samples per contender.
const LATENCY_SAMPLES: usize = 20_000;
/// Calls per throughput round; the figure is the median of `ROUNDS`.
const THROUGHPUT_CALLS: u64 = 50_000;
/// Echoes per bulk round; the figure is the median of `ROUNDS`.
const BULK_CALLS: u64 = 3;
const ROUNDS: usize = 5;
/// Connections for the connect figure (median).
const CONNECTS: usize = 200;
/// Untimed calls before each case, as criterion warms up: large echoes in particular are
/// slow until the allocator of both processes settles (see `README.md`).
const WARM_UP: Duration = Duration::from_secs(1);

/// The rows of the table: label and the criterion group whose filter selects it.
const ROWS: [(&str, &str); 6] = [
    ("latency 16 B p50 (µs)", LATENCY),
    ("latency 16 B p99 (µs)", LATENCY),
    ("throughput 64 in flight (calls/s)", THROUGHPUT),
    ("bulk 1 MiB (MiB/s)", BULK),
    ("bulk 16 MiB (MiB/s)", BULK),
    ("connect + first call (µs)", CONNECT),
];

/// One contender's figures, in the order of `ROWS`; `None` where filtered out.
type Figures = [Option<f64>; 6];

/// Measures everything the command line selects and prints the table.
pub(crate) fn run() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let filter = filter(&args);
    let wanted = |group: &str| match &filter {
        None => true,
        Some(f) => group.contains(f.as_str()) || f.starts_with(group),
    };
    if !ROWS.iter().any(|(_, group)| wanted(group)) {
        return;
    }
    let columns = [
        (RAW, measure_raw(&wanted)),
        (Localrpc::NAME, measure::<Localrpc>(&wanted)),
        (Tarpc::NAME, measure::<Tarpc>(&wanted)),
        (Tonic::NAME, measure::<Tonic>(&wanted)),
    ];
    println!("\nsummary (this run; each cell: value (ratio to {RAW}))");
    println!("times: lower is better; rates: higher is better");
    println!("throughput: {RAW} over {DEPTH} connections, the others over 1 connection");
    print!("{:<36}", "");
    for (name, _) in &columns {
        print!("{name:>20}");
    }
    println!();
    for (row, (label, _)) in ROWS.iter().enumerate() {
        let Some(base) = columns[0].1[row] else {
            continue;
        };
        print!("{label:<36}{:>20}", num(base));
        for (_, figures) in &columns[1..] {
            let v = figures[row].unwrap();
            print!("{:>20}", format!("{} ({:.2})", num(v), v / base));
        }
        println!();
    }
}

/// The first positional argument, criterion's filter, skipping the values of its options.
pub(crate) fn filter(args: &[String]) -> Option<String> {
    const WITH_VALUE: &[&str] = &[
        "-c",
        "--color",
        "-s",
        "--save-baseline",
        "-b",
        "--baseline",
        "--baseline-lenient",
        "--format",
        "--profile-time",
        "--load-baseline",
        "--sample-size",
        "--warm-up-time",
        "--measurement-time",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--plotting-backend",
        "--output-format",
    ];
    let mut args = args.iter();
    while let Some(a) = args.next() {
        if WITH_VALUE.contains(&a.as_str()) {
            args.next();
        } else if !a.starts_with('-') {
            return Some(a.clone());
        }
    }
    None
}

fn num(v: f64) -> String {
    match v {
        v if v >= 1000.0 => format!("{v:.0}"),
        v if v >= 10.0 => format!("{v:.1}"),
        v => format!("{v:.2}"),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn mib_per_s(size: usize, calls: u64, d: Duration) -> f64 {
    calls as f64 * size as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

fn warm_up(mut f: impl FnMut() -> Duration) {
    let start = Instant::now();
    while start.elapsed() < WARM_UP {
        f();
    }
}

fn rounds(n: usize, mut f: impl FnMut() -> f64) -> f64 {
    median((0..n).map(|_| f()).collect())
}

/// The raw baseline's figures, measured like the contenders' in [`measure`].
fn measure_raw(wanted: &dyn Fn(&str) -> bool) -> Figures {
    let (rt, mt) = (crate::runtime(), crate::multi_runtime());
    let server = ServerProc::start(RAW);
    let path = server.path();
    let mut s = rt.block_on(raw::connect(path));
    let small = vec![7u8; 16];
    let mut out = Figures::default();
    if wanted(LATENCY) {
        warm_up(|| rt.block_on(raw::pingpong(&mut s, &small, 100)));
        let mut samples: Vec<Duration> = (0..LATENCY_SAMPLES)
            .map(|_| rt.block_on(raw::pingpong(&mut s, &small, 1)))
            .collect();
        out[0] = Some(micros(percentile(&mut samples, 0.5)));
        out[1] = Some(micros(percentile(&mut samples, 0.99)));
    }
    if wanted(THROUGHPUT) {
        let p = vec![7u8; 32];
        warm_up(|| mt.block_on(raw::many(path, DEPTH, &p, THROUGHPUT_CALLS / 10)));
        out[2] = Some(rounds(ROUNDS, || {
            let d = mt.block_on(raw::many(path, DEPTH, &p, THROUGHPUT_CALLS));
            THROUGHPUT_CALLS as f64 / d.as_secs_f64()
        }));
    }
    if wanted(BULK) {
        for (i, size) in BULK_SIZES.into_iter().enumerate() {
            let p = vec![7u8; size - ENVELOPE];
            warm_up(|| rt.block_on(raw::pingpong(&mut s, &p, 1)));
            out[3 + i] = Some(rounds(ROUNDS, || {
                mib_per_s(
                    size,
                    BULK_CALLS,
                    rt.block_on(raw::pingpong(&mut s, &p, BULK_CALLS)),
                )
            }));
        }
    }
    if wanted(CONNECT) {
        warm_up(|| rt.block_on(raw::connect_calls(path, &small, 10)));
        out[5] = Some(rounds(CONNECTS, || {
            micros(rt.block_on(raw::connect_calls(path, &small, 1)))
        }));
    }
    out
}

/// One contender's figures, each case after a warm-up.
fn measure<C: Contender>(wanted: &dyn Fn(&str) -> bool) -> Figures {
    let (rt, mt) = (crate::runtime(), crate::multi_runtime());
    let server = ServerProc::start(C::NAME);
    let path = server.path();
    let mut client = rt.block_on(C::connect(path));
    let small = C::payload(vec![7u8; 16]);
    let mut out = Figures::default();
    if wanted(LATENCY) {
        warm_up(|| rt.block_on(calls(&mut client, &small, 100)));
        let mut samples: Vec<Duration> = (0..LATENCY_SAMPLES)
            .map(|_| rt.block_on(calls(&mut client, &small, 1)))
            .collect();
        out[0] = Some(micros(percentile(&mut samples, 0.5)));
        out[1] = Some(micros(percentile(&mut samples, 0.99)));
    }
    if wanted(THROUGHPUT) {
        let client = mt.block_on(C::connect(path));
        let p = C::payload(vec![7u8; 32]);
        warm_up(|| mt.block_on(pipelined(&client, &p, DEPTH, THROUGHPUT_CALLS / 10)));
        out[2] = Some(rounds(ROUNDS, || {
            let d = mt.block_on(pipelined(&client, &p, DEPTH, THROUGHPUT_CALLS));
            THROUGHPUT_CALLS as f64 / d.as_secs_f64()
        }));
    }
    if wanted(BULK) {
        for (i, size) in BULK_SIZES.into_iter().enumerate() {
            let p = C::payload(vec![7u8; size - ENVELOPE]);
            warm_up(|| rt.block_on(calls(&mut client, &p, 1)));
            out[3 + i] = Some(rounds(ROUNDS, || {
                mib_per_s(
                    size,
                    BULK_CALLS,
                    rt.block_on(calls(&mut client, &p, BULK_CALLS)),
                )
            }));
        }
    }
    if wanted(CONNECT) {
        warm_up(|| rt.block_on(connect_calls::<C>(path, &small, 10)));
        out[5] = Some(rounds(CONNECTS, || {
            micros(rt.block_on(connect_calls::<C>(path, &small, 1)))
        }));
    }
    out
}
