//! localrpc: the service of `benches/rpc.rs`, postcard over its own framing.
use std::path::Path;

use futures_util::StreamExt;
use localrpc::Streaming;
use serde_bytes::ByteBuf;

use crate::contender::Contender;
use crate::raw::name;

/// The echo service under test.
#[localrpc::service]
trait Echo {
    async fn echo(&self, data: ByteBuf) -> ByteBuf;
    /// `count` items of `size` bytes each.
    async fn items(&self, count: u32, size: u32) -> Streaming<ByteBuf>;
}

struct EchoImpl;

impl Echo for EchoImpl {
    async fn echo(&self, data: ByteBuf) -> ByteBuf {
        data
    }
    async fn items(&self, count: u32, size: u32) -> Streaming<ByteBuf> {
        let item = ByteBuf::from(vec![7u8; size as usize]);
        Streaming::from_iter((0..count).map(move |_| item.clone()))
    }
}

/// A localrpc client on one connection.
#[derive(Clone)]
pub(crate) struct Localrpc(EchoClient);

impl Contender for Localrpc {
    const NAME: &'static str = "localrpc";
    type Payload = ByteBuf;

    fn payload(data: Vec<u8>) -> ByteBuf {
        ByteBuf::from(data)
    }

    async fn serve(path: &Path) {
        let server = localrpc::Server::builder()
            .bind(name(path).as_str())
            .unwrap();
        crate::server::ready();
        server.serve(EchoServer::new(EchoImpl)).await.unwrap();
    }

    async fn connect(path: &Path) -> Self {
        Localrpc(EchoClient::connect(name(path).as_str()).await.unwrap())
    }

    async fn echo(&mut self, data: ByteBuf) -> usize {
        self.0.echo(data).await.unwrap().len()
    }
}

impl crate::streaming::Streamer for Localrpc {
    async fn items(&mut self, count: u32, size: u32) -> u64 {
        let mut items = self.0.items(count, size).await.unwrap();
        let mut got = 0;
        while let Some(item) = items.next().await {
            assert_eq!(item.unwrap().len(), size as usize);
            got += 1;
        }
        got
    }
}
