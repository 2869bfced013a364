#[localrpc::service]
pub trait Counter {
    async fn missing(a: i64) -> i64;
    async fn none() -> i64;
    async fn exclusive(&mut self) -> u64;
    async fn by_value(self) -> u64;
}

fn main() {}
