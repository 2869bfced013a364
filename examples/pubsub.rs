//! Publish/subscribe across processes: a broker process, three subscriber processes and two
//! publisher processes, all started from this one executable.
//!
//! Each subscriber holds one server stream open on the broker (`subscribe`); publishers make
//! plain calls (`publish`), and the broker fans each message out to the streams of that topic.
//! A subscriber that stops reading only fills its own stream's window: the broker skips
//! ahead for it (it gets a `Missed` event) instead of buffering without bound.
//!
//! Run it with `cargo run --example pubsub`.
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::StreamExt;
use localrpc::Streaming;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// What a subscriber receives.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Event {
    /// A message published on the topic.
    Message {
        /// The publisher's name.
        from: String,
        /// The text.
        text: String,
    },
    /// This many messages went by while the subscriber was not reading.
    Missed(u64),
}

/// The broker.
#[localrpc::service]
pub trait Broker {
    /// Events published on `topic` from now on.
    async fn subscribe(&self, topic: String) -> Streaming<Event>;
    /// Publishes to `topic`; returns how many subscribers it reached.
    async fn publish(&self, topic: String, from: String, text: String) -> u32;
    /// How many subscribers `topic` has.
    async fn subscribers(&self, topic: String) -> u32;
}

#[derive(Default)]
struct Hub {
    topics: Mutex<HashMap<String, broadcast::Sender<Event>>>,
}

impl Hub {
    fn topic(&self, topic: String) -> broadcast::Sender<Event> {
        self.topics
            .lock()
            .unwrap()
            .entry(topic)
            .or_insert_with(|| broadcast::channel(1024).0)
            .clone()
    }
}

impl Broker for Hub {
    async fn subscribe(&self, topic: String) -> Streaming<Event> {
        let rx = self.topic(topic).subscribe();
        Streaming::new(futures_util::stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Ok(event) => Some((event, rx)),
                Err(broadcast::error::RecvError::Lagged(n)) => Some((Event::Missed(n), rx)),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        }))
    }

    async fn publish(&self, topic: String, from: String, text: String) -> u32 {
        let sent = self.topic(topic).send(Event::Message { from, text });
        sent.map_or(0, |n| n as u32)
    }

    async fn subscribers(&self, topic: String) -> u32 {
        self.topic(topic).receiver_count() as u32
    }
}

const TOPIC: &str = "news";
const SUBSCRIBERS: usize = 3;
const PUBLISHERS: usize = 2;
const PER_PUBLISHER: usize = 50;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("broker") => return broker(&args[1]).await,
        Some("subscriber") => return subscriber(&args[1], &args[2]).await,
        Some("publisher") => return publisher(&args[1], &args[2]).await,
        _ => {}
    }

    // The coordinator: starts everyone and checks what they say.
    let name = format!("localrpc-pubsub-{}", std::process::id());
    let mut broker = start(&["broker", &name])?;
    let client = loop {
        match BrokerClient::connect(name.as_str()).await {
            Ok(client) => break client,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let subscribers: Vec<Child> = (0..SUBSCRIBERS)
        .map(|i| start(&["subscriber", &name, &format!("sub{i}")]))
        .collect::<Result<_, _>>()?;
    // Publish only once every subscriber's stream is open on the broker.
    while client.subscribers(TOPIC.into()).await? < SUBSCRIBERS as u32 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("broker has {SUBSCRIBERS} subscribers on {TOPIC:?}");
    let publishers: Vec<Child> = (0..PUBLISHERS)
        .map(|i| start(&["publisher", &name, &format!("pub{i}")]))
        .collect::<Result<_, _>>()?;
    for mut p in publishers.into_iter().chain(subscribers) {
        let status = tokio::task::spawn_blocking(move || p.wait()).await??;
        assert!(
            status.success(),
            "a publisher or subscriber failed: {status}"
        );
    }
    broker.kill()?;
    broker.wait()?;
    println!(
        "all {SUBSCRIBERS} subscribers got all {} messages",
        PUBLISHERS * PER_PUBLISHER
    );
    Ok(())
}

fn start(args: &[&str]) -> std::io::Result<Child> {
    Command::new(std::env::current_exe()?)
        .args(args)
        .stdin(Stdio::null())
        .spawn()
}

async fn broker(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let server = localrpc::Server::builder().bind(name)?;
    server.serve(BrokerServer::new(Hub::default())).await?;
    Ok(())
}

async fn subscriber(name: &str, me: &str) -> Result<(), Box<dyn std::error::Error>> {
    let broker = BrokerClient::connect(name).await?;
    let mut events = broker.subscribe(TOPIC.into()).await?;
    let mut per_publisher: HashMap<String, usize> = HashMap::new();
    let expected = PUBLISHERS * PER_PUBLISHER;
    let mut got = 0;
    while got < expected {
        match events.next().await.ok_or("the broker ended the stream")?? {
            Event::Message { from, text } => {
                // Each publisher's messages arrive in the order it sent them.
                let n = per_publisher.entry(from.clone()).or_default();
                assert_eq!(text, format!("{from} #{n}"));
                *n += 1;
                got += 1;
            }
            Event::Missed(n) => return Err(format!("{me} missed {n} messages").into()),
        }
    }
    println!("{me} (pid {}): {got} messages", std::process::id());
    Ok(())
}

async fn publisher(name: &str, me: &str) -> Result<(), Box<dyn std::error::Error>> {
    let broker = BrokerClient::connect(name).await?;
    for n in 0..PER_PUBLISHER {
        let reached = broker
            .publish(TOPIC.into(), me.into(), format!("{me} #{n}"))
            .await?;
        assert_eq!(reached, SUBSCRIBERS as u32);
    }
    println!(
        "{me} (pid {}): published {PER_PUBLISHER}",
        std::process::id()
    );
    Ok(())
}
