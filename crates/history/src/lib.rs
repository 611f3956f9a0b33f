//! DC/OS History service (`dcos-history-service.service`, 127.0.0.1:15055).
//!
//! Every 2 s it takes the leading Mesos master's `/master/state-summary`, as the one follower
//! of the master's state ([`dcos_mesos_api::follow`]) last read it, and keeps three buffers,
//! as the DC/OS service does: `last` (the newest), `minute` (30 entries, one per 2 s) and
//! `hour` (60 entries, one per minute). While no master answers, `{}` is stored so gaps show.
//! The minute and hour buffers are persisted under the work dir and reloaded on start, so a
//! restart keeps the history. The UI reads it through Admin Router's `/dcos-history-service/`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use dcos_mesos_api::follow::{self, Follower};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How often the state-summary is read and stored.
pub const FETCH_PERIOD: Duration = Duration::from_secs(2);

/// The service's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen (the contract: 127.0.0.1:15055).
    pub listen: SocketAddr,
    /// The Mesos masters (`ip:5050`); the leader among them is read.
    pub masters: Vec<SocketAddr>,
    /// Where the minute and hour buffers are persisted.
    pub buffer_dir: PathBuf,
    /// Fetch period (2 s in DC/OS; tests shorten it).
    pub fetch_period: Duration,
    /// Where a token for the masters comes from (strict security).
    pub credentials: Option<dcos_mesos_api::follow::Credentials>,
}

/// Errors starting the service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound.
    #[error("failed to bind the history service on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The buffer dir could not be prepared.
    #[error("cannot prepare history buffer dir {path}")]
    BufferDir {
        /// The dir.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A ring of state-summary documents, one per `period`, optionally persisted to `dir`.
struct Buffer {
    entries: VecDeque<String>,
    capacity: usize,
    period_ms: u128,
    next_update_ms: u128,
    dir: Option<PathBuf>,
}

impl Buffer {
    fn new(window: Duration, period: Duration, dir: Option<PathBuf>) -> Result<Buffer, Error> {
        let capacity = (window.as_millis() / period.as_millis()).max(1) as usize;
        let mut buffer = Buffer {
            entries: VecDeque::with_capacity(capacity),
            capacity,
            period_ms: period.as_millis(),
            next_update_ms: 0,
            dir,
        };
        buffer.reload()?;
        Ok(buffer)
    }

    /// Loads persisted entries, filling the gaps between them (and up to now) with `{}`.
    fn reload(&mut self) -> Result<(), Error> {
        let Some(dir) = self.dir.clone() else {
            return Ok(());
        };
        fs_err::create_dir_all(&dir).map_err(|source| Error::BufferDir {
            path: dir.clone(),
            source,
        })?;
        let mut files: Vec<(u128, PathBuf)> = fs_err::read_dir(&dir)
            .map_err(|source| Error::BufferDir {
                path: dir.clone(),
                source,
            })?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let ms = name.strip_suffix(".state-summary.json")?.parse().ok()?;
                Some((ms, e.path()))
            })
            .collect();
        files.sort();
        let keep = files.len().saturating_sub(self.capacity);
        for (_, stale) in files.drain(..keep) {
            let _ = fs_err::remove_file(stale);
        }
        let now = now_ms();
        for (i, (ms, path)) in files.iter().enumerate() {
            let Ok(text) = fs_err::read_to_string(path) else {
                continue;
            };
            if i == 0 {
                self.next_update_ms = *ms;
            }
            self.push(text);
            let until = files.get(i + 1).map_or(now, |(next, _)| *next);
            while self.next_update_ms + self.period_ms <= until {
                self.push("{}".into());
            }
        }
        self.next_update_ms = now;
        Ok(())
    }

    fn push(&mut self, state: String) {
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(state);
        self.next_update_ms += self.period_ms;
    }

    fn add(&mut self, at_ms: u128, state: &str) {
        if at_ms < self.next_update_ms {
            return;
        }
        self.push(state.to_string());
        if let Some(dir) = &self.dir {
            let path = dir.join(format!("{at_ms}.state-summary.json"));
            if let Err(e) = fs_err::write(&path, state) {
                tracing::warn!(error = %e, "could not persist history entry");
            }
            self.trim_files(dir);
        }
    }

    fn trim_files(&self, dir: &Path) {
        let Ok(entries) = fs_err::read_dir(dir) else {
            return;
        };
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        let excess = files.len().saturating_sub(self.capacity);
        for stale in &files[..excess] {
            let _ = fs_err::remove_file(stale);
        }
    }

    fn dump(&self) -> String {
        let mut out = String::from("[");
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(e);
        }
        out.push(']');
        out
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

struct Buffers {
    last: String,
    minute: Buffer,
    hour: Buffer,
}

type Shared = Arc<Mutex<Buffers>>;

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, Buffers> {
    // A poisoned lock only means a panic elsewhere mid-update; the buffers stay usable.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// The HTTP routes, testable without a socket.
fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/ping", get(|| async { json("\"pong\"".to_string()) }))
        .route(
            "/history/last",
            get(|State(s): State<Shared>| async move { json(lock(&s).last.clone()) }),
        )
        .route(
            "/history/minute",
            get(|State(s): State<Shared>| async move { json(lock(&s).minute.dump()) }),
        )
        .route(
            "/history/hour",
            get(|State(s): State<Shared>| async move { json(lock(&s).hour.dump()) }),
        )
        .with_state(state)
}

async fn home() -> impl IntoResponse {
    json(serde_json::Value::String(
        "history/last - to get the last fetched state\nhistory/minute - to get the state array of the last minute\nhistory/hour - to get the state array of the last hour\nping - to get a pong\n".into(),
    ).to_string())
}

/// A JSON body with the CORS headers the DC/OS service sends (the UI reads it cross-origin).
fn json(body: String) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json; charset=utf-8"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true"),
            (
                header::ACCESS_CONTROL_ALLOW_METHODS,
                "HEAD, GET, PUT, POST, PATCH, DELETE",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "86400"),
        ],
        body,
    )
}

/// The newest state-summary as a document to store, made once per reading; `{}` when no
/// master answers.
#[derive(Default)]
struct Summary {
    seq: u64,
    text: Arc<str>,
}

impl Summary {
    fn of(&mut self, reading: Option<&follow::Snapshot>) -> Arc<str> {
        match reading {
            None => "{}".into(),
            Some(r) if r.seq == self.seq => self.text.clone(),
            Some(r) => {
                self.seq = r.seq;
                self.text = r.state.to_string().into();
                self.text.clone()
            }
        }
    }
}

/// Binds the configured address and serves until `shutdown` is cancelled.
pub async fn serve(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    serve_on(listener, config, shutdown).await
}

/// Serves on an already-bound listener until `shutdown` is cancelled.
pub async fn serve_on(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let addr = listener.local_addr().unwrap_or(config.listen);
    let state: Shared = Arc::new(Mutex::new(Buffers {
        last: "{}".into(),
        minute: Buffer::new(
            Duration::from_secs(60),
            config.fetch_period,
            Some(config.buffer_dir.join("minute")),
        )?,
        hour: Buffer::new(
            Duration::from_secs(3600),
            Duration::from_secs(60),
            Some(config.buffer_dir.join("hour")),
        )?,
    }));
    tracing::info!(%addr, "listening for history requests");

    // Read as often as stored: the summary is sampled on a clock, changes between two
    // samples do not matter.
    let follower = Follower::spawn(follow::Config {
        credentials: config.credentials.clone(),
        ..follow::Config::summary(config.masters.clone(), config.fetch_period)
    });
    let fetcher = {
        let state = state.clone();
        let shutdown = shutdown.clone();
        let period = config.fetch_period;
        async move {
            let mut tick = tokio::time::interval(period);
            let mut summary = Summary::default();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let at = now_ms();
                // The first reading may still be on its way when the service starts.
                let reading = follower.ready(period.mul_f32(0.9)).await;
                let text = summary.of(reading.as_deref());
                let mut b = lock(&state);
                b.minute.add(at, &text);
                b.hour.add(at, &text);
                b.last = text.to_string();
            }
        }
    };
    // Read by Admin Router and the UI: GETs only, so bodies are tiny.
    let limits = dcos_serve::Limits::api().body(64 * 1024);
    let server = dcos_serve::serve(listener, router(state), limits, shutdown);
    tokio::join!(server, fetcher);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_keeps_a_window_and_persists_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = Buffer::new(
            Duration::from_secs(6),
            Duration::from_secs(2),
            Some(dir.path().to_path_buf()),
        )
        .unwrap();
        let t0 = now_ms();
        for i in 0..5u128 {
            b.add(t0 + i * 2000, &format!("{{\"n\":{i}}}"));
        }
        assert_eq!(b.dump(), r#"[{"n":2},{"n":3},{"n":4}]"#);
        // Updates faster than the period are dropped.
        b.add(t0 + 8001, "{\"n\":9}");
        assert_eq!(b.entries.len(), 3);
        assert_eq!(fs_err::read_dir(dir.path()).unwrap().count(), 3);
        let reloaded = Buffer::new(
            Duration::from_secs(6),
            Duration::from_secs(2),
            Some(dir.path().to_path_buf()),
        )
        .unwrap();
        assert!(
            reloaded.dump().starts_with(r#"[{"n":2},{"n":3},{"n":4}"#),
            "{}",
            reloaded.dump()
        );
    }

    /// Polls `f` every 50 ms until it returns `Some`, for at most 10 s.
    async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let end = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(v) = f().await {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < end,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn the_leaders_summary_is_kept_and_gaps_show_once_it_is_gone() {
        // A leading master and a standby that redirects to it, as Mesos' do.
        let summary = serde_json::json!({"hostname": "m1", "slaves": [], "frameworks": []});
        let doc = summary.clone();
        let master = axum::Router::new().route(
            "/master/state-summary",
            get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc) }
            }),
        );
        let leader = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let leader_addr = leader.local_addr().unwrap();
        let master_stop = CancellationToken::new();
        let serving = axum::serve(leader, master)
            .with_graceful_shutdown(master_stop.clone().cancelled_owned());
        tokio::spawn(async move { serving.await });
        let standby = axum::Router::new().fallback(move || async move {
            (
                axum::http::StatusCode::TEMPORARY_REDIRECT,
                [(
                    header::LOCATION,
                    format!("//{leader_addr}/master/state-summary"),
                )],
            )
        });
        let standby_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let standby_addr = standby_listener.local_addr().unwrap();
        let serving = axum::serve(standby_listener, standby)
            .with_graceful_shutdown(master_stop.clone().cancelled_owned());
        tokio::spawn(async move { serving.await });

        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = Config {
            listen: addr,
            masters: vec![standby_addr],
            buffer_dir: dir.path().to_path_buf(),
            fetch_period: Duration::from_millis(200),
            credentials: None,
        };
        let stop = CancellationToken::new();
        let serving = tokio::spawn(serve_on(listener, config, stop.clone()));
        let last = || async move {
            let v: serde_json::Value = reqwest::get(format!("http://{addr}/history/last"))
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            Some(v)
        };
        let want = summary.clone();
        eventually("the leader's summary", || {
            let want = want.clone();
            async move { (last().await? == want).then_some(()) }
        })
        .await;
        let minute: serde_json::Value = reqwest::get(format!("http://{addr}/history/minute"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(minute.as_array().unwrap().contains(&summary), "{minute}");

        master_stop.cancel();
        eventually("an empty entry once no master answers", || async move {
            (last().await? == serde_json::json!({})).then_some(())
        })
        .await;
        stop.cancel();
        serving.await.unwrap().unwrap();
    }
}
