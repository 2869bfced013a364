//! Server processes: the bench binary re-executed with a role, killed on drop.
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Set in a child process: which server to run.
const ROLE: &str = "LOCALRPC_COMPARE_ROLE";
/// Set in a child process: the socket path to bind.
const PATH: &str = "LOCALRPC_COMPARE_PATH";

/// The role and socket path if this process was started as a server.
pub(crate) fn role() -> Option<(String, PathBuf)> {
    let role = std::env::var(ROLE).ok()?;
    Some((role, std::env::var_os(PATH).expect(PATH).into()))
}

/// Tells the parent the socket is bound. Call once, after binding.
pub(crate) fn ready() {
    println!("ready");
    std::io::stdout().flush().unwrap();
}

/// The multi-threaded runtime every server runs on, the same for all contenders.
pub(crate) fn server_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A server process, killed (and its socket removed) on drop.
pub(crate) struct ServerProc {
    child: Child,
    path: PathBuf,
}

impl ServerProc {
    /// Starts the bench binary as the server `role` and waits for its "ready" line.
    pub(crate) fn start(role: &str) -> ServerProc {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "lrcmp-{role}-{}-{}.sock",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(ROLE, role)
            .env(PATH, &path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "server {role} did not start");
        ServerProc { child, path }
    }

    /// The socket path the server listens on.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.path);
    }
}
