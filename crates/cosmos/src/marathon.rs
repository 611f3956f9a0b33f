//! What Cosmos asks Marathon: the apps (installed packages are apps with package labels),
//! creating, replacing and deleting one. The user's `Authorization` is passed on, so
//! Marathon decides what the user may do, as in DC/OS.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use serde_json::{json, Value};

use crate::error::CosmosError;

/// How long one Marathon call may take.
const TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read from Marathon (the app list of a big cluster).
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// A Marathon reached over HTTP.
#[derive(Clone, Debug)]
pub struct Marathon {
    base: String,
    client: reqwest::Client,
}

/// The caller's credentials, passed on to Marathon.
pub type Auth = Option<HeaderValue>;

fn unreachable(e: reqwest::Error) -> CosmosError {
    CosmosError::new(
        "ServiceUnavailable",
        format!("Unable to complete request because Marathon is unavailable: {e}"),
    )
    .status(StatusCode::SERVICE_UNAVAILABLE)
}

impl Marathon {
    /// Marathon at `base` (`http://host:8080`).
    pub fn new(base: impl Into<String>) -> Marathon {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a plain HTTP client builds");
        Marathon {
            base: base.into().trim_end_matches('/').to_string(),
            client,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        auth: &Auth,
    ) -> Result<(StatusCode, Value), CosmosError> {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(auth) = auth {
            request = request.header(reqwest::header::AUTHORIZATION, auth.clone());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let mut response = request.send().await.map_err(unreachable)?;
        let status =
            StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if bytes.len() + chunk.len() > MAX_ANSWER {
                return Err(CosmosError::new(
                    "MarathonBadResponse",
                    "Marathon's answer is larger than Cosmos reads",
                )
                .status(StatusCode::BAD_GATEWAY));
            }
            bytes.extend_from_slice(&chunk);
        }
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        match status {
            StatusCode::UNAUTHORIZED => Err(CosmosError::new(
                "Unauthorized",
                "Marathon refused the request: not authenticated",
            )
            .status(status)),
            StatusCode::FORBIDDEN => Err(CosmosError::new(
                "Forbidden",
                "Marathon refused the request: not allowed",
            )
            .status(status)),
            s if s.is_server_error() => Err(CosmosError::new(
                "MarathonBadGateway",
                format!(
                    "Received response status code [{}] from Marathon",
                    s.as_u16()
                ),
            )
            .status(StatusCode::BAD_GATEWAY)
            .data(json!({"marathonStatus": s.as_u16()}))),
            _ => Ok((status, value)),
        }
    }

    /// Marathon refused a request (a 4xx): its message, and its `details` as `data.errors`
    /// (each `{path, errors}`), which the DC/OS CLI prints.
    fn bad_response(body: &Value) -> CosmosError {
        let message = body
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("Marathon refused the request");
        let error = CosmosError::new("MarathonBadResponse", message);
        match body.get("details") {
            Some(Value::Array(details)) => error.data(json!({"errors": details})),
            _ => error,
        }
    }

    /// Any other unexpected answer: a refusal (4xx) as [`Self::bad_response`], else
    /// `MarathonGenericError`.
    fn generic(status: StatusCode, body: &Value) -> CosmosError {
        if status.is_client_error() {
            return Self::bad_response(body);
        }
        let detail = body
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("no message");
        CosmosError::new(
            "MarathonGenericError",
            format!(
                "Received response status code [{}] from Marathon: {detail}",
                status.as_u16()
            ),
        )
        .status(StatusCode::INTERNAL_SERVER_ERROR)
        .data(json!({"marathonStatus": status.as_u16(), "marathonResponse": body}))
    }

    /// Every app.
    pub async fn apps(&self, auth: &Auth) -> Result<Vec<Value>, CosmosError> {
        let (status, body) = self
            .call(reqwest::Method::GET, "/v2/apps", None, auth)
            .await?;
        if !status.is_success() {
            return Err(Self::generic(status, &body));
        }
        Ok(body
            .get("apps")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// One app, `None` if there is none.
    pub async fn app(&self, id: &str, auth: &Auth) -> Result<Option<Value>, CosmosError> {
        let (status, body) = self
            .call(reqwest::Method::GET, &format!("/v2/apps{id}"), None, auth)
            .await?;
        match status {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(body.get("app").cloned()),
            s => Err(Self::generic(s, &body)),
        }
    }

    /// Creates `app`; an app already there with its id is `PackageAlreadyInstalled`.
    pub async fn create(&self, app: &Value, auth: &Auth) -> Result<(), CosmosError> {
        let (status, body) = self
            .call(reqwest::Method::POST, "/v2/apps", Some(app), auth)
            .await?;
        match status {
            s if s.is_success() => Ok(()),
            StatusCode::CONFLICT => Err(CosmosError::new(
                "PackageAlreadyInstalled",
                "Package is already installed",
            )
            .status(StatusCode::CONFLICT)),
            s if s.is_client_error() => Err(Self::bad_response(&body)),
            s => Err(Self::generic(s, &body)),
        }
    }

    /// Replaces app `id` with `app`; answers the deployment's id.
    pub async fn replace(&self, id: &str, app: &Value, auth: &Auth) -> Result<String, CosmosError> {
        let (status, body) = self
            .call(
                reqwest::Method::PUT,
                &format!("/v2/apps{id}?force=true"),
                Some(app),
                auth,
            )
            .await?;
        if !status.is_success() {
            return Err(Self::generic(status, &body));
        }
        Ok(body
            .get("deploymentId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string())
    }

    /// Deletes app `id`; one already gone is fine.
    pub async fn delete(&self, id: &str, auth: &Auth) -> Result<(), CosmosError> {
        let (status, body) = self
            .call(
                reqwest::Method::DELETE,
                &format!("/v2/apps{id}?force=true"),
                None,
                auth,
            )
            .await?;
        match status {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            s => Err(CosmosError::new(
                "MarathonAppDeleteError",
                format!("Error while deleting marathon app '{id}'"),
            )
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .data(json!({"appId": id, "marathonStatus": s.as_u16(), "marathonResponse": body}))),
        }
    }
}
