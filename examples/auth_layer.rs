//! An authorization layer in a few lines: only processes of the server's own user may call.
//!
//! ```text
//! cargo run --example auth_layer
//! ```
//! The server and the client run in one process here for brevity; the peer credentials are
//! still the kernel's view of the connecting process.
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use localrpc::{ServerRequest, ServerResponse};

/// A greeter.
#[localrpc::service]
pub trait Greeter {
    /// Says hello.
    async fn hello(&self, name: String) -> String;
}

struct Friendly;

impl Greeter for Friendly {
    async fn hello(&self, name: String) -> String {
        format!("hello, {name}")
    }
}

/// Lets a call through only if the caller's uid is `allowed` (Unix) — on Windows, where the
/// pipe's security descriptor already admits only the owner, every call passes.
#[derive(Clone)]
struct OnlyUid {
    allowed: Option<u32>,
}

impl<S> tower::Layer<S> for OnlyUid {
    type Service = OnlyUidService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        OnlyUidService {
            inner,
            allowed: self.allowed,
        }
    }
}

#[derive(Clone)]
struct OnlyUidService<S> {
    inner: S,
    allowed: Option<u32>,
}

impl<S> tower::Service<ServerRequest> for OnlyUidService<S>
where
    S: tower::Service<ServerRequest, Response = ServerResponse>,
    S::Future: Send + 'static,
{
    type Response = ServerResponse;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<ServerResponse, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: ServerRequest) -> Self::Future {
        let uid = req.peer().and_then(|p| p.uid());
        if self.allowed.is_some() && uid != self.allowed {
            let msg = format!("uid {uid:?} may not call {}", req.method_name());
            return Box::pin(async move { Ok(ServerResponse::refused(msg)) });
        }
        Box::pin(self.inner.call(req))
    }
}

#[cfg(unix)]
fn my_uid() -> Option<u32> {
    // SAFETY: getuid has no preconditions and cannot fail.
    Some(unsafe { libc::getuid() })
}

#[cfg(not(unix))]
fn my_uid() -> Option<u32> {
    None
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("localrpc-auth-example-{}", std::process::id());
    let server = localrpc::Server::builder()
        .layer(OnlyUid { allowed: my_uid() })
        .bind(name.as_str())?;
    tokio::spawn(server.serve(GreeterServer::new(Friendly)));

    let greeter = GreeterClient::connect(name.as_str()).await?;
    println!("{}", greeter.hello("same user".into()).await?);

    // A server that admits only uid 12345 refuses us, with a typed error.
    let strict_name = format!("{name}-strict");
    let strict = localrpc::Server::builder()
        .layer(OnlyUid {
            allowed: my_uid().map(|_| 12345),
        })
        .bind(strict_name.as_str())?;
    tokio::spawn(strict.serve(GreeterServer::new(Friendly)));
    let greeter = GreeterClient::connect(strict_name.as_str()).await?;
    match greeter.hello("someone else".into()).await {
        Err(localrpc::Error::Refused { message }) => println!("refused: {message}"),
        other => println!("{other:?}"),
    }
    Ok(())
}
