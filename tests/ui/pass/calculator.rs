//! The documented example: a public service in a crate that denies missing docs, every kind
//! of return, and the generated types used the way a program uses them.
#![deny(warnings, missing_docs, missing_debug_implementations, unreachable_pub)]

use std::time::Duration;

use localrpc::{CallOptions, NamedService};
use serde::{Deserialize, Serialize};

/// Division by zero.
#[derive(Debug, Serialize, Deserialize)]
pub struct DivByZero;

/// A calculator.
#[localrpc::service]
pub trait Calculator {
    /// Adds.
    async fn add(&self, a: i64, b: i64) -> i64;
    /// Divides.
    async fn div(&self, a: i64, b: i64) -> Result<i64, DivByZero>;
    /// Waits, then answers.
    async fn slow(&self, ms: u64) -> u64;
    /// Answers nothing.
    async fn ping(&self);
}

struct Calc;

impl Calculator for Calc {
    async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
    async fn div(&self, a: i64, b: i64) -> Result<i64, DivByZero> {
        a.checked_div(b).ok_or(DivByZero)
    }
    async fn slow(&self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }
    async fn ping(&self) {}
}

fn served<S>(_: &S)
where
    S: tower::Service<localrpc::ServerRequest, Response = localrpc::ServerResponse>
        + NamedService
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
}

fn send<T: Send>(_: T) {}

async fn use_client(calc: CalculatorClient) -> Result<(), localrpc::Error> {
    let calc = calc
        .with_timeout(Duration::from_secs(1))
        .with_options(CallOptions::new());
    let _: i64 = calc.add(1, 2).await?;
    let _: Result<i64, DivByZero> = calc.div(1, 0).await?;
    let _: u64 = calc.slow(5).await?;
    let (): () = calc.ping().await?;
    let _: &localrpc::Client = calc.get_ref();
    let _: localrpc::Client = calc.clone().into_inner();
    println!("{calc:?}");
    Ok(())
}

fn main() {
    let server = CalculatorServer::new(Calc);
    served(&server);
    println!("{:?}", server.clone());
    let _ = CalculatorServer::from_arc(std::sync::Arc::new(Calc));

    send(async {
        let calc = CalculatorClient::connect("calculator").await?;
        use_client(calc).await
    });

    assert_eq!(CalculatorClient::<()>::INFO.name(), "Calculator");
    assert_eq!(
        <CalculatorServer<Calc> as NamedService>::INFO.methods(),
        ["add", "div", "slow", "ping"]
    );
}
