#[localrpc::service]
pub trait Store {
    async fn get(&self, key: String) -> u8;
    async fn put(&self, key: String, value: u8);
    async fn get(&self, key: u8) -> u8;
}

fn main() {}
