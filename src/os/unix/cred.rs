//! Peer credentials of a connected Unix socket.
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use crate::ipc::PeerCredentials;

/// The uid, gid and (where the OS tells it) pid of the process at the other end of `sock`.
pub(crate) fn peer_credentials(sock: &impl AsRawFd) -> io::Result<PeerCredentials> {
    imp(sock.as_raw_fd())
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn imp(fd: RawFd) -> io::Result<PeerCredentials> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes and `len` is the size of `cred`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(PeerCredentials::new(
        u32::try_from(cred.pid).ok().filter(|&p| p != 0),
        Some(cred.uid),
        Some(cred.gid),
    ))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn imp(fd: RawFd) -> io::Result<PeerCredentials> {
    let mut uid: libc::uid_t = 0;
    let mut gid: libc::gid_t = 0;
    // SAFETY: `uid` and `gid` are valid for writes.
    if unsafe { libc::getpeereid(fd, &mut uid, &mut gid) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(PeerCredentials::new(peer_pid(fd), Some(uid), Some(gid)))
}

#[cfg(any(target_os = "macos", target_os = "ios"))]
fn peer_pid(fd: RawFd) -> Option<u32> {
    let mut pid: libc::pid_t = 0;
    let mut len = std::mem::size_of::<libc::pid_t>() as libc::socklen_t;
    // SAFETY: `pid` and `len` are valid for writes and `len` is the size of `pid`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_LOCAL,
            libc::LOCAL_PEERPID,
            (&raw mut pid).cast(),
            &mut len,
        )
    };
    (rc == 0).then(|| u32::try_from(pid).ok()).flatten()
}

/// FreeBSD 13 and later report the pid in `xucred`; older kernels leave it 0.
#[cfg(target_os = "freebsd")]
fn peer_pid(fd: RawFd) -> Option<u32> {
    // SAFETY: xucred is plain old data; all-zero is a valid value.
    let mut cred: libc::xucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::xucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes and `len` is the size of `cred`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_LOCAL,
            libc::LOCAL_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    // SAFETY: the kernel fills the pid member of the union.
    let pid = unsafe { cred.cr_pid__c_anonymous_union.cr_pid };
    (rc == 0 && pid > 0).then_some(pid as u32)
}

#[cfg(target_os = "netbsd")]
fn peer_pid(fd: RawFd) -> Option<u32> {
    let mut id = libc::unpcbid {
        unp_pid: 0,
        unp_euid: 0,
        unp_egid: 0,
    };
    let mut len = std::mem::size_of::<libc::unpcbid>() as libc::socklen_t;
    // SAFETY: `id` and `len` are valid for writes and `len` is the size of `id`.
    let rc =
        unsafe { libc::getsockopt(fd, 0, libc::LOCAL_PEEREID, (&raw mut id).cast(), &mut len) };
    (rc == 0 && id.unp_pid > 0).then_some(id.unp_pid as u32)
}

/// Other Unixes have no call for the peer's pid; only uid and gid are reported.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd"
)))]
fn peer_pid(_fd: RawFd) -> Option<u32> {
    None
}
