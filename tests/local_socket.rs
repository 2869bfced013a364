//! Local sockets across real processes: echo over every name form, Tokio and blocking, stale
//! and live sockets, permissions, peer identity, and framing faults.
mod common;

use std::io::{Read, Write};
use std::time::Duration;

use bytes::Bytes;
use common::roles::Msg;
use common::{ChildProc, Watchdog, echo_once, rt, unique};
use futures_util::{SinkExt, StreamExt};
use localrpc::codec::{Codec, Postcard};
use localrpc::ipc::{self, LocalListener, LocalStream};
use localrpc::transport::{FrameError, Framed};
use localrpc::{Endpoint, Name};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn child_entry() {
    common::roles::run_child();
}

// ---------------------------------------------------------------------------------------------
// Helpers for the parent side.

fn echo_once_blocking(name: &str, payload: &[u8]) {
    let mut stream = ipc::blocking::LocalStream::connect(name).unwrap();
    stream.write_all(payload).unwrap();
    let mut back = vec![0u8; payload.len()];
    stream.read_exact(&mut back).unwrap();
    assert_eq!(back, payload);
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seed.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn echo_portable_name_100_concurrent_clients() {
    let _wd = Watchdog::arm("echo_portable_name_100_concurrent_clients");
    let name = unique("echo");
    let server = ChildProc::spawn("echo-tokio", &[&name]);
    let endpoint = server.expect("BOUND");
    assert_eq!(
        endpoint,
        Name::new(&name).unwrap().endpoint().unwrap().to_string()
    );
    rt().block_on(async {
        let clients: Vec<_> = (0..100u64)
            .map(|i| {
                let name = name.clone();
                tokio::spawn(async move {
                    let payload = pattern(i, 16 * 1024 + i as usize);
                    echo_once(&name, &payload).await;
                })
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
    });
    // The blocking client against the Tokio server.
    echo_once_blocking(&name, b"blocking client");
}

#[test]
fn blocking_server_serves_both_client_kinds() {
    let _wd = Watchdog::arm("blocking_server_serves_both_client_kinds");
    let name = unique("blk");
    let server = ChildProc::spawn("echo-blocking", &[&name]);
    server.expect("BOUND");
    echo_once_blocking(&name, &pattern(1, 100_000));
    rt().block_on(echo_once(&name, &pattern(2, 100_000)));
    // Split halves of a blocking stream, used from two threads.
    let stream = ipc::blocking::LocalStream::connect(name.as_str()).unwrap();
    let (mut rx, mut tx) = stream.split().unwrap();
    let payload = pattern(3, 200_000);
    let expected = payload.clone();
    let writer = std::thread::spawn(move || tx.write_all(&payload).unwrap());
    let mut back = vec![0u8; expected.len()];
    rx.read_exact(&mut back).unwrap();
    writer.join().unwrap();
    assert_eq!(back, expected);
}

#[test]
fn live_server_is_never_taken_over() {
    let _wd = Watchdog::arm("live_server_is_never_taken_over");
    let name = unique("live");
    let server = ChildProc::spawn("echo-tokio", &[&name]);
    let endpoint = server.expect("BOUND");
    // Another process may not take the name...
    let rival = ChildProc::spawn("echo-tokio", &[&name]);
    let err = rival.expect("BIND-ERROR");
    assert!(err.starts_with("addr-in-use"), "{err}");
    assert!(
        err.contains(&endpoint),
        "the error names the endpoint: {err}"
    );
    // ...nor may this one, and the error is typed and names the real endpoint.
    rt().block_on(async {
        match LocalListener::bind(name.as_str()) {
            Err(ipc::Error::AddrInUse { endpoint: e }) => assert_eq!(e.to_string(), endpoint),
            other => panic!("expected AddrInUse, got {other:?}"),
        }
        // The first server still serves.
        echo_once(&name, b"still here").await;
    });
}

#[test]
fn connecting_to_nothing_is_not_found() {
    let _wd = Watchdog::arm("connecting_to_nothing_is_not_found");
    let name = unique("none");
    rt().block_on(async {
        match LocalStream::connect(name.as_str()).await {
            Err(ipc::Error::NotFound { endpoint }) => {
                assert_eq!(endpoint, Name::new(&name).unwrap().endpoint().unwrap())
            }
            other => panic!("expected NotFound, got {other:?}"),
        }
    });
    match ipc::blocking::LocalStream::connect(name.as_str()) {
        Err(ipc::Error::NotFound { .. }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[test]
fn peer_identity_on_both_sides() {
    let _wd = Watchdog::arm("peer_identity_on_both_sides");
    let name = unique("who");
    let server = ChildProc::spawn("whoami", &[&name]);
    server.expect("BOUND");
    let my_pid = std::process::id().to_string();
    rt().block_on(async {
        let mut stream = LocalStream::connect(name.as_str()).await.unwrap();
        // What the server saw of us.
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while stream.read_exact(&mut byte).await.is_ok() && byte[0] != b'\n' {
            line.push(byte[0]);
        }
        let line = String::from_utf8(line).unwrap();
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields[0], my_pid, "server sees the client's pid");
        #[cfg(unix)]
        {
            // SAFETY: no preconditions.
            let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
            assert_eq!(fields[1], uid.to_string());
            assert_eq!(fields[2], gid.to_string());
        }
        // What we see of the server.
        let cred = stream.peer_credentials().unwrap();
        #[cfg(any(
            target_os = "linux",
            target_os = "android",
            target_os = "macos",
            windows
        ))]
        assert_eq!(
            cred.pid(),
            Some(server.pid()),
            "client sees the server's pid"
        );
        #[cfg(unix)]
        // SAFETY: no preconditions.
        assert_eq!(cred.uid(), Some(unsafe { libc::geteuid() }));
    });
    // The blocking client sees the same.
    let stream = ipc::blocking::LocalStream::connect(name.as_str()).unwrap();
    let cred = stream.peer_credentials().unwrap();
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        windows
    ))]
    assert_eq!(cred.pid(), Some(server.pid()));
    let _ = cred;
}

#[test]
fn framing_faults_across_processes() {
    let _wd = Watchdog::arm("framing_faults_across_processes");
    const MAX: usize = 1 << 20;
    let name = unique("frames");
    let server = ChildProc::spawn("frame-server", &[&name, &MAX.to_string()]);
    server.expect("BOUND");
    rt().block_on(async {
        let encode = |id: u64, text: &str| {
            let mut buf = bytes::BytesMut::new();
            Postcard
                .encode(
                    &Msg {
                        id,
                        text: text.into(),
                    },
                    &mut buf,
                )
                .unwrap();
            buf.freeze()
        };
        async fn ask<T: localrpc::transport::Transport>(conn: &mut T, frame: Bytes) -> Msg {
            conn.send(frame).await.unwrap();
            Postcard
                .decode(&conn.next().await.unwrap().unwrap())
                .unwrap()
        }
        let mut good =
            Framed::with_max_frame_len(LocalStream::connect(name.as_str()).await.unwrap(), MAX);
        let reply = ask(&mut good, encode(1, "hello")).await;
        assert_eq!((reply.id, reply.text.as_str()), (1, "HELLO"));

        // Oversize frame: refused before sending, and the connection stays usable.
        match good.send(Bytes::from(vec![b'x'; MAX + 1])).await {
            Err(FrameError::TooLarge { len, max }) => {
                assert_eq!((len, max), ((MAX + 1) as u64, MAX));
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }

        // A hostile peer announces a 4 GiB frame: the server drops that connection...
        let mut hostile = LocalStream::connect(name.as_str()).await.unwrap();
        hostile.write_all(&u32::MAX.to_le_bytes()).await.unwrap();
        let err = server.expect("CONN-ERROR");
        assert_eq!(err, format!("TooLarge {{ len: {}, max: {MAX} }}", u32::MAX));
        let n = tokio::time::timeout(Duration::from_secs(10), hostile.read(&mut [0u8; 16]))
            .await
            .expect("server closes the hostile connection");
        assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");

        // ...a truncated frame is reported as such...
        let mut cut = LocalStream::connect(name.as_str()).await.unwrap();
        cut.write_all(&10u32.to_le_bytes()).await.unwrap();
        cut.write_all(b"abc").await.unwrap();
        cut.shutdown().await.unwrap();
        drop(cut);
        let err = server.expect("CONN-ERROR");
        assert_eq!(err, "Truncated { expected: 14, received: 7 }");

        // ...garbage inside a well-formed frame is a typed decode error, and that
        // connection goes on working...
        let mut garbage =
            Framed::with_max_frame_len(LocalStream::connect(name.as_str()).await.unwrap(), MAX);
        garbage.send(Bytes::from_static(&[0xff; 8])).await.unwrap();
        let reply = garbage.next().await.unwrap().unwrap();
        assert!(reply.starts_with(b"ERR:cannot decode"), "{reply:?}");
        let err = server.expect("DECODE-ERROR");
        assert!(err.contains("Msg"), "{err}");
        let reply = ask(&mut garbage, encode(2, "after garbage")).await;
        assert_eq!(reply.text, "AFTER GARBAGE");

        // ...and the first client was served throughout.
        let reply = ask(&mut good, encode(3, "still served")).await;
        assert_eq!((reply.id, reply.text.as_str()), (3, "STILL SERVED"));
    });
}

#[test]
fn large_frames_cross_intact() {
    let _wd = Watchdog::arm("large_frames_cross_intact");
    let name = unique("big");
    let server = ChildProc::spawn("echo-tokio", &[&name]);
    server.expect("BOUND");
    rt().block_on(async {
        let (rx, tx) = LocalStream::connect(name.as_str())
            .await
            .unwrap()
            .into_split();
        let mut tx = localrpc::transport::FrameWriter::new(tx);
        let mut rx = localrpc::transport::FrameReader::new(rx);
        let frames: Vec<Bytes> = [0usize, 1, 100, 70_000, 4 << 20, 33]
            .iter()
            .enumerate()
            .map(|(i, &n)| Bytes::from(pattern(i as u64, n)))
            .collect();
        let sent = frames.clone();
        let writer = tokio::spawn(async move {
            for f in sent {
                tx.feed(f).await.unwrap();
            }
            tx.flush().await.unwrap();
            tx
        });
        for f in &frames {
            assert_eq!(&rx.next().await.unwrap().unwrap(), f);
        }
        writer.await.unwrap();
    });
}

#[test]
fn endpoint_of_a_listener_is_the_resolved_name() {
    let name = unique("ep");
    rt().block_on(async {
        let listener = LocalListener::bind(name.as_str()).unwrap();
        let expected = Name::new(&name).unwrap().endpoint().unwrap();
        assert_eq!(listener.endpoint(), &expected);
        #[cfg(unix)]
        assert!(matches!(expected, Endpoint::Path(_)));
        #[cfg(windows)]
        assert!(matches!(expected, Endpoint::Pipe(_)));
    });
}
