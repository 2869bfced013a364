//! A child's channel to its parent: one end of a socketpair, inherited across `exec`.
//!
//! Both ends are created close-on-exec. The child's end is made inheritable only inside the
//! forked child, just before `exec`, so no other process the parent starts (even at the same
//! moment, from another thread) can inherit it. The child learns the descriptor number from
//! an environment variable that also names the parent's pid, so a grandchild that inherits
//! the variable (but not the descriptor) is told so instead of using a stranger's descriptor.
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;

use super::Stream;

/// The parent's side of a channel while the child is being started.
#[derive(Debug)]
pub(crate) struct Pending {
    ours: UnixStream,
    theirs: OwnedFd,
}

/// Creates the channel and arranges for `cmd`'s child to inherit its end.
pub(crate) fn prepare(
    cmd: &mut std::process::Command,
    var: &str,
    kill_with_parent: bool,
) -> io::Result<Pending> {
    if kill_with_parent && !cfg!(any(target_os = "linux", target_os = "android")) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "dying with the parent needs the parent-death signal of Linux or Android",
        ));
    }
    let (ours, theirs) = UnixStream::pair()?;
    let mut theirs = OwnedFd::from(theirs);
    if theirs.as_raw_fd() <= 2 {
        // Standard streams are set up in the child before our hook runs: keep clear of them.
        theirs = dup_above_stdio(&theirs)?;
    }
    let fd = theirs.as_raw_fd();
    let parent = std::process::id();
    cmd.env(var, format!("{parent}:fd:{fd}"));
    // SAFETY: the hook runs in the forked child before `exec` and calls only
    // async-signal-safe functions (fcntl, prctl, getppid); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(io::Error::last_os_error());
            }
            if kill_with_parent {
                die_with_parent(parent)?;
            }
            Ok(())
        });
    }
    Ok(Pending { ours, theirs })
}

fn dup_above_stdio(fd: &OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl on a descriptor we own; a non-negative result is a new descriptor that
    // nothing else owns.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` was just created by F_DUPFD_CLOEXEC and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn die_with_parent(parent: u32) -> io::Result<()> {
    // SAFETY: prctl and getppid have no memory-safety preconditions.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
            return Err(io::Error::last_os_error());
        }
        // The parent may have died before the signal was armed.
        if libc::getppid() as u32 != parent {
            libc::_exit(1);
        }
    }
    Ok(())
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn die_with_parent(_parent: u32) -> io::Result<()> {
    unreachable!("refused in prepare")
}

impl Pending {
    /// The parent's end, once the child has been started (`child_pid`); closes the parent's
    /// copy of the child's end, so that the child's death ends the stream.
    pub(crate) async fn established(self, _child_pid: u32) -> io::Result<Stream> {
        drop(self.theirs);
        super::stream::from_std(self.ours)
    }
}

/// The child's side: the inherited end named by the variable's `value`.
pub(crate) async fn parent_stream(value: &str) -> Result<Stream, String> {
    let (parent, fd) = value
        .split_once(":fd:")
        .and_then(|(p, fd)| Some((p.parse::<u32>().ok()?, fd.parse::<RawFd>().ok()?)))
        .ok_or_else(|| format!("malformed value {value:?}"))?;
    // SAFETY: getppid has no preconditions.
    let actual = unsafe { libc::getppid() } as u32;
    if actual != parent {
        return Err(format!(
            "the channel was made by process {parent}, but this process's parent is \
             {actual}: the variable was inherited from an ancestor (or the parent has died)"
        ));
    }
    // SAFETY: `stat` is plain old data, valid when zeroed.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes into the struct we pass; an invalid fd fails with EBADF.
    if unsafe { libc::fstat(fd, &mut stat) } < 0 {
        let e = io::Error::last_os_error();
        return Err(format!("descriptor {fd} is not open: {e}"));
    }
    if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(format!("descriptor {fd} is not a socket"));
    }
    // SAFETY: `fd` is an open socket the parent passed to this process for this purpose,
    // and the caller takes it at most once per process; from here on we own it.
    let stream = unsafe { UnixStream::from_raw_fd(fd) };
    // Not meant for our own children.
    // SAFETY: fcntl on the descriptor we now own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(format!(
            "cannot mark descriptor {fd} close-on-exec: {}",
            io::Error::last_os_error()
        ));
    }
    super::stream::from_std(stream).map_err(|e| format!("cannot register descriptor {fd}: {e}"))
}
