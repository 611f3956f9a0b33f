//! Following the leading Mesos master's state: read `/master/state` from the leader, hold its
//! operator event stream open, and read the state again as soon as a task, agent or framework
//! changes (and every `refresh` regardless). Mesos-DNS and dcos-net both build their records
//! this way.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// Silence after which the master is taken to be gone: three of its heartbeat intervals.
const SILENCE: Duration = Duration::from_secs(3 * dcos_mesos::master::HEARTBEAT_SECS as u64);

/// The shortest pause between a change and reading the state again.
const MIN_GATHER: Duration = Duration::from_millis(20);

/// After a change, the pause is this many times the last read's duration.
const READ_SHARE_INVERSE: u32 = 10;

/// How long a master may take to start answering. A hung master accepts connections but
/// never answers: the next one is asked instead.
const ANSWER: Duration = Duration::from_secs(5);

/// Sends `request` and waits up to `ANSWER` for the response's head; its body may take
/// as long as it needs, with no silence longer than `SILENCE`.
async fn answered(request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
    tokio::time::timeout(ANSWER, request.send())
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {ANSWER:?}"))?
        .map_err(Into::into)
}

/// The leader's `ip:port` from a state's `leader` pid.
fn leader_of(state: &Value) -> Option<SocketAddr> {
    state["leader"].as_str()?.split_once('@')?.1.parse().ok()
}

/// The state from the leading master: asks each master, and the leader it names.
async fn fetch_state(
    client: &reqwest::Client,
    masters: &[SocketAddr],
) -> anyhow::Result<(Value, SocketAddr)> {
    let get = |m: SocketAddr| async move {
        let state: Value = answered(client.get(format!("http://{m}/master/state")))
            .await?
            .error_for_status()?
            .json()
            .await?;
        anyhow::Ok(state)
    };
    let mut last = anyhow::anyhow!("no masters configured");
    for m in masters {
        match get(*m).await {
            Ok(state) => match leader_of(&state) {
                Some(leader) if leader == *m => return Ok((state, leader)),
                Some(leader) => return Ok((get(leader).await?, leader)),
                None => last = anyhow::anyhow!("master {m} knows no leader"),
            },
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Opens the leader's operator event stream.
async fn subscribe(
    client: &reqwest::Client,
    leader: SocketAddr,
) -> anyhow::Result<futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>> {
    let request = client
        .post(format!("http://{leader}/api/v1"))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(json!({"type": "SUBSCRIBE"}).to_string());
    let resp = answered(request).await?.error_for_status()?;
    Ok(resp.bytes_stream().boxed())
}

/// Reads and installs the state again on every change the leader announces, and every
/// `refresh` regardless. Returns when the leader is lost or changes.
async fn follow_leader(
    install: &impl Fn(Value),
    refresh: Duration,
    client: &reqwest::Client,
    leader: SocketAddr,
) -> anyhow::Result<()> {
    let mut events = subscribe(client, leader).await?;
    let mut decoder = dcos_mesos::recordio::Decoder::new();
    let mut deadline = tokio::time::Instant::now() + refresh;
    let mut gather = MIN_GATHER;
    loop {
        let changed = tokio::select! {
            chunk = events.next() => {
                let Some(chunk) = chunk else { anyhow::bail!("the leader closed its event stream") };
                decoder.feed(&chunk?);
                let mut changed = false;
                while let Some(record) = decoder.next_record()? {
                    let event: Value = serde_json::from_slice(&record)?;
                    changed |= !matches!(event["type"].as_str(), Some("HEARTBEAT" | "SUBSCRIBED"));
                }
                changed
            }
            _ = tokio::time::sleep_until(deadline) => true,
        };
        if !changed {
            continue;
        }
        // Changes come in bursts (a launch is several updates): gather them. The pause grows
        // with what a read costs the master, so that a follower of a busy large cluster
        // (where the state takes a second to render) spends at most a tenth of its time
        // reading it, instead of reading it back to back.
        tokio::time::sleep(gather.max(MIN_GATHER)).await;
        let fetching = Instant::now();
        let (state, now_leader) = fetch_state(client, &[leader]).await?;
        gather = fetching.elapsed() * READ_SHARE_INVERSE;
        install(state);
        deadline = tokio::time::Instant::now() + refresh;
        if now_leader != leader {
            return Ok(());
        }
    }
}

/// Calls `install` with each new state of the leading master among `masters` until
/// `shutdown`. After `refresh` without any master answering it installs `Value::Null`: stale
/// records are worse than none.
pub async fn follow(
    masters: Vec<SocketAddr>,
    refresh: Duration,
    install: impl Fn(Value),
    shutdown: CancellationToken,
) {
    // No limit on a whole request: the state of a large cluster (100,000 tasks, 65 MB) takes
    // longer than any fixed bound to read while the master is busy, and a follower that gave
    // up would only subscribe and read it again. The head of an answer must come within
    // `ANSWER`, and a master that then sends nothing for three heartbeat intervals is gone.
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(SILENCE)
        .build()
        .unwrap_or_default();
    // When a state was last installed: every install counts, not only a round's first.
    let last_ok = std::sync::Mutex::new(Instant::now());
    let installed = |state: Value| {
        install(state);
        *last_ok.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    };
    loop {
        let round = async {
            let (state, leader) = fetch_state(&client, &masters).await?;
            installed(state);
            follow_leader(&installed, refresh, &client, leader).await
        };
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = round => r,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "lost the leading master; following it again");
        }
        let stale = last_ok.lock().unwrap_or_else(|p| p.into_inner()).elapsed() > refresh;
        if stale {
            install(Value::Null);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}
