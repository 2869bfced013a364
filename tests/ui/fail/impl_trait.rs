#[localrpc::service]
pub trait Log {
    async fn write(&self, line: impl Into<String>);
    async fn lines(&self) -> Vec<impl std::fmt::Display>;
}

fn main() {}
