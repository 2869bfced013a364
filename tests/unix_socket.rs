//! Unix-only behaviour across real processes: stale sockets after SIGKILL, file modes and
//! another user, the per-user directory, filesystem and abstract names.
#![cfg(unix)]
mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use common::{ChildProc, TempDir, Watchdog, echo_once, rt, unique};
use localrpc::ipc::{self, ListenerOptions, LocalListener, LocalStream};

#[test]
fn child_entry() {
    common::roles::run_child();
}

fn is_socket(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

#[test]
fn filesystem_path_echo_with_owner_only_mode() {
    let _wd = Watchdog::arm("filesystem_path_echo_with_owner_only_mode");
    let dir = TempDir::new("path");
    let path = dir.0.join("svc.sock");
    let name = format!("unix:{}", path.display());
    let server = ChildProc::spawn("echo-tokio", &[&name]);
    assert_eq!(server.expect("BOUND"), path.display().to_string());
    let mode = fs::metadata(&path).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket file is owner-only by default");
    rt().block_on(echo_once(&name, b"over a path"));
    // No temporary file is left beside the socket.
    let entries: Vec<_> = fs::read_dir(&dir.0).unwrap().collect();
    assert_eq!(entries.len(), 1);
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn abstract_name_echo() {
    let _wd = Watchdog::arm("abstract_name_echo");
    let name = format!("abstract:{}", unique("abs"));
    let server = ChildProc::spawn("echo-tokio", &[&name]);
    assert!(server.expect("BOUND").starts_with('@'));
    rt().block_on(echo_once(&name, b"over an abstract name"));
    let mut s = ipc::blocking::LocalStream::connect(name.as_str()).unwrap();
    std::io::Write::write_all(&mut s, b"blocking").unwrap();
    let mut back = [0u8; 8];
    std::io::Read::read_exact(&mut s, &mut back).unwrap();
    assert_eq!(&back, b"blocking");
}

#[test]
fn stale_socket_after_sigkill_is_reclaimed() {
    let _wd = Watchdog::arm("stale_socket_after_sigkill_is_reclaimed");
    let dir = TempDir::new("stale");
    let path = dir.0.join("svc.sock");
    let name = format!("unix:{}", path.display());

    let mut first = ChildProc::spawn("echo-tokio", &[&name]);
    first.expect("BOUND");
    first.kill(); // SIGKILL: no destructor runs, the socket file stays behind
    assert!(is_socket(&path), "a killed server leaves its socket file");
    rt().block_on(async {
        match LocalStream::connect(name.as_str()).await {
            Err(ipc::Error::NotFound { .. }) => {}
            other => panic!("a stale socket has no server: {other:?}"),
        }
    });

    // The next server binds the same name.
    let second = ChildProc::spawn("echo-tokio", &[&name]);
    second.expect("BOUND");
    rt().block_on(echo_once(&name, b"second server"));

    // It is live now, so a third may not take it, and the file stays.
    let third = ChildProc::spawn("echo-tokio", &[&name]);
    let err = third.expect("BIND-ERROR");
    assert!(err.starts_with("addr-in-use"), "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(is_socket(&path));
    rt().block_on(echo_once(&name, b"second server still serves"));
    drop(second);
}

#[test]
fn stale_reclaim_can_be_turned_off() {
    let dir = TempDir::new("noreclaim");
    let path = dir.0.join("svc.sock");
    let mut first = ChildProc::spawn("echo-tokio", &[&format!("unix:{}", path.display())]);
    first.expect("BOUND");
    first.kill();
    rt().block_on(async {
        let err = ListenerOptions::new()
            .reclaim_stale(false)
            .bind(format!("unix:{}", path.display()))
            .unwrap_err();
        assert!(matches!(err, ipc::Error::AddrInUse { .. }), "{err}");
    });
    assert!(is_socket(&path));
}

#[test]
fn what_is_not_a_socket_is_never_removed() {
    let dir = TempDir::new("notsock");
    let path = dir.0.join("precious.txt");
    fs::write(&path, b"keep me").unwrap();
    rt().block_on(async {
        match LocalListener::bind(format!("unix:{}", path.display())) {
            Err(ipc::Error::NotASocket { path: p }) => assert_eq!(p, path),
            other => panic!("expected NotASocket, got {other:?}"),
        }
    });
    assert_eq!(fs::read(&path).unwrap(), b"keep me");
}

#[test]
fn listener_removes_only_its_own_socket_file() {
    let dir = TempDir::new("own");
    let path = dir.0.join("svc.sock");
    let name = format!("unix:{}", path.display());
    rt().block_on(async {
        let first = LocalListener::bind(name.as_str()).unwrap();
        drop(first);
        assert!(!path.exists(), "a dropped listener removes its socket file");

        let old = LocalListener::bind(name.as_str()).unwrap();
        // Someone replaces the file (as an administrator might); the new one must survive
        // the old listener's drop.
        fs::remove_file(&path).unwrap();
        let new = LocalListener::bind(name.as_str()).unwrap();
        drop(old);
        assert!(
            is_socket(&path),
            "the old listener left the new socket alone"
        );
        drop(new);
        assert!(!path.exists());
    });
}

/// Runs `f` only as root (it needs another user); CI sets `LOCALRPC_REQUIRE_ROOT_TESTS` so the
/// test cannot pass there without running.
fn as_root(test: &str, f: impl FnOnce()) {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        f();
    } else if std::env::var_os("LOCALRPC_REQUIRE_ROOT_TESTS").is_some() {
        panic!("{test} must run as root here");
    } else {
        eprintln!("{test}: needs root to act as another user; not run");
    }
}

/// `nobody` exists on every Debian system.
const OTHER_UID: &str = "65534";

#[test]
fn another_user_is_refused_unless_mode_is_widened() {
    as_root("another_user_is_refused_unless_mode_is_widened", || {
        let _wd = Watchdog::arm("another_user_is_refused_unless_mode_is_widened");
        let dir = TempDir::new("perm");
        fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o755)).unwrap();

        let private = format!("unix:{}", dir.0.join("private.sock").display());
        let server = ChildProc::spawn("echo-tokio", &[&private]);
        server.expect("BOUND");
        let client = ChildProc::spawn("connect-as", &[OTHER_UID, &private]);
        let err = client.expect("CONNECT-ERROR");
        assert!(err.starts_with("permission-denied"), "{err}");

        // Positive control: the same user, same directory, with the mode widened.
        let shared = format!("unix:{}", dir.0.join("shared.sock").display());
        let server2 = ChildProc::spawn("echo-tokio", &[&shared, "666"]);
        server2.expect("BOUND");
        let client2 = ChildProc::spawn("connect-as", &[OTHER_UID, &shared]);
        assert_eq!(client2.line(), "CONNECTED");
        drop((server, server2));
    });
}

#[test]
fn per_user_directory_is_created_private_and_checked() {
    let _wd = Watchdog::arm("per_user_directory_is_created_private_and_checked");
    let tmp = TempDir::new("tmpdir");
    let with_tmp = |cmd: &mut std::process::Command| {
        cmd.env("TMPDIR", &tmp.0).env_remove("XDG_RUNTIME_DIR");
    };
    let name = unique("portable");
    let server = ChildProc::spawn_with("echo-tokio", &[&name], with_tmp);
    let endpoint = server.expect("BOUND");
    // SAFETY: no preconditions.
    let uid = unsafe { libc::geteuid() };
    let user_dir = tmp.0.join(format!("localrpc-{uid}"));
    assert_eq!(
        endpoint,
        user_dir.join(format!("{name}.sock")).display().to_string()
    );
    let meta = fs::symlink_metadata(&user_dir).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.mode() & 0o777, 0o700);
    assert_eq!(meta.uid(), uid);
    let client = ChildProc::spawn_with("connect", &[&name], with_tmp);
    assert_eq!(client.line(), "CONNECTED");
    drop(server);

    // Others may write to the directory now: servers and clients refuse it.
    fs::set_permissions(&user_dir, fs::Permissions::from_mode(0o777)).unwrap();
    let server = ChildProc::spawn_with("echo-tokio", &[&name], with_tmp);
    let err = server.expect("BIND-ERROR");
    assert!(err.starts_with("insecure-dir"), "{err}");
    let client = ChildProc::spawn_with("connect", &[&name], with_tmp);
    let err = client.expect("CONNECT-ERROR");
    assert!(err.starts_with("insecure-dir"), "{err}");
}
