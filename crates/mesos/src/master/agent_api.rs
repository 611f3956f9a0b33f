//! `POST /api/v1/agent`: the agent protocol ([`crate::protocol`]). SUBSCRIBE is checked,
//! admitted to the registry and answered with the agent's event stream; UPDATE and MESSAGE
//! are one transition of the master each.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::Id;
use crate::http::{stream_response, text};
use crate::protocol::{AgentCall, AgentInfo, TaskReport};
use crate::recordio;
use crate::resources::Resources;

use super::Shared;

/// The address a request came from (none for in-process callers).
fn peer_ip(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// `POST /api/v1/agent`.
pub(super) async fn agent_api(
    State(shared): State<Shared>,
    extensions: axum::http::Extensions,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let call: AgentCall = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse agent call: {e}"),
            )
        }
    };
    let peer = peer_ip(&extensions);
    let done = match call {
        AgentCall::Subscribe {
            agent_id,
            info,
            tasks,
        } => {
            // Strict security: agents authenticate; their other calls come from the
            // connection that registered.
            if let Some(verifier) = &shared.verifier {
                let rids = ["dcos:mesos:master:agent".to_string()];
                if let Err(r) =
                    super::authn::caller(verifier, &headers, "mesos-master-agent", &rids).await
                {
                    return r;
                }
            }
            return agent_subscribe(shared, peer, agent_id, info, tasks).await;
        }
        AgentCall::Update {
            agent_id,
            framework_id,
            status,
        } => shared.apply(|m| m.agent_update(agent_id, &framework_id, status, peer)),
        AgentCall::Message {
            agent_id,
            framework_id,
            executor_id,
            data,
        } => shared.apply(|m| m.agent_message(agent_id, &framework_id, executor_id, data, peer)),
    };
    match done {
        Ok(()) => StatusCode::ACCEPTED.into_response(),
        Err(refused) => refused.into_response(),
    }
}

/// An agent's SUBSCRIBE: checked (see [`super::state::Master::check_agent_subscriber`]),
/// admitted to the registry, then answered with its event stream.
async fn agent_subscribe(
    shared: Shared,
    peer: Option<IpAddr>,
    agent_id: Option<Id>,
    info: AgentInfo,
    tasks: Vec<TaskReport>,
) -> Response {
    let total = match Resources::from_api(&info.resources) {
        Ok(r) => r,
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("Invalid agent resources: {e}"),
            )
        }
    };
    let refused = |why: String| {
        tracing::warn!(?peer, reason = %why, "agent subscription refused");
        text(StatusCode::FORBIDDEN, why)
    };
    let checked = shared
        .lock()
        .check_agent_subscriber(agent_id.as_ref(), &info, peer);
    if let Err(why) = checked {
        return refused(why);
    }
    // Admitted to the registry before the agent hears it is registered.
    let id = shared.apply(|m| m.agent_id_for(agent_id));
    if let Err(e) = shared.registry.admit(&id, &info).await {
        tracing::error!(agent_id = %id, error = %e, "cannot admit agent to the registry");
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Registry unavailable: {e}"),
        );
    }
    let (session, mut rx) = {
        let mut core = shared.lock();
        // Checked again under the lock that subscribes: another agent may have taken the id
        // while this one was admitted.
        let id = Id::new(&id);
        if let Err(why) = core.check_agent_subscriber(Some(&id), &info, peer) {
            drop(core);
            return refused(why);
        }
        let rx = core.agent_stream(&id.value);
        let (_, session) = core.apply(|m| m.agent_subscribe(Some(id), info, tasks, total, peer));
        (session, rx)
    };
    let (tx, out) = tokio::sync::mpsc::channel::<Bytes>(64);
    // Frame the agent's events on the way out.
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            let Ok(text) = serde_json::to_vec(&ev) else {
                continue;
            };
            if tx.send(recordio::encode(&text)).await.is_err() {
                break;
            }
        }
    });
    let on_close = move || shared.apply(|m| m.agent_disconnected(&id, session));
    stream_response(out, on_close, None)
}
