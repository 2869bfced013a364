//! Calls from a server back to its client on the same connection, across real processes: the
//! client offers a service, the server's handlers call it mid-call; deadlines and
//! cancellation carry over; a client that offers nothing or something else gets typed errors.
mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ChildProc, Watchdog, report, rt, unique};
use localrpc::{Error, NamedService, PeerClient, RefuseReason};

/// What the client offers.
#[localrpc::service]
trait Progress {
    /// Records a step; returns the client's pid (where it ran).
    async fn step(&self, percent: u8) -> u32;
    /// Asks the user; `Err` when they refuse.
    async fn confirm(&self, question: String) -> Result<(), String>;
    /// Takes `ms` to answer.
    async fn slow(&self, ms: u64) -> u64;
}

/// The same service name with another method table.
mod v2 {
    #[localrpc::service(name = "Progress")]
    pub(crate) trait Progress {
        async fn step(&self, percent: u16) -> u32;
    }

    pub(crate) struct Old;

    impl Progress for Old {
        async fn step(&self, _percent: u16) -> u32 {
            0
        }
    }
}

/// Offered by a client of the wrong kind.
#[localrpc::service]
trait Other {
    async fn nothing(&self);
}

/// What the server serves.
#[localrpc::service]
trait Jobs {
    /// Reports progress to the caller four times; returns the pids the calls back ran in.
    async fn run(&self) -> Vec<u32>;
    /// Asks the caller to confirm `question`; returns what it said.
    async fn ask(&self, question: String) -> Result<(), String>;
    /// Calls the caller's `slow(ms)` and says how that went.
    async fn wait_on_caller(&self, ms: u64) -> String;
    /// What `peer_client` says when the caller offers no Progress.
    async fn probe(&self) -> String;
}

struct JobsImpl;

fn progress() -> ProgressClient<PeerClient> {
    localrpc::peer_client().expect("the caller offers Progress")
}

impl Jobs for JobsImpl {
    async fn run(&self) -> Vec<u32> {
        let progress = progress();
        let mut pids = Vec::new();
        for percent in [25, 50, 75, 100] {
            pids.push(progress.step(percent).await.unwrap());
        }
        pids
    }
    async fn ask(&self, question: String) -> Result<(), String> {
        progress().confirm(question).await.unwrap()
    }
    async fn wait_on_caller(&self, ms: u64) -> String {
        match progress().slow(ms).await {
            Ok(ms) => format!("ok {ms}"),
            Err(e) => format!("{e:?}"),
        }
    }
    async fn probe(&self) -> String {
        match localrpc::peer_client::<ProgressClient<PeerClient>>() {
            Ok(_) => "offered".into(),
            Err(Error::HandshakeRefused { reason, .. }) => format!("refused {reason:?}"),
            Err(e) => format!("other {e:?}"),
        }
    }
}

#[derive(Clone, Default)]
struct Recorder {
    steps: Arc<Mutex<Vec<u8>>>,
    slow_started: Arc<AtomicU32>,
    slow_dropped: Arc<AtomicBool>,
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Progress for Recorder {
    async fn step(&self, percent: u8) -> u32 {
        self.steps.lock().unwrap().push(percent);
        std::process::id()
    }
    async fn confirm(&self, question: String) -> Result<(), String> {
        if question.contains("delete") {
            Err(format!("no: {question}"))
        } else {
            Ok(())
        }
    }
    async fn slow(&self, ms: u64) -> u64 {
        self.slow_started.fetch_add(1, Ordering::SeqCst);
        let _guard = SetOnDrop(self.slow_dropped.clone());
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }
}

struct OtherImpl;

impl Other for OtherImpl {
    async fn nothing(&self) {}
}

#[test]
fn child_entry() {
    let Some((role, args)) = common::child_role() else {
        return;
    };
    match role.as_str() {
        "jobs" => rt().block_on(async {
            let server = localrpc::Server::builder().bind(args[0].as_str()).unwrap();
            report("BOUND");
            server.serve(JobsServer::new(JobsImpl)).await.unwrap();
        }),
        other => panic!("unknown role {other}"),
    }
}

fn start() -> (ChildProc, String) {
    let name = unique("jobs");
    let server = ChildProc::spawn("jobs", &[&name]);
    server.expect("BOUND");
    (server, name)
}

async fn connect_offering(name: &str, recorder: &Recorder) -> JobsClient {
    let client = localrpc::Client::builder(<JobsClient>::INFO)
        .offer(ProgressServer::new(recorder.clone()))
        .connect(name)
        .await
        .unwrap();
    JobsClient::new(client)
}

#[test]
fn the_server_calls_back_into_the_client_mid_call() {
    let _wd = Watchdog::arm("the_server_calls_back_into_the_client_mid_call");
    let (server, name) = start();
    rt().block_on(async {
        let recorder = Recorder::default();
        let jobs = connect_offering(&name, &recorder).await;
        // Four calls back, each run here, in this process, while `run` is in flight.
        let pids = jobs.run().await.unwrap();
        assert_eq!(pids, [std::process::id(); 4]);
        assert_ne!(server.pid(), std::process::id());
        assert_eq!(*recorder.steps.lock().unwrap(), [25, 50, 75, 100]);
        // Application errors travel back too.
        assert_eq!(jobs.ask("save?".into()).await.unwrap(), Ok(()));
        assert_eq!(
            jobs.ask("delete all?".into()).await.unwrap(),
            Err("no: delete all?".into())
        );
        // Many calls at once, each calling back.
        let calls = (0..32).map(|_| {
            let jobs = jobs.clone();
            async move { jobs.run().await.unwrap().len() }
        });
        let done = futures_util::future::join_all(calls).await;
        assert_eq!(done, [4; 32]);
        assert_eq!(recorder.steps.lock().unwrap().len(), 4 + 32 * 4);
        assert_eq!(jobs.probe().await.unwrap(), "offered");
        // An offered service wrapped in tower layers serves calls back the same way.
        let layered = tower::ServiceBuilder::new()
            .concurrency_limit(1)
            .service(ProgressServer::new(recorder.clone()));
        let client = localrpc::Client::builder(<JobsClient>::INFO)
            .offer_as(<ProgressServer<Recorder>>::INFO, layered)
            .connect(name.as_str())
            .await
            .unwrap();
        assert_eq!(JobsClient::new(client).run().await.unwrap().len(), 4);
    });
}

#[test]
fn a_call_back_inherits_the_deadline_and_is_cancelled_with_the_call() {
    let _wd = Watchdog::arm("a_call_back_inherits_the_deadline_and_is_cancelled_with_the_call");
    let (_server, name) = start();
    rt().block_on(async {
        let recorder = Recorder::default();
        let jobs = connect_offering(&name, &recorder).await;
        // The server's call back runs out of the caller's deadline: the server sees
        // DeadlineExceeded, and the client's handler of the call back is dropped.
        let hurried = jobs.clone().with_timeout(Duration::from_millis(300));
        let outcome = hurried.wait_on_caller(30_000).await;
        // The call back and the call share one deadline: either the handler hears of it
        // from its call back first and answers, or the call itself runs out.
        let inherited = match &outcome {
            Ok(said) => said == "DeadlineExceeded",
            Err(Error::DeadlineExceeded) => true,
            Err(_) => false,
        };
        assert!(inherited, "{outcome:?}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !recorder.slow_dropped.load(Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline,
                "the call back was never cancelled"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(recorder.slow_started.load(Ordering::SeqCst), 1);
        // A call back that has the time completes.
        assert_eq!(jobs.wait_on_caller(10).await.unwrap(), "ok 10");
    });
}

#[test]
fn a_client_that_offers_nothing_or_something_else_gets_typed_errors() {
    let _wd = Watchdog::arm("a_client_that_offers_nothing_or_something_else");
    let (_server, name) = start();
    rt().block_on(async {
        let plain = JobsClient::connect(name.as_str()).await.unwrap();
        assert_eq!(plain.probe().await.unwrap(), "refused Service");
        let other = localrpc::Client::builder(<JobsClient>::INFO)
            .offer(OtherServer::new(OtherImpl))
            .connect(name.as_str())
            .await
            .unwrap();
        assert_eq!(
            JobsClient::new(other).probe().await.unwrap(),
            "refused Service"
        );
        let old = localrpc::Client::builder(<JobsClient>::INFO)
            .offer(v2::ProgressServer::new(v2::Old))
            .connect(name.as_str())
            .await
            .unwrap();
        assert_eq!(
            JobsClient::new(old).probe().await.unwrap(),
            format!("refused {:?}", RefuseReason::MethodTable)
        );
        // Outside a handler there is no caller to call back.
        assert!(matches!(
            localrpc::peer_client::<ProgressClient<PeerClient>>(),
            Err(Error::Protocol(_))
        ));
    });
}
