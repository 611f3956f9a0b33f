//! One call to a component's REST API (Marathon, Metronome, Cosmos) for the client commands: a
//! non-2xx answer becomes a user error carrying the component's message and the paths of its
//! `details`, as both render validation failures.

use serde_json::Value;

use crate::UserError;

/// The component a command talks to.
pub(crate) struct Component {
    /// Its name in messages (`Marathon`).
    pub name: &'static str,
    /// What to do when it cannot be reached.
    pub unreachable_hint: &'static str,
}

/// The client for calls to `base`: none may take more than 30 s; each sends the login's
/// token for `base` (`DCOS_ACS_TOKEN`, else the current cluster's if `base` is one of its
/// nodes), as `Authorization: token=`.
pub(crate) fn client(base: &str) -> reqwest::Result<reqwest::Client> {
    client_with(crate::iam::stored_token(base, None))
}

/// The client for these calls, sending `token` if there is one.
pub(crate) fn client_with(token: Option<String>) -> reqwest::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        if let Ok(mut v) = reqwest::header::HeaderValue::from_str(&format!("token={token}")) {
            v.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
    }
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .default_headers(headers)
        .build()
}

/// One call: `method` on `base` + `path`, with `body` as JSON.
pub(crate) async fn request(
    client: &reqwest::Client,
    component: &Component,
    base: &str,
    method: reqwest::Method,
    path: String,
    body: Option<Value>,
) -> Result<Value, UserError> {
    let no_headers = reqwest::header::HeaderMap::new();
    request_with_headers(client, component, base, method, path, body, no_headers).await
}

/// [`request`], also sending `headers`. A `Content-Type` among them names the body's type in
/// place of `application/json`, for APIs that negotiate on vendor media types (Cosmos).
pub(crate) async fn request_with_headers(
    client: &reqwest::Client,
    component: &Component,
    base: &str,
    method: reqwest::Method,
    path: String,
    body: Option<Value>,
    headers: reqwest::header::HeaderMap,
) -> Result<Value, UserError> {
    // Set before `json`, which only adds `application/json` when no Content-Type is set.
    let mut req = client
        .request(method, format!("{base}{path}"))
        .headers(headers);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.map_err(|e| {
        UserError::new(format!("cannot reach {} at {base}: {e}", component.name))
            .hint(component.unreachable_hint)
    })?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let error = UserError::new(format!(
            "{} answered {status}: {}",
            component.name,
            body_message(&body)
        ));
        return Err(match status {
            reqwest::StatusCode::UNAUTHORIZED => error.hint("log in with `dcos auth login`"),
            reqwest::StatusCode::FORBIDDEN => {
                error.hint("your account lacks the permission; a superuser can `dcos acl grant` it")
            }
            _ => error,
        });
    }
    Ok(body)
}

/// The message of an error body, with each of its `details` (`path: errors`) on a line; a
/// string `details` (invalid JSON: the parser's position) as it is.
pub(crate) fn body_message(body: &Value) -> String {
    // Marathon and Metronome say `message`, the IAM `description`.
    let mut text = body["message"]
        .as_str()
        .or_else(|| body["description"].as_str())
        .unwrap_or("")
        .to_string();
    if let Some(detail) = body["details"].as_str() {
        text.push_str(&format!("\n  {detail}"));
    }
    for d in body["details"].as_array().into_iter().flatten() {
        let errors: Vec<&str> = d["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        text.push_str(&format!(
            "\n  {}: {}",
            d["path"].as_str().unwrap_or(""),
            errors.join("; ")
        ));
    }
    // Cosmos' schema mismatches: `data.errors`, each with the option's JSON pointer.
    for e in body["data"]["errors"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "\n  {}: {}",
            e["instance"]["pointer"].as_str().unwrap_or(""),
            e["message"].as_str().unwrap_or("")
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_show_their_details() {
        let body = json!({"message": "Object is not valid", "details": [{"path": "/cpus", "errors": ["error.min", "error.x"]}]});
        assert_eq!(
            body_message(&body),
            "Object is not valid\n  /cpus: error.min; error.x"
        );
        let body = json!({"message": "Invalid JSON", "details": "line 1, column 2"});
        assert_eq!(body_message(&body), "Invalid JSON\n  line 1, column 2");
    }
}
