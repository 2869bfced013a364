//! The localrpc contract end to end: this program starts a copy of itself as the server
//! process, calls it over a local socket (a named pipe on Windows) and prints the results.
//!
//! ```text
//! cargo run --example calculator
//! ```
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// The application error of `div`.
#[derive(Debug, Serialize, Deserialize)]
pub struct DivByZero;

/// A calculator, served by one process and called from another.
#[localrpc::service]
pub trait Calculator {
    /// Adds two numbers.
    async fn add(&self, a: i64, b: i64) -> i64;
    /// Divides, or says why not.
    async fn div(&self, a: i64, b: i64) -> Result<i64, DivByZero>;
    /// Takes its time.
    async fn slow(&self, ms: u64) -> u64;
}

struct MyCalc;

impl Calculator for MyCalc {
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
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("server") {
        return server(&args[2]).await;
    }

    // Start the server process and wait until it listens.
    let name = format!("localrpc-calculator-{}", std::process::id());
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["server", &name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let endpoint = lines.next_line().await?.ok_or("the server exited early")?;
    println!(
        "server (pid {}) listens at {endpoint}",
        child.id().unwrap_or(0)
    );

    // The client: one connection, cheap to clone, many calls in flight.
    let calc = CalculatorClient::connect(name.as_str()).await?;
    let sum: i64 = calc.add(1, 2).await?;
    println!("add(1, 2) = {sum}");
    let q: Result<i64, DivByZero> = calc.div(7, 2).await?;
    println!("div(7, 2) = {q:?}");
    println!("div(1, 0) = {:?}", calc.div(1, 0).await?);
    let (a, b) = tokio::join!(calc.slow(200), calc.add(40, 2));
    println!(
        "slow(200) = {} and add(40, 2) = {} ran side by side",
        a?, b?
    );
    match calc
        .clone()
        .with_timeout(Duration::from_millis(50))
        .slow(1_000)
        .await
    {
        Err(localrpc::Error::DeadlineExceeded) => {
            println!("slow(1000) with a 50 ms timeout: deadline exceeded")
        }
        other => println!("slow(1000) with a 50 ms timeout: {other:?}"),
    }

    // Closing the server's stdin asks it to shut down gracefully.
    drop(child.stdin.take());
    let status = child.wait().await?;
    println!("server exited: {status}");
    Ok(())
}

async fn server(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let server = localrpc::Server::builder()
        .layer(tower::limit::ConcurrencyLimitLayer::new(64))
        .bind(name)?;
    println!("{}", server.endpoint());
    let stop = async {
        let _ = tokio::io::stdin().read(&mut [0u8; 1]).await;
    };
    server
        .serve_with_shutdown(CalculatorServer::new(MyCalc), stop)
        .await?;
    Ok(())
}
