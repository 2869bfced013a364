//! tarpc 0.38: bincode over `tarpc::serde_transport::unix`, with tarpc's default client and
//! server configuration and one spawned task per request, as in tarpc's own examples.
use std::path::Path;

use futures_util::StreamExt;
use serde_bytes::ByteBuf;
use tarpc::serde_transport::unix;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::{client, context};

use crate::contender::Contender;

/// Frames up to 32 MiB, so that 16 MiB echoes fit (tokio-util's default limit is 8 MiB).
const MAX_FRAME: usize = 32 << 20;

/// The echo service under test.
#[tarpc::service]
trait Echo {
    async fn echo(data: ByteBuf) -> ByteBuf;
}

#[derive(Clone)]
struct EchoImpl;

impl Echo for EchoImpl {
    async fn echo(self, _: context::Context, data: ByteBuf) -> ByteBuf {
        data
    }
}

/// A tarpc client on one connection.
#[derive(Clone)]
pub(crate) struct Tarpc(EchoClient);

impl Contender for Tarpc {
    const NAME: &'static str = "tarpc";
    type Payload = ByteBuf;

    fn payload(data: Vec<u8>) -> ByteBuf {
        ByteBuf::from(data)
    }

    async fn serve(path: &Path) {
        let mut incoming = unix::listen(path, Bincode::default).await.unwrap();
        incoming.config_mut().max_frame_length(MAX_FRAME);
        crate::server::ready();
        while let Some(transport) = incoming.next().await {
            let Ok(transport) = transport else { continue };
            let requests = BaseChannel::with_defaults(transport).execute(EchoImpl.serve());
            tokio::spawn(requests.for_each(|response| async {
                tokio::spawn(response);
            }));
        }
    }

    async fn connect(path: &Path) -> Self {
        let mut connect = unix::connect(path, Bincode::default);
        connect.config_mut().max_frame_length(MAX_FRAME);
        let transport = connect.await.unwrap();
        Tarpc(EchoClient::new(client::Config::default(), transport).spawn())
    }

    async fn echo(&mut self, data: ByteBuf) -> usize {
        self.0.echo(context::current(), data).await.unwrap().len()
    }
}
