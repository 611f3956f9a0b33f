//! `dcos marathon app add|list|show|remove`: a client of Marathon's REST API.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use serde_json::Value;

use crate::UserError;

#[derive(Args)]
pub(crate) struct MarathonArgs {
    /// Marathon's address (a master's 8080, or Admin Router's /marathon).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    #[command(subcommand)]
    command: MarathonCommand,
}

#[derive(Subcommand)]
enum MarathonCommand {
    /// Apps.
    App {
        #[command(subcommand)]
        command: AppCommand,
    },
}

#[derive(Subcommand)]
enum AppCommand {
    /// Create an app from a Marathon app definition (JSON file, or - for stdin).
    Add { file: PathBuf },
    /// The apps, with their task counts and deployments.
    List,
    /// One app as JSON, then why it waits to launch (from /v2/queue), if it does.
    Show { id: String },
    /// Delete an app.
    Remove { id: String },
}

pub(crate) fn run(args: MarathonArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let base = args.url.trim_end_matches('/').to_string();
        let client = crate::rest::client(&base)?;
        let call = |method, path: String, body| {
            crate::rest::request(&client, &COMPONENT, &base, method, path, body)
        };
        match args.command {
            MarathonCommand::App { command } => match command {
                AppCommand::Add { file } => {
                    let text = if file.as_os_str() == "-" {
                        std::io::read_to_string(std::io::stdin())?
                    } else {
                        fs_err::read_to_string(&file)?
                    };
                    let app: Value = serde_json::from_str(&text).map_err(|e| {
                        UserError::new(format!("{} is not JSON: {e}", file.display()))
                    })?;
                    let created = call(reqwest::Method::POST, "/v2/apps".into(), Some(app)).await?;
                    println!(
                        "Created deployment {}",
                        created["deployments"][0]["id"].as_str().unwrap_or("?")
                    );
                }
                AppCommand::List => {
                    let apps = call(reqwest::Method::GET, "/v2/apps".into(), None).await?;
                    println!("{}", apps_table(&apps));
                }
                AppCommand::Show { id } => {
                    let id = format!("/{}", id.trim_start_matches('/'));
                    let app = call(reqwest::Method::GET, format!("/v2/apps{id}"), None).await?;
                    println!("{}", serde_json::to_string_pretty(&app["app"])?);
                    let queue = call(reqwest::Method::GET, "/v2/queue".into(), None).await?;
                    if let Some(text) = waiting(&queue, &id) {
                        println!("{text}");
                    }
                }
                AppCommand::Remove { id } => {
                    let id = format!("/{}", id.trim_start_matches('/'));
                    call(reqwest::Method::DELETE, format!("/v2/apps{id}"), None).await?;
                }
            },
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The component this command talks to.
const COMPONENT: crate::rest::Component = crate::rest::Component {
    name: "Marathon",
    unreachable_hint: "pass --url with a master's address, e.g. http://10.0.0.2:8080",
};

fn apps_table(apps: &Value) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY).set_header(vec![
        "ID",
        "MEM",
        "CPUS",
        "TASKS",
        "HEALTH",
        "DEPLOYMENT",
        "CMD",
    ]);
    for a in apps["apps"].as_array().into_iter().flatten() {
        table.add_row(vec![
            a["id"].as_str().unwrap_or("").to_string(),
            a["mem"].to_string(),
            a["cpus"].to_string(),
            format!("{}/{}", a["tasksRunning"], a["instances"]),
            format!("{}/{}", a["tasksHealthy"], a["instances"]),
            if a["deployments"].as_array().is_some_and(|d| !d.is_empty()) {
                "yes".into()
            } else {
                "-".into()
            },
            a["cmd"].as_str().unwrap_or("").to_string(),
        ]);
    }
    table.to_string()
}

/// Why `id` waits to launch, from `/v2/queue`: the count, the delay and the offer reasons.
fn waiting(queue: &Value, id: &str) -> Option<String> {
    let item = queue["queue"]
        .as_array()?
        .iter()
        .find(|i| i["app"]["id"] == id)?;
    let summary = &item["processedOffersSummary"];
    let mut table = Table::new();
    table
        .load_preset(UTF8_BORDERS_ONLY)
        .set_header(vec!["REASON", "DECLINED", "PROCESSED"]);
    for r in summary["rejectSummaryLaunchAttempt"]
        .as_array()
        .into_iter()
        .flatten()
    {
        table.add_row(vec![
            r["reason"].as_str().unwrap_or("").to_string(),
            r["declined"].to_string(),
            r["processed"].to_string(),
        ]);
    }
    Some(format!(
        "Waiting to launch {} instance(s); delay {}s left; {} offers processed, {} unused:\n{table}",
        item["count"], item["delay"]["timeLeftSeconds"], summary["processedOffersCount"], summary["unusedOffersCount"]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn show_explains_a_waiting_app_by_offer_reason() {
        let queue = json!({"queue": [{"app": {"id": "/web"}, "count": 2, "delay": {"timeLeftSeconds": 0},
            "processedOffersSummary": {"processedOffersCount": 7, "unusedOffersCount": 7,
            "rejectSummaryLaunchAttempt": [{"reason": "InsufficientPorts", "declined": 7, "processed": 7}]}}]});
        let text = waiting(&queue, "/web").unwrap();
        assert!(
            text.starts_with("Waiting to launch 2 instance(s)"),
            "{text}"
        );
        assert!(
            text.contains("InsufficientPorts") && text.contains("7 offers processed"),
            "{text}"
        );
        assert!(waiting(&queue, "/other").is_none());
    }
}
