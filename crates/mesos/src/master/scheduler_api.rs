//! `POST /api/v1/scheduler`: the body is parsed once into a typed [`Call`]; SUBSCRIBE opens
//! the framework's event stream, every other call is one transition of the master.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::{check_json, stream_response, text};
use crate::scheduler::{Call, CallBody, Subscribe};

use super::state::CallError;
use super::Shared;

impl IntoResponse for CallError {
    fn into_response(self) -> Response {
        match self {
            CallError::BadRequest(m) => text(StatusCode::BAD_REQUEST, m),
            CallError::Forbidden(m) => text(StatusCode::FORBIDDEN, m),
        }
    }
}

/// `POST /api/v1/scheduler`.
pub(super) async fn scheduler(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Only a SUBSCRIBE comes without a stream id; every other call is bound by its stream
    // id to a subscription that authenticated.
    let mut principal = None;
    if let Some(verifier) = &shared.verifier {
        if !headers.contains_key("mesos-stream-id") {
            match authenticate_framework(verifier, &headers, &body).await {
                Ok(uid) => principal = uid,
                Err(r) => return r,
            }
        }
    }
    match scheduler_call(&shared, &headers, &body, principal) {
        Ok(r) | Err(r) => r,
    }
}

/// Strict security's check of a framework's SUBSCRIBE: the caller may register a framework
/// in each of its roles (`create` on `dcos:mesos:master:framework:role:<role>`). Gives the
/// account, which becomes the framework's principal; a call that is not a valid SUBSCRIBE
/// passes (its own error answers it).
async fn authenticate_framework(
    verifier: &dcos_iam::client::Verifier,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<String>, Response> {
    let Ok(Call {
        body: CallBody::Subscribe(subscribe),
        ..
    }) = Call::parse(body)
    else {
        return super::authn::caller(verifier, headers, "mesos-master-scheduler", &[])
            .await
            .map(|_| None);
    };
    let info = &subscribe.framework_info;
    let mut roles: Vec<&str> = info.roles.iter().map(String::as_str).collect();
    roles.extend(info.role.as_deref());
    if roles.is_empty() {
        roles.push("*");
    }
    let rids: Vec<String> = roles
        .iter()
        .map(|role| format!("dcos:mesos:master:framework:role:{role}"))
        .collect();
    super::authn::caller(verifier, headers, "mesos-master-scheduler", &rids)
        .await
        .map(Some)
}

fn scheduler_call(
    shared: &Shared,
    headers: &HeaderMap,
    body: &[u8],
    principal: Option<String>,
) -> Result<Response, Response> {
    check_json(headers)?;
    let call = Call::parse(body).map_err(|e| text(StatusCode::BAD_REQUEST, e.to_string()))?;
    let stream_id = headers.get("mesos-stream-id").map(|v| v.to_str());
    let framework_id = match call.body {
        CallBody::Subscribe(subscribe) => {
            if stream_id.is_some() {
                return Err(CallError::invalid(
                    "Subscribe calls should not include the 'Mesos-Stream-Id' header",
                )
                .into_response());
            }
            let mut subscribe = subscribe;
            if principal.is_some() {
                // Who the token says, whatever the framework claims.
                subscribe.framework_info.principal = principal;
            }
            return subscribe_call(shared, call.framework_id, subscribe);
        }
        _ => call.framework_id.ok_or_else(|| {
            CallError::invalid("Expecting 'framework_id' to be present").into_response()
        })?,
    };
    let stream_id = stream_id.and_then(Result::ok);
    shared
        .apply(|m| m.scheduler_call(&framework_id, stream_id, call.body))
        .map_err(IntoResponse::into_response)?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// SUBSCRIBE: answered with the framework's event stream (`Mesos-Stream-Id` names it),
/// which starts with SUBSCRIBED.
fn subscribe_call(
    shared: &Shared,
    call_framework_id: Option<crate::api::Id>,
    subscribe: Subscribe,
) -> Result<Response, Response> {
    let stream_id = uuid::Uuid::new_v4().to_string();
    let (framework_id, rx) = {
        let mut core = shared.lock();
        let rx = core.framework_stream(&stream_id);
        let subscribed = core.apply(|m| {
            m.subscribe(
                call_framework_id.as_ref(),
                subscribe.framework_info,
                stream_id.clone(),
            )
        });
        (subscribed.map_err(IntoResponse::into_response)?, rx)
    };
    let on_close = {
        let shared = shared.clone();
        let stream_id = stream_id.clone();
        move || shared.apply(|m| m.framework_disconnected(&framework_id, &stream_id))
    };
    Ok(stream_response(
        rx,
        on_close,
        Some(("mesos-stream-id", stream_id)),
    ))
}
