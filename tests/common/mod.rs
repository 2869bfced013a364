//! Helpers for tests that run a second, real process.
//!
//! The test binary re-executes itself with `LOCALRPC_TEST_CHILD` set; the `child_entry` test
//! of that binary then plays the requested role instead of testing. No `fork()` happens in the
//! multi-threaded harness, and every child is killed when its guard drops.
#![allow(dead_code, unreachable_pub)]

pub mod roles;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long any single test may take before the watchdog fails it.
pub const TEST_LIMIT: Duration = Duration::from_secs(60);
/// How long a child process may live at most, in case its parent vanished.
const CHILD_LIMIT: Duration = Duration::from_secs(90);
/// How long to wait for one line from a child.
pub const LINE_WAIT: Duration = Duration::from_secs(20);

const ROLE_VAR: &str = "LOCALRPC_TEST_CHILD";

/// A name no other test (or test run) uses.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "lrt-{tag}-{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh directory under the temp dir, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(unique(tag));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// If this process is a child, returns its role and arguments.
pub fn child_role() -> Option<(String, Vec<String>)> {
    let spec = std::env::var(ROLE_VAR).ok()?;
    let mut parts = spec.split('\u{1f}').map(str::to_owned);
    let role = parts.next()?;
    // A child never outlives its budget, even if the parent is gone.
    std::thread::spawn(|| {
        std::thread::sleep(CHILD_LIMIT);
        eprintln!("child watchdog: exiting after {CHILD_LIMIT:?}");
        std::process::exit(3);
    });
    Some((role, parts.collect()))
}

/// A command that starts this test binary again in `role` with `args`.
pub fn role_command(role: &str, args: &[&str]) -> Command {
    let mut spec = role.to_owned();
    for a in args {
        spec.push('\u{1f}');
        spec.push_str(a);
    }
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child_entry", "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, spec);
    cmd
}

/// A running child process; killed on drop.
pub struct ChildProc {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    /// A portable name the child may bind: its socket file is removed after the kill if stale.
    name: Option<String>,
}

impl ChildProc {
    /// Starts this test binary again in `role` with `args`.
    pub fn spawn(role: &str, args: &[&str]) -> ChildProc {
        Self::spawn_with(role, args, |_| {})
    }

    /// Like [`spawn`](Self::spawn), with a chance to adjust the command (env vars).
    pub fn spawn_with(role: &str, args: &[&str], adjust: impl FnOnce(&mut Command)) -> ChildProc {
        let mut cmd = role_command(role, args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        adjust(&mut cmd);
        let mut child = match cmd.spawn() {
            // Wine's CreateProcess now and then fails with ERROR_INTERNAL_ERROR under load:
            // a fault of the emulator, not of the code under test, so try once more.
            Err(e) if cfg!(windows) && e.raw_os_error() == Some(1359) => {
                eprintln!("spawning a child failed ({e}); trying again");
                std::thread::sleep(Duration::from_millis(100));
                cmd.spawn()
            }
            spawned => spawned,
        }
        .expect("spawn child test process");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The harness prints its own text, even on the same line; children mark theirs.
                if let Some(at) = line.find("@@ ") {
                    if tx.send(line[at + 3..].to_owned()).is_err() {
                        break;
                    }
                }
            }
        });
        let binds = matches!(
            role,
            "echo-tokio"
                | "echo-blocking"
                | "whoami"
                | "frame-server"
                | "store-async"
                | "store-sync"
                | "streams"
                | "jobs"
        );
        let name = args.first().filter(|_| binds).map(|a| a.to_string());
        ChildProc { child, lines, name }
    }

    /// The next line the child reported with [`report`], failing the test after [`LINE_WAIT`].
    pub fn line(&self) -> String {
        self.lines
            .recv_timeout(LINE_WAIT)
            .unwrap_or_else(|e| panic!("no line from child within {LINE_WAIT:?}: {e}"))
    }

    /// The next reported line, which must start with `prefix`; returns the rest.
    pub fn expect(&self, prefix: &str) -> String {
        let line = self.line();
        match line.strip_prefix(prefix) {
            Some(rest) => rest.trim().to_owned(),
            None => panic!("expected a line starting with {prefix:?}, got {line:?}"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the child (SIGKILL on Unix, TerminateProcess on Windows) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        self.kill();
        if let Some(name) = &self.name {
            remove_if_stale(name);
        }
    }
}

/// A killed server leaves its socket file; remove it unless a live server answers there.
#[cfg(unix)]
fn remove_if_stale(name: &str) {
    let Ok(name) = name.parse::<localrpc::Name>() else {
        return;
    };
    if let Ok(localrpc::Endpoint::Path(path)) = name.endpoint() {
        let stale = std::os::unix::net::UnixStream::connect(&path)
            .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
        if stale {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Pipes vanish with their server.
#[cfg(not(unix))]
fn remove_if_stale(_name: &str) {}

/// Reports a line to the parent (see [`ChildProc::line`]).
pub fn report(msg: impl std::fmt::Display) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "@@ {msg}").unwrap();
    out.flush().unwrap();
}

/// Fails the whole test process if a test runs longer than [`TEST_LIMIT`].
pub struct Watchdog(Arc<AtomicBool>);

impl Watchdog {
    pub fn arm(test: &'static str) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            while start.elapsed() < TEST_LIMIT {
                std::thread::sleep(Duration::from_millis(100));
                if flag.load(Ordering::Relaxed) {
                    return;
                }
            }
            eprintln!("watchdog: {test} still running after {TEST_LIMIT:?}; aborting");
            std::process::abort();
        });
        Watchdog(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A runtime for a test body.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs a future to its end on this thread, outside any runtime.
pub fn block_on_outside<F: std::future::Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let std::task::Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// Connects to `name`, sends `payload` and checks that the same bytes come back.
pub async fn echo_once(name: &str, payload: &[u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = localrpc::ipc::LocalStream::connect(name).await.unwrap();
    stream.write_all(payload).await.unwrap();
    let mut back = vec![0u8; payload.len()];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(back, payload);
}
