//! Calls back: the server calling the service this client offers, on the same connection.
use std::sync::Arc;

use futures_util::future::{AbortHandle, Abortable};

use super::Connection;
use crate::server::{BoxError, ServerRequest, ServerResponse};
use crate::{ServiceInfo, wire};

/// How many calls back a client runs at once; more are refused.
const MAX_CALLBACKS: usize = 1024;

/// A service a client offers on its connection for the server to call back.
#[derive(Clone)]
pub(crate) struct Offered {
    pub(crate) info: &'static ServiceInfo,
    pub(crate) svc: tower::util::BoxCloneSyncService<ServerRequest, ServerResponse, BoxError>,
}

impl std::fmt::Debug for Offered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offered")
            .field("service", &self.info.name())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Serves a call back from the server with the offered service, on a task of its own.
    pub(super) fn on_callback(self: &Arc<Self>, req: wire::Request) {
        let id = req.call_id;
        let refusal = match &self.offered {
            None => Some((
                wire::Code::UnknownMethod,
                "this client offers no service to call back".to_owned(),
            )),
            Some(_) if self.callbacks.lock().unwrap().len() >= MAX_CALLBACKS => Some((
                wire::Code::Refused,
                format!("this client runs at most {MAX_CALLBACKS} calls back at once"),
            )),
            Some(_) => None,
        };
        let (Some(offered), None) = (&self.offered, refusal.as_ref()) else {
            let (code, message) = refusal.expect("refused");
            let status = wire::Status::new(code, message);
            let reply = crate::server::Reply::Error(status);
            let frame = crate::server::response_frame(id, reply, &self.callback_config);
            self.write_later(frame);
            return;
        };
        let mut request = crate::server::server_request(req, offered.info, self.server, None);
        request.context.peer = self.server;
        let call = crate::server::run_call(offered.svc.clone(), request);
        let (abort, registration) = AbortHandle::new_pair();
        self.callbacks.lock().unwrap().insert(id, abort);
        let conn = Arc::downgrade(self);
        tokio::spawn(async move {
            let reply = Abortable::new(call, registration).await;
            let Some(conn) = conn.upgrade() else { return };
            conn.callbacks.lock().unwrap().remove(&id);
            if let Ok(reply) = reply {
                let frame = crate::server::response_frame(id, reply, &conn.callback_config);
                conn.write_later(frame);
            }
        });
    }

    /// The server dropped a call back: drop its handler.
    pub(super) fn cancel_callback(&self, id: u64) {
        if let Some(abort) = self.callbacks.lock().unwrap().remove(&id) {
            abort.abort();
        }
    }
}

impl Drop for Connection {
    /// Calls back still running have nobody to answer to.
    fn drop(&mut self) {
        for (_, abort) in self.callbacks.get_mut().unwrap().drain() {
            abort.abort();
        }
    }
}
