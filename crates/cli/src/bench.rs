//! `dcos bench <scenario>|all|report|list`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use dcos_bench::SCENARIOS;

use crate::{init_tracing, UserError};

/// Where results go unless `--out` says otherwise, relative to the working directory (the
/// repository's root when run from a checkout).
const RESULTS_DIR: &str = "bench/results";
const RESULTS_MD: &str = "bench/RESULTS.md";

#[derive(Args)]
#[command(
    after_help = "Scenarios: offers, launch, real-launch, dns, router, failover, footprint; \
    `all` runs every one and rewrites bench/RESULTS.md; `report` only rewrites it; `list` shows \
    each scenario's options. Options: --size full|tiny, --out FILE, and the scenario's own \
    --key value pairs. With DCOS_BENCH_KEEP=1 set, the launch and footprint scenarios keep \
    their master node's directory (every unit's log) and print where it is."
)]
pub(crate) struct BenchArgs {
    /// A scenario, `all`, `report` or `list`.
    scenario: String,
    /// `--size full|tiny`, `--out FILE`, and the scenario's `--key value` options.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    options: Vec<String>,
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn list() {
    for s in SCENARIOS {
        println!("{:<12} {}", s.name, s.about);
        for p in s.params {
            println!(
                "    --{:<14} {} (full: {}, tiny: {})",
                p.key, p.help, p.full, p.tiny
            );
        }
    }
}

fn write_report(dir: &std::path::Path, out: &std::path::Path) -> anyhow::Result<()> {
    fs_err::write(out, dcos_bench::report(dir))?;
    println!("wrote {}", out.display());
    Ok(())
}

/// `all`: `--size` and `--dir` (results dir; RESULTS.md goes beside it).
fn run_all(options: &[String]) -> anyhow::Result<ExitCode> {
    let (mut size, mut dir) = (None, PathBuf::from(RESULTS_DIR));
    let mut it = options.iter();
    while let Some(o) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| UserError::new(format!("{o} needs a value")))?;
        match o.as_str() {
            "--size" => size = Some(value.clone()),
            "--dir" => dir = PathBuf::from(value),
            _ => {
                return Err(UserError::new(format!(
                    "unknown option {o}; `dcos bench all` takes --size and --dir"
                ))
                .into())
            }
        }
    }
    let rt = runtime()?;
    for s in SCENARIOS {
        let mut argv = Vec::new();
        if let Some(size) = &size {
            argv.extend(["--size".to_string(), size.clone()]);
        }
        let args = dcos_bench::Args::parse(s.params, &argv).map_err(UserError::new)?;
        eprintln!("== dcos bench {} ==", s.name);
        rt.block_on(s.run(args, &dir))
            .map_err(|e| e.context(format!("scenario {}", s.name)))?;
    }
    let md = dir.parent().unwrap_or(&dir).join("RESULTS.md");
    write_report(&dir, &md)?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    match args.scenario.as_str() {
        "list" => {
            list();
            Ok(ExitCode::SUCCESS)
        }
        "report" => {
            write_report(&PathBuf::from(RESULTS_DIR), &PathBuf::from(RESULTS_MD))?;
            Ok(ExitCode::SUCCESS)
        }
        "all" => run_all(&args.options),
        name => {
            let scenario = dcos_bench::scenario(name).ok_or_else(|| {
                UserError::new(format!("unknown scenario {name:?}"))
                    .hint("`dcos bench list` shows the scenarios and their options")
            })?;
            let bench_args =
                dcos_bench::Args::parse(scenario.params, &args.options).map_err(UserError::new)?;
            let doc = runtime()?.block_on(scenario.run(bench_args, RESULTS_DIR.as_ref()))?;
            println!("{}", serde_json::to_string_pretty(&doc)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
