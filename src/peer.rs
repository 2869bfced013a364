//! Calls from a server back to its client, on the client's own connection.
//!
//! A client can offer a service when it connects ([`ClientBuilder::offer`]); the server's
//! handlers then call it through a typed client got from [`peer_client`]. Calls back share
//! the connection, its handshake, deadlines (a call back inherits the remaining deadline of
//! the call being served) and cancellation (if the server drops the call back, the client
//! drops its handler).
//!
//! [`ClientBuilder::offer`]: crate::ClientBuilder::offer
use crate::ids::CallMap;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot};

use crate::client::Outgoing;
use crate::transport::Parts;
use crate::wire::{self, envelope};
use crate::{CallContext, CallRequest, CallResponse, Error, NamedService};

type Reply = Result<CallResponse, Error>;

/// A client of the service the caller offered on its connection: what [`peer_client`]
/// wraps in a typed client. A `tower::Service<CallRequest>`, like [`Client`](crate::Client).
///
/// Methods that take or return streams cannot be called back (the call fails with
/// [`Error::Protocol`]); unary methods can.
///
/// See [`peer_client`] for an example.
#[derive(Clone)]
pub struct PeerClient {
    shared: Arc<PeerShared>,
}

pub(crate) struct PeerShared {
    service: String,
    hash: u64,
    out: mpsc::UnboundedSender<Parts>,
    max_frame_len: usize,
    pending: Mutex<PeerPending>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct PeerPending {
    calls: CallMap<oneshot::Sender<Reply>>,
    closed: bool,
}

impl fmt::Debug for PeerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerClient")
            .field("service", &self.shared.service)
            .finish_non_exhaustive()
    }
}

/// A typed client of the service the client of the current call offered, for a handler to
/// call back.
///
/// Fails with [`Error::HandshakeRefused`] if the caller offered no service, or another one
/// (its name or method table differs from `C`'s), and with [`Error::Protocol`] outside a
/// handler.
///
/// ```no_run
/// use localrpc::{NamedService, PeerClient};
///
/// #[localrpc::service]
/// pub trait Progress {
///     async fn report(&self, percent: u8);
/// }
///
/// #[localrpc::service]
/// pub trait Worker {
///     async fn work(&self) -> u64;
/// }
///
/// struct W;
///
/// impl Worker for W {
///     async fn work(&self) -> u64 {
///         let progress: ProgressClient<PeerClient> = localrpc::peer_client().unwrap();
///         for percent in [25, 50, 75, 100] {
///             progress.report(percent).await.unwrap(); // runs in the client's process
///         }
///         42
///     }
/// }
///
/// struct Printer;
///
/// impl Progress for Printer {
///     async fn report(&self, percent: u8) {
///         println!("{percent}%");
///     }
/// }
///
/// # async fn client() -> Result<(), localrpc::Error> {
/// // The client offers Progress when it connects.
/// let client = localrpc::Client::builder(<WorkerClient>::INFO)
///     .offer(ProgressServer::new(Printer))
///     .connect("myapp.worker")
///     .await?;
/// assert_eq!(WorkerClient::new(client).work().await?, 42);
/// # Ok(()) }
/// ```
pub fn peer_client<C>() -> Result<C, Error>
where
    C: NamedService + From<PeerClient>,
{
    let peer = CallContext::with_current(|ctx| ctx.callbacks.clone())
        .ok_or_else(|| Error::Protocol("peer_client() is for a handler serving a call".into()))?;
    let Some(peer) = peer else {
        return Err(Error::HandshakeRefused {
            reason: crate::RefuseReason::Service,
            message: format!(
                "the client of this call offers no service; {} was wanted",
                C::INFO.name()
            ),
        });
    };
    let (service, hash) = (&peer.shared.service, peer.shared.hash);
    if service != C::INFO.name() {
        return Err(Error::HandshakeRefused {
            reason: crate::RefuseReason::Service,
            message: format!(
                "the client offers service {service:?}, not {:?}",
                C::INFO.name()
            ),
        });
    }
    if hash != C::INFO.hash() {
        return Err(Error::HandshakeRefused {
            reason: crate::RefuseReason::MethodTable,
            message: format!(
                "service {service:?}: the client offers method table {hash:016x}, this server \
                 expects {:016x} (methods: {})",
                C::INFO.hash(),
                C::INFO.methods().join(", ")
            ),
        });
    }
    Ok(C::from(peer))
}

impl PeerClient {
    pub(crate) fn new(
        service: String,
        hash: u64,
        out: mpsc::UnboundedSender<Parts>,
        max_frame_len: usize,
    ) -> PeerClient {
        PeerClient {
            shared: Arc::new(PeerShared {
                service,
                hash,
                out,
                max_frame_len,
                pending: Mutex::new(PeerPending::default()),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// Performs one call back. This is what the `tower::Service` implementation runs.
    ///
    /// See [`peer_client`] for an example.
    pub async fn request(&self, req: CallRequest) -> Result<CallResponse, Error> {
        if req.has_request_stream() || req.has_response_stream() {
            return Err(Error::Protocol(format!(
                "{} takes or returns a stream: only unary methods can be called back",
                req.method_name()
            )));
        }
        let out = Outgoing::new(req.timeout);
        let deadline = out.deadline;
        let shared = &self.shared;
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = req.into_frame(id, &out, false, None, shared.max_frame_len)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = shared.pending.lock().unwrap();
            if pending.closed {
                return Err(Error::lost("the client's connection is closed"));
            }
            pending.calls.insert(id, tx);
        }
        let mut guard = CancelOnDrop {
            shared,
            id,
            armed: true,
        };
        if shared.out.send(frame).is_err() {
            return Err(Error::lost("the client's connection is closed"));
        }
        let wait = async {
            rx.await
                .unwrap_or_else(|_| Err(Error::lost("the client's connection is closed")))
        };
        let outcome = match deadline {
            Some(d) => match tokio::time::timeout_at(d.into(), wait).await {
                Ok(outcome) => outcome,
                Err(_) => return Err(Error::DeadlineExceeded),
            },
            None => wait.await,
        };
        guard.armed = false;
        outcome
    }

    /// Routes the client's response to a call back.
    pub(crate) fn complete(&self, id: u64, reply: Reply) {
        if let Some(tx) = self.shared.pending.lock().unwrap().calls.remove(&id) {
            let _ = tx.send(reply);
        }
    }

    /// The connection is over: every call back in flight fails.
    pub(crate) fn close(&self) {
        let calls = {
            let mut pending = self.shared.pending.lock().unwrap();
            pending.closed = true;
            std::mem::take(&mut pending.calls)
        };
        for (_, tx) in calls {
            let _ = tx.send(Err(Error::lost("the client's connection is closed")));
        }
    }
}

struct CancelOnDrop<'a> {
    shared: &'a PeerShared,
    id: u64,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed
            && self
                .shared
                .pending
                .lock()
                .unwrap()
                .calls
                .remove(&self.id)
                .is_some()
        {
            let cancel = wire::Cancel { call_id: self.id };
            let frame = wire::encode_envelope(envelope::Kind::Cancel(cancel));
            let _ = self.shared.out.send(Parts::whole(frame));
        }
    }
}

impl tower::Service<CallRequest> for PeerClient {
    type Response = CallResponse;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<CallResponse, Error>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: CallRequest) -> Self::Future {
        let client = self.clone();
        Box::pin(async move { client.request(req).await })
    }
}
