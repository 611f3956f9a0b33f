//! What every benchmark target shares: its `--key value` arguments, and writing its figures
//! (with the date and the machine) to `bench/results/<name>.json`.

use std::collections::HashMap;

/// A benchmark's `--key value` arguments.
#[derive(Clone)]
pub struct Args(HashMap<String, String>);

impl Args {
    /// The process' arguments (those after the `--` of `cargo bench`): `--key value` pairs,
    /// each key one of `numbers` (with a whole number) or `out`. The `--bench` flag cargo adds
    /// is ignored.
    pub fn from_env(numbers: &[&str]) -> Result<Args, String> {
        let mut map = HashMap::new();
        let mut argv = std::env::args().skip(1);
        while let Some(arg) = argv.next() {
            if arg == "--bench" {
                continue;
            }
            let key = arg
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {arg:?}: give --key value pairs"))?;
            let value = argv
                .next()
                .ok_or_else(|| format!("--{key} needs a value"))?;
            if key != "out" && !numbers.contains(&key) {
                return Err(format!(
                    "unknown option --{key}; the options are --{} and --out",
                    numbers.join(", --")
                ));
            }
            if key != "out" && value.parse::<usize>().is_err() {
                return Err(format!("--{key} takes a whole number, not {value:?}"));
            }
            map.insert(key.to_string(), value);
        }
        Ok(Args(map))
    }

    /// A number, or `default`.
    pub fn num(&self, key: &str, default: usize) -> usize {
        self.0
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// A value, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

/// Today's date (UTC) from the system clock, without a date crate.
pub fn today() -> String {
    let out = std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d")
        .output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Adds the date and the core count to `figures`, writes them to `--out` (default
/// `bench/results/<name>.json`) and prints them.
pub fn write_results(
    args: &Args,
    name: &str,
    mut figures: serde_json::Value,
) -> std::io::Result<()> {
    figures["date"] = today().into();
    figures["cores"] = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .into();
    let out = args.get("out").map(String::from).unwrap_or_else(|| {
        format!(
            "{}/../../bench/results/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    if let Some(dir) = std::path::Path::new(&out).parent() {
        fs_err::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(&figures).map_err(std::io::Error::other)?;
    fs_err::write(&out, &text)?;
    println!("{text}");
    println!("written to {out}");
    Ok(())
}

/// A benchmark target's `main`: runs `scenario` with the arguments (`numbers` are its
/// numeric options) on a multi-threaded runtime and writes what it returns with
/// [`write_results`] as `name`.
pub fn main<F, Fut, E>(
    name: &str,
    numbers: &[&str],
    scenario: F,
) -> Result<(), Box<dyn std::error::Error>>
where
    F: FnOnce(Args) -> Fut,
    Fut: std::future::Future<Output = Result<serde_json::Value, E>>,
    E: Into<Box<dyn std::error::Error>>,
{
    let args = Args::from_env(numbers)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let figures = runtime
        .block_on(scenario(args.clone()))
        .map_err(Into::into)?;
    write_results(&args, name, figures)?;
    Ok(())
}
