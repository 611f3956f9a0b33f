//! The follower against mock masters on loopback: a leader that serves its state and an event
//! stream the test writes to, and a standby that redirects to it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;

/// A mock master: the leader, or a standby that redirects to `leader`.
#[derive(Default)]
struct Master {
    leader: Option<SocketAddr>,
    /// Reads of the state served.
    reads: AtomicU64,
    /// Subscriptions opened.
    subscribes: AtomicU64,
    /// What the state says; a test changes it.
    version: AtomicU64,
    /// The heartbeat interval SUBSCRIBED announces.
    heartbeat_secs: f64,
    /// The open event streams.
    streams: Mutex<Vec<mpsc::UnboundedSender<Bytes>>>,
}

impl Master {
    /// Sends an event of `kind` on every open stream.
    fn event(&self, kind: &str) {
        let record = crate::recordio::encode(json!({"type": kind}).to_string().as_bytes());
        let mut streams = self.streams.lock().unwrap();
        streams.retain(|s| s.send(record.clone()).is_ok());
    }

    /// Ends every open stream.
    fn close_streams(&self) {
        self.streams.lock().unwrap().clear();
    }
}

type Shared = Arc<Master>;

fn redirect(to: SocketAddr, path: &str) -> Response {
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, format!("//{to}{path}"))],
    )
        .into_response()
}

async fn state(State(m): State<Shared>) -> Response {
    if let Some(leader) = m.leader {
        return redirect(leader, "/master/state");
    }
    m.reads.fetch_add(1, Ordering::SeqCst);
    axum::Json(json!({"version": m.version.load(Ordering::SeqCst)})).into_response()
}

async fn subscribe(State(m): State<Shared>) -> Response {
    if let Some(leader) = m.leader {
        return redirect(leader, "/api/v1");
    }
    m.subscribes.fetch_add(1, Ordering::SeqCst);
    let (tx, rx) = mpsc::unbounded_channel();
    let subscribed = json!({"type": "SUBSCRIBED", "subscribed": {
        "get_state": {"get_tasks": {}}, "heartbeat_interval_seconds": m.heartbeat_secs}});
    let _ = tx.send(crate::recordio::encode(subscribed.to_string().as_bytes()));
    m.streams.lock().unwrap().push(tx);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    axum::body::Body::from_stream(stream).into_response()
}

/// Serves `master` on loopback until `stop`.
async fn serve(master: Shared, stop: CancellationToken) -> SocketAddr {
    let app = axum::Router::new()
        .route("/master/state", get(state))
        .route("/api/v1", post(subscribe))
        .with_state(master);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned());
    tokio::spawn(async move { serving.await });
    addr
}

async fn leader() -> (Shared, SocketAddr, CancellationToken) {
    let master = Arc::new(Master {
        heartbeat_secs: 15.0,
        ..Master::default()
    });
    let stop = CancellationToken::new();
    let addr = serve(master.clone(), stop.clone()).await;
    (master, addr, stop)
}

/// Waits up to 5 s for a reading that `done` accepts.
async fn reading(follower: &Follower, done: impl Fn(&Snapshot) -> bool) -> Arc<Snapshot> {
    let mut rx = follower.subscribe();
    let found = rx.wait_for(|v| v.snapshot().is_some_and(|s| done(s)));
    let view = tokio::time::timeout(Duration::from_secs(5), found)
        .await
        .expect("the reading came in time")
        .unwrap();
    view.snapshot().unwrap().clone()
}

fn version(s: &Snapshot) -> u64 {
    s.state["version"].as_u64().unwrap()
}

#[tokio::test]
async fn the_leader_is_found_through_a_standby_and_followed_on_every_change() {
    let (master, leader_addr, stop) = leader().await;
    let standby = Arc::new(Master {
        leader: Some(leader_addr),
        ..Master::default()
    });
    let standby_addr = serve(standby, stop.clone()).await;
    let follower = Follower::spawn(Config::state(vec![standby_addr], Duration::from_secs(30)));
    let first = follower.ready(Duration::from_secs(5)).await.unwrap();
    assert_eq!(first.leader, leader_addr);
    assert_eq!(version(&first), 0);
    // SUBSCRIBED, before the state was read, is no change: one read so far.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(master.reads.load(Ordering::SeqCst), 1);
    assert_eq!(master.subscribes.load(Ordering::SeqCst), 1);

    // A change is read within a fraction of a second.
    master.version.store(1, Ordering::SeqCst);
    master.event("TASK_ADDED");
    let second = reading(&follower, |s| version(s) == 1).await;
    assert!(second.seq > first.seq);

    // A burst of changes is gathered into few reads; heartbeats are no change.
    let before = master.reads.load(Ordering::SeqCst);
    for _ in 0..20 {
        master.event("TASK_UPDATED");
    }
    master.event("HEARTBEAT");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let burst = master.reads.load(Ordering::SeqCst) - before;
    assert!((1..=2).contains(&burst), "{burst} reads for one burst");
    let quiet = master.reads.load(Ordering::SeqCst);
    master.event("HEARTBEAT");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(master.reads.load(Ordering::SeqCst), quiet);

    // Asked, it reads again.
    master.version.store(2, Ordering::SeqCst);
    let fresh = follower.reread(Duration::from_secs(5)).await.unwrap();
    assert_eq!(version(&fresh), 2);
    stop.cancel();
    master.close_streams();
}

#[tokio::test]
async fn a_lost_leader_is_dropped_after_refresh_and_found_again() {
    let (master, addr, stop) = leader().await;
    let refresh = Duration::from_millis(800);
    let follower = Follower::spawn(Config::state(vec![addr], refresh));
    follower.ready(Duration::from_secs(5)).await.unwrap();

    // Its stream ends and it answers no more: the reading stays for `refresh`, then goes.
    stop.cancel();
    master.close_streams();
    let lost_at = Instant::now();
    let mut rx = follower.subscribe();
    tokio::time::timeout(
        Duration::from_secs(5),
        rx.wait_for(|v| matches!(v, View::Lost)),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(lost_at.elapsed() >= refresh - Duration::from_millis(100));
    assert!(follower.current().is_none());
    assert!(follower.ready(Duration::from_secs(1)).await.is_none());

    // A master at a new address that the follower does not know: still lost. One it knows,
    // back on its address: followed again.
    let back = Arc::new(Master {
        heartbeat_secs: 15.0,
        ..Master::default()
    });
    back.version.store(7, Ordering::SeqCst);
    let again = CancellationToken::new();
    let app_addr = {
        let app = axum::Router::new()
            .route("/master/state", get(state))
            .route("/api/v1", post(subscribe))
            .with_state(back.clone());
        let listener = TcpListener::bind(addr).await.unwrap();
        let serving =
            axum::serve(listener, app).with_graceful_shutdown(again.clone().cancelled_owned());
        tokio::spawn(async move { serving.await });
        addr
    };
    let found = reading(&follower, |s| version(s) == 7).await;
    assert_eq!(found.leader, app_addr);
    again.cancel();
    back.close_streams();
}

#[tokio::test]
async fn a_silent_leader_is_left_after_three_heartbeats() {
    let master = Arc::new(Master {
        heartbeat_secs: 0.1,
        ..Master::default()
    });
    let stop = CancellationToken::new();
    let addr = serve(master.clone(), stop.clone()).await;
    let follower = Follower::spawn(Config::state(vec![addr], Duration::from_secs(30)));
    follower.ready(Duration::from_secs(5)).await.unwrap();
    // No heartbeats come: after 0.3 s the stream is given up and opened again.
    tokio::time::timeout(Duration::from_secs(5), async {
        while master.subscribes.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the follower subscribed again");
    // Still following meanwhile.
    assert!(follower.current().is_some());
    drop(follower);
    stop.cancel();
    master.close_streams();
}

/// The next state `follow` installed.
async fn next(rx: &mut mpsc::UnboundedReceiver<Value>) -> Value {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn follow_hands_over_each_state_and_null_once_lost() {
    let (master, addr, stop) = leader().await;
    let (tx, mut installed) = mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let following = tokio::spawn(follow(
        vec![addr],
        Duration::from_millis(500),
        None,
        move |state| {
            let _ = tx.send(state);
        },
        shutdown.clone(),
    ));
    assert_eq!(next(&mut installed).await, json!({"version": 0}));
    master.version.store(3, Ordering::SeqCst);
    master.event("FRAMEWORK_ADDED");
    assert_eq!(next(&mut installed).await, json!({"version": 3}));
    stop.cancel();
    master.close_streams();
    assert_eq!(next(&mut installed).await, Value::Null);
    shutdown.cancel();
    following.await.unwrap();
}

#[tokio::test]
async fn a_summary_is_polled_without_an_event_stream() {
    let (master, addr, stop) = leader().await;
    let mut config = Config::summary(vec![addr], Duration::from_millis(200));
    config.path = "/master/state".into();
    let follower = Follower::spawn(config);
    follower.ready(Duration::from_secs(5)).await.unwrap();
    master.version.store(5, Ordering::SeqCst);
    reading(&follower, |s| version(s) == 5).await;
    assert_eq!(master.subscribes.load(Ordering::SeqCst), 0);
    stop.cancel();
}

#[tokio::test]
async fn redirects_name_the_leader_with_or_without_a_scheme() {
    let want: SocketAddr = "10.0.0.1:5050".parse().unwrap();
    for location in [
        "//10.0.0.1:5050/master/state",
        "http://10.0.0.1:5050",
        "//10.0.0.1:5050?x",
    ] {
        assert_eq!(leader_of(location).await, Some(want), "{location}");
    }
    assert_eq!(leader_of("/master/state").await, None);
}
