#[localrpc::service]
pub struct Calculator;

#[localrpc::service(nmae = "typo")]
pub trait Named {
    async fn get(&self) -> u8;
}

#[localrpc::service(name = "")]
pub trait Empty {}

fn main() {}
