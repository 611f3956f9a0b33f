//! The one follower of the leading Mesos master's state, for every component that needs the
//! cluster as the master sees it: Mesos-DNS and dcos-net's zones, Admin Router's discovery,
//! the History service.
//!
//! It finds the leader among the masters (a standby answers a subscription or a read with a
//! redirect to the leader, which is followed once), reads its state (`/master/state`, or a view such as
//! `/master/state-summary`), holds the leader's operator event stream open and reads the
//! state again as soon as a task, agent or framework changes, every `refresh` regardless,
//! and when a consumer asks ([`Follower::reread`]). Changes come in bursts (a launch is
//! several updates): a read waits 20 ms after the change that asked for it, and at least
//! ten times as long as the last read took after that read, so a follower of a large busy
//! cluster (whose state takes a second to render) spends at most a tenth of the master's
//! time reading it instead of reading it back to back.
//!
//! The event stream is opened before the state is read, so no change falls between them. A
//! leader is taken for gone when its event stream ends or stays silent for three of its
//! heartbeat intervals, when it redirects a read (it no longer leads), or when it does not
//! start an answer within 5 s (a hung master accepts connections and never answers); the
//! masters are then asked again every 500 ms. Once no master has answered for `refresh` the
//! reading is dropped: stale records are worse than none.
//!
//! Consumers either hold a [`Follower`] (a `watch` of the latest [`Snapshot`], shared, with
//! change notification) or call [`follow`], which hands each state over whole.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::recordio::Decoder;

/// The master's heartbeat interval when its `SUBSCRIBED` event does not say (Mesos' 15 s).
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Heartbeat intervals of silence after which a master is taken for gone.
const MISSED_HEARTBEATS: u32 = 3;
/// The longest heartbeat interval a master's SUBSCRIBED is believed.
const MAX_HEARTBEAT: Duration = Duration::from_secs(3600);
/// The shortest pause between a change and reading the state again.
const MIN_GATHER: Duration = Duration::from_millis(20);
/// Reads are spaced at least this many times the last read's duration apart.
const READ_SHARE_INVERSE: u32 = 10;
/// How long a master may take to start answering.
const ANSWER: Duration = Duration::from_secs(5);
/// How long connecting to a master may take.
const CONNECT: Duration = Duration::from_secs(5);
/// The pause before the masters are asked again after losing the leader.
const RETRY: Duration = Duration::from_millis(500);

/// What to follow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The masters (`ip:5050`); the leader among them is followed.
    pub masters: Vec<SocketAddr>,
    /// Where a token for the masters comes from, when they ask one (strict security).
    pub credentials: Option<Credentials>,
    /// The view read from the leader (`/master/state`).
    pub path: String,
    /// The longest time between two reads, and how long a reading outlives the last master
    /// that answered.
    pub refresh: Duration,
    /// Whether to hold the leader's event stream open and read again on every change (or
    /// only every `refresh`).
    pub events: bool,
}

impl Config {
    /// `/master/state`, read on every change and every `refresh`.
    pub fn state(masters: Vec<SocketAddr>, refresh: Duration) -> Config {
        Config {
            masters,
            credentials: None,
            path: "/master/state".into(),
            refresh,
            events: true,
        }
    }

    /// `/master/state-summary`, read every `period` (no event stream: a consumer that
    /// samples on a clock gains nothing from reading on every change).
    pub fn summary(masters: Vec<SocketAddr>, period: Duration) -> Config {
        Config {
            masters,
            credentials: None,
            path: "/master/state-summary".into(),
            refresh: period,
            events: false,
        }
    }
}

/// What a token comes from.
pub type TokenFn = dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send>>
    + Send
    + Sync;

/// A source of tokens for the masters: called before each leader is followed.
#[derive(Clone)]
pub struct Credentials(pub std::sync::Arc<TokenFn>);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials")
    }
}

impl PartialEq for Credentials {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Credentials {}

/// One reading of the leading master.
#[derive(Debug)]
pub struct Snapshot {
    /// The master that answered: the leader.
    pub leader: SocketAddr,
    /// What it answered.
    pub state: Arc<Value>,
    /// When it was read.
    pub read_at: Instant,
    /// The reading's number: consumers that derive records from a reading make them again
    /// only when it changes.
    pub seq: u64,
}

/// What a follower knows now.
#[derive(Clone, Debug, Default)]
pub enum View {
    /// Its first attempt is under way.
    #[default]
    Starting,
    /// The latest reading.
    Read(Arc<Snapshot>),
    /// No master answers (none has for `refresh`, or none ever did).
    Lost,
}

impl View {
    /// The latest reading, if there is one.
    pub fn snapshot(&self) -> Option<&Arc<Snapshot>> {
        match self {
            View::Read(s) => Some(s),
            View::Starting | View::Lost => None,
        }
    }
}

/// A follower running in a task of its own: a `watch` of what it knows. Clones share it;
/// the task ends when the last clone is dropped.
#[derive(Clone)]
pub struct Follower {
    shared: Arc<Shared>,
}

struct Shared {
    view: watch::Receiver<View>,
    rereads: Arc<Notify>,
    task: tokio::task::AbortHandle,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Follower {
    /// Starts following as `config` says.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn(config: Config) -> Follower {
        let (tx, rx) = watch::channel(View::Starting);
        let rereads = Arc::new(Notify::new());
        let task = tokio::spawn({
            let rereads = rereads.clone();
            async move {
                let mut seq = 0;
                let mut sink = |reading: Option<(SocketAddr, Value)>| match reading {
                    Some((leader, state)) => {
                        seq += 1;
                        let snapshot = Snapshot {
                            leader,
                            state: Arc::new(state),
                            read_at: Instant::now(),
                            seq,
                        };
                        tx.send_replace(View::Read(Arc::new(snapshot)));
                    }
                    None => {
                        tx.send_if_modified(|v| {
                            !matches!(std::mem::replace(v, View::Lost), View::Lost)
                        });
                    }
                };
                run(&config, &rereads, &mut sink).await;
            }
        });
        Follower {
            shared: Arc::new(Shared {
                view: rx,
                rereads,
                task: task.abort_handle(),
            }),
        }
    }

    /// What it knows now.
    pub fn view(&self) -> View {
        self.shared.view.borrow().clone()
    }

    /// The latest reading, if there is one.
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.shared.view.borrow().snapshot().cloned()
    }

    /// A receiver that is told of every change (`changed()`); it sees no more changes once
    /// every [`Follower`] is dropped.
    pub fn subscribe(&self) -> watch::Receiver<View> {
        self.shared.view.clone()
    }

    /// The latest reading; while the follower is still starting, waits up to `within` for
    /// its first.
    pub async fn ready(&self, within: Duration) -> Option<Arc<Snapshot>> {
        let mut rx = self.shared.view.clone();
        let started = tokio::time::timeout(within, rx.wait_for(|v| !matches!(v, View::Starting)));
        let reading = match started.await {
            Ok(Ok(view)) => view.snapshot().cloned(),
            _ => None,
        };
        reading
    }

    /// Asks for a reading taken from now on and waits up to `within` for it. Requests made
    /// while a read is pending are answered by that read, and reads stay spaced as after a
    /// change, so askers cannot make the follower read more often than changes would.
    pub async fn reread(&self, within: Duration) -> Option<Arc<Snapshot>> {
        let mut rx = self.shared.view.clone();
        let before = rx.borrow_and_update().snapshot().map(|s| s.seq);
        self.shared.rereads.notify_one();
        let newer = rx.wait_for(|v| v.snapshot().is_some_and(|s| Some(s.seq) != before));
        let reading = match tokio::time::timeout(within, newer).await {
            Ok(Ok(view)) => view.snapshot().cloned(),
            _ => None,
        };
        reading
    }
}

/// Calls `install` with each new state of the leading master among `masters`, read on every
/// change and every `refresh`, until `shutdown`; with `Value::Null` once no master answers
/// (see the module's docs). For consumers that keep each state whole: it is handed over, not
/// copied.
pub async fn follow(
    masters: Vec<SocketAddr>,
    refresh: Duration,
    credentials: Option<Credentials>,
    mut install: impl FnMut(Value),
    shutdown: CancellationToken,
) {
    let config = Config {
        credentials,
        ..Config::state(masters, refresh)
    };
    let rereads = Notify::new();
    let mut sink = |reading: Option<(SocketAddr, Value)>| {
        install(reading.map_or(Value::Null, |(_, state)| state));
    };
    tokio::select! {
        _ = shutdown.cancelled() => {}
        () = run(&config, &rereads, &mut sink) => {}
    }
}

/// Why a leader is no longer followed.
type Lost = Box<dyn std::error::Error + Send + Sync>;

/// Follows the leader for ever: `sink` gets each reading with the master that answered it,
/// and `None` once no master answers.
async fn run(
    config: &Config,
    rereads: &Notify,
    sink: &mut impl FnMut(Option<(SocketAddr, Value)>),
) {
    // No limit on a whole request: the state of a large cluster (100,000 tasks, 65 MB) takes
    // longer than any fixed bound to read while the master is busy, and a follower that gave
    // up would only read it again. The head of an answer must come within `ANSWER`, and a
    // master that then sends nothing for three heartbeat intervals is gone. Redirects are
    // the follower's to follow: they name the leader.
    let client = |token: Option<String>| {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(Ok(v)) =
            token.map(|t| reqwest::header::HeaderValue::from_str(&format!("token={t}")))
        {
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        reqwest::Client::builder()
            .connect_timeout(CONNECT)
            .read_timeout(HEARTBEAT * MISSED_HEARTBEATS)
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .build()
            .unwrap_or_default()
    };
    let mut reader = Reader {
        config,
        client: client(None),
        last_ok: None,
        told_lost: false,
    };
    loop {
        // A fresh token for each leader followed (a stream is authenticated when opened).
        if let Some(credentials) = &config.credentials {
            match (credentials.0)().await {
                Ok(token) => reader.client = client(Some(token)),
                Err(e) => tracing::warn!(error = %e, "no token for the masters"),
            }
        }
        match reader.round(rereads, sink).await {
            Ok(()) => {
                tracing::info!(path = %config.path, "the leading master changed; following the new one")
            }
            Err(e) => {
                tracing::warn!(path = %config.path, error = %e, "lost the leading master; following it again")
            }
        }
        let stale = reader
            .last_ok
            .is_none_or(|at| at.elapsed() > config.refresh);
        if stale && !reader.told_lost {
            reader.told_lost = true;
            sink(None);
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// What a master answered.
enum Found<T> {
    /// The answer: it leads.
    Here(T),
    /// A redirect to the master it takes for the leader.
    Leader(SocketAddr),
}

/// Asks each master in turn with `ask`, and the leader one names; the first answer.
async fn at_leader<T, F, Fut>(masters: &[SocketAddr], ask: F) -> Result<(SocketAddr, T), Lost>
where
    F: Fn(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = Result<Found<T>, Lost>>,
{
    let mut last: Lost = "no masters configured".into();
    for &master in masters {
        let leader = match ask(master).await {
            Ok(Found::Here(t)) => return Ok((master, t)),
            Ok(Found::Leader(leader)) => leader,
            Err(e) => {
                last = e;
                continue;
            }
        };
        match ask(leader).await {
            Ok(Found::Here(t)) => return Ok((leader, t)),
            Ok(Found::Leader(other)) => {
                last = format!("{master} names {leader} the leader, which names {other}").into();
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The master a redirect names, from its `Location` (`//10.0.0.1:5050/master/state`, as
/// Mesos writes it, or with a scheme).
async fn redirect(url: &str, resp: &reqwest::Response) -> Result<SocketAddr, Lost> {
    let location = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .unwrap_or("");
    leader_of(location)
        .await
        .ok_or_else(|| format!("{url} redirects to {location:?}, not to a master").into())
}

struct Reader<'a> {
    config: &'a Config,
    client: reqwest::Client,
    /// When a reading was last handed over.
    last_ok: Option<Instant>,
    /// Whether the consumer was told that no master answers, since the last reading.
    told_lost: bool,
}

impl Reader<'_> {
    fn deliver(
        &mut self,
        leader: SocketAddr,
        state: Value,
        sink: &mut impl FnMut(Option<(SocketAddr, Value)>),
    ) {
        self.last_ok = Some(Instant::now());
        self.told_lost = false;
        sink(Some((leader, state)));
    }

    /// Finds the leader and follows it until it stops leading (`Ok`) or is lost. With
    /// events, the leader's stream is opened before its view is read, so no change falls
    /// between the two.
    async fn round(
        &mut self,
        rereads: &Notify,
        sink: &mut impl FnMut(Option<(SocketAddr, Value)>),
    ) -> Result<(), Lost> {
        let masters = &self.config.masters;
        let (leader, events, (state, took)) = if self.config.events {
            let (leader, events) =
                at_leader(masters, |m| Events::subscribe(&self.client, m)).await?;
            match self.read(leader).await? {
                Found::Here(read) => (leader, Some(events), read),
                Found::Leader(_) => return Ok(()),
            }
        } else {
            let (leader, read) = at_leader(masters, |m| self.read(m)).await?;
            (leader, None, read)
        };
        self.deliver(leader, state, sink);
        self.follow(leader, events, took, rereads, sink).await
    }

    /// Reads the view from `master`, and how long that took.
    async fn read(&self, master: SocketAddr) -> Result<Found<(Value, Duration)>, Lost> {
        let started = Instant::now();
        let url = format!("http://{master}{}", self.config.path);
        let resp = tokio::time::timeout(ANSWER, self.client.get(&url).send())
            .await
            .map_err(|_| format!("{url} did not answer within {ANSWER:?}"))??;
        let status = resp.status();
        if status.is_redirection() {
            return Ok(Found::Leader(redirect(&url, &resp).await?));
        }
        if !status.is_success() {
            return Err(format!("{url} answered {status}").into());
        }
        let body = resp.bytes().await?;
        let state = serde_json::from_slice(&body)?;
        Ok(Found::Here((state, started.elapsed())))
    }

    /// Reads the leader's view again on every change it announces, every `refresh` and on
    /// request, handing each to `sink`, reads spaced as the module's docs say. Returns when
    /// the leader stops leading (`Ok`) or is lost.
    async fn follow(
        &mut self,
        leader: SocketAddr,
        mut events: Option<Events>,
        mut took: Duration,
        rereads: &Notify,
        sink: &mut impl FnMut(Option<(SocketAddr, Value)>),
    ) -> Result<(), Lost> {
        let mut last_read = Instant::now();
        loop {
            let due = last_read + self.config.refresh;
            let changed = tokio::select! {
                changed = Events::next_of(&mut events) => changed?,
                () = tokio::time::sleep_until(due) => true,
                () = rereads.notified() => true,
            };
            if !changed {
                continue;
            }
            // Until the read is due, what arrives is part of the burst this read answers:
            // further changes and requests to read again.
            let spaced = last_read + (took * READ_SHARE_INVERSE).max(MIN_GATHER);
            let due = spaced.max(Instant::now() + MIN_GATHER);
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(due) => break,
                    received = Events::next_of(&mut events) => { received?; }
                    () = rereads.notified() => {}
                }
            }
            let (state, read_took) = match self.read(leader).await? {
                Found::Here(read) => read,
                Found::Leader(_) => return Ok(()),
            };
            took = read_took;
            last_read = Instant::now();
            self.deliver(leader, state, sink);
        }
    }
}

/// The master a redirect's `Location` names (`//10.0.0.1:5050/master/state`, as Mesos
/// writes it, or with a scheme).
async fn leader_of(location: &str) -> Option<SocketAddr> {
    let rest = location
        .strip_prefix("http:")
        .or_else(|| location.strip_prefix("https:"))
        .unwrap_or(location)
        .strip_prefix("//")?;
    let authority = rest.split(['/', '?']).next()?;
    match authority.parse() {
        Ok(addr) => Some(addr),
        Err(_) => tokio::net::lookup_host(authority).await.ok()?.next(),
    }
}

/// The leader's operator event stream.
struct Events {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    decoder: Decoder,
    /// Silence after which the leader is taken for gone.
    silence: Duration,
}

/// What the follower reads of an event: its type, and a `SUBSCRIBED`'s heartbeat interval
/// (the state it carries is skipped, not kept).
#[derive(Deserialize)]
struct EventHead {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    subscribed: Option<SubscribedHead>,
}

#[derive(Deserialize)]
struct SubscribedHead {
    #[serde(default)]
    heartbeat_interval_seconds: Option<f64>,
}

impl Events {
    /// Opens `master`'s event stream, or learns the leader from its redirect.
    async fn subscribe(
        client: &reqwest::Client,
        master: SocketAddr,
    ) -> Result<Found<Events>, Lost> {
        let url = format!("http://{master}/api/v1");
        let request = client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(r#"{"type":"SUBSCRIBE"}"#);
        let resp = tokio::time::timeout(ANSWER, request.send())
            .await
            .map_err(|_| format!("{url} did not answer SUBSCRIBE within {ANSWER:?}"))??;
        let status = resp.status();
        if status.is_redirection() {
            return Ok(Found::Leader(redirect(&url, &resp).await?));
        }
        if !status.is_success() {
            return Err(format!("{url} answered SUBSCRIBE with {status}").into());
        }
        Ok(Found::Here(Events {
            stream: resp.bytes_stream().boxed(),
            decoder: Decoder::new(),
            silence: HEARTBEAT * MISSED_HEARTBEATS,
        }))
    }

    /// [`Events::next_change`] of a stream that may not be open: never, then.
    async fn next_of(events: &mut Option<Events>) -> Result<bool, Lost> {
        match events {
            Some(events) => events.next_change().await,
            None => std::future::pending().await,
        }
    }

    /// Whether the next events received announce a change (anything but heartbeats); an
    /// error once the stream ends, breaks or stays silent. Cancel-safe: nothing is lost when
    /// it is dropped while waiting.
    async fn next_change(&mut self) -> Result<bool, Lost> {
        let chunk = tokio::time::timeout(self.silence, self.stream.next())
            .await
            .map_err(|_| format!("the leader sent nothing for {:?}", self.silence))?
            .ok_or("the leader closed its event stream")??;
        self.decoder.feed(&chunk);
        let mut changed = false;
        while let Some(record) = self.decoder.next_record()? {
            let event: EventHead = serde_json::from_slice(&record)?;
            match event.kind.as_str() {
                "HEARTBEAT" => {}
                "SUBSCRIBED" => {
                    let every = event
                        .subscribed
                        .and_then(|s| s.heartbeat_interval_seconds)
                        .and_then(|s| Duration::try_from_secs_f64(s).ok())
                        .filter(|d| !d.is_zero())
                        .unwrap_or(HEARTBEAT);
                    // A master's number is input: a huge one is capped, not an overflow.
                    self.silence = every.min(MAX_HEARTBEAT).saturating_mul(MISSED_HEARTBEATS);
                }
                _ => changed = true,
            }
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests;
