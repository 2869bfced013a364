//! Generated code names nothing from the prelude or the user's dependencies: it compiles in a
//! module without the prelude (tarpc's hygiene test), where even `Result` must be spelled out.
#![deny(warnings)]

mod hygiene {
    #![no_implicit_prelude]

    #[::localrpc::service]
    pub trait Echo {
        async fn echo(
            &self,
            text: ::std::string::String,
        ) -> ::std::result::Result<::std::string::String, ::std::string::String>;
        async fn count(&self, items: ::std::vec::Vec<u8>) -> usize;
        async fn nothing(&self);
    }

    pub struct Impl;

    impl Echo for Impl {
        async fn echo(
            &self,
            text: ::std::string::String,
        ) -> ::std::result::Result<::std::string::String, ::std::string::String> {
            ::std::result::Result::Ok(text)
        }
        async fn count(&self, items: ::std::vec::Vec<u8>) -> usize {
            items.len()
        }
        async fn nothing(&self) {}
    }

    pub async fn call(client: EchoClient) -> ::std::result::Result<usize, ::localrpc::Error> {
        let _ = client.echo(::std::string::String::new()).await?;
        client.nothing().await?;
        client.count(::std::vec::Vec::new()).await
    }
}

fn main() {
    let _ = hygiene::EchoServer::new(hygiene::Impl);
    let _ = hygiene::call;
}
