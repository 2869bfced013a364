//! The pipe listener: claims the name with the first instance, keeps one instance waiting
//! for a client, and creates the next before handing a connected one out.
use std::io;
use std::os::windows::io::AsRawHandle;
use std::ptr;

use tokio::net::windows::named_pipe::{NamedPipeServer, ServerOptions};
use tokio::sync::Mutex;
use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_BROKEN_PIPE, ERROR_NO_DATA, ERROR_PIPE_BUSY,
};
use windows_sys::Win32::System::Pipes::GetNamedPipeHandleStateW;

use super::name::pipe_path;
use super::security::{SecurityDescriptor, owner_only_sddl};
use super::stream::Stream;
use crate::ipc::{Error, ListenerOptions};
use crate::{Endpoint, Name};

/// Windows-only listener options, carried inside [`ListenerOptions`].
#[derive(Debug, Clone, Default)]
pub(crate) struct ListenerOptionsExt {
    /// `None`: owner only, built from the current user's SID at bind time.
    sddl: Option<String>,
}

impl ListenerOptions {
    /// The security descriptor of the pipe, in SDDL (Windows only; default: a DACL that
    /// grants access to the current user only).
    ///
    /// Every instance of the pipe gets this descriptor, so it decides who may connect.
    /// Widening it is an explicit choice: `D:P(A;;GA;;;AU)` admits every authenticated user,
    /// `D:P(A;;GA;;;BA)(A;;GA;;;SY)` administrators and the local system (for a server that
    /// runs as one of them). It must keep granting the server's own account access, or the
    /// listener cannot create the next pipe instance after the first client. Whatever it
    /// says, remote clients are always rejected. A string that is not valid SDDL makes
    /// `bind` fail.
    ///
    /// ```no_run
    /// use localrpc::ipc::ListenerOptions;
    /// # async fn demo() -> Result<(), localrpc::ipc::Error> {
    /// let listener = ListenerOptions::new()
    ///     .security_descriptor("D:P(A;;GA;;;AU)")
    ///     .bind("shared.svc")?;
    /// # Ok(()) }
    /// ```
    pub fn security_descriptor(mut self, sddl: impl Into<String>) -> Self {
        self.os.sddl = Some(sddl.into());
        self
    }
}

#[derive(Debug)]
pub(crate) struct Listener {
    endpoint: Endpoint,
    security: SecurityDescriptor,
    /// The instance waiting for the next client; the lock lets `accept` take `&self`.
    pending: Mutex<NamedPipeServer>,
}

impl Listener {
    /// Must run inside a Tokio runtime with I/O enabled. `opts.reclaim` has nothing to do
    /// here: a pipe disappears with its last handle, so it never goes stale.
    pub(crate) fn bind(name: &Name, opts: &ListenerOptions) -> Result<Listener, Error> {
        let endpoint = name.endpoint()?;
        let security = match &opts.os.sddl {
            Some(sddl) => SecurityDescriptor::from_sddl(sddl),
            None => owner_only_sddl().and_then(|sddl| SecurityDescriptor::from_sddl(&sddl)),
        }
        .map_err(|source| Error::Io {
            op: "build the security descriptor for",
            endpoint: endpoint.clone(),
            source,
        })?;
        let first = create_instance(pipe_path(&endpoint), &security, true)
            .map_err(|e| bind_error(&endpoint, e))?;
        // Belt and braces for pipe implementations that ignore the first-instance flag (Wine
        // does): a first instance that is not alone joined someone else's pipe.
        if current_instances(&first).map_err(|e| Error::from_io("bind", &endpoint, e))? > 1 {
            return Err(Error::AddrInUse { endpoint });
        }
        tracing::debug!(%endpoint, "pipe listener bound");
        Ok(Listener {
            endpoint,
            security,
            pending: Mutex::new(first),
        })
    }

    /// Waits for a client on the pending instance, then puts a fresh instance in its place
    /// before returning the connected one, so that a client never finds no instance at all.
    ///
    /// Cancel safe: if the future is dropped, the pending instance stays where it is.
    pub(crate) async fn accept(&self) -> io::Result<Stream> {
        let mut pending = self.pending.lock().await;
        loop {
            match pending.connect().await {
                Ok(()) => break,
                // The client came and went before we noticed: that instance is spent.
                Err(e) if is_gone(&e) => *pending = self.next_instance()?,
                Err(e) => return Err(e),
            }
        }
        // If this fails, the connected instance stays pending and the next accept returns it.
        let next = self.next_instance()?;
        Ok(Stream::Server(std::mem::replace(&mut *pending, next)))
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn next_instance(&self) -> io::Result<NamedPipeServer> {
        create_instance(pipe_path(&self.endpoint), &self.security, false)
    }
}

/// Classifies a failure to create the first instance.
pub(super) fn bind_error(endpoint: &Endpoint, e: io::Error) -> Error {
    match e.raw_os_error().map(|code| code as u32) {
        // With FILE_FLAG_FIRST_PIPE_INSTANCE, an existing pipe of that name (ours, another
        // user's, or a squatter's) makes CreateNamedPipeW fail this way.
        Some(ERROR_ACCESS_DENIED | ERROR_PIPE_BUSY) => Error::AddrInUse {
            endpoint: endpoint.clone(),
        },
        _ => Error::from_io("bind", endpoint, e),
    }
}

/// How many instances the pipe behind the server end `pipe` has right now, ours included.
pub(super) fn current_instances(pipe: &impl AsRawHandle) -> io::Result<u32> {
    let mut instances = 0u32;
    // SAFETY: the handle is live for the call, `instances` is valid for writes, and every
    // other output is null, as the server end requires.
    let ok = unsafe {
        GetNamedPipeHandleStateW(
            pipe.as_raw_handle(),
            ptr::null_mut(),
            &mut instances,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            0,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(instances)
}

fn is_gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(|code| code as u32),
        Some(ERROR_NO_DATA | ERROR_BROKEN_PIPE)
    )
}

/// One byte-mode, overlapped instance of `path` that rejects remote clients.
fn create_instance(
    path: &str,
    security: &SecurityDescriptor,
    first: bool,
) -> io::Result<NamedPipeServer> {
    let mut attrs = security.attributes();
    // SAFETY: `attrs` is a valid SECURITY_ATTRIBUTES whose descriptor is owned by `security`,
    // which outlives the call; CreateNamedPipeW copies the descriptor into the pipe.
    unsafe {
        ServerOptions::new()
            .first_pipe_instance(first)
            .reject_remote_clients(true)
            .create_with_security_attributes_raw(path, (&raw mut attrs).cast())
    }
}
