//! Cosmos' error answers: `{"type", "message", "data"?}` in the package error media type,
//! with the status Cosmos gives each type (400 unless said otherwise).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// The media type of Cosmos' errors.
pub const ERROR_TYPE: &str = "application/vnd.dcos.package.error+json;charset=utf-8;version=v1";

/// One error answer.
#[derive(Debug, Clone, PartialEq)]
pub struct CosmosError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Cosmos' error type (`PackageNotFound`, `not_valid`, ...).
    pub kind: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// The details clients read (`packageName`, `errors`, ...).
    pub data: Option<Value>,
}

impl CosmosError {
    /// A 400 of `kind`.
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        CosmosError {
            status: StatusCode::BAD_REQUEST,
            kind,
            message: message.into(),
            data: None,
        }
    }

    /// The same error with another status.
    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// The same error with `data`.
    pub fn data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// `PackageNotFound`: no repository has the package.
    pub fn package_not_found(name: &str) -> Self {
        Self::new("PackageNotFound", format!("Package [{name}] not found"))
            .data(json!({"packageName": name}))
    }

    /// `VersionNotFound`: the package exists, not in that version.
    pub fn version_not_found(name: &str, version: &str) -> Self {
        Self::new(
            "VersionNotFound",
            format!("Version [{version}] of package [{name}] not found"),
        )
        .data(json!({"packageName": name, "packageVersion": version}))
    }

    /// `PackageNotInstalled`: no Marathon app carries the package.
    pub fn package_not_installed(name: &str) -> Self {
        Self::new(
            "PackageNotInstalled",
            format!("Package [{name}] is not installed"),
        )
        .data(json!({"packageName": name}))
    }

    /// `MarathonAppNotFound`: no such app.
    pub fn app_not_found(app_id: &str) -> Self {
        Self::new(
            "MarathonAppNotFound",
            format!("Unable to locate service with marathon appId: '{app_id}'"),
        )
        .data(json!({"appId": app_id}))
    }

    /// A failure of this Cosmos itself (the store, a bug): 500 `unhandled_exception`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new("unhandled_exception", message).status(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl std::fmt::Display for CosmosError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl IntoResponse for CosmosError {
    fn into_response(self) -> Response {
        let mut body = json!({"type": self.kind, "message": self.message});
        if let Some(data) = self.data {
            body["data"] = data;
        }
        (
            self.status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(ERROR_TYPE))],
            body.to_string(),
        )
            .into_response()
    }
}
