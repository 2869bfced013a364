//! The process at the other end of a pipe.
use std::io;
use std::os::windows::io::AsRawHandle;

use windows_sys::Win32::System::Pipes::{GetNamedPipeClientProcessId, GetNamedPipeServerProcessId};

use crate::ipc::PeerCredentials;

/// A connected pipe handle that knows which end it is: the peer of a server end is the
/// client, and the other way round.
pub(crate) trait PipeEnd: AsRawHandle {
    /// Whether this is an instance a listener accepted (as opposed to a client end).
    fn is_server(&self) -> bool;
}

/// The pid of the process at the other end; Windows reports neither uid nor gid.
pub(crate) fn peer_credentials(pipe: &impl PipeEnd) -> io::Result<PeerCredentials> {
    let handle = pipe.as_raw_handle();
    let mut pid = 0u32;
    // SAFETY: `handle` is a live pipe handle borrowed from `pipe` for the whole call, and
    // `pid` is valid for writes.
    let ok = unsafe {
        if pipe.is_server() {
            GetNamedPipeClientProcessId(handle, &mut pid)
        } else {
            GetNamedPipeServerProcessId(handle, &mut pid)
        }
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(PeerCredentials::new(
        Some(pid).filter(|&p| p != 0),
        None,
        None,
    ))
}
