// Every problem is reported at once, each at its own tokens, and nothing else: no cascade
// from the generated client and server.
#[localrpc::service(name = "x", version = 2)]
pub trait Everything<T>: Send {
    const LIMIT: usize;
    type Item;
    fn sync(&self) -> u8;
    async fn by_ref(&self, s: &str) -> Self;
    async fn destructured(&self, (a, b): (u8, u8), mut c: u8);
    async fn with_default(&self) -> u8 {
        1
    }
    unsafe fn dangerous(&self);
    #[cfg(unix)]
    async fn gated(&self);
}

fn main() {}
