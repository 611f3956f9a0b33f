//! The agent's v1 operator API (`POST /api/v1`): a call is read once into its typed
//! [`CallType`] and answered in the wire shape `{"type": "GET_STATE", "get_state": {..}}`.
//! Calls of the protocol this agent does not serve are answered 501; names the protocol
//! does not have are refused as Mesos refuses them.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::agent::state::{AgentState, Shared};
use crate::http::text;

/// `agent::Call::Type` (Mesos 1.5's, and the later ones, so they are told apart from names
/// the protocol does not have).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum CallType {
    GetHealth,
    GetFlags,
    GetVersion,
    GetMetrics,
    GetLoggingLevel,
    SetLoggingLevel,
    ListFiles,
    ReadFile,
    GetState,
    GetContainers,
    GetFrameworks,
    GetExecutors,
    GetOperations,
    GetTasks,
    GetAgent,
    GetResourceProviders,
    LaunchNestedContainer,
    WaitNestedContainer,
    KillNestedContainer,
    RemoveNestedContainer,
    LaunchNestedContainerSession,
    AttachContainerInput,
    AttachContainerOutput,
    LaunchContainer,
    WaitContainer,
    KillContainer,
    RemoveContainer,
    AddResourceProviderConfig,
    UpdateResourceProviderConfig,
    RemoveResourceProviderConfig,
    MarkResourceProviderGone,
    PruneImages,
}

impl CallType {
    /// Its protobuf name.
    fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

/// A call as sent; the calls the agent answers carry no payload.
#[derive(Deserialize)]
struct RawCall {
    #[serde(rename = "type")]
    kind: Option<CallType>,
}

/// Why a body is not an operator call, in Mesos' words.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum CallError {
    #[error("Failed to parse body into Call protobuf: {0}")]
    Parse(String),
    #[error("Failed to validate agent::Call: Expecting 'type' to be present")]
    NoType,
}

/// Reads a call's type.
fn parse(body: &[u8]) -> Result<CallType, CallError> {
    let raw: RawCall = serde_json::from_slice(body).map_err(|e| CallError::Parse(e.to_string()))?;
    raw.kind.ok_or(CallError::NoType)
}

/// `POST /api/v1`.
pub(super) async fn operator(State(shared): State<Shared>, body: Bytes) -> Response {
    let kind = match parse(&body) {
        Ok(kind) => kind,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let answer = match kind {
        CallType::GetHealth => json!({"healthy": true}),
        CallType::GetVersion => json!({"version_info": super::version()}),
        CallType::GetContainers => get_containers(&shared.lock()),
        CallType::GetState => get_state(&shared.lock()),
        CallType::GetTasks => get_tasks(&shared.lock()),
        CallType::GetFrameworks => get_frameworks(&shared.lock()),
        CallType::GetExecutors => get_executors(),
        other => {
            return text(
                StatusCode::NOT_IMPLEMENTED,
                format!("Operator call {} is not supported by dcos-rs", other.name()),
            )
        }
    };
    let name = kind.name();
    let mut response = serde_json::Map::new();
    response.insert("type".into(), json!(name));
    response.insert(name.to_ascii_lowercase(), answer);
    Json(Value::Object(response)).into_response()
}

/// `get_containers`: the running containers.
fn get_containers(st: &AgentState) -> Value {
    let containers: Vec<Value> = st
        .live_runs()
        .map(|r| {
            json!({
                "framework_id": {"value": r.framework_id()},
                "executor_id": {"value": r.executor_id},
                "executor_name": r.task.name,
                "container_id": {"value": r.container_id},
                "container_status": {"executor_pid": r.pid},
            })
        })
        .collect();
    json!({"containers": containers})
}

/// `get_tasks`: the running tasks.
fn get_tasks(st: &AgentState) -> Value {
    let agent_id = st.id.clone().unwrap_or_default();
    let tasks: Vec<Value> = st
        .live_runs()
        .map(|r| {
            json!({
                "name": r.task.name,
                "task_id": r.task.task_id,
                "framework_id": {"value": r.framework_id()},
                "agent_id": {"value": agent_id},
                "state": r.state,
                "resources": r.task.resources,
                "statuses": r.last_status.iter().collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({"tasks": tasks, "completed_tasks": [], "queued_tasks": [], "launched_tasks": []})
}

/// `get_frameworks`: the frameworks of the running tasks.
fn get_frameworks(st: &AgentState) -> Value {
    let mut frameworks: Vec<Value> = st
        .live_runs()
        .map(|r| json!({"framework_info": r.framework}))
        .collect();
    frameworks.dedup();
    json!({"frameworks": frameworks})
}

/// `get_executors` (not itemized by this agent).
fn get_executors() -> Value {
    json!({"executors": []})
}

/// `get_state`: tasks, executors and frameworks.
fn get_state(st: &AgentState) -> Value {
    json!({
        "get_tasks": get_tasks(st),
        "get_frameworks": get_frameworks(st),
        "get_executors": get_executors(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::to_bytes;

    use super::*;
    use crate::agent::containerizer::simulated::Simulated;
    use crate::agent::Config;

    async fn call(body: &str) -> (StatusCode, String) {
        let shared =
            Shared::with_containerizer(Arc::new(Config::default()), Arc::new(Simulated::default()));
        let resp = operator(State(shared), Bytes::from(body.to_string())).await;
        let status = resp.status();
        let body = to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn calls_are_answered_in_their_wire_shape() {
        let (status, body) = call(r#"{"type": "GET_HEALTH"}"#).await;
        assert_eq!(status, StatusCode::OK);
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            body,
            json!({"type": "GET_HEALTH", "get_health": {"healthy": true}})
        );
        let (_, body) = call(r#"{"type": "GET_STATE"}"#).await;
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["type"], "GET_STATE");
        assert_eq!(body["get_state"]["get_tasks"]["tasks"], json!([]));
        let (_, body) = call(r#"{"type": "GET_VERSION"}"#).await;
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            body["get_version"]["version_info"]["version"],
            crate::MESOS_VERSION
        );
    }

    #[tokio::test]
    async fn bad_and_unsupported_calls_get_mesos_errors() {
        assert_eq!(
            call("{}").await,
            (
                StatusCode::BAD_REQUEST,
                "Failed to validate agent::Call: Expecting 'type' to be present".into()
            )
        );
        let (status, body) = call("not json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body.starts_with("Failed to parse body into Call protobuf: "),
            "{body}"
        );
        let (status, _) = call(r#"{"type": "FLY"}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            call(r#"{"type": "LAUNCH_NESTED_CONTAINER_SESSION"}"#).await,
            (
                StatusCode::NOT_IMPLEMENTED,
                "Operator call LAUNCH_NESTED_CONTAINER_SESSION is not supported by dcos-rs".into()
            )
        );
    }
}
