//! Unnamed pipes: one-way named pipes with a unique random name, connected at once, and the
//! handle conversions of the public pipe ends.
//!
//! Windows' anonymous pipes (`CreatePipe`) cannot do overlapped I/O, which Tokio needs to wait
//! for a pipe without blocking a worker thread. So each pipe is a named pipe that only its
//! creator can ever use: a random name, the first-instance flag and at most one instance
//! (nobody can have created it before us, and nobody can add an instance after), remote
//! clients rejected, an owner-only security descriptor, and the client end opened right
//! after the server end; if anyone else connected in between, that open fails and a new
//! name is tried. The reading end is the server end (inbound only), the writing end the
//! client end (write access only).
//!
//! Each end is created overlapped (registered with Tokio) or synchronous (a plain `File`),
//! independently. Synchronous ends are what a child's standard library expects of its stdio:
//! an overlapped handle there would make the child's reads fail. No handle is inheritable.
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::{
    AsHandle, AsRawHandle, BorrowedHandle, FromRawHandle, IntoRawHandle, OwnedHandle, RawHandle,
};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::net::windows::named_pipe::{NamedPipeClient, NamedPipeServer};
use windows_sys::Win32::Foundation::{ERROR_ACCESS_DENIED, ERROR_PIPE_BUSY, INVALID_HANDLE_VALUE};
use windows_sys::Win32::Storage::FileSystem::{
    FILE_FLAG_FIRST_PIPE_INSTANCE, FILE_FLAG_OVERLAPPED, PIPE_ACCESS_INBOUND,
    SECURITY_IDENTIFICATION,
};
use windows_sys::Win32::System::Pipes::{
    CreateNamedPipeW, PIPE_READMODE_BYTE, PIPE_REJECT_REMOTE_CLIENTS, PIPE_TYPE_BYTE, PIPE_WAIT,
};

use super::listener::current_instances;
use super::name::PIPE_PREFIX;
use super::security::{SecurityDescriptor, owner_only_sddl};
use crate::ipc::{self, blocking};

pub(crate) type PipeSender = NamedPipeClient;
pub(crate) type PipeReceiver = NamedPipeServer;

/// The reading end's buffer: what a writer can get ahead of the reader.
const BUFFER_SIZE: u32 = 64 * 1024;
/// How many names to try before giving up (a clash needs someone guessing random names).
const ATTEMPTS: u32 = 16;

pub(crate) fn pipe() -> io::Result<(PipeSender, PipeReceiver)> {
    let (tx, rx) = pair(true, true)?;
    Ok((tokio_sender(tx)?, tokio_receiver(rx)?))
}

pub(crate) fn pipe_blocking() -> io::Result<(File, File)> {
    let (tx, rx) = pair(false, false)?;
    Ok((File::from(tx), File::from(rx)))
}

pub(crate) fn pipe_blocking_receiver() -> io::Result<(PipeSender, File)> {
    let (tx, rx) = pair(true, false)?;
    Ok((tokio_sender(tx)?, File::from(rx)))
}

pub(crate) fn pipe_blocking_sender() -> io::Result<(File, PipeReceiver)> {
    let (tx, rx) = pair(false, true)?;
    Ok((File::from(tx), tokio_receiver(rx)?))
}

fn tokio_sender(handle: OwnedHandle) -> io::Result<PipeSender> {
    // SAFETY: the handle is an overlapped pipe client end that we own and hand over; tokio
    // closes it if registration fails.
    unsafe { NamedPipeClient::from_raw_handle(handle.into_raw_handle()) }
}

fn tokio_receiver(handle: OwnedHandle) -> io::Result<PipeReceiver> {
    // SAFETY: the handle is an overlapped pipe server end that we own and hand over; tokio
    // closes it if registration fails.
    unsafe { NamedPipeServer::from_raw_handle(handle.into_raw_handle()) }
}

/// Creates a connected pair, `(write end, read end)`, each overlapped or not as asked.
fn pair(tx_overlapped: bool, rx_overlapped: bool) -> io::Result<(OwnedHandle, OwnedHandle)> {
    let security = security()?;
    let overlapped = |yes: bool| if yes { FILE_FLAG_OVERLAPPED } else { 0 };
    for _ in 0..ATTEMPTS {
        let name = unique_name();
        let wide: Vec<u16> = name.encode_utf16().chain(Some(0)).collect();
        let mut attrs = security.attributes();
        // SAFETY: `wide` is NUL-terminated UTF-16 and `attrs` a valid SECURITY_ATTRIBUTES
        // whose descriptor `security` owns; both outlive the call, which copies them.
        let raw = unsafe {
            CreateNamedPipeW(
                wide.as_ptr(),
                PIPE_ACCESS_INBOUND | FILE_FLAG_FIRST_PIPE_INSTANCE | overlapped(rx_overlapped),
                PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                1,
                0,
                BUFFER_SIZE,
                0,
                &mut attrs,
            )
        };
        if raw == INVALID_HANDLE_VALUE {
            let e = io::Error::last_os_error();
            if is_taken(&e) {
                continue;
            }
            return Err(e);
        }
        // SAFETY: CreateNamedPipeW succeeded, so `raw` is a handle that we now own.
        let rx = unsafe { OwnedHandle::from_raw_handle(raw) };
        // Pipe implementations that ignore the first-instance flag (Wine does) would let us
        // join a pipe someone else made; such a pipe has more than our one instance.
        if current_instances(&rx)? > 1 {
            continue;
        }
        let mut client = OpenOptions::new();
        client
            .write(true)
            .security_qos_flags(SECURITY_IDENTIFICATION)
            .custom_flags(overlapped(tx_overlapped));
        match client.open(&name) {
            Ok(tx) => return Ok((OwnedHandle::from(tx), rx)),
            // Someone connected to our only instance first: drop it and start over.
            Err(e) if is_taken(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "every name tried for an unnamed pipe was taken",
    ))
}

/// The owner-only descriptor, built once per process (the process's user does not change).
fn security() -> io::Result<&'static SecurityDescriptor> {
    static SECURITY: OnceLock<SecurityDescriptor> = OnceLock::new();
    if let Some(sd) = SECURITY.get() {
        return Ok(sd);
    }
    let sd = SecurityDescriptor::from_sddl(&owner_only_sddl()?)?;
    Ok(SECURITY.get_or_init(|| sd))
}

/// `\\.\pipe\localrpc-pipe-<pid>-<counter>-<random>`: unique in this process by the counter,
/// and not guessable by others thanks to the random part.
fn unique_name() -> String {
    format!("{PIPE_PREFIX}{}", unique_tag("pipe"))
}

/// `localrpc-<kind>-<pid>-<counter>-<random>`: unique in this process by the counter, and not
/// guessable by others thanks to the random part.
pub(super) fn unique_tag(kind: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // RandomState is seeded from the OS's random source.
    let random = RandomState::new().hash_one(n);
    format!("localrpc-{kind}-{}-{n}-{random:016x}", std::process::id())
}

/// The name exists already (creating) or its one instance is in use (opening).
fn is_taken(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(|code| code as u32),
        Some(ERROR_ACCESS_DENIED | ERROR_PIPE_BUSY)
    )
}

/// `AsHandle`/`AsRawHandle` for every pipe end; `OwnedHandle` conversions both ways for the
/// blocking ones.
macro_rules! handle_impls {
    (tokio: $($tokio:ty),+; blocking: $($blocking:ty),+) => {
        $(
            impl AsHandle for $tokio {
                fn as_handle(&self) -> BorrowedHandle<'_> {
                    self.inner.as_handle()
                }
            }
            impl AsRawHandle for $tokio {
                fn as_raw_handle(&self) -> RawHandle {
                    self.inner.as_raw_handle()
                }
            }
        )+
        $(
            impl AsHandle for $blocking {
                fn as_handle(&self) -> BorrowedHandle<'_> {
                    self.inner.as_handle()
                }
            }
            impl AsRawHandle for $blocking {
                fn as_raw_handle(&self) -> RawHandle {
                    self.inner.as_raw_handle()
                }
            }
            impl From<$blocking> for OwnedHandle {
                fn from(end: $blocking) -> OwnedHandle {
                    end.inner.into()
                }
            }
            /// Takes a synchronous (not overlapped) pipe handle opened elsewhere, for example
            /// inherited from a parent.
            impl From<OwnedHandle> for $blocking {
                fn from(handle: OwnedHandle) -> Self {
                    Self { inner: File::from(handle) }
                }
            }
        )+
    };
}

handle_impls! {
    tokio: ipc::PipeSender, ipc::PipeReceiver;
    blocking: blocking::PipeSender, blocking::PipeReceiver
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::windows::io::AsRawHandle;

    use windows_sys::Win32::Foundation::{GetHandleInformation, HANDLE_FLAG_INHERIT};

    use super::current_instances;
    use crate::ipc::{self, blocking};

    fn inheritable(handle: &impl AsRawHandle) -> bool {
        let mut flags = 0u32;
        // SAFETY: the handle is borrowed for the call and `flags` is valid for writes.
        let ok = unsafe { GetHandleInformation(handle.as_raw_handle(), &mut flags) };
        assert_ne!(ok, 0, "{}", std::io::Error::last_os_error());
        flags & HANDLE_FLAG_INHERIT != 0
    }

    #[test]
    fn ends_are_not_inheritable_and_the_pipe_has_one_instance() {
        let (mut tx, mut rx) = blocking::pipe().unwrap();
        assert!(!inheritable(&tx) && !inheritable(&rx));
        assert_eq!(current_instances(&rx).unwrap(), 1);
        tx.write_all(b"one way").unwrap();
        drop(tx);
        let mut got = Vec::new();
        rx.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"one way");

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let (tx, rx) = ipc::pipe().unwrap();
        assert!(!inheritable(&tx) && !inheritable(&rx));
        let (tx, rx) = ipc::pipe_with_blocking_receiver().unwrap();
        assert!(!inheritable(&tx) && !inheritable(&rx));
        let (tx, rx) = ipc::pipe_with_blocking_sender().unwrap();
        assert!(!inheritable(&tx) && !inheritable(&rx));
    }

    #[test]
    fn the_receiving_end_cannot_write_nor_the_sending_end_read() {
        let (tx, rx) = blocking::pipe().unwrap();
        let mut rx_file = rx.inner;
        let mut tx_file = tx.inner;
        assert!(rx_file.write(b"x").is_err());
        assert!(tx_file.read(&mut [0u8; 1]).is_err());
    }
}
