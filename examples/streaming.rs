//! Streams across two processes: an app starts a helper that serves a `Files` service, then
//!
//! - downloads a file as a stream of chunks, printing its progress, and checks the bytes;
//! - uploads chunks to the helper, which answers once with what it received;
//! - tails a log the helper writes, takes a few lines, and drops the stream: the helper sees
//!   the tail cancelled and stops writing.
//!
//! Run it with `cargo run --example streaming`.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use localrpc::Streaming;

/// Files the helper serves.
#[localrpc::service]
pub trait Files {
    /// The file's chunks (the helper makes up `len` bytes: byte `i` is `i % 251`).
    async fn download(&self, len: u64, chunk: u32) -> Streaming<Vec<u8>>;
    /// Receives chunks; returns how many bytes came and their checksum.
    async fn upload(&self, name: String, chunks: Streaming<Vec<u8>>) -> (u64, u64);
    /// Log lines as the helper writes them, one every `every_ms`.
    async fn tail(&self, every_ms: u64) -> Streaming<String>;
    /// How many lines the last tail wrote, and whether its reader went away.
    async fn tail_status(&self) -> (u64, bool);
}

#[derive(Default)]
struct Helper {
    lines: Arc<AtomicU64>,
    cancelled: Arc<AtomicBool>,
}

/// Notes that a tail's stream was dropped by the server (the reader cancelled it).
struct OnDrop(Arc<AtomicBool>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Files for Helper {
    async fn download(&self, len: u64, chunk: u32) -> Streaming<Vec<u8>> {
        let chunk = u64::from(chunk.max(1));
        Streaming::from_iter((0..len.div_ceil(chunk)).map(move |c| {
            let start = c * chunk;
            (start..(start + chunk).min(len))
                .map(|i| (i % 251) as u8)
                .collect()
        }))
    }

    async fn upload(&self, name: String, mut chunks: Streaming<Vec<u8>>) -> (u64, u64) {
        let (mut len, mut sum) = (0u64, 0u64);
        while let Some(chunk) = chunks.next().await {
            match chunk {
                Ok(chunk) => {
                    len += chunk.len() as u64;
                    sum = chunk.iter().fold(sum, |s, &b| s.wrapping_add(u64::from(b)));
                }
                Err(e) => {
                    eprintln!("helper: upload {name} aborted: {e}");
                    break;
                }
            }
        }
        (len, sum)
    }

    async fn tail(&self, every_ms: u64) -> Streaming<String> {
        self.lines.store(0, Ordering::SeqCst);
        self.cancelled.store(false, Ordering::SeqCst);
        let lines = self.lines.clone();
        let guard = OnDrop(self.cancelled.clone());
        Streaming::new(futures_util::stream::unfold(
            (0u64, guard),
            move |(n, guard)| {
                let lines = lines.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(every_ms)).await;
                    lines.store(n + 1, Ordering::SeqCst);
                    Some((format!("line {n}: all is well"), (n + 1, guard)))
                }
            },
        ))
    }

    async fn tail_status(&self) -> (u64, bool) {
        (
            self.lines.load(Ordering::SeqCst),
            self.cancelled.load(Ordering::SeqCst),
        )
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if localrpc::process::is_spawned() {
        localrpc::process::serve_parent(FilesServer::new(Helper::default())).await?;
        return Ok(());
    }

    let mut helper =
        localrpc::process::spawn(std::process::Command::new(std::env::current_exe()?)).await?;
    let files: FilesClient = helper.client()?;

    // A download with progress.
    let len: u64 = 8 << 20;
    let mut chunks = files.download(len, 64 * 1024).await?;
    let (mut got, mut last_percent) = (0u64, 0);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        assert!(
            chunk
                .iter()
                .enumerate()
                .all(|(i, &b)| b == ((got + i as u64) % 251) as u8),
            "the bytes arrive intact and in order"
        );
        got += chunk.len() as u64;
        let percent = got * 100 / len;
        if percent >= last_percent + 25 {
            println!("download: {percent}% ({got} of {len} bytes)");
            last_percent = percent;
        }
    }
    assert_eq!(got, len);

    // An upload: the helper answers once, when the stream ends.
    let data: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; 10_000]).collect();
    let expected_sum: u64 = data.iter().flatten().map(|&b| u64::from(b)).sum();
    let (received, sum) = files
        .upload("report.bin".into(), Streaming::from_iter(data))
        .await?;
    println!("upload: the helper received {received} bytes");
    assert_eq!((received, sum), (1_000_000, expected_sum));

    // A log tail, dropped after five lines.
    let mut tail = files.tail(20).await?;
    for _ in 0..5 {
        println!("tail: {}", tail.next().await.expect("an endless tail")?);
    }
    drop(tail);
    let mut status = files.tail_status().await?;
    for _ in 0..200 {
        if status.1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        status = files.tail_status().await?;
    }
    let (written, cancelled) = status;
    println!(
        "tail: dropped after 5 lines; the helper wrote {written} and saw it cancelled: {cancelled}"
    );
    assert!(cancelled);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        files.tail_status().await?.0,
        written,
        "the helper stopped writing"
    );

    drop(files);
    helper.close();
    let status = helper.wait().await?;
    println!("helper exited: {status}");
    assert!(status.success());
    Ok(())
}
