//! Zero, one and many arguments; `Result` spelled with a path; a renamed service; names that
//! could clash with the generated code's own (`inner`, `req`, types named `S` and `T`).
#![deny(warnings)]

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct S(u8);

#[derive(Serialize, Deserialize)]
pub struct T(u8);

/// Not spelled `Result<T, E>`, so it travels as a value: the client returns
/// `Result<Res<u8>, localrpc::Error>` and an `Err` is an ordinary value.
pub type Res<V> = Result<V, String>;

#[localrpc::service(name = "myapp.Shapes")]
pub trait Shapes {
    async fn zero(&self) -> u32;
    async fn one(&self, inner: S) -> T;
    async fn many(&self, req: T, options: Vec<S>, r#type: (u8, bool), s: String) -> Option<S>;
    async fn fallible(&self, self_: u8) -> std::result::Result<(), String>;
    async fn alias(&self) -> Res<u8>;
}

// The trait works for non-`pub` traits too, and inside a function.
fn private() {
    #[localrpc::service]
    trait Local {
        async fn go(&self);
    }
    let _ = LocalClient::<()>::new(());
}

struct Impl;

impl Shapes for Impl {
    async fn zero(&self) -> u32 {
        0
    }
    async fn one(&self, inner: S) -> T {
        T(inner.0)
    }
    async fn many(&self, req: T, options: Vec<S>, r#type: (u8, bool), s: String) -> Option<S> {
        let _ = (req, r#type, s);
        options.into_iter().next()
    }
    async fn fallible(&self, self_: u8) -> Result<(), String> {
        Err(self_.to_string())
    }
    async fn alias(&self) -> Res<u8> {
        Ok(0)
    }
}

async fn calls(c: &ShapesClient) -> Result<(), localrpc::Error> {
    let _: u32 = c.zero().await?;
    let _: T = c.one(S(1)).await?;
    let _: Option<S> = c.many(T(1), vec![], (1, true), String::new()).await?;
    let _: Result<(), String> = c.fallible(1).await?;
    let _: Res<u8> = c.alias().await?;
    Ok(())
}

fn main() {
    use localrpc::NamedService;
    private();
    let _ = ShapesServer::new(Impl);
    let _ = calls;
    assert_eq!(ShapesClient::<()>::INFO.name(), "myapp.Shapes");
    assert_eq!(
        ShapesClient::<()>::INFO.methods(),
        ["zero", "one", "many", "fallible", "alias"]
    );
}
