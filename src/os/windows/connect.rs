//! Opening the client end of a pipe.
use std::time::{Duration, Instant};

use tokio::net::windows::named_pipe::ClientOptions;
use windows_sys::Win32::Foundation::ERROR_PIPE_BUSY;

use super::name::pipe_path;
use super::stream::Stream;
use crate::Name;
use crate::ipc::{ConnectOptions, Error};

/// How long to sleep between attempts while every instance is busy.
const BUSY_RETRY: Duration = Duration::from_millis(20);

/// Opens the pipe, retrying while all its instances are connected to other clients
/// (`ERROR_PIPE_BUSY`) until `opts.busy_timeout` has passed.
///
/// Tokio's default client options ask for identification-level impersonation only, so the
/// server cannot act as this client.
pub(crate) async fn connect(name: &Name, opts: &ConnectOptions) -> Result<Stream, Error> {
    let endpoint = name.endpoint()?;
    let path = pipe_path(&endpoint);
    let start = Instant::now();
    loop {
        match ClientOptions::new().open(path) {
            Ok(client) => return Ok(Stream::Client(client)),
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY as i32) => {
                let waited = start.elapsed();
                let Some(left) = opts
                    .busy_timeout
                    .checked_sub(waited)
                    .filter(|d| !d.is_zero())
                else {
                    return Err(Error::Busy { endpoint, waited });
                };
                tracing::trace!(%endpoint, ?waited, "all pipe instances busy, retrying");
                tokio::time::sleep(left.min(BUSY_RETRY)).await;
            }
            // ERROR_FILE_NOT_FOUND and ERROR_ACCESS_DENIED map to NotFound and
            // PermissionDenied through their io::ErrorKind.
            Err(e) => return Err(Error::from_io("connect", &endpoint, e)),
        }
    }
}
