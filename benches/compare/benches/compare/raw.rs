//! The baseline, from `benches/shared/raw.rs`, addressed by socket path.
use std::path::Path;
use std::time::Duration;

use tokio::net::UnixStream;

pub(crate) use crate::shared_raw::pingpong;

/// The localrpc name of a filesystem socket.
pub(crate) fn name(path: &Path) -> String {
    format!("unix:{}", path.display())
}

/// Server: echoes every frame, one task per connection.
pub(crate) async fn serve(path: &Path) {
    crate::shared_raw::serve(&name(path), crate::server::ready).await
}

/// Opens one connection to a raw server.
pub(crate) async fn connect(path: &Path) -> UnixStream {
    crate::shared_raw::connect(&name(path)).await
}

/// `iters` ping-pongs spread over `conns` connections, all in flight at once.
pub(crate) async fn many(path: &Path, conns: usize, payload: &[u8], iters: u64) -> Duration {
    crate::shared_raw::many(&name(path), conns, payload, iters).await
}

/// `iters` times: a new connection and one ping-pong.
pub(crate) async fn connect_calls(path: &Path, payload: &[u8], iters: u64) -> Duration {
    crate::shared_raw::connect_calls(&name(path), payload, iters).await
}
