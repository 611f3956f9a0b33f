//! `dcos node log`: a node's unit logs through Admin Router and dcos-log's v2 API, as the
//! DC/OS CLI 0.6.1 reads them when the cluster has `LOGGING_V2`:
//! `/system/v1/leader/mesos/logs/v2/component[/<unit>]` for the leading master,
//! `/system/v1/agent/<id>/logs/v2/component[/<unit>]` for an agent, `?skip=-<lines>`.
//! Without `--follow` the last lines are printed as dcos-log's `text/plain` gives them
//! (`2006-01-02 15:04:05: MESSAGE`); with it, new lines follow as server-sent events, the
//! stream resumed from the last event's id when the connection drops.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};
use reqwest::StatusCode;
use serde_json::Value;

use crate::UserError;

#[derive(Args)]
pub(crate) struct LogArgs {
    /// The leading master's log.
    #[arg(long, conflicts_with = "mesos_id")]
    leader: bool,
    /// The log of the agent with this Mesos id (`dcos node` lists them).
    #[arg(long = "mesos-id", value_name = "ID")]
    mesos_id: Option<String>,
    /// One DC/OS component (systemd unit, `.service` may be left out), e.g. dcos-mesos-master.
    #[arg(long, value_name = "UNIT")]
    component: Option<String>,
    /// How many of the last lines to print.
    #[arg(long, value_name = "N", default_value_t = 10)]
    lines: u64,
    /// Keep printing lines as they are written.
    #[arg(long)]
    follow: bool,
    /// Only entries whose FIELD has this value (`_SYSTEMD_UNIT:dcos-marathon.service`); repeatable.
    #[arg(long, value_name = "FIELD:VALUE")]
    filter: Vec<String>,
    /// Admin Router's address (default: the current cluster's first master).
    #[arg(long)]
    url: Option<String>,
    /// Where cluster records live.
    #[arg(long)]
    state_dir: Option<std::path::PathBuf>,
}

/// The units the DC/OS CLI reads from the leader of their own framework.
fn leader_of(unit: &str) -> &'static str {
    match unit {
        "dcos-marathon.service" => "marathon",
        _ => "mesos",
    }
}

/// The path and query of the log to read.
fn endpoint(args: &LogArgs) -> Result<String, UserError> {
    let unit = args
        .component
        .as_deref()
        .map(|c| {
            if c.is_empty() {
                return Err(UserError::new("Empty systemd unit parameter"));
            }
            Ok(dcos_log::files::unit_name(c))
        })
        .transpose()?;
    // Both become path segments: checked before they do.
    let segment = |what: &str, value: &str| {
        let ok = !value.is_empty()
            && value != "."
            && value != ".."
            && value
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'@'));
        if ok {
            Ok(())
        } else {
            Err(UserError::new(format!(
                "{what} {value:?} is not one: letters, digits, '.', '_', '-' and '@' only"
            )))
        }
    };
    if let Some(unit) = &unit {
        segment("The unit", unit)?;
    }
    let mut path = match (&args.mesos_id, args.leader) {
        (Some(id), false) => {
            segment("The Mesos id", id)?;
            format!("/system/v1/agent/{id}/logs/v2/component")
        }
        (None, true) => format!(
            "/system/v1/leader/{}/logs/v2/component",
            unit.as_deref().map_or("mesos", leader_of)
        ),
        _ => {
            return Err(
                UserError::new("You must choose one of --leader or --mesos-id.")
                    .hint("`dcos node log --leader`, or `--mesos-id <id>` of an agent"),
            )
        }
    };
    if let Some(unit) = &unit {
        path.push('/');
        path.push_str(unit);
    }
    path.push_str(&format!("?skip=-{}", args.lines));
    for f in &args.filter {
        if f.split(':').count() != 2 {
            return Err(UserError::new(format!(
                "Invalid filter parameter {f}. Must be --filter=key:value"
            )));
        }
        path.push_str("&filter=");
        path.push_str(&escape(f));
    }
    Ok(path)
}

/// Escapes a query value.
fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn base(args: &LogArgs) -> Result<String, UserError> {
    if let Some(u) = &args.url {
        return Ok(u.trim_end_matches('/').to_string());
    }
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(dcos_node::cluster::default_state_dir);
    let record = dcos_node::cluster::current(&state_dir)
        .and_then(|name| dcos_node::cluster::load(&state_dir, &name).ok())
        .ok_or_else(|| {
            UserError::new("no current cluster")
                .hint("pass --url, or start one with `dcos cluster up`")
        })?;
    crate::iam::router_url(&record)
        .ok_or_else(|| UserError::new("the current cluster has no master"))
}

/// A client for log reads: connecting is bounded, reading a followed log is not (the server
/// sends a keepalive every 15 s; a minute of silence means the connection is gone).
fn client(base: &str, follow: bool) -> reqwest::Result<reqwest::Client> {
    let mut headers = HeaderMap::new();
    if let Some(token) = crate::iam::stored_token(base, None) {
        if let Ok(mut v) = HeaderValue::from_str(&format!("token={token}")) {
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
    }
    let builder = reqwest::Client::builder()
        .default_headers(headers)
        .connect_timeout(Duration::from_secs(10));
    if follow {
        builder.read_timeout(Duration::from_secs(60)).build()
    } else {
        builder.timeout(Duration::from_secs(60)).build()
    }
}

fn failure(status: StatusCode, body: &str, url: &str) -> UserError {
    match status {
        StatusCode::NO_CONTENT => UserError::new("No logs found"),
        StatusCode::NOT_FOUND => UserError::new("No files exist. Exiting."),
        StatusCode::UNAUTHORIZED => UserError::new(format!("dcos-log answered {status}"))
            .hint("log in with `dcos auth login`"),
        StatusCode::FORBIDDEN => UserError::new(format!("dcos-log answered {status}"))
            .hint("your account lacks the permission; a superuser can `dcos acl grant` it"),
        _ => UserError::new(format!(
            "Error getting logs. Url: {url}; response code: {}: {}",
            status.as_u16(),
            body.trim()
        )),
    }
}

pub(crate) fn run(args: LogArgs) -> anyhow::Result<ExitCode> {
    let path = endpoint(&args)?;
    let base = base(&args)?;
    let url = format!("{base}{path}");
    let client = client(&base, args.follow)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        if args.follow {
            follow(&client, &url).await
        } else {
            range(&client, &url).await
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn range(client: &reqwest::Client, url: &str) -> Result<(), UserError> {
    let resp = client
        .get(url)
        .header(ACCEPT, "text/plain")
        .send()
        .await
        .map_err(|e| unreachable(url, &e))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| unreachable(url, &e))?;
    if status != StatusCode::OK {
        return Err(failure(status, &body, url));
    }
    let mut out = std::io::stdout().lock();
    for line in body.lines() {
        let _ = writeln!(out, "{line}");
    }
    Ok(())
}

fn unreachable(url: &str, e: &reqwest::Error) -> UserError {
    UserError::new(format!("cannot read the log at {url}: {e}"))
        .hint("pass --url with Admin Router's address, e.g. http://10.0.0.2")
}

/// How long to wait before reconnecting a dropped stream (sseclient's default).
const RETRY: Duration = Duration::from_secs(3);

async fn follow(client: &reqwest::Client, url: &str) -> Result<(), UserError> {
    let mut last_id: Option<String> = None;
    let mut connected_once = false;
    loop {
        let mut req = client.get(url).header(ACCEPT, "text/event-stream");
        if let Some(id) = &last_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) if !connected_once => return Err(unreachable(url, &e)),
            Err(_) => {
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let status = resp.status();
        if status != StatusCode::OK {
            let body = resp.text().await.unwrap_or_default();
            return Err(failure(status, &body, url));
        }
        connected_once = true;
        let mut events = Events::default();
        let mut resp = resp;
        while let Ok(Some(chunk)) = resp.chunk().await {
            for event in events.push(&chunk) {
                if event.id.is_some() {
                    last_id = event.id.clone();
                }
                if let Some(line) = event_line(&event.data) {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                }
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// One server-sent event.
#[derive(Debug, Default, PartialEq, Eq)]
struct Event {
    id: Option<String>,
    data: String,
}

/// Splits a byte stream into server-sent events.
#[derive(Default)]
struct Events {
    buf: String,
    pending: Vec<u8>,
}

impl Events {
    fn push(&mut self, bytes: &[u8]) -> Vec<Event> {
        self.pending.extend_from_slice(bytes);
        // Only whole UTF-8 characters are taken.
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(s) => s.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.pending.len(),
        };
        let text = String::from_utf8_lossy(&self.pending[..valid]).replace("\r\n", "\n");
        self.pending.drain(..valid);
        self.buf.push_str(&text);
        let mut out = Vec::new();
        while let Some(end) = self.buf.find("\n\n") {
            let raw: String = self.buf.drain(..end + 2).collect();
            let mut event = Event::default();
            let mut data: Vec<&str> = Vec::new();
            for line in raw.lines() {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "data" => data.push(value),
                    "id" => event.id = Some(value.to_string()),
                    _ => {}
                }
            }
            event.data = data.join("\n");
            out.push(event);
        }
        out
    }
}

/// The line printed for an event: `date: MESSAGE` as the DC/OS CLI prints a dcos-log entry;
/// comments (keepalives) and entries without a message print nothing, text that is not JSON
/// prints as it is.
fn event_line(data: &str) -> Option<String> {
    if data.is_empty() {
        return None;
    }
    let Ok(entry) = serde_json::from_str::<Value>(data) else {
        return Some(data.to_string());
    };
    let message = entry["fields"]["MESSAGE"].as_str()?;
    Some(match entry["realtime_timestamp"].as_u64() {
        Some(usec) => format!("{}: {message}", dcos_log::format::local_time(usec)),
        None => message.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: LogArgs,
    }

    fn args(argv: &[&str]) -> LogArgs {
        Cli::try_parse_from(std::iter::once("log").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn endpoints_are_the_dcos_clis() {
        assert_eq!(
            endpoint(&args(&["--leader"])).unwrap(),
            "/system/v1/leader/mesos/logs/v2/component?skip=-10"
        );
        assert_eq!(
            endpoint(&args(&[
                "--leader",
                "--component",
                "dcos-marathon",
                "--lines",
                "3"
            ]))
            .unwrap(),
            "/system/v1/leader/marathon/logs/v2/component/dcos-marathon.service?skip=-3"
        );
        assert_eq!(
            endpoint(&args(&[
                "--mesos-id",
                "S1",
                "--component",
                "dcos-mesos-slave.service"
            ]))
            .unwrap(),
            "/system/v1/agent/S1/logs/v2/component/dcos-mesos-slave.service?skip=-10"
        );
        assert_eq!(
            endpoint(&args(&[
                "--mesos-id",
                "S1",
                "--filter",
                "_SYSTEMD_UNIT:a b"
            ]))
            .unwrap(),
            "/system/v1/agent/S1/logs/v2/component?skip=-10&filter=_SYSTEMD_UNIT:a%20b"
        );
        assert!(endpoint(&args(&[])).is_err());
        assert!(endpoint(&args(&["--leader", "--filter", "nocolon"])).is_err());
        assert!(Cli::try_parse_from(["log", "--leader", "--mesos-id", "S1"]).is_err());
    }

    #[test]
    fn events_are_split_and_resumable() {
        let mut events = Events::default();
        assert!(events.push(b"id: c1\ndata: {\"fields\"").is_empty());
        let got = events.push(b":{\"MESSAGE\":\"hi\"}}\n\n: ping\n\nid: c2\r\ndata: x\r\n\r\n");
        assert_eq!(
            got,
            vec![
                Event {
                    id: Some("c1".into()),
                    data: "{\"fields\":{\"MESSAGE\":\"hi\"}}".into()
                },
                Event::default(),
                Event {
                    id: Some("c2".into()),
                    data: "x".into()
                },
            ]
        );
        // A character split between chunks.
        let bytes = "data: é\n\n".as_bytes();
        assert!(events.push(&bytes[..7]).is_empty());
        assert_eq!(events.push(&bytes[7..])[0].data, "é");
    }

    #[test]
    fn entries_print_as_date_and_message() {
        assert_eq!(
            event_line("{\"fields\":{\"MESSAGE\":\"up\"},\"realtime_timestamp\":5000000}"),
            Some(format!("{}: up", dcos_log::format::local_time(5_000_000)))
        );
        assert_eq!(
            event_line("{\"fields\":{\"MESSAGE\":\"task line\"}}").as_deref(),
            Some("task line")
        );
        assert_eq!(event_line("{\"fields\":{}}"), None);
        assert_eq!(event_line(""), None);
        assert_eq!(event_line("plain").as_deref(), Some("plain"));
    }
}
