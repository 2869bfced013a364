//! The pipe listener: claims the name with the first instance, keeps one instance waiting
//! for a client, and creates the next before handing a connected one out.
use std::io;

use tokio::net::windows::named_pipe::{NamedPipeServer, ServerOptions};
use tokio::sync::Mutex;
use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_BROKEN_PIPE, ERROR_NO_DATA, ERROR_PIPE_BUSY,
};

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
    /// `D:P(A;;GA;;;BA)(A;;GA;;;SY)` administrators and the local system. Whatever it says,
    /// remote clients are always rejected. A string that is not valid SDDL makes `bind` fail.
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
        let first = create_instance(pipe_path(&endpoint), &security, true).map_err(|e| {
            match e.raw_os_error().map(|code| code as u32) {
                // With FILE_FLAG_FIRST_PIPE_INSTANCE, an existing pipe of that name (ours,
                // another user's, or a squatter's) makes CreateNamedPipeW fail this way.
                Some(ERROR_ACCESS_DENIED | ERROR_PIPE_BUSY) => Error::AddrInUse {
                    endpoint: endpoint.clone(),
                },
                _ => Error::from_io("bind", &endpoint, e),
            }
        })?;
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
