//! The Prometheus text exposition format of `metrics::Metrics` (version 0.0.4): one HELP and
//! TYPE line per metric, then its samples. The names and labels are listed in docs/fleet.md.

use crate::metrics::{View, buckets, sample};

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
}

pub(crate) fn render(m: &crate::metrics::Inner) -> String {
    let v: View = m.view();
    let mut out = String::with_capacity(4096);
    let alarms = [
        (
            "detect_fleet_alarms_raised_total",
            "Alarms raised (in-alarm events; AWS's Violations metric).",
        ),
        (
            "detect_fleet_alarms_cleared_total",
            "Alarms cleared (alarm-cleared events; AWS's ViolationsCleared).",
        ),
        (
            "detect_fleet_alarms_invalidated_total",
            "Alarms invalidated (alarm-invalidated events; AWS's ViolationsInvalidated).",
        ),
    ];
    for (i, (name, help)) in alarms.iter().enumerate() {
        head(&mut out, name, "counter", help);
        for ((profile, behavior), counts) in &v.alarms {
            let labels = [
                ("security_profile", profile.as_str()),
                ("behavior", behavior.as_str()),
            ];
            sample(&mut out, name, &labels, counts[i]);
        }
    }
    head(
        &mut out,
        "detect_fleet_reports_total",
        "counter",
        "Reports judged by this instance, by outcome (accepted, rejected, replayed) and the rejection's error code.",
    );
    for ((outcome, code), n) in v.reports {
        let labels = [("outcome", *outcome), ("error_code", *code)];
        sample(&mut out, "detect_fleet_reports_total", &labels, n);
    }
    let name = "detect_fleet_report_handling_seconds";
    head(
        &mut out,
        name,
        "histogram",
        "Time to judge one report and commit its outcome (the batch's sync excluded).",
    );
    let (counts, count, sum) = v.latency;
    let mut cumulative = 0;
    for (le, n) in buckets().iter().zip(counts) {
        cumulative += n;
        sample(
            &mut out,
            &format!("{name}_bucket"),
            &[("le", &le.to_string())],
            cumulative,
        );
    }
    sample(
        &mut out,
        &format!("{name}_bucket"),
        &[("le", "+Inf")],
        count,
    );
    sample(&mut out, &format!("{name}_sum"), &[], sum);
    sample(&mut out, &format!("{name}_count"), &[], count);
    for (name, help, map) in [
        (
            "detect_fleet_alerts_sent_total",
            "Alarm events delivered, by sink (mqtt, webhook).",
            v.alerts_sent,
        ),
        (
            "detect_fleet_alert_delivery_failures_total",
            "Failed alert delivery attempts, by sink (each is retried).",
            v.alert_failures,
        ),
        (
            "detect_fleet_http_requests_refused_total",
            "HTTP requests refused before being served, by reason.",
            v.http_refused,
        ),
    ] {
        head(&mut out, name, "counter", help);
        let label = if name.contains("http") {
            "reason"
        } else {
            "sink"
        };
        for (k, n) in map {
            sample(&mut out, name, &[(label, k)], n);
        }
    }
    if let Some(g) = v.gauges {
        gauges(&mut out, g);
    }
    out
}

fn gauges(out: &mut String, g: &crate::metrics::Gauges) {
    let name = "detect_fleet_active_alarms";
    head(
        out,
        name,
        "gauge",
        "Alarms active now (in the store, all instances).",
    );
    for ((profile, behavior), n) in &g.active {
        let labels = [
            ("security_profile", profile.as_str()),
            ("behavior", behavior.as_str()),
        ];
        sample(out, name, &labels, n);
    }
    let name = "detect_fleet_alerts_waiting";
    head(
        out,
        name,
        "gauge",
        "Alarm events not yet delivered, by sink (counted up to 1000).",
    );
    for (sink, n) in &g.alerts_waiting {
        sample(out, name, &[("sink", sink)], n);
    }
    for (name, help, value) in [
        (
            "detect_fleet_things_registered",
            "Things in the registry (things add).",
            g.things_registered,
        ),
        (
            "detect_fleet_things_reporting",
            "Things whose last accepted report is at most 2 x [fleet] min_interval_secs old.",
            g.things_reporting,
        ),
    ] {
        head(out, name, "gauge", help);
        sample(out, name, &[], value);
    }
    if let Some(bytes) = g.store_bytes {
        let name = "detect_fleet_store_size_bytes";
        head(
            out,
            name,
            "gauge",
            "The SQLite store's size on disk (database and WAL).",
        );
        sample(out, name, &[], bytes);
    }
    let name = "detect_fleet_gauges_refreshed_timestamp_seconds";
    head(
        out,
        name,
        "gauge",
        "When the gauges above were last read from the store.",
    );
    sample(out, name, &[], g.refreshed_s);
    let name = "detect_fleet_gauges_read_seconds";
    head(
        out,
        name,
        "gauge",
        "How long the last read of the gauges from the store took.",
    );
    sample(out, name, &[], g.read_s);
}
