//! `dcos job add|list|run|history|remove`: a client of Metronome's REST API (DC/OS Jobs),
//! through Admin Router's `/service/metronome` by default.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use dcos_metronome::api::{JobInfo, JobRun};
use serde_json::Value;

use crate::UserError;

#[derive(Args)]
pub(crate) struct JobArgs {
    /// Metronome's address (Admin Router's /service/metronome, or a master's 9090).
    #[arg(long, default_value = "http://127.0.0.1/service/metronome")]
    url: String,
    #[command(subcommand)]
    command: JobCommand,
}

#[derive(Subcommand)]
enum JobCommand {
    /// Create a job from a Metronome job spec (JSON file, or - for stdin); a spec with
    /// `schedules` is created with them.
    Add { file: PathBuf },
    /// The jobs, with their schedules, active runs and outcomes.
    List {
        /// Print Metronome's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Start a run of a job now; prints the run's id.
    Run {
        id: String,
        /// Print the run as JSON.
        #[arg(long)]
        json: bool,
    },
    /// A job's finished runs, newest first.
    History {
        id: String,
        /// Print Metronome's history JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete a job.
    Remove {
        id: String,
        /// Stop its active runs (refused while it has any, otherwise).
        #[arg(long)]
        stop_current_job_runs: bool,
    },
}

pub(crate) fn run(args: JobArgs) -> anyhow::Result<ExitCode> {
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
            JobCommand::Add { file } => {
                let text = if file.as_os_str() == "-" {
                    std::io::read_to_string(std::io::stdin())?
                } else {
                    fs_err::read_to_string(&file)?
                };
                let spec: Value = serde_json::from_str(&text)
                    .map_err(|e| UserError::new(format!("{} is not JSON: {e}", file.display())))?;
                let path = if spec.get("schedules").is_some() {
                    "/v0/scheduled-jobs"
                } else {
                    "/v1/jobs"
                };
                let created = call(reqwest::Method::POST, path.into(), Some(spec)).await?;
                println!("Created job {}", created["id"].as_str().unwrap_or("?"));
            }
            JobCommand::List { json } => {
                let path = "/v1/jobs?embed=activeRuns&embed=schedules&embed=historySummary";
                let jobs = call(reqwest::Method::GET, path.into(), None).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&jobs)?);
                } else {
                    let jobs: Vec<JobInfo> = serde_json::from_value(jobs).map_err(|e| {
                        UserError::new(format!("Metronome's job list is not readable: {e}"))
                    })?;
                    println!("{}", jobs_table(&jobs));
                }
            }
            JobCommand::Run { id, json } => {
                let run = call(reqwest::Method::POST, format!("/v1/jobs/{id}/runs"), None).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&run)?);
                } else {
                    let run: JobRun = serde_json::from_value(run).map_err(|e| {
                        UserError::new(format!("Metronome's run is not readable: {e}"))
                    })?;
                    println!("Run ID: {}", run.id);
                }
            }
            JobCommand::History { id, json } => {
                let job = call(
                    reqwest::Method::GET,
                    format!("/v1/jobs/{id}?embed=history"),
                    None,
                )
                .await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&job["history"])?);
                } else {
                    let job: JobInfo = serde_json::from_value(job).map_err(|e| {
                        UserError::new(format!("Metronome's job is not readable: {e}"))
                    })?;
                    println!("{}", history_table(&job));
                }
            }
            JobCommand::Remove {
                id,
                stop_current_job_runs,
            } => {
                let query = if stop_current_job_runs {
                    "?stopCurrentJobRuns=true"
                } else {
                    ""
                };
                call(
                    reqwest::Method::DELETE,
                    format!("/v1/jobs/{id}{query}"),
                    None,
                )
                .await
                .map_err(|e| {
                    if e.to_string().contains("active job runs") {
                        e.hint("pass --stop-current-job-runs to stop them")
                    } else {
                        e
                    }
                })?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The component this command talks to.
const COMPONENT: crate::rest::Component = crate::rest::Component {
    name: "Metronome",
    unreachable_hint:
        "pass --url with Admin Router's address, e.g. http://10.0.0.2/service/metronome",
};

fn jobs_table(jobs: &[JobInfo]) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY).set_header(vec![
        "ID",
        "SCHEDULE",
        "ACTIVE RUNS",
        "SUCCESS",
        "FAILURE",
        "LAST RUN",
    ]);
    for j in jobs {
        let schedule = j
            .schedules
            .iter()
            .flatten()
            .map(|s| {
                let off = if s.enabled { "" } else { " (disabled)" };
                format!("{} {}{off}", s.cron, s.timezone)
            })
            .collect::<Vec<_>>()
            .join(", ");
        let active = j.active_runs.as_ref().map_or(0, Vec::len);
        let summary = j.history_summary.clone().unwrap_or_default();
        let last = match (&summary.last_success_at, &summary.last_failure_at) {
            (Some(s), Some(f)) if f > s => "failed",
            (Some(_), _) => "success",
            (None, Some(_)) => "failed",
            (None, None) => "-",
        };
        table.add_row(vec![
            j.id.clone(),
            if schedule.is_empty() {
                "-".into()
            } else {
                schedule
            },
            active.to_string(),
            summary.success_count.to_string(),
            summary.failure_count.to_string(),
            last.to_string(),
        ]);
    }
    table.to_string()
}

fn history_table(job: &JobInfo) -> String {
    let history = job.history.clone().unwrap_or_default();
    let mut table = Table::new();
    table
        .load_preset(UTF8_BORDERS_ONLY)
        .set_header(vec!["RUN ID", "STATUS", "STARTED", "FINISHED"]);
    let mut rows: Vec<(&str, &dcos_metronome::api::RunInfo)> = history
        .successful_finished_runs
        .iter()
        .map(|r| ("SUCCESS", r))
        .chain(history.failed_finished_runs.iter().map(|r| ("FAILED", r)))
        .collect();
    rows.sort_by(|a, b| b.1.finished_at.cmp(&a.1.finished_at));
    for (status, r) in rows {
        table.add_row(vec![
            r.id.clone(),
            status.to_string(),
            r.created_at.clone(),
            r.finished_at.clone(),
        ]);
    }
    format!(
        "{}\n{} successful, {} failed",
        table, history.success_count, history.failure_count
    )
}
