//! IPC primitives usable without RPC: local-socket listeners and streams, unnamed pipes and
//! FIFOs, Tokio and blocking.
//!
//! One API over Unix domain sockets (filesystem or Linux abstract) and Windows named pipes.
//! Endpoints are [`Name`](crate::Name)s; see the [`name`](crate::name) module for how they map
//! to real paths and pipes.
//!
//! Unnamed pipes are one-way byte channels: [`pipe`] (Tokio), [`blocking::pipe`], and the
//! mixed pairs [`pipe_with_blocking_receiver`] and [`pipe_with_blocking_sender`], whose
//! blocking end converts into [`std::process::Stdio`] for a child process. Every end is
//! close-on-exec (Unix) or non-inheritable (Windows), so a child only ever gets the end it is
//! given. On Unix the `fifo` module adds FIFOs: created with an exact mode, opened from either
//! end, with typed errors such as [`Error::NotAFifo`]. It does not exist on Windows.
//!
//! Safe by default:
//! - Unix socket files are created with mode `0600` from the first instant (bound under a
//!   temporary name, narrowed, then renamed into place); widen with the
//!   `mode` option of [`ListenerOptions`] (Unix only).
//! - Binding over a socket file probes it: if a live server answers, binding fails with
//!   [`Error::AddrInUse`]; if nothing answers, the stale file (left by a crashed server) is
//!   replaced. Something that is not a socket is never removed.
//! - A listener removes its socket file on drop, but only if the file is still the one it made.
//! - Windows pipes are created with the first-instance flag, reject remote clients, and carry an
//!   owner-only security descriptor by default.
//! - Both ends can read the other's [`PeerCredentials`].
//!
//! With the `tcp` feature the same types also carry `tcp:HOST:PORT` endpoints. None of the
//! protections above apply to TCP: it has no credentials ([`LocalStream::peer_credentials`]
//! fails, [`LocalStream::peer_addr`] answers instead) and no access control.
//!
//! ```no_run
//! use localrpc::ipc::{LocalListener, LocalStream};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = LocalListener::bind("myapp.echo")?;
//! println!("listening at {}", listener.endpoint());
//! let server = tokio::spawn(async move {
//!     let mut conn = listener.accept().await?;
//!     let mut buf = [0u8; 5];
//!     conn.read_exact(&mut buf).await?;
//!     conn.write_all(&buf).await?;
//!     std::io::Result::Ok(())
//! });
//! let mut client = LocalStream::connect("myapp.echo").await?;
//! client.write_all(b"hello").await?;
//! let mut buf = [0u8; 5];
//! client.read_exact(&mut buf).await?;
//! server.await??;
//! # Ok(()) }
//! ```
/// Implements `Read` and `Write` for blocking types by passing every call to their `inner`.
macro_rules! delegate_io {
    ($($ty:ty: $($trait:ident),+;)+) => {$($(delegate_io!(@$trait $ty);)+)+};
    (@Read $ty:ty) => {
        impl ::std::io::Read for $ty {
            fn read(&mut self, buf: &mut [u8]) -> ::std::io::Result<usize> {
                ::std::io::Read::read(&mut self.inner, buf)
            }
            fn read_vectored(
                &mut self,
                bufs: &mut [::std::io::IoSliceMut<'_>],
            ) -> ::std::io::Result<usize> {
                ::std::io::Read::read_vectored(&mut self.inner, bufs)
            }
        }
    };
    (@Write $ty:ty) => {
        impl ::std::io::Write for $ty {
            fn write(&mut self, buf: &[u8]) -> ::std::io::Result<usize> {
                ::std::io::Write::write(&mut self.inner, buf)
            }
            fn write_vectored(&mut self, bufs: &[::std::io::IoSlice<'_>]) -> ::std::io::Result<usize> {
                ::std::io::Write::write_vectored(&mut self.inner, bufs)
            }
            fn flush(&mut self) -> ::std::io::Result<()> {
                ::std::io::Write::flush(&mut self.inner)
            }
        }
    };
}

pub mod blocking;
mod either;
mod error;
mod local_socket;
mod options;
mod peer;
mod pipe;
#[cfg(feature = "tcp")]
mod tcp;

pub use error::Error;
pub use local_socket::{LocalListener, LocalStream, RecvHalf, SendHalf};
pub use options::{ConnectOptions, ListenerOptions};
pub use peer::PeerCredentials;
pub use pipe::{
    PipeReceiver, PipeSender, pipe, pipe_with_blocking_receiver, pipe_with_blocking_sender,
};
// The items only some operating systems have: the `fifo` module on Unix.
#[allow(
    unused_imports,
    unreachable_pub,
    reason = "nothing to re-export on Windows"
)]
pub use crate::os::ipc_only::*;
