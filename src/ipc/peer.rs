/// The identity of the process at the other end of a local connection.
///
/// On Linux and Android all three fields are known (`SO_PEERCRED`); on macOS, FreeBSD (13 and
/// later) and NetBSD too (`getpeereid` plus the OS's pid query); on other Unixes uid and gid; on Windows the pid (`GetNamedPipeClientProcessId` /
/// `GetNamedPipeServerProcessId`). The values are taken by the kernel when the connection is
/// made, so the peer cannot forge them.
///
/// ```no_run
/// use localrpc::ipc::LocalListener;
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = LocalListener::bind("myapp.calc")?;
/// let stream = listener.accept().await?;
/// let peer = stream.peer_credentials()?;
/// println!("client pid {:?} uid {:?}", peer.pid(), peer.uid());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerCredentials {
    pid: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
}

impl PeerCredentials {
    pub(crate) fn new(pid: Option<u32>, uid: Option<u32>, gid: Option<u32>) -> Self {
        PeerCredentials { pid, uid, gid }
    }

    /// The peer's process id, where the OS reports it.
    ///
    /// See the [type docs](PeerCredentials) for an example.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The peer's effective user id (Unix).
    ///
    /// See the [type docs](PeerCredentials) for an example.
    pub fn uid(&self) -> Option<u32> {
        self.uid
    }

    /// The peer's effective group id (Unix).
    ///
    /// See the [type docs](PeerCredentials) for an example.
    pub fn gid(&self) -> Option<u32> {
        self.gid
    }
}
