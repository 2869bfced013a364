//! TCP endpoints (feature `tcp`) on the loopback interface: echo across real processes with
//! the Tokio and blocking types, the real address of a port-0 listener, typed errors, and what
//! a TCP stream tells about its peer.
#![cfg(feature = "tcp")]
mod common;

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use common::{ChildProc, Watchdog, echo_once, rt, unique};
use localrpc::ipc::{self, LocalListener, LocalStream};
use localrpc::{Endpoint, Name};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn child_entry() {
    common::roles::run_child();
}

/// The address a listener bound to port 0 reports, which must be a real, loopback one.
fn bound_addr(endpoint: &Endpoint) -> SocketAddr {
    match endpoint {
        Endpoint::Tcp(addr) => {
            assert!(addr.ip().is_loopback(), "{addr}");
            assert_ne!(addr.port(), 0, "the port the OS picked is reported");
            *addr
        }
        other => panic!("a tcp name binds a tcp endpoint, got {other:?}"),
    }
}

#[test]
fn echo_across_processes_tokio_and_blocking() {
    let _wd = Watchdog::arm("echo_across_processes_tokio_and_blocking");
    for role in ["echo-tokio", "echo-blocking"] {
        let server = ChildProc::spawn(role, &["tcp:127.0.0.1:0"]);
        let addr: SocketAddr = server.expect("BOUND").parse().unwrap();
        assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
        let name = Name::from(addr).to_string();
        assert_eq!(name, format!("tcp:{addr}"));

        let payload: Vec<u8> = (0..200 * 1024).map(|i| (i % 251) as u8).collect();
        rt().block_on(echo_once(&name, &payload));

        let mut stream = ipc::blocking::LocalStream::connect(name.as_str()).unwrap();
        assert_eq!(stream.peer_addr().unwrap(), addr);
        stream.write_all(b"blocking").unwrap();
        let mut back = [0u8; 8];
        stream.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"blocking", "{role}");
    }
}

#[test]
fn port_zero_reports_the_real_address_and_streams_have_no_credentials() {
    let _wd = Watchdog::arm("port_zero_reports_the_real_address_and_streams_have_no_credentials");
    rt().block_on(async {
        let listener = LocalListener::bind("tcp:localhost:0").unwrap();
        let addr = bound_addr(listener.endpoint());
        let server = tokio::spawn(async move {
            let mut conn = listener.accept().await.unwrap();
            let client = conn.peer_addr().unwrap();
            let cred = conn.peer_credentials().unwrap_err();
            let mut buf = [0u8; 4];
            conn.read_exact(&mut buf).await.unwrap();
            conn.write_all(&buf).await.unwrap();
            (client, cred.kind())
        });
        let mut client = LocalStream::connect(Name::from(addr)).await.unwrap();
        assert_eq!(client.peer_addr().unwrap(), addr);
        let cred = client.peer_credentials().unwrap_err();
        assert_eq!(cred.kind(), io::ErrorKind::Unsupported);
        assert!(cred.to_string().contains("TCP"), "{cred}");
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        let (seen_client, server_cred) = server.await.unwrap();
        assert!(seen_client.ip().is_loopback(), "{seen_client}");
        assert_ne!(seen_client.port(), addr.port());
        assert_eq!(server_cred, io::ErrorKind::Unsupported);
    });
}

#[test]
fn blocking_listener_and_split_halves() {
    let _wd = Watchdog::arm("blocking_listener_and_split_halves");
    let listener = ipc::blocking::LocalListener::bind("tcp:127.0.0.1:0").unwrap();
    let addr = bound_addr(listener.endpoint());
    let server = std::thread::spawn(move || {
        let conn = listener.accept().unwrap();
        assert_eq!(
            conn.peer_credentials().unwrap_err().kind(),
            io::ErrorKind::Unsupported
        );
        let (mut rx, mut tx) = conn.split().unwrap();
        let mut buf = [0u8; 5];
        rx.read_exact(&mut buf).unwrap();
        tx.write_all(&buf).unwrap();
    });
    let (mut rx, mut tx) = ipc::blocking::LocalStream::connect(Name::from(addr))
        .unwrap()
        .split()
        .unwrap();
    tx.write_all(b"split").unwrap();
    let mut buf = [0u8; 5];
    rx.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"split");
    server.join().unwrap();
}

#[test]
fn refused_and_taken_ports_are_typed() {
    let _wd = Watchdog::arm("refused_and_taken_ports_are_typed");
    rt().block_on(async {
        let listener = LocalListener::bind("tcp:127.0.0.1:0").unwrap();
        let addr = bound_addr(listener.endpoint());
        // The port is taken while the listener lives.
        match LocalListener::bind(Name::from(addr)) {
            Err(ipc::Error::AddrInUse { endpoint }) => assert_eq!(endpoint, Endpoint::Tcp(addr)),
            other => panic!("expected AddrInUse, got {other:?}"),
        }
        // Nothing listens once it is gone.
        drop(listener);
        match LocalStream::connect(Name::from(addr)).await {
            Err(e @ ipc::Error::NotFound { .. }) => {
                assert_eq!(e.kind(), io::ErrorKind::NotFound);
                assert!(e.to_string().contains(&addr.to_string()), "{e}");
            }
            other => panic!("expected NotFound, got {other:?}"),
        }
        match ipc::blocking::LocalStream::connect(Name::from(addr)) {
            Err(ipc::Error::NotFound { endpoint }) => assert_eq!(endpoint, Endpoint::Tcp(addr)),
            other => panic!("expected NotFound, got {other:?}"),
        }
        // Bad names fail before any socket is made.
        assert!(matches!(
            LocalStream::connect("tcp:127.0.0.1:99999").await,
            Err(ipc::Error::Name(localrpc::NameError::InvalidPort { .. }))
        ));
    });
}

#[test]
fn local_sockets_have_no_peer_address() {
    let _wd = Watchdog::arm("local_sockets_have_no_peer_address");
    let name = unique("noaddr");
    rt().block_on(async {
        let listener = LocalListener::bind(name.as_str()).unwrap();
        let accept = tokio::spawn(async move { listener.accept().await.unwrap() });
        let client = LocalStream::connect(name.as_str()).await.unwrap();
        let server = accept.await.unwrap();
        for stream in [&client, &server] {
            assert_eq!(
                stream.peer_addr().unwrap_err().kind(),
                io::ErrorKind::Unsupported
            );
            assert!(stream.peer_credentials().is_ok());
        }
    });
}
