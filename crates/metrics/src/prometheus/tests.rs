use serde_json::json;

use super::*;

#[test]
fn names_are_lowercased_with_illegal_characters_as_underscores() {
    assert_eq!(sanitize("cpu.total"), "cpu_total");
    assert_eq!(sanitize("master/cpus_used"), "master_cpus_used");
    assert_eq!(sanitize("Kafka.Server:Lag-Max"), "kafka_server_lag_max");
    assert_eq!(sanitize("5xx.rate"), "_5xx_rate");
    assert_eq!(sanitize("é"), "_");
}

#[test]
fn names_promlint_would_refuse_are_reshaped() {
    for (raw, want) in [
        ("filesystem.capacity.total", "filesystem_capacity_total"),
        ("load.1min", "load_1min"),
        (
            "allocator/mesos/allocation_run_ms/p50",
            "allocator_mesos_allocation_runms_p50",
        ),
        ("request.time.milliseconds", "request_timemilliseconds"),
        ("marathon.apps.active.gauge", "marathon_apps_active"),
        ("jvm.gauge.x", "jvmgauge_x"),
        ("disk.g.b", "diskgb"),
        ("minutes.up", "metricminutes_up"),
        ("up.seconds", "up_seconds"),
        ("x.kilobytes.y", "xkilobytes_y"),
        ("a.m1_rate", "a_m1_rate"),
        ("...", ""),
        ("gauge", "gauge"),
    ] {
        assert_eq!(metric_name(raw), want, "{raw}");
    }
}

#[test]
fn label_names_are_sanitized_and_never_reserved() {
    assert_eq!(label_name("container_id"), "container_id");
    assert_eq!(label_name("HAPROXY_GROUP"), "haproxy_group");
    assert_eq!(label_name("__name__"), "_name__");
    assert_eq!(label_name("my-tag"), "my_tag");
    assert_eq!(label_name(""), "_");
}

#[test]
fn the_exposition_has_help_type_and_escaped_labels() {
    let mut e = Exposition::new();
    e.add(
        "memory.total",
        DATAPOINT_HELP,
        [("hostname", "10.0.0.2")],
        8.0,
    );
    e.add(
        "cpu.idle",
        DATAPOINT_HELP,
        [("path", "/a \"b\"\\\nc"), ("empty", "")],
        99.5,
    );
    e.add("cpu.idle", DATAPOINT_HELP, [("path", "/a \"b\"\\\nc")], 1.0);
    e.add("h", "two\nlines", [("le", "1")], f64::INFINITY);
    assert_eq!(e.len(), 3);
    assert_eq!(
        e.render(),
        "# HELP cpu_idle DC/OS Metrics Datapoint\n\
         # TYPE cpu_idle gauge\n\
         cpu_idle{path=\"/a \\\"b\\\"\\\\\\nc\"} 99.5\n\
         # HELP h two\\nlines\n\
         # TYPE h untyped\n\
         h{le=\"1\"} +Inf\n\
         # HELP memory_total DC/OS Metrics Datapoint\n\
         # TYPE memory_total untyped\n\
         memory_total{hostname=\"10.0.0.2\"} 8\n"
    );
}

#[test]
fn snapshots_and_marathon_metrics_give_their_numbers() {
    let snap = json!({"master/cpus_used": 0.5, "master/elected": 1, "odd": "x", "n": null});
    let mut got = snapshot_values(&snap);
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("master/cpus_used".to_string(), 0.5),
            ("master/elected".to_string(), 1.0)
        ]
    );
    assert!(snapshot_values(&json!([1, 2])).is_empty());
    let marathon = json!({
        "version": "4.0.0",
        "gauges": {"marathon.apps.active.gauge": {"value": 3}, "jvm.threads": {"value": "x"}},
        "counters": {"service.requests": {"count": 7}},
        "histograms": {"h": {"count": 2, "p99": 1.5, "unit": "ms"}},
        "meters": {},
        "timers": "broken"
    });
    let mut got = marathon_values(&marathon);
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("h.count".to_string(), 2.0),
            ("h.p99".to_string(), 1.5),
            ("marathon.apps.active".to_string(), 3.0),
            ("service.requests".to_string(), 7.0),
        ]
    );
    assert_eq!(
        marathon_name("marathon.apps.active"),
        "marathon.apps.active"
    );
    assert_eq!(marathon_name("jvm.threads"), "marathon.jvm.threads");
}

#[test]
fn duplicate_label_keys_keep_the_first() {
    assert_eq!(
        dedup_labels([("a", "1"), ("A", "2"), ("b", "3")]),
        [("a", "1"), ("b", "3")]
    );
}

/// Names and labels from any source, checked by Debian's promtool when it is installed
/// (`apt-get install prometheus`); skipped otherwise.
#[test]
fn promtool_accepts_hostile_names_and_labels() {
    let mut e = Exposition::new();
    let names = [
        "memory.total",
        "x_count",
        "x_sum",
        "y_bucket",
        "allocator/mesos/allocation_run_ms",
        "latency.ms",
        "a.kb",
        "megabits.rate",
        "milliseconds",
        "Foo.BarBaz",
        "jvm.gauge",
        "my:metric",
        "9lives",
        "a__b",
        "x.histogram.y",
        "z_summary_count",
        "data.g.b",
        "t.hours",
        "ms",
    ];
    for (i, n) in names.iter().enumerate() {
        e.add(
            n,
            "help with \\ and\nnewline",
            [
                ("camelCase", "v"),
                ("__reserved", "x"),
                ("quote", "a\"b\\c\nd"),
                ("le", if i % 2 == 0 { "0.5" } else { "" }),
            ],
            i as f64 * 1.5,
        );
    }
    e.add("nan", "h", [], f64::NAN);
    e.add("big", "h", [], 1e300);
    crate::tests::promtool_check(&e.render());
}
