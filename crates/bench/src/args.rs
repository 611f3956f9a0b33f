//! A scenario's parameters: each has a full-size and a tiny (CI smoke) default, and the
//! command line may override any of them with `--key value`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Value};

/// How big a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// The sizes `bench/RESULTS.md` reports.
    Full,
    /// A few seconds per scenario: proves it still runs end to end (CI).
    Tiny,
}

impl Size {
    /// `full` or `tiny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Size::Full => "full",
            Size::Tiny => "tiny",
        }
    }
}

/// What a parameter's value looks like.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A whole number.
    Num,
    /// Whole numbers separated by commas: `100,1000,10000`.
    List,
    /// `AxB` pairs separated by commas: `1000x1000,10000x100000`.
    Pairs,
}

/// One parameter of a scenario.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    /// `--<key>`.
    pub key: &'static str,
    /// Its form.
    pub kind: Kind,
    /// The full-size default.
    pub full: &'static str,
    /// The tiny default.
    pub tiny: &'static str,
    /// What it sets.
    pub help: &'static str,
}

/// A scenario's resolved parameters, and where its results go.
#[derive(Clone, Debug)]
pub struct Args {
    values: BTreeMap<&'static str, String>,
    /// The parameters given on the command line (the rest are the size's defaults).
    given: Vec<(&'static str, String)>,
    /// `--size`.
    pub size: Size,
    /// `--out`, if given.
    pub out: Option<PathBuf>,
    /// `--dir`, if given: the results directory `--out` defaults into.
    pub dir: Option<PathBuf>,
}

fn parse_num(text: &str) -> Option<usize> {
    text.trim().replace('_', "").parse().ok()
}

fn check(kind: Kind, value: &str) -> bool {
    let items = || value.split(',');
    match kind {
        Kind::Num => parse_num(value).is_some(),
        Kind::List => items().all(|i| parse_num(i).is_some()),
        Kind::Pairs => items().all(|i| {
            i.split_once('x')
                .is_some_and(|(a, b)| parse_num(a).is_some() && parse_num(b).is_some())
        }),
    }
}

impl Args {
    /// Parses `--size full|tiny`, `--out FILE`, `--dir DIR` and `--<param> value` pairs.
    pub fn parse(params: &[Param], argv: &[String]) -> Result<Args, String> {
        let mut size = Size::Full;
        let (mut out, mut dir) = (None, None);
        let mut given = BTreeMap::new();
        let mut overrides = Vec::new();
        let mut it = argv.iter();
        while let Some(arg) = it.next() {
            let key = arg
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {arg:?}: give --key value pairs"))?;
            let value = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
            match key {
                "size" => {
                    size = match value.as_str() {
                        "full" => Size::Full,
                        "tiny" => Size::Tiny,
                        other => return Err(format!("--size is full or tiny, not {other:?}")),
                    }
                }
                "out" => out = Some(PathBuf::from(value)),
                "dir" => dir = Some(PathBuf::from(value)),
                _ => {
                    let param = params.iter().find(|p| p.key == key).ok_or_else(|| {
                        let keys: Vec<String> =
                            params.iter().map(|p| format!("--{}", p.key)).collect();
                        format!(
                            "unknown option --{key}; the options are {}, --size, --out and --dir",
                            keys.join(", ")
                        )
                    })?;
                    if !check(param.kind, value) {
                        return Err(format!(
                            "--{key} takes {}, not {value:?}",
                            match param.kind {
                                Kind::Num => "a whole number",
                                Kind::List => "whole numbers separated by commas",
                                Kind::Pairs => "AxB pairs separated by commas",
                            }
                        ));
                    }
                    given.insert(param.key, value.clone());
                    overrides.push((param.key, value.clone()));
                }
            }
        }
        let values = params
            .iter()
            .map(|p| {
                let default = if size == Size::Full { p.full } else { p.tiny };
                let v = given.remove(p.key).unwrap_or_else(|| default.to_string());
                (p.key, v)
            })
            .collect();
        Ok(Args {
            values,
            given: overrides,
            size,
            out,
            dir,
        })
    }

    fn value(&self, key: &str) -> &str {
        self.values
            .get(key)
            .unwrap_or_else(|| panic!("{key} is not a parameter of this scenario"))
    }

    /// A `Num` parameter.
    pub fn num(&self, key: &str) -> usize {
        parse_num(self.value(key)).expect("checked when parsed")
    }

    /// A `List` parameter.
    pub fn list(&self, key: &str) -> Vec<usize> {
        self.value(key)
            .split(',')
            .map(|i| parse_num(i).expect("checked when parsed"))
            .collect()
    }

    /// A `Pairs` parameter.
    pub fn pairs(&self, key: &str) -> Vec<(usize, usize)> {
        self.value(key)
            .split(',')
            .map(|i| {
                let (a, b) = i.split_once('x').expect("checked when parsed");
                (
                    parse_num(a).expect("checked"),
                    parse_num(b).expect("checked"),
                )
            })
            .collect()
    }

    /// The parameters as given to the run, for its result file.
    pub fn to_json(&self) -> Value {
        let mut v = json!({"size": self.size.as_str()});
        for (k, val) in &self.values {
            v[*k] = json!(val);
        }
        v
    }

    /// The command line that repeats this run.
    pub fn command(&self, scenario: &str) -> String {
        let mut cmd = format!("dcos-bench {scenario}");
        if self.size == Size::Tiny {
            cmd.push_str(" --size tiny");
        }
        for (key, value) in &self.given {
            cmd.push_str(&format!(" --{key} {value}"));
        }
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: &[Param] = &[
        Param {
            key: "agents",
            kind: Kind::List,
            full: "100,1000",
            tiny: "10",
            help: "",
        },
        Param {
            key: "seconds",
            kind: Kind::Num,
            full: "10",
            tiny: "1",
            help: "",
        },
        Param {
            key: "runs",
            kind: Kind::Pairs,
            full: "1x2",
            tiny: "1x1",
            help: "",
        },
    ];

    fn parse(argv: &[&str]) -> Result<Args, String> {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        Args::parse(PARAMS, &argv)
    }

    #[test]
    fn sizes_pick_defaults_and_options_override_them() {
        let full = parse(&[]).unwrap();
        assert_eq!(full.list("agents"), vec![100, 1000]);
        assert_eq!(full.pairs("runs"), vec![(1, 2)]);
        let tiny = parse(&[
            "--size",
            "tiny",
            "--seconds",
            "3",
            "--out",
            "x.json",
            "--dir",
            "d",
        ])
        .unwrap();
        assert_eq!(tiny.list("agents"), vec![10]);
        assert_eq!(tiny.num("seconds"), 3);
        assert_eq!(tiny.out, Some(PathBuf::from("x.json")));
        assert_eq!(tiny.dir, Some(PathBuf::from("d")));
        assert_eq!(
            tiny.command("offers"),
            "dcos-bench offers --size tiny --seconds 3"
        );
    }

    #[test]
    fn bad_options_are_refused_with_what_is_expected() {
        assert!(parse(&["--nope", "1"])
            .unwrap_err()
            .contains("the options are --agents"));
        assert!(parse(&["--seconds", "ten"])
            .unwrap_err()
            .contains("a whole number"));
        assert!(parse(&["--runs", "1x"]).unwrap_err().contains("AxB"));
        assert!(parse(&["--size", "huge"])
            .unwrap_err()
            .contains("full or tiny"));
        assert!(parse(&["--seconds"]).unwrap_err().contains("needs a value"));
    }
}
