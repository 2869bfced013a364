#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod codec;
pub mod ipc;
pub mod name;
mod os;
pub mod transport;

pub use name::{Endpoint, IntoName, Name, NameError};
