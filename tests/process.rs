//! Helper processes started with `localrpc::process::spawn`, across real processes: the
//! channel, the lifecycle in both directions, many helpers at once, nothing inherited by a
//! grandchild.
mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{ChildProc, TempDir, Watchdog, report, role_command, rt};
use localrpc::Error;
use localrpc::process::SpawnOptions;

#[localrpc::service]
trait Worker {
    async fn pid(&self) -> u32;
    async fn square(&self, x: u64) -> u64;
    async fn sleep(&self, ms: u64) -> u64;
    async fn exit(&self, code: i32);
    /// Starts a grandchild (which inherits this process's environment) and returns what it
    /// reported.
    async fn probe_grandchild(&self) -> Vec<String>;
    /// Asks the parent's offered `Parent` service.
    async fn ask_parent(&self, question: String) -> String;
}

/// What a parent offers its helper.
#[localrpc::service]
trait Parent {
    async fn answer(&self, question: String) -> String;
}

struct ParentImpl;

impl Parent for ParentImpl {
    async fn answer(&self, question: String) -> String {
        format!("parent {} says {question}", std::process::id())
    }
}

struct Impl;

impl Worker for Impl {
    async fn pid(&self) -> u32 {
        std::process::id()
    }
    async fn square(&self, x: u64) -> u64 {
        x * x
    }
    async fn sleep(&self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }
    async fn exit(&self, code: i32) {
        std::process::exit(code);
    }
    async fn probe_grandchild(&self) -> Vec<String> {
        tokio::task::spawn_blocking(|| {
            let out = role_command("probe", &[])
                .stdin(Stdio::null())
                .stderr(Stdio::inherit())
                .output()
                .expect("start the grandchild");
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.find("@@ ").map(|at| l[at + 3..].to_owned()))
                .collect()
        })
        .await
        .unwrap()
    }
    async fn ask_parent(&self, question: String) -> String {
        match localrpc::peer_client::<ParentClient<localrpc::PeerClient>>() {
            Ok(parent) => parent.answer(question).await.unwrap(),
            Err(e) => format!("no parent service: {e}"),
        }
    }
}

#[test]
fn child_entry() {
    let Some((role, args)) = common::child_role() else {
        return;
    };
    match role.as_str() {
        // A helper: serves its parent until the parent goes away, then leaves a marker.
        "worker" => rt().block_on(async {
            localrpc::process::serve_parent(WorkerServer::new(Impl))
                .await
                .unwrap();
            if let Some(marker) = args.first().filter(|m| !m.is_empty()) {
                std::fs::write(marker, "ended").unwrap();
            }
        }),
        // A helper that takes its channel and then ignores it.
        "worker-stuck" => rt().block_on(async {
            use tokio::io::AsyncWriteExt;
            let mut channel = localrpc::process::parent_stream().await.unwrap();
            let _ = channel.write_all(b"!").await; // the parent may be gone already
            tokio::time::sleep(Duration::from_secs(60)).await;
        }),
        // A parent in the middle: starts a helper, says which, then waits to be killed.
        "spawner" => rt().block_on(async {
            let (helper_role, marker, die) = (&args[0], &args[1], args[2] == "die");
            let mut helper = SpawnOptions::new()
                .kill_with_parent(die)
                .spawn(role_command(helper_role, &[marker]))
                .await
                .unwrap();
            // Reported once the helper has its channel.
            let mut channel = None;
            if helper_role == "worker" {
                let worker: WorkerClient = helper.client().unwrap();
                assert_eq!(worker.pid().await.unwrap(), helper.id());
            } else {
                use tokio::io::AsyncReadExt;
                let mut stream = helper.take_stream().unwrap();
                stream.read_exact(&mut [0u8; 1]).await.unwrap();
                channel = Some(stream);
            }
            report(format!("CHILD {}", helper.id()));
            std::future::pending::<()>().await;
            drop((helper, channel));
        }),
        // A grandchild: has the variable (inherited), must not get a channel or descriptor.
        "probe" => {
            // Listed before anything of this process (a runtime) opens descriptors.
            #[cfg(target_os = "linux")]
            report(format!("FDS {}", open_fds().join(" ")));
            rt().block_on(async {
                match localrpc::process::parent_stream().await {
                    Ok(_) => report("OK got a channel"),
                    Err(e) => report(format!("ERR {e}")),
                }
            })
        }
        "exit-now" => std::process::exit(7),
        other => panic!("unknown role {other}"),
    }
}

/// This process's descriptors above stdio that are sockets (every descriptor localrpc opens
/// on Linux is one), with what they point to.
#[cfg(target_os = "linux")]
fn open_fds() -> Vec<String> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let entry = entry.unwrap();
        let fd: i32 = entry.file_name().to_string_lossy().parse().unwrap();
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue; // the directory handle, closed by now
        };
        let target = target.display().to_string();
        if fd > 2 && target.starts_with("socket:") {
            fds.push(format!("{fd}->{target}"));
        }
    }
    fds
}

fn worker_cmd(marker: &str) -> std::process::Command {
    let mut cmd = role_command("worker", &[marker]);
    // The helper's test harness would talk into ours.
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    cmd
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    start.elapsed()
}

#[test]
fn a_spawned_helper_serves_its_parent_and_exits_when_the_parent_closes() {
    let _wd = Watchdog::arm("a_spawned_helper_serves_its_parent_and_exits_when_the_parent_closes");
    let dir = TempDir::new("proc");
    let marker = dir.0.join("ended");
    rt().block_on(async {
        let mut helper = localrpc::process::spawn(worker_cmd(marker.to_str().unwrap()))
            .await
            .unwrap();
        let worker: WorkerClient = helper.client().unwrap();
        assert_eq!(worker.pid().await.unwrap(), helper.id());
        assert_eq!(worker.square(12).await.unwrap(), 144);
        // A second client shares the connection.
        let again: WorkerClient = helper.client().unwrap();
        assert_eq!(again.square(3).await.unwrap(), 9);
        assert!(helper.try_wait().unwrap().is_none(), "still running");
        drop((worker, again));
        helper.close();
        let status = helper.wait().await.unwrap();
        assert!(status.success(), "{status}");
    });
    assert!(marker.exists(), "the helper's serve_parent returned");
}

#[test]
fn a_helper_calls_back_a_service_its_parent_offers() {
    let _wd = Watchdog::arm("a_helper_calls_back_a_service_its_parent_offers");
    rt().block_on(async {
        let mut helper = localrpc::process::spawn(worker_cmd("")).await.unwrap();
        let worker: WorkerClient = helper
            .client_with(|b| b.offer(ParentServer::new(ParentImpl)))
            .unwrap();
        let said = worker.ask_parent("hello".into()).await.unwrap();
        assert_eq!(said, format!("parent {} says hello", std::process::id()));
        // The client exists now: configuring it again is refused, not ignored.
        let again = helper.client_with::<WorkerClient>(|b| b.timeout(Duration::from_secs(1)));
        assert!(matches!(again, Err(Error::Protocol(_))), "{again:?}");
        // Without an offer, the helper's call back gets a typed refusal.
        let mut plain = localrpc::process::spawn(worker_cmd("")).await.unwrap();
        let worker: WorkerClient = plain.client().unwrap();
        let said = worker.ask_parent("hello".into()).await.unwrap();
        assert!(said.starts_with("no parent service"), "{said}");
    });
}

#[test]
fn twenty_helpers_at_once() {
    let _wd = Watchdog::arm("twenty_helpers_at_once");
    rt().block_on(async {
        let spawns = (0..20).map(|_| localrpc::process::spawn(worker_cmd("")));
        let mut helpers: Vec<_> = futures_util::future::join_all(spawns)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let mut pids = std::collections::HashSet::new();
        let calls = helpers.iter_mut().enumerate().map(|(i, h)| {
            let worker: WorkerClient = h.client().unwrap();
            let id = h.id();
            async move {
                assert_eq!(worker.square(i as u64).await.unwrap(), (i * i) as u64);
                assert_eq!(worker.pid().await.unwrap(), id);
                id
            }
        });
        for pid in futures_util::future::join_all(calls).await {
            assert!(pids.insert(pid), "each helper is its own process");
        }
        for mut h in helpers {
            h.close();
            assert!(h.wait().await.unwrap().success());
        }
    });
}

#[test]
fn a_helper_first_called_long_after_it_was_spawned_answers() {
    let _wd = Watchdog::arm("a_helper_first_called_long_after_it_was_spawned_answers");
    rt().block_on(async {
        let mut helper = localrpc::process::spawn(worker_cmd("")).await.unwrap();
        // The parent's hello goes with its first call; a helper serving its parent waits for
        // it however long it takes (a listener's connections have 10 s).
        tokio::time::sleep(Duration::from_secs(11)).await;
        let worker: WorkerClient = helper.client().unwrap();
        assert_eq!(worker.square(12).await.unwrap(), 144);
        drop(worker);
        helper.close();
        assert!(helper.wait().await.unwrap().success());
    });
}

#[test]
fn a_dying_helper_fails_calls_in_flight_and_reports_its_exit_status() {
    let _wd = Watchdog::arm("a_dying_helper_fails_calls_in_flight_and_reports_its_exit_status");
    rt().block_on(async {
        // It exits by itself, mid-call.
        let mut helper = localrpc::process::spawn(worker_cmd("")).await.unwrap();
        let worker: WorkerClient = helper.client().unwrap();
        let in_flight = tokio::spawn({
            let worker = worker.clone();
            async move { worker.sleep(30_000).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let exit = worker.exit(3).await;
        assert!(
            matches!(exit, Err(Error::ConnectionLost { .. })),
            "{exit:?}"
        );
        let outcome = in_flight.await.unwrap();
        assert!(
            matches!(outcome, Err(Error::ConnectionLost { .. })),
            "{outcome:?}"
        );
        assert!(matches!(
            worker.square(2).await,
            Err(Error::ConnectionLost { .. })
        ));
        assert_eq!(helper.wait().await.unwrap().code(), Some(3));

        // It is killed.
        let mut helper = localrpc::process::spawn(worker_cmd("")).await.unwrap();
        let worker: WorkerClient = helper.client().unwrap();
        assert_eq!(worker.square(5).await.unwrap(), 25);
        let in_flight = tokio::spawn(async move { worker.sleep(30_000).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        helper.kill().await.unwrap();
        let outcome = in_flight.await.unwrap();
        assert!(
            matches!(outcome, Err(Error::ConnectionLost { .. })),
            "{outcome:?}"
        );
        let status = helper.wait().await.unwrap();
        assert!(!status.success(), "{status}");
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(9), "{status}");
        }
    });
}

#[test]
fn a_helper_sees_its_parent_die() {
    let _wd = Watchdog::arm("a_helper_sees_its_parent_die");
    let dir = TempDir::new("proc");
    let marker = dir.0.join("ended");
    let mut spawner = ChildProc::spawn("spawner", &["worker", marker.to_str().unwrap(), "live"]);
    let helper_pid: u32 = spawner.expect("CHILD").parse().unwrap();
    assert!(!marker.exists());
    spawner.kill();
    let took = wait_for("the helper noticing", Duration::from_secs(10), || {
        marker.exists()
    });
    eprintln!("helper {helper_pid} noticed its parent's death after {took:?}");
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn gone(pid: u32) -> bool {
    // Dead and reaped, or dead and waiting for a reaper that is not us.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn kill_with_parent_kills_a_stuck_helper_when_the_parent_dies() {
    let _wd = Watchdog::arm("kill_with_parent_kills_a_stuck_helper_when_the_parent_dies");
    // Control: without the option, the stuck helper outlives its parent.
    let mut spawner = ChildProc::spawn("spawner", &["worker-stuck", "", "live"]);
    let survivor: u32 = spawner.expect("CHILD").parse().unwrap();
    spawner.kill();
    std::thread::sleep(Duration::from_millis(300));
    assert!(!gone(survivor), "without the option the helper lives on");
    // SAFETY: kill has no memory-safety preconditions; the pid is our grandchild's.
    unsafe { libc::kill(survivor as i32, libc::SIGKILL) };

    let mut spawner = ChildProc::spawn("spawner", &["worker-stuck", "", "die"]);
    let helper: u32 = spawner.expect("CHILD").parse().unwrap();
    assert!(!gone(helper));
    spawner.kill();
    let took = wait_for(
        "the kernel killing the helper",
        Duration::from_secs(10),
        || gone(helper),
    );
    eprintln!("helper {helper} died with its parent after {took:?}");
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn dropping_the_handle_kills_a_helper_that_does_not_exit_and_reaps_it() {
    use localrpc::process::OnDrop;
    use std::path::Path;
    let _wd = Watchdog::arm("dropping_the_handle_kills_a_helper_that_does_not_exit_and_reaps_it");
    rt().block_on(async {
        let helper = SpawnOptions::new()
            .on_drop(OnDrop::Wait(Duration::from_millis(200)))
            .spawn(role_command("worker-stuck", &[""]))
            .await
            .unwrap();
        let pid = helper.id();
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        drop(helper);
        // Killed after the grace period and reaped by us: no zombie left behind.
        let start = Instant::now();
        while Path::new(&format!("/proc/{pid}")).exists() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "helper {pid} remains"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            start.elapsed() >= Duration::from_millis(150),
            "the grace period came first"
        );
    });
}

#[test]
fn a_grandchild_inherits_neither_the_channel_nor_any_descriptor() {
    let _wd = Watchdog::arm("a_grandchild_inherits_neither_the_channel_nor_any_descriptor");
    let lines = rt().block_on(async {
        let mut helper = localrpc::process::spawn(worker_cmd("")).await.unwrap();
        let worker: WorkerClient = helper.client().unwrap();
        worker.probe_grandchild().await.unwrap()
    });
    let err = lines
        .iter()
        .find_map(|l| l.strip_prefix("ERR "))
        .unwrap_or_else(|| panic!("the grandchild got a channel: {lines:?}"));
    assert!(err.contains("no channel to a parent process"), "{err}");
    #[cfg(unix)]
    assert!(err.contains("inherited"), "{err}");
    #[cfg(target_os = "linux")]
    {
        let fds = lines
            .iter()
            .find_map(|l| l.strip_prefix("FDS"))
            .expect("the grandchild lists its descriptors");
        assert_eq!(fds.trim(), "", "sockets inherited by the grandchild");
    }
}

#[test]
fn a_process_not_started_by_spawn_gets_a_clear_error() {
    rt().block_on(async {
        assert!(!localrpc::process::is_spawned());
        match localrpc::process::parent_stream().await {
            Err(localrpc::ipc::Error::NotSpawned { reason }) => {
                assert!(reason.contains("not set"), "{reason}")
            }
            other => panic!("expected NotSpawned, got {other:?}"),
        }
        let served = localrpc::process::serve_parent(WorkerServer::new(Impl)).await;
        assert!(
            matches!(
                served,
                Err(Error::Connect(localrpc::ipc::Error::NotSpawned { .. }))
            ),
            "{served:?}"
        );
    });
}

#[test]
fn a_program_that_never_connects_is_reported() {
    let _wd = Watchdog::arm("a_program_that_never_connects_is_reported");
    rt().block_on(async {
        // The child exits at once without taking its channel.
        let cmd = role_command("exit-now", &[]);
        let result = SpawnOptions::new()
            .connect_timeout(Duration::from_secs(20))
            .spawn(cmd)
            .await;
        // On Unix the channel exists before the child runs, so spawning succeeds and the
        // first call finds the child gone; on Windows spawning itself reports the exit.
        match result {
            Ok(mut helper) => {
                let worker: WorkerClient = helper.client().unwrap();
                let call = worker.square(2).await;
                assert!(
                    matches!(call, Err(Error::ConnectionLost { .. })),
                    "{call:?}"
                );
                assert_eq!(helper.wait().await.unwrap().code(), Some(7));
            }
            Err(e) => assert!(e.to_string().contains("exited before connecting"), "{e}"),
        }
    });
}
