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
