//! Unix domain sockets: filesystem and (Linux, Android) abstract addresses.
mod bind;
mod cred;
mod dir;
pub mod fifo;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod linux;
mod pipe;
mod socket;
pub(crate) mod spawn;
// Where Tokio's reactor is edge-triggered (epoll, kqueue), streams register for write events
// only while a write blocks; elsewhere (and when mio is built to use poll(2) everywhere) they
// are Tokio's own. The list is mio's.
#[cfg_attr(
    any(
        mio_unsupported_force_poll_poll,
        not(any(
            target_os = "linux",
            target_os = "android",
            target_os = "illumos",
            target_os = "redox",
            target_vendor = "apple",
            target_os = "freebsd",
            target_os = "netbsd",
            target_os = "openbsd",
            target_os = "dragonfly",
        ))
    ),
    path = "stream_tokio.rs"
)]
mod stream;

pub(crate) use cred::peer_credentials;
pub(crate) use pipe::{
    PipeReceiver, PipeSender, pipe, pipe_blocking, pipe_blocking_receiver, pipe_blocking_sender,
};
pub(crate) use socket::{
    BlockingListener, BlockingRecvHalf, BlockingSendHalf, BlockingStream, Listener,
    ListenerOptionsExt, RecvHalf, SendHalf, Stream, connect, connect_blocking, into_async,
    recv_uninit, send_now, split, split_blocking,
};

use crate::name::Repr;
use crate::{Endpoint, Name, NameError};

/// The longest socket path (or abstract name) in bytes, without the terminating NUL.
pub(crate) const SUN_PATH_MAX: usize = std::mem::size_of::<libc::sockaddr_un>()
    - std::mem::offset_of!(libc::sockaddr_un, sun_path)
    - 1;

pub(crate) fn check_socket_path_len(len: usize) -> Result<(), NameError> {
    if len > SUN_PATH_MAX {
        Err(NameError::TooLong {
            len,
            max: SUN_PATH_MAX,
        })
    } else {
        Ok(())
    }
}

pub(crate) fn resolve(repr: &Repr) -> Result<Endpoint, NameError> {
    match repr {
        Repr::Portable(name) => {
            let path = dir::runtime_base().join(format!("{name}.sock"));
            check_socket_path_len(path.as_os_str().len())?;
            Ok(Endpoint::Path(path))
        }
        Repr::Path(path) => Ok(Endpoint::Path(path.clone())),
        Repr::Abstract(name) => Ok(Endpoint::Abstract(name.clone())),
        Repr::Pipe(_) => Err(NameError::Unsupported { form: "pipe" }),
        #[cfg(feature = "tcp")]
        Repr::Tcp(tcp) => tcp.endpoint(),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn parse_abstract(name: &str) -> Result<Name, NameError> {
    Name::abstract_name(name)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn parse_abstract(_name: &str) -> Result<Name, NameError> {
    Err(NameError::Unsupported { form: "abstract" })
}

pub(crate) fn parse_pipe(_name: &str) -> Result<Name, NameError> {
    Err(NameError::Unsupported { form: "pipe" })
}
