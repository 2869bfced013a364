#[localrpc::service]
pub trait Session {
    async fn new(&self) -> u64;
    async fn connect(&self, to: String);
    async fn into_inner(&self);
}

fn main() {}
