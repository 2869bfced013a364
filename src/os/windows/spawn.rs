//! A child's channel to its parent: a uniquely named pipe that only that child may join.
//!
//! Windows passes inheritable handles to every process started while they exist, so instead
//! of an inherited handle the parent binds a fresh pipe (first instance, owner-only, remote
//! clients rejected), names it to the child in an environment variable, and accepts only a
//! client whose process id is the child's. The listener is dropped once the child is in, so
//! nobody else can join later.
use std::io;

use super::cred::peer_credentials;
use super::pipe::unique_tag;
use super::{Listener, Stream, connect};
use crate::Name;
use crate::ipc::{ConnectOptions, ListenerOptions};

/// The parent's side of a channel while the child is being started.
#[derive(Debug)]
pub(crate) struct Pending {
    listener: Listener,
}

/// Binds the pipe and tells `cmd`'s child where it is.
pub(crate) fn prepare(
    cmd: &mut std::process::Command,
    var: &str,
    kill_with_parent: bool,
) -> io::Result<Pending> {
    if kill_with_parent {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "dying with the parent needs the parent-death signal of Linux or Android",
        ));
    }
    let parent = std::process::id();
    let pipe = unique_tag("spawn");
    let name = Name::new(pipe.clone()).map_err(|e| io::Error::new(io::ErrorKind::Other, e))?;
    let listener = Listener::bind(&name, &ListenerOptions::new()).map_err(io::Error::from)?;
    cmd.env(var, format!("{parent}:pipe:{pipe}"));
    Ok(Pending { listener })
}

impl Pending {
    /// Waits for the child (`child_pid`) to connect; anyone else is turned away.
    pub(crate) async fn established(self, child_pid: u32) -> io::Result<Stream> {
        loop {
            let stream = self.listener.accept().await?;
            let pid = peer_credentials(&stream).ok().and_then(|c| c.pid());
            if pid == Some(child_pid) {
                return Ok(stream);
            }
            tracing::warn!(?pid, child_pid, "refused a stranger on a child's pipe");
        }
    }
}

/// The child's side: connects to the pipe named by the variable's `value` and checks that
/// the parent is at the other end.
pub(crate) async fn parent_stream(value: &str) -> Result<Stream, String> {
    let (parent, pipe) = value
        .split_once(":pipe:")
        .and_then(|(p, pipe)| Some((p.parse::<u32>().ok()?, pipe)))
        .ok_or_else(|| format!("malformed value {value:?}"))?;
    let name = Name::new(pipe).map_err(|e| format!("bad pipe name {pipe:?}: {e}"))?;
    let stream = connect(&name, &ConnectOptions::new()).await.map_err(|e| {
        format!("cannot reach the parent's pipe (already taken, or the parent is gone): {e}")
    })?;
    let server = peer_credentials(&stream).ok().and_then(|c| c.pid());
    if server != Some(parent) {
        return Err(format!(
            "the pipe is served by process {server:?}, not by the parent {parent}"
        ));
    }
    Ok(stream)
}
