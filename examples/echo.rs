//! A local-socket echo between two processes.
//!
//! `cargo run --example echo` starts a copy of itself as the server, connects to it over a
//! portable name (a Unix socket in the per-user directory, or a named pipe on Windows), sends
//! a few framed messages and prints the replies and the server's identity.
//!
//! `cargo run --example echo -- server NAME` runs only the server.
use std::process::Stdio;

use futures_util::{SinkExt, StreamExt};
use localrpc::ipc::{LocalListener, LocalStream};
use localrpc::transport::Framed;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("server") {
        return serve(&args[2]).await;
    }

    let name = format!("localrpc-echo-example-{}", std::process::id());
    let mut server = tokio::process::Command::new(std::env::current_exe()?)
        .args(["server", &name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    // The server prints one line once it listens.
    let mut ready = BufReader::new(server.stdout.take().unwrap()).lines();
    let endpoint = ready.next_line().await?.ok_or("server exited early")?;
    println!(
        "client: server pid {} listens at {endpoint}",
        server.id().unwrap()
    );

    let stream = LocalStream::connect(name.as_str()).await?;
    let peer = stream.peer_credentials()?;
    println!(
        "client: connected; the OS says the server is pid {:?}",
        peer.pid()
    );

    let mut conn = Framed::new(stream);
    for text in ["hello", "from", "another process"] {
        conn.send(text.into()).await?;
        let reply = conn.next().await.ok_or("server closed the connection")??;
        println!(
            "client: sent {text:?}, got {:?}",
            String::from_utf8_lossy(&reply)
        );
    }
    drop(conn);
    // Closing the server's stdin asks it to stop; its listener then removes the socket file.
    drop(server.stdin.take());
    let status = server.wait().await?;
    println!("client: server exited with {status}");
    Ok(())
}

async fn serve(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let listener = LocalListener::bind(name)?;
    println!("{}", listener.endpoint());
    // The parent closes our stdin to ask us to stop.
    let stop = async {
        let mut byte = [0u8; 1];
        let _ = tokio::io::stdin().read(&mut byte).await;
    };
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut stop => return Ok(()),
        };
        let peer = stream.peer_credentials()?;
        eprintln!("server: client pid {:?} connected", peer.pid());
        tokio::spawn(async move {
            let mut conn = Framed::new(stream);
            while let Some(Ok(frame)) = conn.next().await {
                let mut reply = b"echo: ".to_vec();
                reply.extend_from_slice(&frame);
                if conn.send(reply.into()).await.is_err() {
                    break;
                }
            }
        });
    }
}
