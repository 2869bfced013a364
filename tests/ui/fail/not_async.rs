// One error, at the method; the rest of the program, which uses the trait and the generated
// types as if the method were right, adds none.
#[localrpc::service]
pub trait Calculator {
    fn add(&self, a: i64, b: i64) -> i64;
    async fn sub(&self, a: i64, b: i64) -> i64;
}

struct Calc;

impl Calculator for Calc {
    fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
    async fn sub(&self, a: i64, b: i64) -> i64 {
        a - b
    }
}

async fn client(calc: CalculatorClient) -> Result<i64, localrpc::Error> {
    calc.sub(3, 2).await
}

fn main() {
    let _ = CalculatorServer::new(Calc);
    let _ = client;
}
