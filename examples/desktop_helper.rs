//! A desktop app and its helper process: the app starts a copy of itself as the helper,
//! already connected (no socket path, no name to race for), hands it heavy work, gets the
//! result, and when the app lets go the helper exits by itself.
//!
//! ```text
//! cargo run --example desktop_helper
//! ```
use std::time::Instant;

use localrpc::process::{OnDrop, SpawnOptions};

/// Work too heavy for the app's UI thread.
#[localrpc::service]
pub trait Heavy {
    /// How many primes there are below `limit`.
    async fn count_primes(&self, limit: u64) -> u64;
    /// The helper's process id (to show that it is another process).
    async fn pid(&self) -> u32;
}

struct Helper;

impl Heavy for Helper {
    async fn count_primes(&self, limit: u64) -> u64 {
        // CPU work belongs on a blocking thread: the connection's other calls go on meanwhile.
        tokio::task::spawn_blocking(move || sieve(limit))
            .await
            .expect("the sieve does not panic")
    }
    async fn pid(&self) -> u32 {
        std::process::id()
    }
}

fn sieve(limit: u64) -> u64 {
    let n = limit as usize;
    let mut composite = vec![false; n.max(2)];
    let mut count = 0;
    for i in 2..n {
        if !composite[i] {
            count += 1;
            for j in (i * i..n).step_by(i) {
                composite[j] = true;
            }
        }
    }
    count
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if localrpc::process::is_spawned() {
        // The helper: serve the app until it closes the connection or dies, then exit.
        localrpc::process::serve_parent(HeavyServer::new(Helper)).await?;
        eprintln!("helper: the app is gone; exiting");
        return Ok(());
    }

    // The app.
    let mut options = SpawnOptions::new().on_drop(OnDrop::Wait(std::time::Duration::from_secs(2)));
    if cfg!(any(target_os = "linux", target_os = "android")) {
        // Even if the app is killed, the kernel takes the helper down with it.
        options = options.kill_with_parent(true);
    }
    let mut helper = options
        .spawn(std::process::Command::new(std::env::current_exe()?))
        .await?;
    let heavy: HeavyClient = helper.client()?;
    println!(
        "app {} started helper {}",
        std::process::id(),
        heavy.pid().await?
    );

    let start = Instant::now();
    let primes = heavy.count_primes(5_000_000).await?;
    println!(
        "primes below 5,000,000: {primes} (computed by the helper in {:?})",
        start.elapsed()
    );
    assert_eq!(primes, 348_513);

    // The app lets go: the helper sees its connection end and exits on its own.
    drop(heavy);
    helper.close();
    let status = helper.wait().await?;
    println!("helper exited: {status}");
    assert!(status.success());
    Ok(())
}
