//! The one place where the operating system is chosen.
//!
//! Every module above this one is portable; each back end provides the same set of items.
#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;

/// Public IPC items that exist on one family of operating systems only; `ipc` re-exports
/// whatever this holds, so the portable modules need no `cfg` of their own.
pub(crate) mod ipc_only {
    #[cfg(unix)]
    pub use super::unix::fifo;
}
