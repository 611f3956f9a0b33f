//! One call to a component's REST API (Marathon, Metronome) for the client commands: a
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

/// The client for these calls: none may take more than 30 s.
pub(crate) fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
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
    let mut req = client.request(method, format!("{base}{path}"));
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
        return Err(UserError::new(format!(
            "{} answered {status}: {}",
            component.name,
            body_message(&body)
        )));
    }
    Ok(body)
}

/// The message of an error body, with each of its `details` (`path: errors`) on a line; a
/// string `details` (invalid JSON: the parser's position) as it is.
pub(crate) fn body_message(body: &Value) -> String {
    let mut text = body["message"].as_str().unwrap_or("").to_string();
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
