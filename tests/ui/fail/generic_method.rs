#[localrpc::service]
pub trait Store {
    async fn put<T>(&self, value: T);
    async fn get<'a>(&self, key: String) -> u8;
    async fn bounded(&self, key: String) -> u8
    where
        String: Clone;
}

fn main() {}
