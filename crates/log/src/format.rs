//! How entries are written in answers, as dcos-log writes them.
//!
//! Journal entries (v1, v2 components): `text/plain` is `2006-01-02 15:04:05: MESSAGE` in the
//! node's local time; `application/json` is one object per line, `{"fields":{...},"cursor":
//! "...","monotonic_timestamp":N,"realtime_timestamp":N}`; `text/event-stream` is `data:
//! <that object>` and a blank line, after `id: <cursor>` when the answer follows (so a client
//! resumes with `Last-Event-ID`). Entries of a task's sandbox file carry no time: text is the
//! message alone and the times are left out of the object.
//!
//! Sandbox files read by v2 (`/v2/task/...`): text is the line itself; events are `id:
//! <offset of the line's end>` and `data: {"fields":{"MESSAGE",...}}`, as dcos-log v2's
//! files-API reader writes them.

use serde_json::{Map, Value};

use crate::journal::{Entry, Fields};

/// The answer's format, from the request's `Accept`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/plain` (also `*/*`, `text/html`, anything else).
    Text,
    /// `application/json`.
    Json,
    /// `text/event-stream`.
    Events,
}

impl Format {
    /// The format an `Accept` header asks for.
    pub fn from_accept(accept: Option<&str>) -> Format {
        let accept = accept.unwrap_or("");
        if accept.contains("text/event-stream") {
            Format::Events
        } else if accept.contains("application/json") {
            Format::Json
        } else {
            Format::Text
        }
    }

    /// The answer's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain",
            Format::Json => "application/json",
            Format::Events => "text/event-stream",
        }
    }
}

/// The SSE comment sent when a followed log is idle, so proxies keep the connection.
pub const KEEPALIVE: &[u8] = b": ping\n\n";

fn message(entry: &Entry) -> String {
    String::from_utf8_lossy(&entry.message).into_owned()
}

/// The JSON object of a journal entry; `boot_usec` is the boot time, for
/// `monotonic_timestamp`.
pub fn journal_json(entry: &Entry, boot_usec: u64) -> Value {
    let mut fields: Map<String, Value> = entry
        .source
        .fields
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
        .collect();
    fields.insert("MESSAGE".into(), Value::String(message(entry)));
    let mut object = Map::new();
    object.insert("fields".into(), Value::Object(fields));
    object.insert("cursor".into(), Value::String(entry.cursor().to_string()));
    if let Some(ts) = entry.ts {
        object.insert(
            "monotonic_timestamp".into(),
            Value::from(ts.saturating_sub(boot_usec)),
        );
        object.insert("realtime_timestamp".into(), Value::from(ts));
    }
    Value::Object(object)
}

/// Writes a journal entry in `format`; `ids` puts its cursor as the event's id.
pub fn journal_entry(out: &mut Vec<u8>, entry: &Entry, format: Format, ids: bool, boot_usec: u64) {
    match format {
        Format::Text => {
            if let Some(ts) = entry.ts {
                out.extend_from_slice(local_time(ts).as_bytes());
                out.extend_from_slice(b": ");
            }
            out.extend_from_slice(message(entry).as_bytes());
            out.push(b'\n');
        }
        Format::Json => {
            out.extend_from_slice(journal_json(entry, boot_usec).to_string().as_bytes());
            out.push(b'\n');
        }
        Format::Events => {
            if ids {
                out.extend_from_slice(format!("id: {}\n", entry.cursor()).as_bytes());
            }
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(journal_json(entry, boot_usec).to_string().as_bytes());
            out.extend_from_slice(b"\n\n");
        }
    }
}

/// Writes a line of a sandbox file read through v2; `fields` are the run's (`AGENT_ID`,
/// `FRAMEWORK_ID`, `EXECUTOR_ID`, `CONTAINER_ID`, `FILE`).
pub fn file_entry(out: &mut Vec<u8>, entry: &Entry, format: Format, fields: &Fields) {
    match format {
        Format::Text | Format::Json => {
            out.extend_from_slice(message(entry).as_bytes());
            out.push(b'\n');
        }
        Format::Events => {
            let mut object: Map<String, Value> = fields
                .iter()
                .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
                .collect();
            object.insert("MESSAGE".into(), Value::String(message(entry)));
            let id = entry.start.offset + entry.message.len() as u64;
            out.extend_from_slice(format!("id: {id}\n").as_bytes());
            out.extend_from_slice(b"data: ");
            let data = serde_json::json!({ "fields": object });
            out.extend_from_slice(data.to_string().as_bytes());
            out.extend_from_slice(b"\n\n");
        }
    }
}

/// `2006-01-02 15:04:05` in the node's time zone, as dcos-log prints it.
pub fn local_time(usec: u64) -> String {
    let secs = i64::try_from(usec / 1_000_000).unwrap_or(i64::MAX);
    match chrono::DateTime::from_timestamp(secs, 0) {
        Some(t) => t
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        None => "1970-01-01 00:00:00".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::SourceInfo;
    use crate::source::Pos;
    use std::sync::Arc;

    fn entry(ts: Option<u64>) -> Entry {
        let mut fields = Fields::new();
        fields.insert("_SYSTEMD_UNIT", "dcos-mesos-master.service".into());
        Entry {
            source: Arc::new(SourceInfo {
                key: "dcos-mesos-master.service".into(),
                fields,
                timed: ts.is_some(),
            }),
            start: Pos {
                generation: 2,
                offset: 40,
            },
            end: 60,
            ts,
            message: b"hello \"there\"".to_vec(),
        }
    }

    #[test]
    fn accept_picks_the_format() {
        assert_eq!(
            Format::from_accept(Some("text/event-stream")),
            Format::Events
        );
        assert_eq!(Format::from_accept(Some("application/json")), Format::Json);
        assert_eq!(Format::from_accept(Some("text/plain")), Format::Text);
        assert_eq!(Format::from_accept(Some("*/*")), Format::Text);
        assert_eq!(Format::from_accept(None), Format::Text);
    }

    #[test]
    fn json_has_the_journal_export_shape() {
        let v = journal_json(&entry(Some(1_700_000_000_000_001)), 1_600_000_000_000_000);
        assert_eq!(
            v,
            serde_json::json!({
                "fields": {"MESSAGE": "hello \"there\"", "_SYSTEMD_UNIT": "dcos-mesos-master.service"},
                "cursor": "s=dcos-mesos-master.service;i=2;o=40;t=1700000000000001",
                "monotonic_timestamp": 100_000_000_000_001u64,
                "realtime_timestamp": 1_700_000_000_000_001u64,
            })
        );
    }

    #[test]
    fn events_carry_the_cursor_as_id_when_following() {
        let mut out = Vec::new();
        journal_entry(&mut out, &entry(Some(5_000_000)), Format::Events, true, 0);
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.split('\n');
        assert_eq!(
            lines.next(),
            Some("id: s=dcos-mesos-master.service;i=2;o=40;t=5000000")
        );
        assert!(lines.next().unwrap().starts_with("data: {\"cursor\":"));
        assert!(text.ends_with("}\n\n"));
        let mut out = Vec::new();
        journal_entry(&mut out, &entry(Some(5_000_000)), Format::Events, false, 0);
        assert!(out.starts_with(b"data: "));
    }

    #[test]
    fn text_is_time_and_message() {
        let mut out = Vec::new();
        journal_entry(&mut out, &entry(Some(5_000_000)), Format::Text, false, 0);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            format!("{}: hello \"there\"\n", local_time(5_000_000))
        );
        let mut out = Vec::new();
        journal_entry(&mut out, &entry(None), Format::Text, false, 0);
        assert_eq!(out, b"hello \"there\"\n");
    }

    #[test]
    fn file_events_have_the_line_end_as_id() {
        let mut fields = Fields::new();
        fields.insert("FILE", "stdout".into());
        let mut out = Vec::new();
        file_entry(&mut out, &entry(None), Format::Events, &fields);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "id: 53\ndata: {\"fields\":{\"FILE\":\"stdout\",\"MESSAGE\":\"hello \\\"there\\\"\"}}\n\n"
        );
    }
}
