//! `dcos node health`: every unit of every node with its health, and why the unhealthy ones
//! are, from dcos-diagnostics' report through Admin Router.

use std::process::ExitCode;

use clap::Args;
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use serde_json::Value;

#[derive(Args)]
pub(crate) struct HealthArgs {
    /// Admin Router's address.
    #[arg(long, default_value = "http://127.0.0.1")]
    url: String,
    /// Only the unhealthy units.
    #[arg(long)]
    unhealthy: bool,
    /// Print dcos-diagnostics' report instead of a table.
    #[arg(long)]
    json: bool,
}

const COMPONENT: crate::rest::Component = crate::rest::Component {
    name: "dcos-diagnostics",
    unreachable_hint: "pass --url with Admin Router's address, e.g. http://10.0.0.2",
};

/// One row: node, role, unit, health, reason.
type Row = (String, String, String, String, String);

/// The rows of a report, by node then unit; `unhealthy` keeps only those.
fn rows(report: &Value, unhealthy: bool) -> Vec<Row> {
    let mut rows = Vec::new();
    for (ip, node) in report["Nodes"].as_object().into_iter().flatten() {
        let role = node["Role"].as_str().unwrap_or("").to_string();
        for unit in node["Units"].as_array().into_iter().flatten() {
            let id = unit["UnitName"].as_str().unwrap_or("").to_string();
            let healthy = unit["Health"] == 0;
            if unhealthy && healthy {
                continue;
            }
            // The reason is the output's first line (the rest is the log's tail), without
            // control characters: a node's text must not drive the terminal.
            let reason: String = node["Output"][&id]
                .as_str()
                .and_then(|o| o.lines().next())
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_control())
                .collect();
            let health = if healthy { "healthy" } else { "unhealthy" };
            rows.push((ip.clone(), role.clone(), id, health.to_string(), reason));
        }
    }
    rows
}

pub(crate) fn run(args: HealthArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        let base = args.url.trim_end_matches('/').to_string();
        let client = crate::rest::client(&base)?;
        crate::rest::request(
            &client,
            &COMPONENT,
            &base,
            reqwest::Method::GET,
            "/system/health/v1/report?cache=0".into(),
            None,
        )
        .await
        .map_err(anyhow::Error::from)
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows = rows(&report, args.unhealthy);
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY);
    table.set_header(["NODE", "ROLE", "UNIT", "HEALTH", "REASON"]);
    let sick = rows.iter().filter(|r| r.3 != "healthy").count();
    for (ip, role, unit, health, reason) in rows {
        table.add_row([ip, role, unit, health, reason]);
    }
    println!("{table}");
    // Non-zero when something is unhealthy, so scripts can wait on it.
    Ok(if sick == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_list_units_by_node_with_the_reason_line() {
        let report = json!({"Nodes": {"10.0.0.2": {"Role": "agent",
            "Units": [{"UnitName": "dcos-net.service", "Health": 1},
                      {"UnitName": "dcos-mesos-slave.service", "Health": 0}],
            "Output": {"dcos-net.service": "dcos-net.service is unhealthy: stopped\nlog line",
                       "dcos-mesos-slave.service": ""}}}});
        let all = rows(&report, false);
        assert_eq!(all.len(), 2);
        let sick = rows(&report, true);
        assert_eq!(sick.len(), 1);
        assert_eq!(sick[0].4, "dcos-net.service is unhealthy: stopped");
        let hostile = json!({"Nodes": {"10.0.0.3": {"Role": "agent",
            "Units": [{"UnitName": "u", "Health": 1}],
            "Output": {"u": "bad\u{1b}[2Jthing"}}}});
        assert_eq!(rows(&hostile, true)[0].4, "bad[2Jthing");
    }
}
