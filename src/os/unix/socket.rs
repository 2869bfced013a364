//! Unix listener and stream types behind the portable `ipc` front.
use std::ffi::OsStr;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};

use super::bind::{self, SocketFile};
use super::dir;
use super::stream::Accepting;
use crate::ipc::{ConnectOptions, Error, ListenerOptions};
use crate::name::Repr;
use crate::{Endpoint, Name};

/// Unix-only listener options, carried inside [`ListenerOptions`].
#[derive(Debug, Clone)]
pub(crate) struct ListenerOptionsExt {
    mode: u32,
}

impl Default for ListenerOptionsExt {
    fn default() -> Self {
        ListenerOptionsExt { mode: 0o600 }
    }
}

impl ListenerOptions {
    /// The permission bits of the socket file (Unix only; default `0o600`, owner only).
    ///
    /// Connecting to a Unix socket needs write permission on its file, so `0o600` lets only
    /// the owner's processes in. Widening it is an explicit choice: `0o660` admits the group,
    /// `0o666` everyone who can reach the directory. Abstract sockets have no file and ignore
    /// this.
    ///
    /// ```no_run
    /// use localrpc::ipc::ListenerOptions;
    /// # async fn demo() -> Result<(), localrpc::ipc::Error> {
    /// let listener = ListenerOptions::new().mode(0o660).bind("shared.svc")?;
    /// # Ok(()) }
    /// ```
    pub fn mode(mut self, mode: u32) -> Self {
        self.os.mode = mode & 0o777;
        self
    }
}

pub(crate) use super::stream::{RecvHalf, SendHalf, Stream};
pub(crate) type BlockingStream = UnixStream;

pub(crate) type BlockingRecvHalf = UnixStream;
pub(crate) type BlockingSendHalf = UnixStream;

/// Registers a connected blocking socket with the current runtime (making it non-blocking).
pub(crate) fn into_async(stream: BlockingStream) -> io::Result<Stream> {
    super::stream::from_std(stream)
}

/// Writes to a socket without waiting, even if it is in blocking mode: fails with
/// `WouldBlock` if there is no room for any of it.
pub(crate) fn send_now(
    stream: &impl std::os::fd::AsRawFd,
    bufs: &[io::IoSlice<'_>],
) -> io::Result<usize> {
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly"
    ))]
    const NO_SIGNAL: libc::c_int = libc::MSG_NOSIGNAL;
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly"
    )))]
    const NO_SIGNAL: libc::c_int = 0; // Rust programs ignore SIGPIPE
    // SAFETY: an all-zero `msghdr` is valid: no address, no control data, no buffers yet.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // `IoSlice` is ABI-compatible with `iovec` on Unix; `sendmsg` only reads through it.
    msg.msg_iov = bufs.as_ptr().cast_mut().cast();
    msg.msg_iovlen = bufs.len() as _;
    // SAFETY: `msg` points at `bufs`, valid for the duration of the call.
    let n = unsafe { libc::sendmsg(stream.as_raw_fd(), &msg, libc::MSG_DONTWAIT | NO_SIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Reads from a blocking socket into memory that need not be initialized.
pub(crate) fn recv_uninit(
    stream: &impl std::os::fd::AsRawFd,
    buf: &mut [std::mem::MaybeUninit<u8>],
) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes; `recv` writes no more.
    let n = unsafe { libc::recv(stream.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

pub(crate) fn split(stream: Stream) -> (RecvHalf, SendHalf) {
    stream.into_split()
}

pub(crate) fn split_blocking(
    stream: BlockingStream,
) -> io::Result<(BlockingRecvHalf, BlockingSendHalf)> {
    Ok((stream.try_clone()?, stream))
}

#[derive(Debug)]
pub(crate) struct Listener {
    inner: Accepting,
    endpoint: Endpoint,
    _file: Option<SocketFile>,
}

impl Listener {
    pub(crate) fn bind(name: &Name, opts: &ListenerOptions) -> Result<Listener, Error> {
        let bound = bind::bind(name, opts.os.mode, opts.reclaim)?;
        let inner = Accepting::new(bound.listener)
            .map_err(|e| Error::from_io("bind", &bound.endpoint, e))?;
        Ok(Listener {
            inner,
            endpoint: bound.endpoint,
            _file: bound.file,
        })
    }

    pub(crate) async fn accept(&self) -> io::Result<Stream> {
        self.inner.accept().await
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

#[derive(Debug)]
pub(crate) struct BlockingListener {
    inner: UnixListener,
    endpoint: Endpoint,
    _file: Option<SocketFile>,
}

impl BlockingListener {
    pub(crate) fn bind(name: &Name, opts: &ListenerOptions) -> Result<BlockingListener, Error> {
        let bound = bind::bind(name, opts.os.mode, opts.reclaim)?;
        Ok(BlockingListener {
            inner: bound.listener,
            endpoint: bound.endpoint,
            _file: bound.file,
        })
    }

    pub(crate) fn accept(&self) -> io::Result<BlockingStream> {
        let (stream, _) = self.inner.accept()?;
        widen_send_buffer(&stream);
        Ok(stream)
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

/// The address to connect to as a path; abstract names get tokio's leading-NUL form.
fn connect_target(name: &Name) -> Result<(Endpoint, Vec<u8>), Error> {
    let endpoint = name.endpoint()?;
    if name.is_portable() {
        if let Endpoint::Path(path) = &endpoint {
            dir::ensure_private_dir(path.parent().expect("has a parent"), false)?;
        }
    }
    let target = match (name.repr(), &endpoint) {
        (Repr::Abstract(bytes), _) => [&[0u8][..], bytes].concat(),
        (_, Endpoint::Path(path)) => path.as_os_str().as_bytes().to_vec(),
        _ => unreachable!("unix names resolve to paths or abstract names"),
    };
    Ok((endpoint, target))
}

pub(crate) async fn connect(name: &Name, _opts: &ConnectOptions) -> Result<Stream, Error> {
    let (endpoint, target) = connect_target(name)?;
    connect_stream(&target)
        .await
        .map_err(|e| Error::from_io("connect", &endpoint, e))
}

/// Linux and Android: a non-blocking connect, which for a local socket completes at once or
/// fails (a full backlog with `EAGAIN`, as Tokio reports it too; never `EINPROGRESS`), so the
/// stream is ready without the reactor turn Tokio's connect waits for writability with, nor
/// its registration for write events that the stream would drop again.
#[cfg(all(
    not(mio_unsupported_force_poll_poll),
    any(target_os = "linux", target_os = "android")
))]
async fn connect_stream(target: &[u8]) -> io::Result<Stream> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: `sockaddr_un` is plain old data, valid when zeroed.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    // A path needs room for its terminating NUL; an abstract name (leading NUL) does not.
    let nul = usize::from(target.first() != Some(&0));
    if target.len() + nul > addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket address longer than sun_path",
        ));
    }
    for (to, from) in addr.sun_path.iter_mut().zip(target) {
        *to = *from as libc::c_char;
    }
    let len = std::mem::offset_of!(libc::sockaddr_un, sun_path) + target.len() + nul;
    // SAFETY: socket has no memory preconditions; it returns a new descriptor or -1.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let sock = UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
    // SAFETY: `addr` is a valid `sockaddr_un` whose first `len` bytes are the address.
    let rc = unsafe {
        libc::connect(
            fd,
            (&raw const addr).cast::<libc::sockaddr>(),
            len as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    super::stream::from_nonblocking(sock)
}

#[cfg(any(
    mio_unsupported_force_poll_poll,
    not(any(target_os = "linux", target_os = "android"))
))]
async fn connect_stream(target: &[u8]) -> io::Result<Stream> {
    let stream = tokio::net::UnixStream::connect(OsStr::from_bytes(target)).await?;
    super::stream::from_std(stream.into_std()?)
}

pub(crate) fn connect_blocking(
    name: &Name,
    _opts: &ConnectOptions,
) -> Result<BlockingStream, Error> {
    let (endpoint, target) = connect_target(name)?;
    let result = match target.strip_prefix(&[0u8]) {
        Some(abstract_name) => connect_abstract(abstract_name),
        None => UnixStream::connect(OsStr::from_bytes(&target)),
    };
    let stream = result.map_err(|e| Error::from_io("connect", &endpoint, e))?;
    widen_send_buffer(&stream);
    Ok(stream)
}

/// What a connected socket's send buffer is asked to hold: as much as a stream's default
/// window ([`DEFAULT_WINDOW`](crate::stream::DEFAULT_WINDOW)).
const SEND_BUFFER: usize = crate::stream::DEFAULT_WINDOW as usize;

/// Asks for a send buffer of [`SEND_BUFFER`] bytes on a connected socket, if it has less.
///
/// A Unix stream socket's send buffer bounds what may be on its way to the peer, whatever
/// the credit of the streams on it; the system's default (208 KiB on Linux, 8 KiB on macOS)
/// would keep a stream's sender waiting for the socket with most of its window unspent. The
/// buffer is a limit, not memory set aside: an idle connection costs no more. The system may
/// grant less (Linux caps it at `net.core.wmem_max`); that only costs speed, so a refusal is
/// not an error.
pub(super) fn widen_send_buffer(stream: &impl AsRawFd) {
    let want = libc::c_int::try_from(SEND_BUFFER).unwrap_or(libc::c_int::MAX);
    if send_buffer(stream).is_ok_and(|have| have >= want) {
        return;
    }
    // SAFETY: the descriptor is an open socket for the call; `want` is valid for reads of
    // the size given.
    let set = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&raw const want).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if set != 0 {
        tracing::trace!(error = %io::Error::last_os_error(), "send buffer left as it was");
    }
}

/// A socket's send buffer as the system reports it (Linux reports twice what was asked for,
/// room for its bookkeeping included).
fn send_buffer(socket: &impl AsRawFd) -> io::Result<libc::c_int> {
    let mut have: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: the descriptor is an open socket for the call; `have` and `len` are valid for
    // writes of the sizes given.
    let got = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&raw mut have).cast(),
            &raw mut len,
        )
    };
    if got == 0 {
        Ok(have)
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_addr(name: &[u8]) -> io::Result<std::os::unix::net::SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    std::os::unix::net::SocketAddr::from_abstract_name(name)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn connect_abstract(name: &[u8]) -> io::Result<UnixStream> {
    UnixStream::connect_addr(&abstract_addr(name)?)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn bind_abstract(name: &[u8]) -> io::Result<UnixListener> {
    UnixListener::bind_addr(&abstract_addr(name)?)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn connect_abstract(_name: &[u8]) -> io::Result<UnixStream> {
    unreachable!("abstract names are only constructed on Linux and Android")
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) fn bind_abstract(_name: &[u8]) -> io::Result<UnixListener> {
    unreachable!("abstract names are only constructed on Linux and Android")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ends of a connection, made either way, get a send buffer wider than the system
    /// gives a socket left as it is (unless that is as wide already: then it is kept).
    #[test]
    fn connected_sockets_send_from_a_buffer_wider_than_the_default() {
        let (plain, _) = UnixStream::pair().unwrap();
        let default = send_buffer(&plain).unwrap();
        let wide_already = default >= libc::c_int::try_from(SEND_BUFFER).unwrap();
        let widened = |have: libc::c_int| have > default || (wide_already && have == default);
        let dir = std::env::temp_dir().join(format!("localrpc-sndbuf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let name = Name::path(dir.join("s.sock")).unwrap();
        let opts = ListenerOptions::new();

        let listener = BlockingListener::bind(&name, &opts).unwrap();
        let client = connect_blocking(&name, &ConnectOptions::default()).unwrap();
        let server = listener.accept().unwrap();
        for (side, have) in [
            ("client", send_buffer(&client).unwrap()),
            ("server", send_buffer(&server).unwrap()),
        ] {
            assert!(
                widened(have),
                "{side} (blocking): {have}, default {default}"
            );
        }
        drop(listener);

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = Listener::bind(&name, &opts).unwrap();
            let connect_opts = ConnectOptions::default();
            let (client, server) = tokio::join!(connect(&name, &connect_opts), listener.accept());
            let (client, server) = (client.unwrap(), server.unwrap());
            for (side, have) in [
                ("client", send_buffer(&client).unwrap()),
                ("server", send_buffer(&server).unwrap()),
            ] {
                assert!(widened(have), "{side}: {have}, default {default}");
            }
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
}
