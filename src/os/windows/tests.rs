//! Named-pipe tests. Under Wine they prove the mapping, the listener's instance handling,
//! error classification and peer pids; they cannot prove that a security descriptor keeps
//! another user out, nor that remote clients are rejected (Wine has neither users nor SMB
//! pipes in the Windows sense).
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::ipc::{ConnectOptions, Error, ListenerOptions};
use crate::name::Repr;
use crate::{Endpoint, Name, NameError};

/// A pipe name no other test (or test run) uses.
fn unique_name(tag: &str) -> Name {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    Name::new(format!(
        "localrpc-test-{tag}-{}-{n}-{nanos:x}",
        std::process::id()
    ))
    .unwrap()
}

/// Fails the test instead of hanging it.
async fn watchdog<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("test timed out")
}

/// The same for blocking tests: aborts the test binary if the guard is not dropped in time.
struct Watchdog(
    #[allow(dead_code, reason = "held only to be dropped")] std::sync::mpsc::Sender<()>,
);

fn blocking_watchdog(test: &'static str) -> Watchdog {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if rx.recv_timeout(Duration::from_secs(20))
            == Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        {
            eprintln!("{test} hung for 20 s");
            std::process::abort();
        }
    });
    Watchdog(tx)
}

fn own_pid() -> Option<u32> {
    Some(std::process::id())
}

#[test]
fn names_map_to_pipes() {
    let name = Name::new("svc").unwrap();
    assert_eq!(
        name.endpoint().unwrap(),
        Endpoint::Pipe(r"\\.\pipe\svc".into())
    );

    let full = Name::pipe(r"\\.\pipe\other").unwrap();
    assert_eq!(full, Name::pipe("other").unwrap());
    assert_eq!(Name::pipe(r"\\.\PIPE\other").unwrap(), full);
    assert_eq!(full.to_string(), "pipe:other");
    assert_eq!("pipe:other".parse::<Name>().unwrap(), full);
    assert_eq!(
        full.endpoint().unwrap(),
        Endpoint::Pipe(r"\\.\pipe\other".into())
    );
    assert_eq!(Name::pipe(r"\\.\pipe\a b").unwrap().as_given(), "a b");

    assert_eq!(Name::pipe(""), Err(NameError::Empty));
    assert_eq!(Name::pipe(r"\\.\pipe\"), Err(NameError::Empty));
    assert_eq!(Name::pipe("a\0b"), Err(NameError::NulByte { offset: 1 }));

    let prefix = r"\\.\pipe\".len();
    assert!(Name::pipe(&"x".repeat(256 - prefix)).is_ok());
    assert_eq!(
        Name::pipe(&"x".repeat(257 - prefix)),
        Err(NameError::TooLong { len: 257, max: 256 })
    );

    assert_eq!(
        "abstract:x".parse::<Name>(),
        Err(NameError::Unsupported { form: "abstract" })
    );
    assert_eq!(
        resolve(&Repr::Path("/tmp/x.sock".into())),
        Err(NameError::Unsupported { form: "unix" })
    );
    assert_eq!(
        resolve(&Repr::Abstract(b"x".to_vec())),
        Err(NameError::Unsupported { form: "abstract" })
    );
    assert_eq!(check_socket_path_len(10_000), Ok(()));
}

#[test]
fn default_descriptor_names_only_the_current_user() {
    let sddl = super::security::owner_only_sddl().unwrap();
    assert!(sddl.starts_with("D:P(A;;GA;;;S-1-"), "{sddl}");
    assert_eq!(sddl.matches('(').count(), 1, "{sddl}");
    super::security::SecurityDescriptor::from_sddl(&sddl).unwrap();
}

#[tokio::test]
async fn tokio_echo_and_peer_pids() {
    watchdog(async {
        let name = unique_name("echo");
        let listener = Listener::bind(&name, &ListenerOptions::new()).unwrap();
        assert_eq!(listener.endpoint(), &name.endpoint().unwrap());
        let server = tokio::spawn(async move {
            // Two clients in a row: the listener must keep serving after the first.
            for _ in 0..2 {
                let mut conn = listener.accept().await.unwrap();
                assert_eq!(peer_credentials(&conn).unwrap().pid(), own_pid());
                let mut buf = [0u8; 4];
                conn.read_exact(&mut buf).await.unwrap();
                conn.write_all(&buf).await.unwrap();
            }
        });
        for msg in [b"ping", b"pong"] {
            let mut client = connect(&name, &ConnectOptions::new()).await.unwrap();
            let creds = peer_credentials(&client).unwrap();
            assert_eq!(
                (creds.pid(), creds.uid(), creds.gid()),
                (own_pid(), None, None)
            );
            client.write_all(msg).await.unwrap();
            let mut buf = [0u8; 4];
            client.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, msg);
        }
        server.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn split_halves_work_concurrently() {
    watchdog(async {
        let name = unique_name("split");
        let listener = Listener::bind(&name, &ListenerOptions::new()).unwrap();
        let server = tokio::spawn(async move {
            let conn = listener.accept().await.unwrap();
            let (mut rx, mut tx) = split(conn);
            tokio::io::copy(&mut rx, &mut tx).await.unwrap();
        });
        let client = connect(&name, &ConnectOptions::new()).await.unwrap();
        let (mut rx, mut tx) = split(client);
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let expected = data.clone();
        let writer = tokio::spawn(async move {
            let slices = [
                std::io::IoSlice::new(&data[..10]),
                std::io::IoSlice::new(&data[10..]),
            ];
            let n = tx.write_vectored(&slices).await.unwrap();
            tx.write_all(&data[n..]).await.unwrap();
            tx
        });
        let mut got = vec![0u8; expected.len()];
        rx.read_exact(&mut got).await.unwrap();
        assert!(got == expected, "echoed bytes differ");
        drop(writer.await.unwrap());
        drop(rx);
        server.await.unwrap();
    })
    .await;
}

#[test]
fn name_taken_errors_are_addr_in_use() {
    let endpoint = Name::new("x").unwrap().endpoint().unwrap();
    for code in [5, 231] {
        let e = super::listener::bind_error(&endpoint, std::io::Error::from_raw_os_error(code));
        assert!(matches!(e, Error::AddrInUse { .. }), "{code}: {e:?}");
    }
    let other = super::listener::bind_error(&endpoint, std::io::Error::from_raw_os_error(123));
    assert!(matches!(other, Error::Io { op: "bind", .. }), "{other:?}");
}

#[tokio::test]
async fn second_bind_is_addr_in_use() {
    let name = unique_name("twice");
    let _first = Listener::bind(&name, &ListenerOptions::new()).unwrap();
    // Real Windows refuses the second first-instance; Wine ignores that flag, so there this
    // proves only the instance-count check that backs it up.
    match Listener::bind(&name, &ListenerOptions::new()) {
        Err(Error::AddrInUse { endpoint }) => assert_eq!(endpoint, name.endpoint().unwrap()),
        other => panic!("expected AddrInUse, got {other:?}"),
    }
    assert!(matches!(
        BlockingListener::bind(&name, &ListenerOptions::new()),
        Err(Error::AddrInUse { .. })
    ));
}

#[tokio::test]
async fn name_is_free_again_after_drop() {
    let name = unique_name("rebind");
    drop(Listener::bind(&name, &ListenerOptions::new()).unwrap());
    Listener::bind(&name, &ListenerOptions::new()).unwrap();
}

#[tokio::test]
async fn missing_pipe_is_not_found() {
    let name = unique_name("missing");
    match connect(&name, &ConnectOptions::new()).await {
        Err(Error::NotFound { endpoint }) => assert_eq!(endpoint, name.endpoint().unwrap()),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(matches!(
        connect_blocking(&name, &ConnectOptions::new()),
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn busy_pipe_times_out_then_retries_into_next_instance() {
    watchdog(async {
        let name = unique_name("busy");
        let listener = Listener::bind(&name, &ListenerOptions::new()).unwrap();
        // The first client takes the only instance; nobody has accepted yet.
        let _first = connect(&name, &ConnectOptions::new()).await.unwrap();
        let short = ConnectOptions::new().busy_timeout(Duration::from_millis(150));
        match connect(&name, &short).await {
            Err(Error::Busy { endpoint, waited }) => {
                assert_eq!(endpoint, name.endpoint().unwrap());
                assert!(waited >= Duration::from_millis(150), "{waited:?}");
            }
            other => panic!("expected Busy, got {other:?}"),
        }
        // A client that keeps retrying gets the instance accept creates next.
        let waiting = tokio::spawn({
            let name = name.clone();
            async move { connect(&name, &ConnectOptions::new()).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _conn = listener.accept().await.unwrap();
        let second = waiting.await.unwrap().unwrap();
        let _conn2 = listener.accept().await.unwrap();
        assert_eq!(peer_credentials(&second).unwrap().pid(), own_pid());
    })
    .await;
}

#[tokio::test]
async fn client_that_left_early_does_not_break_accept() {
    watchdog(async {
        let name = unique_name("early");
        let listener = Listener::bind(&name, &ListenerOptions::new()).unwrap();
        drop(connect(&name, &ConnectOptions::new()).await.unwrap());
        // The only instance is spent, so this client retries until accept replaces it.
        let client = tokio::spawn({
            let name = name.clone();
            async move {
                let mut client = connect(&name, &ConnectOptions::new()).await.unwrap();
                client.write_all(b"x").await.unwrap();
                client
            }
        });
        // The first accept may hand out the spent instance (reads end-of-file) or skip it.
        let mut byte = [0u8; 1];
        let mut conn = listener.accept().await.unwrap();
        if conn.read(&mut byte).await.unwrap_or(0) == 0 {
            conn = listener.accept().await.unwrap();
            conn.read_exact(&mut byte).await.unwrap();
        }
        drop(client.await.unwrap());
        assert_eq!(&byte, b"x");
    })
    .await;
}

#[tokio::test]
async fn custom_and_invalid_security_descriptors() {
    let name = unique_name("sddl");
    let opts = ListenerOptions::new().security_descriptor("D:P(A;;GA;;;WD)");
    let listener = Listener::bind(&name, &opts).unwrap();
    let server = tokio::spawn(async move { listener.accept().await.map(drop) });
    connect(&name, &ConnectOptions::new()).await.unwrap();
    server.await.unwrap().unwrap();

    let bad = ListenerOptions::new().security_descriptor("not sddl");
    match Listener::bind(&unique_name("badsddl"), &bad) {
        Err(Error::Io { op, .. }) => assert!(op.contains("security descriptor"), "{op}"),
        other => panic!("expected Io, got {other:?}"),
    }
    let nul = ListenerOptions::new().security_descriptor("D:P\0");
    assert!(matches!(
        Listener::bind(&unique_name("nulsddl"), &nul),
        Err(Error::Io { .. })
    ));
}

#[test]
fn blocking_echo_split_and_peer_pids() {
    let _watchdog = blocking_watchdog("blocking_echo_split_and_peer_pids");
    let name = unique_name("blocking");
    let listener = BlockingListener::bind(&name, &ListenerOptions::new()).unwrap();
    assert_eq!(listener.endpoint(), &name.endpoint().unwrap());
    let server = std::thread::spawn(move || {
        let mut conn = listener.accept().unwrap();
        assert_eq!(peer_credentials(&conn).unwrap().pid(), own_pid());
        let mut buf = [0u8; 5];
        conn.read_exact(&mut buf).unwrap();
        conn.write_all(&buf).unwrap();
        // Then echo through split halves until the client closes.
        let (mut rx, mut tx) = split_blocking(conn).unwrap();
        std::io::copy(&mut rx, &mut tx).unwrap();
    });
    let mut client = connect_blocking(&name, &ConnectOptions::new()).unwrap();
    assert_eq!(peer_credentials(&client).unwrap().pid(), own_pid());
    client.write_all(b"hello").unwrap();
    let mut buf = [0u8; 5];
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello");

    // Split: one thread writes a lot while this one reads, so neither end can stall the other.
    let (mut rx, mut tx) = split_blocking(client).unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let expected = data.clone();
    let writer = std::thread::spawn(move || {
        tx.write_all(&data).unwrap();
        tx.flush().unwrap();
        tx
    });
    let mut got = vec![0u8; expected.len()];
    rx.read_exact(&mut got).unwrap();
    assert!(got == expected, "echoed bytes differ");
    drop(writer.join().unwrap());
    drop(rx);
    server.join().unwrap();
}

#[test]
fn blocking_peer_sees_end_of_file_after_drop() {
    let _watchdog = blocking_watchdog("blocking_peer_sees_end_of_file_after_drop");
    let name = unique_name("eof");
    let listener = BlockingListener::bind(&name, &ListenerOptions::new()).unwrap();
    let mut client = connect_blocking(&name, &ConnectOptions::new()).unwrap();
    client.write_all(b"bye").unwrap();
    drop(client);
    // The client is gone, its write perhaps still completing: the bytes must arrive, then
    // end-of-file.
    let mut conn = listener.accept().unwrap();
    let mut all = Vec::new();
    conn.read_to_end(&mut all).unwrap();
    assert_eq!(all, b"bye");
}

#[test]
fn blocking_calls_work_inside_an_async_context() {
    let _watchdog = blocking_watchdog("blocking_calls_work_inside_an_async_context");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let name = unique_name("nested");
        let listener = BlockingListener::bind(&name, &ListenerOptions::new()).unwrap();
        let client = connect_blocking(&name, &ConnectOptions::new()).unwrap();
        let conn = listener.accept().unwrap();
        drop((client, conn, listener));
    });
}
