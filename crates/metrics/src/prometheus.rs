//! The Prometheus text exposition (format 0.0.4) of 61091's `/metrics`: every datapoint as a
//! sample, its dimensions and tags as labels. Names are lowercased with every character but
//! `[a-z0-9_]` turned into `_`, as dcos-metrics' Prometheus producer does; beyond that, names
//! and types are chosen so that `promtool check metrics` finds nothing to say:
//!
//! - a name token that promlint reads as an abbreviated or non-base unit (`ms`, `kb`,
//!   `minutes`, `kilobytes`, ...) or as a type (`gauge`, `counter`, ...) is joined to the token
//!   before it (`latency_ms` becomes `latencyms`), a trailing type token dropped;
//! - a family is a `gauge`, or `untyped` when its name ends in `_total`, `_count`, `_sum` or
//!   `_bucket`, or a sample has an `le` or `quantile` label (names promlint keeps for
//!   counters, histograms and summaries: capacity totals like `memory_total` keep their
//!   names and dashboards keep working);
//! - label names are sanitized the same way, never start with `__`, and the first of two
//!   labels that sanitize alike wins; a series (name and labels) appears once.
//!
//! The Mesos master's and agent's `/metrics/snapshot` keys become `mesos_<key>` with a `role`
//! label (`master` or `agent`), Marathon's `/metrics` counters, gauges, histograms, meters and
//! timers become `marathon_<name>[_<field>]`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::Value as Json;

/// Help of the datapoints' families, as the real producer writes it.
pub const DATAPOINT_HELP: &str = "DC/OS Metrics Datapoint";

/// Unit abbreviations promlint refuses as a name token.
const ABBREVIATIONS: &[&str] = &[
    "s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h", "d",
];
/// Type names promlint refuses as a name token.
const TYPES: &[&str] = &["counter", "gauge", "histogram", "summary"];
/// Units promlint knows (every other is to be said in its base unit).
const BASE_UNITS: &[&str] = &[
    "amperes", "bytes", "celsius", "grams", "joules", "kelvin", "meters", "metres", "seconds",
    "volts",
];
const NON_BASE_UNITS: &[&str] = &[
    "minutes",
    "hours",
    "days",
    "weeks",
    "kelvins",
    "fahrenheit",
    "rankine",
    "inches",
    "yards",
    "miles",
    "bits",
    "calories",
    "pounds",
    "ounces",
];
const UNIT_PREFIXES: &[&str] = &[
    "pico", "nano", "micro", "milli", "centi", "deci", "deca", "hecto", "kilo", "kibi", "mega",
    "mibi", "giga", "gibi", "tera", "tebi", "peta", "pebi",
];

/// Whether promlint reads `token` as a unit other than a base unit.
fn is_bad_unit(token: &str) -> bool {
    if BASE_UNITS.contains(&token) {
        return false;
    }
    let is_unit = |t: &str| BASE_UNITS.contains(&t) || NON_BASE_UNITS.contains(&t);
    is_unit(token)
        || UNIT_PREFIXES
            .iter()
            .any(|p| token.strip_prefix(p).is_some_and(is_unit))
}

/// Whether promlint objects to `token` after an underscore.
fn is_bad_token(token: &str) -> bool {
    ABBREVIATIONS.contains(&token) || TYPES.contains(&token) || is_bad_unit(token)
}

/// Lowercase, every character but `[a-z0-9_]` as `_`, `_` before a leading digit.
pub fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A metric name promlint accepts: [`sanitize`]d, then tokens it objects to joined to the
/// one before (a trailing type name dropped, a leading unit given a prefix).
pub fn metric_name(raw: &str) -> String {
    let clean = sanitize(raw);
    let mut tokens: Vec<&str> = clean.split('_').collect();
    // `apps_active_gauge`: the type says nothing the TYPE line does not.
    while tokens.len() > 1 && tokens.last().is_some_and(|t| TYPES.contains(t)) {
        tokens.pop();
    }
    let mut out: Vec<String> = Vec::with_capacity(tokens.len());
    for t in tokens {
        match out.last_mut() {
            Some(last) if is_bad_token(t) => last.push_str(t),
            _ => out.push(t.to_string()),
        }
        // A join may make a token promlint objects to ("g" + "b"): join again.
        while out.len() > 1 && out.last().is_some_and(|t| is_bad_token(t)) {
            if let Some(t) = out.pop() {
                if let Some(last) = out.last_mut() {
                    last.push_str(&t);
                }
            }
        }
    }
    let mut name = out.join("_");
    // Only the first token is left to check: promlint still reads it as a unit.
    if name.split('_').next().is_some_and(is_bad_unit) {
        name.insert_str(0, "metric");
    }
    if name.is_empty() || name.chars().all(|c| c == '_') {
        return String::new();
    }
    name
}

/// A label name Prometheus accepts: [`sanitize`]d, never `__`-prefixed (reserved).
pub fn label_name(raw: &str) -> String {
    let mut name = sanitize(raw);
    while name.starts_with("__") {
        name.remove(0);
    }
    if name.is_empty() {
        name.push('_');
    }
    name
}

fn escape_label_value(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// A family's help and its samples (labels to value).
type Family = (String, BTreeMap<Vec<(String, String)>, f64>);

/// Samples gathered by family, then written out.
#[derive(Default)]
pub struct Exposition {
    families: BTreeMap<String, Family>,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Adds a sample; the first of a name gives its family's help. Labels with empty
    /// values are left out (Prometheus reads them as absent); a series already added keeps
    /// its first value.
    pub fn add<'a>(
        &mut self,
        name: &str,
        help: &str,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
        value: f64,
    ) {
        let name = metric_name(name);
        if name.is_empty() {
            return;
        }
        let mut set: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in labels {
            if v.is_empty() {
                continue;
            }
            set.entry(label_name(k)).or_insert_with(|| v.to_string());
        }
        let family = self
            .families
            .entry(name)
            .or_insert_with(|| (help.to_string(), BTreeMap::new()));
        family.1.entry(set.into_iter().collect()).or_insert(value);
    }

    /// Samples added.
    pub fn len(&self) -> usize {
        self.families.values().map(|f| f.1.len()).sum()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.families.is_empty()
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, (help, samples)) in &self.families {
            let untyped = ["_total", "_count", "_sum", "_bucket"]
                .iter()
                .any(|s| name.ends_with(s))
                || samples
                    .keys()
                    .any(|l| l.iter().any(|(k, _)| k == "le" || k == "quantile"));
            let kind = if untyped { "untyped" } else { "gauge" };
            let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                out.push_str(name);
                if !labels.is_empty() {
                    out.push('{');
                    for (i, (k, v)) in labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(k);
                        out.push_str("=\"");
                        escape_label_value(v, &mut out);
                        out.push('"');
                    }
                    out.push('}');
                }
                out.push(' ');
                out.push_str(&format_value(*value));
                out.push('\n');
            }
        }
        out
    }
}

/// The numeric values of a Mesos `/metrics/snapshot` (a flat object), by key.
pub fn snapshot_values(snapshot: &Json) -> Vec<(String, f64)> {
    let Some(map) = snapshot.as_object() else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_f64().filter(|v| v.is_finite())?)))
        .collect()
}

/// The numeric values of Marathon's `/metrics` (Dropwizard's JSON: `gauges`, `counters`,
/// `histograms`, `meters`, `timers`, each a map of name to fields), as (name, value): a
/// gauge's `value` and a counter's `count` under the metric's name, the other kinds' numeric
/// fields as `<name>.<field>`. A trailing `.gauge`, `.counter`, ... of a name is dropped.
pub fn marathon_values(metrics: &Json) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let strip = |name: &str| -> String {
        let mut n = name;
        for suffix in [".gauge", ".counter", ".histogram", ".meter", ".timer"] {
            n = n.strip_suffix(suffix).unwrap_or(n);
        }
        n.to_string()
    };
    for (kind, single) in [
        ("gauges", Some("value")),
        ("counters", Some("count")),
        ("histograms", None),
        ("meters", None),
        ("timers", None),
    ] {
        let Some(map) = metrics.get(kind).and_then(Json::as_object) else {
            continue;
        };
        for (name, fields) in map {
            let base = strip(name);
            match single {
                Some(field) => {
                    if let Some(v) = fields.get(field).and_then(Json::as_f64) {
                        out.push((base, v));
                    }
                }
                None => {
                    let Some(fields) = fields.as_object() else {
                        continue;
                    };
                    for (field, v) in fields {
                        if let Some(v) = v.as_f64() {
                            out.push((format!("{base}.{field}"), v));
                        }
                    }
                }
            }
        }
    }
    out.retain(|(_, v)| v.is_finite());
    out
}

/// The Marathon metric's name under its `marathon_` prefix (not doubled).
pub fn marathon_name(name: &str) -> String {
    if sanitize(name).starts_with("marathon_") {
        name.to_string()
    } else {
        format!("marathon.{name}")
    }
}

/// The labels a set of key/value pairs gives, each key once (the first wins).
pub fn dedup_labels<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<(&'a str, &'a str)> {
    let mut seen = BTreeSet::new();
    pairs
        .into_iter()
        .filter(|(k, _)| seen.insert(label_name(k)))
        .collect()
}

#[cfg(test)]
mod tests;
