//! One leading Metronome among the masters, the others proxying to it, as Metronome does
//! (Marathon's Curator election under `/metronome/leader-curator` through
//! [`dcos_store::Contender`], `LeaderProxyFilter` through [`dcos_serve::leader`]).
//!
//! A follower passes every request but `/ping` and `/v1/metrics` to the leader with `X-VIA`
//! (itself) and `X-LEADER` (the leader) and returns the answer with the same headers; a
//! request that already came through this Metronome is refused with 400 (a proxy loop), and
//! with no leader known within 2.5 s the answer is 503 `No consistent leadership`.

use std::time::Duration;

use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use dcos_serve::leader::{FrontDoor, Headers};
use dcos_serve::proxy::Settings;
use dcos_store::AnyStore;

pub use dcos_store::Lost;

/// Where the Metronomes hold their election.
pub const ELECTION_DIR: &str = "/metronome/leader-curator";

/// A follower's proxy: the leader answers within 30 s (Metronome's `leader.proxy.timeout`).
const PROXY: Settings = Settings::new(Duration::from_secs(30)).request_body(16 << 20);

/// What this Metronome is: when leading, its routes.
pub type Role = dcos_serve::leader::Role<()>;
/// The role, shared by the election and the front door.
pub type SharedRole = dcos_serve::leader::SharedRole<()>;
pub use dcos_serve::leader::set;

/// This Metronome's candidacy.
pub type Election = dcos_store::Contender<AnyStore>;

/// Enters the election as `me` (`host:port`).
pub async fn join(store: AnyStore, me: String) -> Result<Election, dcos_store::Error> {
    Election::curator(store, ELECTION_DIR, "Metronome", me).await
}

/// The REST front door: the leader's routes when leading, the proxy when following; `/ping`
/// and `/v1/metrics` are answered by every Metronome itself.
pub fn front_door(role: SharedRole, me: String, local: Router) -> Router {
    let headers = Headers::Single {
        via: HeaderName::from_static("x-via"),
        leader: HeaderName::from_static("x-leader"),
    };
    FrontDoor::new("Metronome", PROXY, headers, no_leader)
        .local(local, &["/ping", "/v1/metrics"])
        .router(role, me)
}

fn no_leader() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "No consistent leadership").into_response()
}
