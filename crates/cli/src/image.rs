//! `dcos image push|list`: container images (the logic is in dcos-image).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use dcos_image::{Credentials, Reference, Store};

use crate::{Output, UserError};

/// Read when `--password` is not given, so the password stays out of `ps`.
const PASSWORD_ENV: &str = "DCOS_REGISTRY_PASSWORD";

#[derive(Args)]
pub(crate) struct ImageArgs {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Push an image from an OCI layout directory or a `docker save` tarball to a registry.
    Push {
        /// An OCI image layout directory or a `docker save` tar file.
        source: PathBuf,
        /// Where to: `registry/repository:tag`.
        target: String,
        /// Registry user name (the password from --password or $DCOS_REGISTRY_PASSWORD).
        #[arg(long)]
        username: Option<String>,
        /// The registry password (or $DCOS_REGISTRY_PASSWORD); needs --username.
        #[arg(long, requires = "username")]
        password: Option<String>,
        /// A registry (host[:port]) spoken to over http; loopback ones always are.
        #[arg(long = "insecure-registry")]
        insecure_registries: Vec<String>,
    },
    /// The images in an agent's image store.
    List {
        /// The agent's work dir (the store is its `images` dir); default: the agent's of a
        /// node with the default work dir.
        #[arg(long)]
        work_dir: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

pub(crate) fn run(args: ImageArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ImageCommand::Push {
            source,
            target,
            username,
            password,
            insecure_registries,
        } => {
            let target = Reference::parse(&target).map_err(|e| UserError::new(e.to_string()))?;
            let credentials = username.map(|username| Credentials {
                username,
                password: password
                    .or_else(|| std::env::var(PASSWORD_ENV).ok())
                    .unwrap_or_default(),
            });
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let digest = runtime
                .block_on(dcos_image::push(
                    &source,
                    &target,
                    credentials.as_ref(),
                    &insecure_registries,
                ))
                .map_err(|e| UserError::new(e.to_string()))?;
            println!("pushed {target} {digest}");
            Ok(ExitCode::SUCCESS)
        }
        ImageCommand::List { work_dir, output } => {
            let work_dir = work_dir
                .unwrap_or_else(|| dcos_node::config::NodeConfig::default().agent_work_dir());
            list(work_dir.join("images"), output)
        }
    }
}

fn list(root: PathBuf, output: Output) -> anyhow::Result<ExitCode> {
    if !root.is_dir() {
        return Err(
            UserError::new(format!("no image store at {}", root.display()))
                .hint("pass the agent's work dir with --work-dir")
                .into(),
        );
    }
    let images = Store::open(&root, vec![])?.list()?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&images)?),
        Output::Table => {
            let mut table = Table::new();
            table.load_preset(UTF8_BORDERS_ONLY).set_header(vec![
                "REFERENCE",
                "DIGEST",
                "LAYERS",
                "SIZE",
                "CONTAINERS",
            ]);
            for i in images {
                let refs = if i.references.is_empty() {
                    "<untagged>".to_string()
                } else {
                    i.references.join("\n")
                };
                table.add_row(vec![
                    refs,
                    i.digest.chars().take(19).collect(),
                    i.layers.to_string(),
                    format!("{:.1} MiB", i.size as f64 / 1048576.0),
                    i.containers.len().to_string(),
                ]);
            }
            println!("{table}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
