//! The v1 scheduler API: its [`Call`]s and [`Event`]s, typed, and a client for it, what
//! Marathon and Metronome use to be frameworks of the master, over the same HTTP API any
//! other framework speaks.
//!
//! [`subscribe`] opens the event stream (following a non-leading master's redirect) and
//! returns a [`Connection`] for calls and the [`Events`] of the stream. The stream is the
//! liveness signal: [`Events::next`] fails when the master is silent for longer than a few
//! heartbeat intervals, and the caller re-subscribes.

use std::net::SocketAddr;
use std::time::Duration;

use crate::api::{FrameworkInfo, Id};
use crate::recordio;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;

mod call;
mod event;

pub use call::{
    Accept, Acknowledge, Call, CallBody, CallError, CallType, Decline, InverseOffers, Kill, Launch,
    LaunchGroup, Message, Operation, OperationType, Reconcile, ReconcileTask, Request, Resources,
    Shutdown, Subscribe, TaskGroupInfo, Volumes,
};
pub use event::{
    Address, Event, EventType, Failure, Offer, Offers, Rescind, Subscribed, Update, Url,
};
/// `error` and `message` of events, named apart from the calls' `Message`.
pub mod events {
    pub use super::event::{Error, Message};
}

/// The longest silence believed from a master's heartbeat interval (a huge one is input,
/// and `Instant + Duration` must not overflow).
const MAX_SILENCE: Duration = Duration::from_secs(3 * 3600);

/// How long a call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Scheduler client failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The master could not be reached.
    #[error("cannot reach the Mesos master at {master}")]
    Connect {
        /// The master.
        master: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The master refused the call.
    #[error("the Mesos master at {master} answered {status}: {body}")]
    Refused {
        /// The master.
        master: String,
        /// The status code.
        status: u16,
        /// Its text.
        body: String,
    },
    /// The stream broke, went silent, or carried something that is not an event.
    #[error("the event stream from {master} ended: {reason}")]
    Stream {
        /// The master.
        master: String,
        /// Why.
        reason: String,
    },
}

/// A subscribed framework's handle for calls.
#[derive(Clone, Debug)]
pub struct Connection {
    client: reqwest::Client,
    /// The master (`host:port`) the stream is open to.
    pub master: String,
    /// `Mesos-Stream-Id`.
    pub stream_id: String,
    /// The framework id.
    pub framework_id: Id,
}

impl Connection {
    /// Sends a call as this framework; Mesos answers 202 to every accepted one.
    pub async fn call(&self, body: CallBody) -> Result<(), Error> {
        let call = Call::new(Some(self.framework_id.clone()), body);
        let resp = self
            .client
            .post(format!("http://{}/api/v1/scheduler", self.master))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .header("Mesos-Stream-Id", &self.stream_id)
            .timeout(CALL_TIMEOUT)
            .json(&call)
            .send()
            .await
            .map_err(|source| Error::Connect {
                master: self.master.clone(),
                source,
            })?;
        let status = resp.status().as_u16();
        if status == 202 || status == 200 {
            return Ok(());
        }
        Err(Error::Refused {
            master: self.master.clone(),
            status,
            body: resp.text().await.unwrap_or_default(),
        })
    }
}

/// The events of a subscription.
pub struct Events {
    master: String,
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    decoder: recordio::Decoder,
    silence: Duration,
    /// When the master last sent anything: silence is measured from here, so a caller that
    /// drops `next()` (a `select!` with a tick) does not restart the clock.
    heard: tokio::time::Instant,
    /// Records that were not events this dcos-rs knows, skipped.
    skipped: u64,
}

impl Events {
    /// The next event; an error when the stream ends, breaks or goes silent. A record that
    /// is not a known event (a newer master's type, state or reason) is skipped, not fatal:
    /// ending the stream would only have the framework subscribe again into the same record.
    pub async fn next(&mut self) -> Result<Event, Error> {
        let fail = |reason: String| Error::Stream {
            master: self.master.clone(),
            reason,
        };
        loop {
            match self.decoder.next_record() {
                Ok(Some(record)) => match Event::parse(&record) {
                    Ok(event) => return Ok(event),
                    Err(e) => {
                        self.skipped += 1;
                        tracing::warn!(master = %self.master, error = %e, "skipped an event this framework cannot read");
                        continue;
                    }
                },
                Ok(None) => {}
                Err(e) => return Err(fail(e.to_string())),
            }
            let chunk = tokio::time::timeout_at(self.heard + self.silence, self.body.next())
                .await
                .map_err(|_| fail(format!("no heartbeat for {:?}", self.silence)))?;
            self.heard = tokio::time::Instant::now();
            match chunk {
                Some(Ok(bytes)) => self.decoder.feed(&bytes),
                Some(Err(e)) => return Err(fail(e.to_string())),
                None => return Err(fail("the master closed it".into())),
            }
        }
    }
}

impl Events {
    /// How many records were skipped as unreadable.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

/// Subscribes `info` (with its `id` when re-subscribing) at `master`, following one redirect
/// to the leading master. Returns the connection, the events after SUBSCRIBED, and the
/// SUBSCRIBED event itself.
pub async fn subscribe(
    client: &reqwest::Client,
    master: SocketAddr,
    info: &FrameworkInfo,
) -> Result<(Connection, Events, Subscribed), Error> {
    let mut target = master.to_string();
    let call = Call::new(
        info.id.clone(),
        CallBody::Subscribe(Subscribe {
            framework_info: info.clone(),
        }),
    );
    for _ in 0..2 {
        let request = client
            .post(format!("http://{target}/api/v1/scheduler"))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .json(&call)
            .send();
        // The answer's head is bounded (a master that accepts and never answers must not
        // hold the framework); the stream after it is watched by its heartbeats.
        let resp = tokio::time::timeout(CALL_TIMEOUT, request)
            .await
            .map_err(|_| Error::Stream {
                master: target.clone(),
                reason: format!("no answer to SUBSCRIBE within {CALL_TIMEOUT:?}"),
            })?
            .map_err(|source| Error::Connect {
                master: target.clone(),
                source,
            })?;
        let status = resp.status().as_u16();
        if status == 307 {
            // A non-leading master names the leader as `//host:port/...`.
            let location = resp
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .unwrap_or_default()
                .trim_start_matches("http:")
                .trim_start_matches("//")
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string();
            if location.is_empty() {
                break;
            }
            target = location;
            continue;
        }
        if status != 200 {
            return Err(Error::Refused {
                master: target,
                status,
                body: resp.text().await.unwrap_or_default(),
            });
        }
        let stream_id = resp
            .headers()
            .get("mesos-stream-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let mut events = Events {
            master: target.clone(),
            body: resp.bytes_stream().boxed(),
            decoder: recordio::Decoder::new(),
            silence: Duration::from_secs(30),
            heard: tokio::time::Instant::now(),
            skipped: 0,
        };
        let first = match events.next().await? {
            Event::Subscribed(subscribed) => subscribed,
            other => {
                return Err(Error::Stream {
                    master: target,
                    reason: format!("expected SUBSCRIBED first, got {}", other.kind()),
                })
            }
        };
        let framework_id = first.framework_id.clone();
        if let Some(beat) = first.heartbeat_interval_seconds {
            // A master's number is input too: one too large for a Duration keeps the default.
            if let Ok(silence) = Duration::try_from_secs_f64(beat * 3.0) {
                if beat > 0.0 {
                    events.silence = silence.min(MAX_SILENCE);
                }
            }
        }
        let connection = Connection {
            client: client.clone(),
            master: target,
            stream_id,
            framework_id,
        };
        return Ok((connection, events, first));
    }
    Err(Error::Refused {
        master: target,
        status: 307,
        body: "redirected without a usable Location".into(),
    })
}
