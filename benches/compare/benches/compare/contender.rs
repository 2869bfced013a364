//! What the compared RPC frameworks have in common, and the client loops that drive them.
use std::path::Path;
use std::time::{Duration, Instant};

/// An RPC framework under test: its server, and a client handle on one connection.
pub(crate) trait Contender: Clone + Send + Sync + Sized + 'static {
    /// The name in reports.
    const NAME: &'static str;
    /// The framework's byte payload, as a user of it would pass one.
    type Payload: AsRef<[u8]> + Clone + Send + Sync + 'static;

    /// Wraps bytes as a payload.
    fn payload(data: Vec<u8>) -> Self::Payload;
    /// Server process: binds `path`, calls [`crate::server::ready`], serves until killed.
    fn serve(path: &Path) -> impl Future<Output = ()>;
    /// Opens a connection to the server at `path`.
    fn connect(path: &Path) -> impl Future<Output = Self> + Send;
    /// One echo call; returns the length of what came back.
    fn echo(&mut self, data: Self::Payload) -> impl Future<Output = usize> + Send;
}

/// `iters` sequential calls on one connection.
pub(crate) async fn calls<C: Contender>(c: &mut C, payload: &C::Payload, iters: u64) -> Duration {
    let len = payload.as_ref().len();
    let start = Instant::now();
    for _ in 0..iters {
        assert_eq!(c.echo(payload.clone()).await, len);
    }
    start.elapsed()
}

/// `iters` calls with `depth` in flight on one connection.
pub(crate) async fn pipelined<C: Contender>(
    c: &C,
    payload: &C::Payload,
    depth: usize,
    iters: u64,
) -> Duration {
    let start = Instant::now();
    let per_task = iters.div_ceil(depth as u64);
    let tasks: Vec<_> = (0..depth)
        .map(|_| {
            let (mut c, p) = (c.clone(), payload.clone());
            tokio::spawn(async move { calls(&mut c, &p, per_task).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

/// `iters` times: a new connection and one call.
pub(crate) async fn connect_calls<C: Contender>(
    path: &Path,
    payload: &C::Payload,
    iters: u64,
) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let mut c = C::connect(path).await;
        calls(&mut c, payload, 1).await;
    }
    start.elapsed()
}
