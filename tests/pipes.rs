//! Unnamed pipes and FIFOs across real processes: 64 MiB through a child's stdio and through
//! FIFOs, Tokio and blocking, end-of-file on drop, broken pipes, nothing leaking into
//! children, and the typed errors of FIFOs (Unix).
mod common;

use std::fmt;
use std::io::{Read, Write};

use common::{ChildProc, Watchdog, report, rt};
use localrpc::ipc::{self, blocking};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// How much the big transfers carry.
const BIG: usize = 64 * 1024 * 1024;

#[test]
fn child_entry() {
    run_child();
}

// ---------------------------------------------------------------------------------------------
// What the child processes do.

fn run_child() {
    let Some((role, args)) = common::child_role() else {
        return; // an ordinary test run: nothing to do here
    };
    match role.as_str() {
        // Copies stdin to stderr (stdout carries the test harness's own text), then reports
        // what passed through.
        "stdin-to-stderr" => {
            let mut sum = Checksum::new();
            let mut input = std::io::stdin().lock();
            let mut output = std::io::stderr().lock();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = input.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                sum.update(&buf[..n]);
                output.write_all(&buf[..n]).unwrap();
            }
            output.flush().unwrap();
            report(format!("DONE {sum}"));
        }
        // Lives until its stdin ends.
        "hold" => {
            std::io::copy(&mut std::io::stdin(), &mut std::io::sink()).unwrap();
            report("EOF");
        }
        // Reads one byte of stdin, then exits (closing its reading end).
        "read-one-then-exit" => {
            let mut byte = [0u8; 1];
            std::io::stdin().read_exact(&mut byte).unwrap();
            report("READ");
        }
        #[cfg(unix)]
        "fifo-read" => {
            let mut rx = ipc::fifo::open_receiver_blocking(&args[0]).unwrap();
            report(format!("DONE {}", Checksum::of_reader(&mut rx)));
        }
        #[cfg(unix)]
        "fifo-write" => {
            let data = pattern(args[1].parse().unwrap(), args[2].parse().unwrap());
            let mut tx = ipc::fifo::open_sender_blocking(&args[0]).unwrap();
            report("OPENED");
            tx.write_all(&data).unwrap();
            report("DONE");
        }
        #[cfg(unix)]
        "fifo-create-under-umask" => {
            // SAFETY: sets this single-purpose child's umask; nothing else depends on it.
            unsafe { libc::umask(0o077) };
            ipc::fifo::create(&args[0], u32::from_str_radix(&args[1], 8).unwrap()).unwrap();
            report("CREATED");
        }
        other => panic!("unknown child role {other}"),
    }
    let _ = args;
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Length and FNV-1a hash of a byte stream, independent of how it was chunked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checksum {
    len: u64,
    hash: u64,
}

impl Checksum {
    fn new() -> Checksum {
        Checksum {
            len: 0,
            hash: 0xcbf2_9ce4_8422_2325,
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        for &b in bytes {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn of(bytes: &[u8]) -> Checksum {
        let mut sum = Checksum::new();
        sum.update(bytes);
        sum
    }

    fn of_reader(r: &mut impl Read) -> Checksum {
        let mut sum = Checksum::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match r.read(&mut buf).unwrap() {
                0 => return sum,
                n => sum.update(&buf[..n]),
            }
        }
    }

    async fn of_async_reader(r: &mut (impl AsyncRead + Unpin)) -> Checksum {
        let mut sum = Checksum::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match r.read(&mut buf).await.unwrap() {
                0 => return sum,
                n => sum.update(&buf[..n]),
            }
        }
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{:016x}", self.len, self.hash)
    }
}

/// `len` pseudo-random bytes (xorshift), different for each seed.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

// ---------------------------------------------------------------------------------------------
// Unnamed pipes (every OS).

#[test]
fn blocking_pipes_carry_64_mib_through_a_child_and_back() {
    let _wd = Watchdog::arm("blocking_pipes_carry_64_mib_through_a_child_and_back");
    let data = pattern(1, BIG);
    let expected = Checksum::of(&data);
    let (mut to_child, child_stdin) = blocking::pipe().unwrap();
    let (child_stderr, mut from_child) = blocking::pipe().unwrap();
    let child = ChildProc::spawn_with("stdin-to-stderr", &[], |cmd| {
        cmd.stdin(child_stdin).stderr(child_stderr);
    });
    // `to_child` drops at the end of the thread: end-of-file for the child.
    let writer = std::thread::spawn(move || to_child.write_all(&data));
    // End-of-file here once the child exits: our copies of its ends closed with the Command.
    let got = Checksum::of_reader(&mut from_child);
    writer.join().unwrap().unwrap();
    assert_eq!(got, expected, "what came back");
    assert_eq!(
        child.expect("DONE"),
        expected.to_string(),
        "what the child saw"
    );
}

#[test]
fn tokio_pipes_carry_64_mib_through_a_child_and_back() {
    let _wd = Watchdog::arm("tokio_pipes_carry_64_mib_through_a_child_and_back");
    let data = pattern(2, BIG);
    let expected = Checksum::of(&data);
    let (got, child) = rt().block_on(async {
        let (mut to_child, child_stdin) = ipc::pipe_with_blocking_receiver().unwrap();
        let (child_stderr, mut from_child) = ipc::pipe_with_blocking_sender().unwrap();
        let child = ChildProc::spawn_with("stdin-to-stderr", &[], |cmd| {
            cmd.stdin(child_stdin).stderr(child_stderr);
        });
        let writer = tokio::spawn(async move {
            to_child.write_all(&data).await?;
            to_child.flush().await
        });
        let got = Checksum::of_async_reader(&mut from_child).await;
        writer.await.unwrap().unwrap();
        (got, child)
    });
    assert_eq!(got, expected, "what came back");
    assert_eq!(
        child.expect("DONE"),
        expected.to_string(),
        "what the child saw"
    );
}

#[test]
fn tokio_pipe_within_a_process_ends_with_eof_on_drop() {
    let _wd = Watchdog::arm("tokio_pipe_within_a_process_ends_with_eof_on_drop");
    let data = pattern(3, 3 * 1024 * 1024 + 17);
    let expected = data.clone();
    rt().block_on(async {
        let (mut tx, mut rx) = ipc::pipe().unwrap();
        let writer = tokio::spawn(async move {
            tx.write_all(&data).await.unwrap();
            // `tx` drops here.
        });
        let mut got = Vec::new();
        rx.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert!(
            got == expected,
            "{} bytes came out of {}",
            got.len(),
            expected.len()
        );
        // Still end-of-file when asked again.
        assert_eq!(rx.read(&mut [0u8; 8]).await.unwrap(), 0);
    });
}

#[test]
fn blocking_pipe_ends_with_eof_on_drop() {
    let _wd = Watchdog::arm("blocking_pipe_ends_with_eof_on_drop");
    let (mut tx, mut rx) = blocking::pipe().unwrap();
    tx.write_all(b"last words").unwrap();
    drop(tx);
    let mut got = Vec::new();
    rx.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"last words");
}

#[test]
fn writing_without_a_reader_is_broken_pipe() {
    let _wd = Watchdog::arm("writing_without_a_reader_is_broken_pipe");
    let (mut tx, rx) = blocking::pipe().unwrap();
    drop(rx);
    let err = tx.write(b"anyone?").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{err}");

    rt().block_on(async {
        let (mut tx, rx) = ipc::pipe().unwrap();
        drop(rx);
        assert_eq!(
            write_until_error(&mut tx).await.kind(),
            std::io::ErrorKind::BrokenPipe
        );
    });
}

/// Writes 64 KiB chunks until a write fails (Windows may accept the first one into the pipe
/// before reporting the failure); fails the test if 64 MiB go through.
async fn write_until_error(tx: &mut ipc::PipeSender) -> std::io::Error {
    let chunk = vec![7u8; 64 * 1024];
    for _ in 0..1024 {
        if let Err(e) = tx.write(&chunk).await {
            return e;
        }
    }
    panic!("64 MiB written to a pipe without a reader");
}

#[test]
fn writing_after_the_reading_child_exits_is_broken_pipe() {
    let _wd = Watchdog::arm("writing_after_the_reading_child_exits_is_broken_pipe");
    let (child, err) = rt().block_on(async {
        let (mut tx, child_stdin) = ipc::pipe_with_blocking_receiver().unwrap();
        let child = ChildProc::spawn_with("read-one-then-exit", &[], |cmd| {
            cmd.stdin(child_stdin);
        });
        (child, write_until_error(&mut tx).await)
    });
    assert_eq!(child.expect("READ"), "");
    assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{err}");
}

#[test]
fn pipe_ends_do_not_leak_into_children() {
    let _wd = Watchdog::arm("pipe_ends_do_not_leak_into_children");
    let rt = rt();
    let _context = rt.enter();
    // Pipes given to no child, both flavours...
    let (tx, mut rx) = blocking::pipe().unwrap();
    let (tokio_tx, mut tokio_rx) = ipc::pipe().unwrap();
    let (mixed_tx, mut mixed_rx) = ipc::pipe_with_blocking_receiver().unwrap();
    // ...and a child started while we hold them, which lives until `gate` ends.
    let (gate, child_stdin) = blocking::pipe().unwrap();
    let mut child = ChildProc::spawn_with("hold", &[], |cmd| {
        cmd.stdin(child_stdin);
    });
    // Had the child inherited a writing end, these reads would wait for it forever.
    drop((tx, tokio_tx, mixed_tx));
    let mut buf = Vec::new();
    assert_eq!(rx.read_to_end(&mut buf).unwrap(), 0);
    assert_eq!(mixed_rx.read_to_end(&mut buf).unwrap(), 0);
    rt.block_on(async { assert_eq!(tokio_rx.read_to_end(&mut buf).await.unwrap(), 0) });
    assert!(
        child.child.try_wait().unwrap().is_none(),
        "the child still runs, so the end-of-file did not come from its exit"
    );
    drop(gate);
    assert_eq!(child.expect("EOF"), "");
}

// ---------------------------------------------------------------------------------------------
// FIFOs (Unix).

#[cfg(unix)]
mod fifo {
    use std::io::{Read, Write};
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    use std::time::Duration;

    use super::common::{ChildProc, TempDir, Watchdog, rt};
    use super::{BIG, Checksum, pattern};
    use localrpc::Endpoint;
    use localrpc::ipc::{Error, fifo};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn carries_64_mib_from_a_tokio_writer_to_a_blocking_reader_child() {
        let _wd = Watchdog::arm("carries_64_mib_from_a_tokio_writer_to_a_blocking_reader_child");
        let dir = TempDir::new("fifo");
        let path = dir.0.join("data.fifo");
        fifo::create(&path, 0o600).unwrap();
        let data = pattern(4, BIG);
        let expected = Checksum::of(&data);
        let child = ChildProc::spawn("fifo-read", &[path.to_str().unwrap()]);
        rt().block_on(async {
            // The watchdog bounds the wait for the child to open its end.
            let mut tx = fifo::OpenOptions::new()
                .reader_timeout(Duration::MAX)
                .open_sender(&path)
                .await
                .unwrap();
            tx.write_all(&data).await.unwrap();
            tx.flush().await.unwrap();
        });
        assert_eq!(child.expect("DONE"), expected.to_string());
    }

    #[test]
    fn carries_64_mib_from_a_blocking_writer_child_to_a_tokio_reader() {
        let _wd = Watchdog::arm("carries_64_mib_from_a_blocking_writer_child_to_a_tokio_reader");
        let dir = TempDir::new("fifo");
        let path = dir.0.join("data.fifo");
        fifo::create(&path, 0o600).unwrap();
        let expected = Checksum::of(&pattern(5, BIG));
        let rt = rt();
        let mut rx = {
            let _context = rt.enter();
            fifo::open_receiver(&path).unwrap()
        };
        let child = ChildProc::spawn(
            "fifo-write",
            &[path.to_str().unwrap(), "5", &BIG.to_string()],
        );
        // Read only once the writer is in: before that, only Linux promises not to report
        // end-of-file.
        assert_eq!(child.expect("OPENED"), "");
        let got = rt.block_on(Checksum::of_async_reader(&mut rx));
        assert_eq!(got, expected);
        assert_eq!(child.expect("DONE"), "");
    }

    #[test]
    fn eof_on_drop_and_broken_pipe_without_reader() {
        let _wd = Watchdog::arm("eof_on_drop_and_broken_pipe_without_reader");
        let dir = TempDir::new("fifo");
        let path = dir.0.join("f");
        fifo::create(&path, 0o600).unwrap();
        rt().block_on(async {
            let mut rx = fifo::open_receiver(&path).unwrap();
            let mut tx = fifo::open_sender(&path).await.unwrap();
            tx.write_all(b"abc").await.unwrap();
            drop(tx);
            let mut got = Vec::new();
            rx.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"abc");
            drop(rx);

            // A blocking writer finds the Tokio reader, which then goes away.
            let rx = fifo::open_receiver(&path).unwrap();
            let mut blocking_tx = fifo::open_sender_blocking(&path).unwrap();
            let mut tokio_tx = fifo::open_sender(&path).await.unwrap();
            drop(rx);
            let err = blocking_tx.write(b"x").unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{err}");
            let err = tokio_tx.write(b"x").await.unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{err}");
        });
    }

    #[test]
    fn tokio_writer_gives_up_without_a_reader() {
        let _wd = Watchdog::arm("tokio_writer_gives_up_without_a_reader");
        let dir = TempDir::new("fifo");
        let path = dir.0.join("f");
        fifo::create(&path, 0o600).unwrap();
        rt().block_on(async {
            for timeout in [Duration::ZERO, Duration::from_millis(30)] {
                let opts = fifo::OpenOptions::new().reader_timeout(timeout);
                match opts.open_sender(&path).await {
                    Err(Error::NoReader { path: p, waited }) => {
                        assert_eq!(p, path);
                        assert!(waited >= timeout, "{waited:?} < {timeout:?}");
                    }
                    other => panic!("expected NoReader, got {other:?}"),
                }
            }
        });
        let err = std::io::Error::from(Error::NoReader {
            path: path.clone(),
            waited: Duration::ZERO,
        });
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    }

    #[test]
    fn create_honours_the_mode_exactly() {
        let _wd = Watchdog::arm("create_honours_the_mode_exactly");
        let dir = TempDir::new("fifo");
        for mode in [0o600, 0o640, 0o604, 0o666] {
            let path = dir.0.join(format!("m{mode:o}"));
            fifo::create(&path, mode).unwrap();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            assert!(meta.file_type().is_fifo());
            assert_eq!(meta.permissions().mode() & 0o777, mode, "{mode:o}");
        }
        // Even under a umask that would strip everything but the owner's bits.
        let path = dir.0.join("under-umask");
        let child = ChildProc::spawn("fifo-create-under-umask", &[path.to_str().unwrap(), "666"]);
        assert_eq!(child.expect("CREATED"), "");
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_fifo());
        assert_eq!(meta.permissions().mode() & 0o777, 0o666);
    }

    #[test]
    fn create_errors_are_typed() {
        let _wd = Watchdog::arm("create_errors_are_typed");
        let dir = TempDir::new("fifo");
        let path = dir.0.join("f");
        fifo::create(&path, 0o600).unwrap();
        match fifo::create(&path, 0o600) {
            Err(Error::AlreadyExists { path: p }) => assert_eq!(p, path),
            other => panic!("expected AlreadyExists, got {other:?}"),
        }
        let file = dir.0.join("regular");
        std::fs::write(&file, "keep me").unwrap();
        let err = fifo::create(&file, 0o600).unwrap_err();
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
        assert_eq!(
            std::io::Error::from(err).kind(),
            std::io::ErrorKind::AlreadyExists
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");

        let orphan = dir.0.join("no-such-dir").join("f");
        match fifo::create(&orphan, 0o600) {
            Err(Error::PathNotFound { path: p }) => assert_eq!(p, orphan),
            other => panic!("expected PathNotFound, got {other:?}"),
        }
    }

    #[test]
    fn opening_what_is_not_a_fifo_is_typed() {
        let _wd = Watchdog::arm("opening_what_is_not_a_fifo_is_typed");
        let dir = TempDir::new("fifo");
        let file = dir.0.join("regular");
        std::fs::write(&file, "keep me").unwrap();
        for path in [&file, &dir.0] {
            let not_fifo = |r: Result<(), Error>| match r {
                Err(Error::NotAFifo { path: p }) => assert_eq!(&p, path),
                other => panic!("expected NotAFifo for {}, got {other:?}", path.display()),
            };
            not_fifo(fifo::open_sender_blocking(path).map(drop));
            not_fifo(fifo::open_receiver_blocking(path).map(drop));
            rt().block_on(async {
                not_fifo(fifo::open_sender(path).await.map(drop));
                not_fifo(fifo::open_receiver(path).map(drop));
            });
        }
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
        let err = fifo::open_sender_blocking(&file).unwrap_err();
        assert_eq!(
            std::io::Error::from(err).kind(),
            std::io::ErrorKind::InvalidInput
        );

        let missing = dir.0.join("missing");
        match fifo::open_receiver_blocking(&missing) {
            Err(Error::PathNotFound { path: p }) => assert_eq!(p, missing),
            other => panic!("expected PathNotFound, got {other:?}"),
        }
        // The endpoint of other errors is the FIFO's path.
        let err = Error::PermissionDenied {
            endpoint: Endpoint::Path(missing.clone()),
            source: std::io::ErrorKind::PermissionDenied.into(),
        };
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn blocking_ends_meet_across_threads() {
        let _wd = Watchdog::arm("blocking_ends_meet_across_threads");
        let dir = TempDir::new("fifo");
        let path = dir.0.join("f");
        fifo::create(&path, 0o600).unwrap();
        let reader_path = path.clone();
        // Each blocking open waits for the other.
        let reader = std::thread::spawn(move || {
            let mut rx = fifo::open_receiver_blocking(&reader_path).unwrap();
            let mut got = String::new();
            rx.read_to_string(&mut got).unwrap();
            got
        });
        let mut tx = fifo::open_sender_blocking(&path).unwrap();
        tx.write_all(b"across threads").unwrap();
        drop(tx);
        assert_eq!(reader.join().unwrap(), "across threads");
    }
}
