#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
pub mod blocking;
mod client;
pub mod codec;
mod context;
mod deadline;
mod error;
mod ids;
pub mod ipc;
pub mod name;
mod os;
mod peer;
pub mod process;
mod server;
mod service;
pub mod stream;
pub mod transport;
mod wire;

pub use client::{CallOptions, CallRequest, CallResponse, Client, ClientBuilder, ReconnectPolicy};
pub use context::{CallContext, Metadata};
pub use error::{Error, RefuseReason};
pub use localrpc_macros::service;
pub use name::{Endpoint, IntoName, Name, NameError};
pub use peer::{PeerClient, peer_client};
pub use server::{BoundServer, Server, ServerBuilder, ServerRequest, ServerResponse};
pub use service::{NamedService, ServiceInfo, method_table_hash};
pub use stream::Streaming;
