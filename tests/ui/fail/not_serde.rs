use serde::Serialize;

pub struct Opaque;

#[derive(Serialize)]
pub struct OnlySerialize;

#[localrpc::service]
pub trait Store {
    async fn put(&self, key: String, value: Opaque);
    async fn get(&self, key: String) -> Result<u8, OnlySerialize>;
    async fn all(&self) -> Vec<(String, Opaque)>;
}

fn main() {}
