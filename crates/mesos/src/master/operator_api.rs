//! `POST /api/v1`: the operator API, dispatched on the typed call type. The GET_* calls
//! answer from the master's state; SUBSCRIBE opens a stream of operator events that starts
//! with a snapshot of the state.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dcos_mesos_api::operator::{self, Call, CallType, Response as Answer};

use crate::http::{check_json, stream_response, text};

use super::{views, Shared, HEARTBEAT_SECS};

/// `POST /api/v1`.
pub(super) async fn operator(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = check_json(&headers) {
        return r;
    }
    let call = match Call::parse(&body) {
        Ok(call) => call,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let answer = match call.kind {
        CallType::GetHealth => Answer::GetHealth(operator::GetHealth { healthy: true }),
        CallType::GetVersion => Answer::GetVersion(operator::GetVersion {
            version_info: views::version(),
        }),
        CallType::GetFlags => Answer::GetFlags(flags(&shared)),
        CallType::GetState => Answer::GetState(Box::new(views::get_state(&shared.lock()))),
        CallType::GetAgents => Answer::GetAgents(views::get_agents(&shared.lock())),
        CallType::GetFrameworks => Answer::GetFrameworks(views::get_frameworks(&shared.lock())),
        CallType::GetTasks => Answer::GetTasks(views::get_tasks(&shared.lock())),
        CallType::GetMaster => {
            let m = shared.lock();
            Answer::GetMaster(operator::GetMaster {
                master_info: m.master_info(),
                start_time: m.start_time(),
                elected_time: m.elected_time(),
            })
        }
        CallType::Subscribe => {
            let mut core = shared.lock();
            let snapshot = operator::Subscribed {
                get_state: views::get_state(&core),
                heartbeat_interval_seconds: Some(HEARTBEAT_SECS),
            };
            let rx = core.operator_stream(&operator::Event::Subscribed(Box::new(snapshot)));
            drop(core);
            return stream_response(rx, || {}, None);
        }
        other => {
            return text(
                StatusCode::NOT_IMPLEMENTED,
                format!("Operator call {other} is not supported by dcos-rs"),
            )
        }
    };
    Json(answer).into_response()
}

/// `get_flags`: the master's flags as name/value pairs.
fn flags(shared: &Shared) -> operator::GetFlags {
    let flags = shared.flags();
    let flags = flags
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(name, value)| operator::Flag {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    operator::GetFlags { flags }
}
