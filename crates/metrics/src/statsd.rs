//! StatsD lines as tasks send them (`name:value|type[|@rate][|#tag:val,tag2:val2]`, the
//! DogStatsD tags the DC/OS statsd-emitter sends), parsed as dcos-metrics' Mesos module read
//! them (`mesos_module/avro_encoder.cpp`): a counter's value is divided by its sample rate,
//! any other type passes through, a tag without `:` has an empty value. Unlike the module,
//! a line whose value is not a finite number is dropped rather than read as 0, and every
//! length is bounded.

/// Bytes of a metric name at most.
pub const MAX_NAME: usize = 256;
/// Bytes of a tag's key or value at most.
pub const MAX_TAG: usize = 128;
/// Tags of one line at most.
pub const MAX_TAGS: usize = 16;

/// One StatsD sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The metric's name.
    pub name: String,
    /// Its value (a counter's divided by its sample rate).
    pub value: f64,
    /// Its type (`c`, `g`, `ms`, `h`, `s`, ...; empty if not given).
    pub kind: String,
    /// Its tags, in the order sent, duplicates left for the caller.
    pub tags: Vec<(String, String)>,
}

/// Every valid sample of a packet (lines separated by `\n`); invalid lines are skipped.
pub fn parse_packet(packet: &[u8]) -> impl Iterator<Item = Sample> + '_ {
    packet
        .split(|b| *b == b'\n')
        .filter_map(|line| std::str::from_utf8(line).ok())
        .filter_map(parse_line)
}

/// As [`parse_packet`], adding to `oversized` the lines dropped because their name or tags
/// exceed a bound ([`MAX_NAME`], [`MAX_TAGS`], [`MAX_TAG`]).
pub fn parse_packet_counting<'a>(
    packet: &'a [u8],
    oversized: &'a mut u64,
) -> impl Iterator<Item = Sample> + 'a {
    packet
        .split(|b| *b == b'\n')
        .filter_map(|line| std::str::from_utf8(line).ok())
        .filter_map(move |line| match parse(line) {
            Ok(s) => Some(s),
            Err(Rejected::Oversized) => {
                *oversized += 1;
                None
            }
            Err(Rejected::Invalid) => None,
        })
}

/// Why a line was not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rejected {
    /// Not a metric, or malformed.
    Invalid,
    /// A name or tag beyond a bound.
    Oversized,
}

/// One line; None if it is not a metric this collector keeps.
pub fn parse_line(line: &str) -> Option<Sample> {
    parse(line).ok()
}

fn parse(line: &str) -> Result<Sample, Rejected> {
    use Rejected::{Invalid, Oversized};
    let line = line.trim_end_matches('\r');
    // DogStatsD events and service checks are not metrics.
    if line.is_empty() || line.starts_with("_e{") || line.starts_with("_sc|") {
        return Err(Invalid);
    }
    let mut sections = line.split('|');
    let (name, value) = sections
        .next()
        .and_then(|s| s.split_once(':'))
        .ok_or(Invalid)?;
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(Invalid);
    }
    let mut value: f64 = value.trim().parse().map_err(|_| Invalid)?;
    if !value.is_finite() {
        return Err(Invalid);
    }
    // Checked after the value so that only metric lines count as oversized.
    let mut oversized = name.len() > MAX_NAME;
    let mut kind = String::new();
    let mut tags = Vec::new();
    for section in sections {
        if let Some(rate) = section.strip_prefix('@') {
            // Only counters are scaled: a sampled counter stands for 1/rate events.
            if kind == "c" {
                if let Ok(rate) = rate.parse::<f64>() {
                    if rate > 0.0 && rate.is_finite() {
                        value /= rate;
                    }
                }
            }
        } else if let Some(list) = section.strip_prefix('#') {
            for tag in list.split(',') {
                let (k, v) = tag.split_once(':').unwrap_or((tag, ""));
                if k.is_empty() && v.is_empty() {
                    continue;
                }
                if k.chars().chain(v.chars()).any(char::is_control) {
                    return Err(Invalid);
                }
                if tags.len() >= MAX_TAGS || k.len() > MAX_TAG || v.len() > MAX_TAG {
                    oversized = true;
                    continue;
                }
                tags.push((k.to_string(), v.to_string()));
            }
        } else if kind.is_empty() && section.len() <= 8 {
            kind = section.to_string();
        }
    }
    if !value.is_finite() {
        return Err(Invalid);
    }
    if oversized {
        return Err(Oversized);
    }
    Ok(Sample {
        name: name.to_string(),
        value,
        kind,
        tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_statsd_emitters_gauge_with_its_tag() {
        assert_eq!(
            parse_line("statsd_tester.time.uptime:1479588678444|g|#test_tag_key:test_tag_value"),
            Some(Sample {
                name: "statsd_tester.time.uptime".into(),
                value: 1_479_588_678_444.0,
                kind: "g".into(),
                tags: tags(&[("test_tag_key", "test_tag_value")]),
            })
        );
    }

    #[test]
    fn sampled_counters_are_scaled_and_other_types_are_not() {
        assert_eq!(parse_line("hits:3|c|@0.5").unwrap().value, 6.0);
        assert_eq!(parse_line("hits:3|c|@0").unwrap().value, 3.0);
        assert_eq!(parse_line("hits:3|c|@x").unwrap().value, 3.0);
        assert_eq!(parse_line("t:3|ms|@0.5").unwrap().value, 3.0);
        // A rate before the type is not applied (the module warns and passes it through).
        assert_eq!(parse_line("hits:3|@0.5|c").unwrap().value, 3.0);
    }

    #[test]
    fn tags_may_come_anywhere_and_may_lack_values() {
        let s = parse_line("m:1|c|#a:b,flag,,:x|@0.5").unwrap();
        assert_eq!(s.tags, tags(&[("a", "b"), ("flag", ""), ("", "x")]));
        assert_eq!(s.value, 2.0);
        assert_eq!(
            parse_line("m:1|#k:v:w").unwrap().tags,
            tags(&[("k", "v:w")])
        );
        assert_eq!(parse_line("m:-1.5e2").unwrap().value, -150.0);
        assert_eq!(parse_line("m:1\r").unwrap().value, 1.0);
    }

    #[test]
    fn garbage_is_skipped() {
        for line in [
            "",
            "novalue",
            ":1|c",
            "m:|c",
            "m:abc|g",
            "m:NaN|g",
            "m:inf|g",
            "m:1e999|g",
            "_e{5,4}:title|text",
            "_sc|name|0",
            "m\u{1}x:1|g",
            "m:1|g|#k\u{0}:v",
        ] {
            assert_eq!(parse_line(line), None, "{line:?}");
        }
        let long = format!("{}:1|g", "n".repeat(MAX_NAME + 1));
        assert_eq!(parse_line(&long), None);
        let many = format!("m:1|g|#{}", vec!["a:b"; MAX_TAGS + 1].join(","));
        assert_eq!(parse_line(&many), None);
        // A huge counter divided by a tiny rate overflows to infinity: dropped.
        assert_eq!(parse_line("m:1e308|c|@1e-10"), None);
    }

    #[test]
    fn oversized_lines_are_dropped_and_counted() {
        let name = |n: usize| "n".repeat(n);
        let tag = |n: usize| "t".repeat(n);
        let at_bounds = format!(
            "{}:1|g|#{}",
            name(MAX_NAME),
            vec![format!("{}:{}", tag(MAX_TAG), tag(MAX_TAG)); MAX_TAGS].join(",")
        );
        assert_eq!(parse_line(&at_bounds).unwrap().tags.len(), MAX_TAGS);
        let lines = [
            format!("{}:1|g", name(MAX_NAME + 1)),
            format!("m:1|g|#{}", vec!["a:b"; MAX_TAGS + 1].join(",")),
            format!("m:1|g|#{}:v", tag(MAX_TAG + 1)),
            format!("m:1|g|#k:{}", tag(MAX_TAG + 1)),
        ];
        for line in &lines {
            assert_eq!(parse_line(line), None, "{line:?}");
        }
        let packet = format!("ok:1|g\n{}\nbroken\nok2:1|g", lines.join("\n"));
        let mut oversized = 0;
        let names: Vec<String> = parse_packet_counting(packet.as_bytes(), &mut oversized)
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["ok", "ok2"]);
        assert_eq!(oversized, lines.len() as u64);
    }

    #[test]
    fn a_packet_holds_several_lines_and_bad_ones_do_not_spoil_the_rest() {
        let packet = b"a:1|c\n\xff\xfe:1|g\nb:2|g\n\nbroken\n";
        let names: Vec<String> = parse_packet(packet).map(|s| s.name).collect();
        assert_eq!(names, ["a", "b"]);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_without_panicking(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            for s in parse_packet(&bytes) {
                proptest::prop_assert!(s.value.is_finite());
                proptest::prop_assert!(!s.name.is_empty() && s.name.len() <= MAX_NAME);
                proptest::prop_assert!(s.tags.len() <= MAX_TAGS);
            }
        }

        #[test]
        fn statsd_shaped_text_parses_without_panicking(line in "[a-z.:|@#,0-9eE+-]{0,80}") {
            let _ = parse_line(&line);
        }
    }
}
