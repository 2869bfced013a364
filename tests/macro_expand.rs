//! What `#[localrpc::service]` generates, checked at run time without sockets: the method table
//! and its hash, and the client's calls as a tower stack sees them (over a fake service that
//! records each `CallRequest` and answers with canned, postcard-encoded responses).
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use localrpc::codec::{Codec, Postcard};
use localrpc::{CallRequest, CallResponse, Error, NamedService, method_table_hash};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct DivByZero;

#[localrpc::service]
trait Calculator {
    /// Adds.
    async fn add(&self, a: i64, b: i64) -> i64;
    async fn div(&self, a: i64, b: i64) -> Result<i64, DivByZero>;
    async fn slow(&self, ms: u64) -> u64;
    async fn ping(&self);
}

/// The documented canonical string of `Calculator` (see `proto/localrpc.proto`).
const CALCULATOR_TABLE: &str =
    "add(i64,i64)->i64;div(i64,i64)->Result<i64,DivByZero>;slow(u64)->u64;ping()->();";

#[allow(dead_code)] // only the generated method table is used
mod renamed {
    use super::DivByZero;

    /// `Calculator` under another wire name.
    #[localrpc::service(name = "myapp.Calculator")]
    pub(crate) trait Calculator {
        async fn add(&self, a: i64, b: i64) -> i64;
        async fn div(&self, a: i64, b: i64) -> Result<i64, DivByZero>;
        async fn slow(&self, ms: u64) -> u64;
        async fn ping(&self);
    }
}

#[allow(dead_code)] // only the generated method table is used
mod v1 {
    #[localrpc::service]
    pub(crate) trait Store {
        async fn get(&self, key: u32) -> Option<String>;
        async fn len(&self) -> u64;
    }
}

#[allow(dead_code)] // only the generated method table is used
mod v2 {
    /// `v1::Store` with one argument type changed.
    #[localrpc::service]
    pub(crate) trait Store {
        async fn get(&self, key: u64) -> Option<String>;
        async fn len(&self) -> u64;
    }
}

#[allow(dead_code)] // only the generated method table is used
mod v3 {
    /// `v1::Store` with the methods in another order.
    #[localrpc::service]
    pub(crate) trait Store {
        async fn len(&self) -> u64;
        async fn get(&self, key: u32) -> Option<String>;
    }
}

#[allow(dead_code)] // only the generated method table is used
mod empty {
    /// A service with no methods yet: every call is an unknown method.
    #[localrpc::service]
    pub(crate) trait Nothing {}
}

struct Calc;

impl Calculator for Calc {
    async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
    async fn div(&self, a: i64, b: i64) -> Result<i64, DivByZero> {
        a.checked_div(b).ok_or(DivByZero)
    }
    async fn slow(&self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }
    async fn ping(&self) {}
}

fn encode<T: Serialize + DeserializeOwned>(value: &T) -> Bytes {
    let mut buf = BytesMut::new();
    Postcard.encode(value, &mut buf).unwrap();
    buf.freeze()
}

type Reply = Arc<dyn Fn(&CallRequest) -> Result<CallResponse, Error> + Send + Sync>;

/// A client stack that records each call and answers with `reply`.
#[derive(Clone)]
struct Fake {
    calls: Arc<Mutex<Vec<CallRequest>>>,
    reply: Reply,
}

impl Fake {
    fn new(
        reply: impl Fn(&CallRequest) -> Result<CallResponse, Error> + Send + Sync + 'static,
    ) -> Self {
        Fake {
            calls: Arc::default(),
            reply: Arc::new(reply),
        }
    }

    fn answering(value: Bytes) -> Self {
        Self::new(move |_| Ok(CallResponse::Ok(value.clone())))
    }

    fn last(&self) -> CallRequest {
        self.calls
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("no call made")
    }
}

impl tower::Service<CallRequest> for Fake {
    type Response = CallResponse;
    type Error = Error;
    type Future = std::future::Ready<Result<CallResponse, Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: CallRequest) -> Self::Future {
        let reply = (self.reply)(&req);
        self.calls.lock().unwrap().push(req);
        std::future::ready(reply)
    }
}

#[test]
fn service_info_follows_the_trait() {
    let info = CalculatorClient::<()>::INFO;
    assert_eq!(info.name(), "Calculator");
    assert_eq!(info.methods(), ["add", "div", "slow", "ping"]);
    assert_eq!(info.hash(), method_table_hash(CALCULATOR_TABLE));
    assert_eq!(
        CalculatorServer::<Calc>::INFO,
        info,
        "client and server share one description"
    );
}

#[test]
fn the_name_argument_renames_only_the_service() {
    let info = renamed::CalculatorClient::<()>::INFO;
    assert_eq!(info.name(), "myapp.Calculator");
    assert_eq!(info.methods(), CalculatorClient::<()>::INFO.methods());
    assert_eq!(info.hash(), method_table_hash(CALCULATOR_TABLE));
}

#[test]
fn the_hash_covers_types_and_order() {
    let v1 = v1::StoreClient::<()>::INFO.hash();
    assert_eq!(
        v1,
        method_table_hash("get(u32)->Option<String>;len()->u64;")
    );
    assert_ne!(
        v1,
        v2::StoreClient::<()>::INFO.hash(),
        "u32 vs u64 argument"
    );
    assert_ne!(v1, v3::StoreClient::<()>::INFO.hash(), "method order");
}

#[test]
fn an_empty_trait_is_an_empty_table() {
    let info = empty::NothingClient::<()>::INFO;
    assert_eq!(info.methods(), [] as [&str; 0]);
    assert_eq!(info.hash(), method_table_hash(""));
}

#[tokio::test]
async fn a_call_is_one_request_with_the_encoded_argument_tuple() {
    let fake = Fake::answering(encode(&5i64));
    let calc = CalculatorClient::new(fake.clone());

    assert_eq!(calc.add(2, 3).await.unwrap(), 5);

    let req = fake.last();
    assert_eq!(req.service(), CalculatorClient::<()>::INFO);
    assert_eq!(req.method_index(), 0);
    assert_eq!(req.method_name(), "add");
    assert_eq!(req.payload(), &encode(&(2i64, 3i64)));
    assert_eq!(req.timeout(), None);
}

#[tokio::test]
async fn zero_and_one_arguments_are_tuples_too() {
    let fake = Fake::answering(encode(&()));
    let calc = CalculatorClient::new(fake.clone());
    calc.ping().await.unwrap();
    let req = fake.last();
    assert_eq!((req.method_index(), req.method_name()), (3, "ping"));
    assert!(req.payload().is_empty(), "() encodes to nothing");

    let fake = Fake::answering(encode(&7u64));
    let calc = CalculatorClient::new(fake.clone());
    assert_eq!(calc.slow(7).await.unwrap(), 7);
    assert_eq!(fake.last().payload(), &encode(&(7u64,)));
}

#[tokio::test]
async fn application_errors_are_the_inner_result() {
    let fake = Fake::new(|req| {
        let (a, b): (i64, i64) = Postcard.decode(req.payload()).unwrap();
        Ok(match a.checked_div(b) {
            Some(q) => CallResponse::Ok(encode(&q)),
            None => CallResponse::AppError(encode(&DivByZero)),
        })
    });
    let calc = CalculatorClient::new(fake.clone());
    assert_eq!(calc.div(7, 2).await.unwrap(), Ok(3));
    assert_eq!(calc.div(7, 0).await.unwrap(), Err(DivByZero));
    assert_eq!(fake.last().method_index(), 1);
}

#[tokio::test]
async fn call_errors_and_bad_replies_are_errors() {
    let calc = CalculatorClient::new(Fake::new(|_| Err(Error::DeadlineExceeded)));
    assert!(matches!(calc.add(1, 2).await, Err(Error::DeadlineExceeded)));

    // An application error for a method that declares none.
    let calc = CalculatorClient::new(Fake::new(|_| {
        Ok(CallResponse::AppError(encode(&DivByZero)))
    }));
    assert!(calc.add(1, 2).await.is_err());

    // A reply of the wrong type.
    let calc = CalculatorClient::new(Fake::answering(Bytes::from_static(b"\xff")));
    assert!(matches!(calc.add(1, 2).await, Err(Error::Decode(_))));
}

#[tokio::test]
async fn options_travel_with_each_call() {
    let fake = Fake::answering(encode(&3i64));
    let calc = CalculatorClient::new(fake.clone()).with_timeout(Duration::from_millis(250));
    calc.add(1, 2).await.unwrap();
    assert_eq!(fake.last().timeout(), Some(Duration::from_millis(250)));

    let calc = calc.with_options(localrpc::CallOptions::new());
    calc.add(1, 2).await.unwrap();
    assert_eq!(fake.last().timeout(), None);
    assert_eq!(fake.calls.lock().unwrap().len(), 2);
    assert_eq!(calc.get_ref().calls.lock().unwrap().len(), 2);
    let _: Fake = calc.into_inner();
}

#[tokio::test]
async fn the_client_runs_over_any_tower_stack() {
    let fake = Fake::answering(encode(&3i64));
    let stack = tower::ServiceBuilder::new()
        .map_request(|mut req: CallRequest| {
            req.metadata_mut().insert("tenant", "blue");
            req
        })
        .service(fake.clone());
    let calc = CalculatorClient::new(stack);
    assert_eq!(calc.add(1, 2).await.unwrap(), 3);
    assert_eq!(fake.last().metadata().get("tenant"), Some("blue"));
}

#[test]
fn the_server_is_a_shared_cloneable_service() {
    use tower::Service;

    fn assert_server<S>(_: &S)
    where
        S: Service<localrpc::ServerRequest, Response = localrpc::ServerResponse>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
    }

    // `Calc` is neither `Clone` nor `Debug`.
    let mut server = CalculatorServer::new(Calc);
    assert_server(&server);
    let _ = server.clone();
    let waker = std::task::Waker::noop();
    assert!(matches!(
        server.poll_ready(&mut Context::from_waker(waker)),
        Poll::Ready(Ok(()))
    ));
    let shared = Arc::new(Calc);
    let _server = CalculatorServer::from_arc(Arc::clone(&shared));
    assert_eq!(Arc::strong_count(&shared), 2);
}

#[tokio::test]
async fn client_and_server_meet_in_process() {
    let calc = CalculatorClient::new(localrpc::__private::loopback(CalculatorServer::new(Calc)));
    assert_eq!(calc.add(2, 3).await.unwrap(), 5);
    assert_eq!(calc.div(7, 2).await.unwrap(), Ok(3));
    assert_eq!(calc.div(1, 0).await.unwrap(), Err(DivByZero));
    calc.ping().await.unwrap();
    assert_eq!(
        format!("{:?}", CalculatorServer::new(Calc)),
        "CalculatorServer { .. }"
    );
}
