//! The raw baseline shared by the benchmarks: length-prefixed echo over Tokio's own Unix
//! socket (`tokio::net`, not localrpc's), one call in flight per connection, written as a
//! careful hand-rolled client and server would be.
#![allow(dead_code, reason = "each bench uses the part it needs")]

use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use localrpc::{Endpoint, Name};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// The socket file a localrpc name stands for: both baselines live at the same kind of
/// address as localrpc's servers.
pub(crate) fn path(name: &str) -> PathBuf {
    match name.parse::<Name>().unwrap().endpoint().unwrap() {
        Endpoint::Path(path) => path,
        other => panic!("the raw baseline needs a socket file, not {other}"),
    }
}

/// Server: binds `name`, calls `ready`, then echoes every frame, one task per connection.
pub(crate) async fn serve(name: &str, ready: impl FnOnce()) {
    let path = path(name);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path.parent().unwrap())
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    ready();
    loop {
        let (mut s, _) = listener.accept().await.unwrap();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Ok(n) = read_frame(&mut s, &mut buf).await {
                if write_frame(&mut s, &buf[..n]).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// Opens one connection to a raw server.
pub(crate) async fn connect(name: &str) -> UnixStream {
    UnixStream::connect(path(name)).await.unwrap()
}

async fn read_frame(s: &mut UnixStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let n = s.read_u32_le().await? as usize;
    buf.resize(n, 0);
    s.read_exact(&mut buf[..n]).await?;
    Ok(n)
}

async fn write_frame(s: &mut UnixStream, data: &[u8]) -> std::io::Result<()> {
    // One write for header and payload.
    let mut out = Vec::with_capacity(4 + data.len());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    s.write_all(&out).await
}

/// `iters` sequential ping-pongs on one connection.
pub(crate) async fn pingpong(s: &mut UnixStream, payload: &[u8], iters: u64) -> Duration {
    let mut buf = Vec::new();
    let start = Instant::now();
    for _ in 0..iters {
        write_frame(s, payload).await.unwrap();
        let n = read_frame(s, &mut buf).await.unwrap();
        assert_eq!(n, payload.len());
    }
    start.elapsed()
}

/// `iters` ping-pongs spread over `conns` connections, all in flight at once: raw ping-pong
/// cannot pipeline, so this is the baseline for calls in flight.
pub(crate) async fn many(name: &str, conns: usize, payload: &[u8], iters: u64) -> Duration {
    let mut streams = Vec::new();
    for _ in 0..conns {
        streams.push(connect(name).await);
    }
    let per = iters.div_ceil(conns as u64);
    let start = Instant::now();
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|mut s| {
            let p = payload.to_vec();
            tokio::spawn(async move { pingpong(&mut s, &p, per).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

/// `iters` times: a new connection and one ping-pong.
pub(crate) async fn connect_calls(name: &str, payload: &[u8], iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let mut s = connect(name).await;
        pingpong(&mut s, payload, 1).await;
    }
    start.elapsed()
}
