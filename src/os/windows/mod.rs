//! Windows named pipes behind the portable `ipc` front.
//!
//! - `name`: the `pipe:` form and the mapping of names to `\\.\pipe\...`.
//! - `security`: the owner-only default security descriptor and SDDL conversion.
//! - `listener`: pipe instances created with the first-instance flag, remote clients rejected,
//!   the next instance created before a connected one is handed out.
//! - `stream`: one stream type over the server and client ends, and its halves.
//! - `connect`: opening the client end, with retries while every instance is busy.
//! - `blocking`: the blocking types, which drive the Tokio types on a private runtime.
//! - `cred`: the pid of the process at the other end.
//! - `pipe`: unnamed pipes, made of one-way named pipes that only their creator can use.
mod blocking;
mod connect;
mod cred;
mod listener;
mod name;
mod pipe;
mod security;
pub(crate) mod spawn;
mod stream;
#[cfg(test)]
mod tests;

pub(crate) use blocking::{
    BlockingListener, BlockingRecvHalf, BlockingSendHalf, BlockingStream, connect_blocking,
    split_blocking,
};
pub(crate) use connect::connect;
pub(crate) use cred::peer_credentials;
pub(crate) use listener::{Listener, ListenerOptionsExt};
pub(crate) use name::{check_socket_path_len, parse_abstract, parse_pipe, resolve};
pub(crate) use pipe::{
    PipeReceiver, PipeSender, pipe, pipe_blocking, pipe_blocking_receiver, pipe_blocking_sender,
};
pub(crate) use stream::{RecvHalf, SendHalf, Stream, split};
