//! The human-readable dump: listeners with interface and owning process, connections grouped
//! by remote address, counters, and risky service ports flagged. Presentation only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;
use std::net::IpAddr;

use detect_agent::collect::custom::{CustomValue, Reading};
use detect_agent::collect::processes::Owner;
use detect_agent::collect::{Sample, Socket, SocketSource};
use detect_agent::detect::{BehaviorCheck, CheckOutcome, MetricValue};
use detect_agent::report::NetworkStats;

pub struct View<'a> {
    pub thing: &'a str,
    pub report_id: u64,
    pub sample: &'a Sample,
    pub owners: &'a HashMap<u64, Owner>,
    pub stats: Option<&'a NetworkStats>,
    pub delta_secs: Option<u64>,
    /// Custom metrics of this sample; the section is left out when there are none.
    pub custom: &'a [Reading],
}

/// Service ports that widen the attack surface of an IoT device.
pub fn risk(port: u16) -> Option<&'static str> {
    match port {
        23 | 2323 => Some("telnet"),
        22 => Some("ssh"),
        80 | 8080 | 8081 => Some("http"),
        443 => Some("https"),
        _ => None,
    }
}

pub fn render(v: &View) -> String {
    let mut out = String::new();
    let s = &v.sample.sockets;
    let source = match s.source {
        SocketSource::SockDiag => "netlink sock_diag",
        SocketSource::ProcNet => "/proc/net (fallback)",
    };
    let _ = writeln!(
        out,
        "thing {}  report id {}  sockets from {}",
        v.thing, v.report_id, source
    );
    listeners(&mut out, "LISTENING TCP", &s.tcp_listen, v.owners);
    listeners(&mut out, "LISTENING UDP", &s.udp_listen, v.owners);
    established(&mut out, &s.tcp_established, v.owners);
    counters(&mut out, v);
    custom_metrics(&mut out, v.custom);
    out
}

fn owner(owners: &HashMap<u64, Owner>, inode: u64) -> String {
    match owners.get(&inode) {
        Some(o) => format!("{}/{}", o.pid, o.name),
        None => "?".to_string(),
    }
}

fn listeners(out: &mut String, title: &str, socks: &[Socket], owners: &HashMap<u64, Owner>) {
    let _ = writeln!(out, "\n{title} ({})", socks.len());
    let _ = writeln!(
        out,
        "  {:<6} {:<40} {:<12} {:<24} RISK",
        "PORT", "ADDRESS", "INTERFACE", "PROCESS"
    );
    let mut rows: Vec<&Socket> = socks.iter().collect();
    rows.sort_by_key(|s| (s.local.port(), s.local.ip()));
    for s in rows {
        let flag = risk(s.local.port())
            .map(|r| format!("!! {r}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:<6} {:<40} {:<12} {:<24} {}",
            s.local.port(),
            s.local.ip(),
            s.interface.as_deref().unwrap_or("*"),
            owner(owners, s.inode),
            flag
        );
    }
}

fn established(out: &mut String, socks: &[Socket], owners: &HashMap<u64, Owner>) {
    #[derive(Default)]
    struct Group {
        count: usize,
        remote_ports: BTreeSet<u16>,
        processes: BTreeSet<String>,
    }
    let mut groups: BTreeMap<IpAddr, Group> = BTreeMap::new();
    for s in socks {
        let g = groups.entry(s.remote.ip()).or_default();
        g.count += 1;
        g.remote_ports.insert(s.remote.port());
        g.processes.insert(owner(owners, s.inode));
    }
    let _ = writeln!(
        out,
        "\nESTABLISHED TCP ({} connections, {} remote addresses)",
        socks.len(),
        groups.len()
    );
    let _ = writeln!(
        out,
        "  {:<40} {:>6}  {:<24} PROCESSES",
        "REMOTE ADDRESS", "CONNS", "REMOTE PORTS"
    );
    for (ip, g) in &groups {
        let _ = writeln!(
            out,
            "  {:<40} {:>6}  {:<24} {}",
            ip.to_string(),
            g.count,
            list(g.remote_ports.iter(), 6),
            list(g.processes.iter(), 4)
        );
    }
}

/// Joins up to `max` items, then "+N".
fn list<T: ToString>(items: impl ExactSizeIterator<Item = T>, max: usize) -> String {
    let n = items.len();
    let mut parts: Vec<String> = items.take(max).map(|i| i.to_string()).collect();
    if n > max {
        parts.push(format!("+{}", n - max));
    }
    parts.join(",")
}

fn counters(out: &mut String, v: &View) {
    let _ = writeln!(out, "\nCOUNTERS since boot (interfaces in network_stats)");
    let _ = writeln!(
        out,
        "  {:<16} {:>16} {:>16} {:>12} {:>12}",
        "INTERFACE", "BYTES IN", "BYTES OUT", "PKTS IN", "PKTS OUT"
    );
    for (name, c) in &v.sample.counters {
        let _ = writeln!(
            out,
            "  {:<16} {:>16} {:>16} {:>12} {:>12}",
            name, c.bytes_in, c.bytes_out, c.packets_in, c.packets_out
        );
    }
    match (v.stats, v.delta_secs) {
        (Some(d), Some(secs)) => {
            let _ = writeln!(
                out,
                "  {:<16} {:>16} {:>16} {:>12} {:>12}",
                format!("delta {secs}s"),
                d.bytes_in,
                d.bytes_out,
                d.packets_in,
                d.packets_out
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "  (no network_stats delta: one sample only; use --delta SECONDS)"
            );
        }
    }
}

/// `dump --profile`: each behavior judged on this one sample (criteria describe normal
/// behaviour: VIOLATING means the condition is false), with the offending elements.
pub fn detect_section(checks: &[BehaviorCheck]) -> String {
    let mut out = String::new();
    let violating = checks
        .iter()
        .filter(|c| matches!(c.outcome, CheckOutcome::Violating { .. }))
        .count();
    let _ = writeln!(
        out,
        "\nDETECT this sample ({} behaviors, {violating} violating; one sample: datapoint counts and traffic windows not applied)",
        checks.len()
    );
    let _ = writeln!(
        out,
        "  {:<24} {:<28} {:<14} WHY",
        "PROFILE", "BEHAVIOR", "RESULT"
    );
    for c in checks {
        let (result, why) = match &c.outcome {
            CheckOutcome::Normal { value } => {
                ("normal", format!("{} = {}", c.metric, shown(value)))
            }
            CheckOutcome::Violating { value, offending } => (
                "VIOLATING",
                format!(
                    "{}: {} (sample {})",
                    c.metric,
                    offending.join(","),
                    shown(value)
                ),
            ),
            CheckOutcome::NoDatapoint { why } => ("no datapoint", why.clone()),
            CheckOutcome::NotEvaluated { why } => ("not evaluated", why.clone()),
        };
        let _ = writeln!(
            out,
            "  {:<24} {:<28} {:<14} {why}",
            c.profile, c.behavior, result
        );
    }
    out
}

/// A metric value as plain text: `5`, `22,23`, `10.1.2.3,203.0.113.7` (at most 8 items).
fn shown(v: &MetricValue) -> String {
    fn items<T: std::fmt::Display>(xs: &[T]) -> String {
        if xs.is_empty() {
            return "[]".to_string();
        }
        list(xs.iter(), 8)
    }
    match v {
        MetricValue::Count(n) => n.to_string(),
        MetricValue::Number(x) => x.to_string(),
        MetricValue::Ports(p) => items(p),
        MetricValue::Cidrs(c) => items(c),
        MetricValue::Numbers(x) => items(x),
        MetricValue::Strings(s) => items(s),
    }
}

/// CUSTOM METRICS: name, type, value (lists: item count and the first items) or the error
/// that leaves the metric out of the report, and its source.
fn custom_metrics(out: &mut String, readings: &[Reading]) {
    if readings.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nCUSTOM METRICS ({})", readings.len());
    let _ = writeln!(
        out,
        "  {:<24} {:<16} {:<48} SOURCE",
        "NAME", "TYPE", "VALUE"
    );
    for r in readings {
        let value = match &r.value {
            Ok(CustomValue::Number(n)) => n.to_string(),
            Ok(CustomValue::NumberList(v)) => items(v.iter()),
            Ok(CustomValue::StringList(v)) => items(v.iter()),
            Ok(CustomValue::IpList(v)) => items(v.iter()),
            Err(e) => format!("error: {e}"),
        };
        let _ = writeln!(
            out,
            "  {:<24} {:<16} {:<48} {}",
            r.name,
            r.kind.name(),
            value,
            r.source
        );
    }
}

/// `[N] a,b,c,+M`: the item count, then up to eight items.
fn items<T: ToString>(v: impl ExactSizeIterator<Item = T>) -> String {
    format!("[{}] {}", v.len(), list(v, 8))
}

/// The ML MODELS section of `dump --profile`: one line per ML behavior (none: empty).
pub fn models_section(
    models: &[detect_agent::detect::ModelStatus],
    dir: &std::path::Path,
) -> String {
    let mut out = String::new();
    if models.is_empty() {
        return out;
    }
    let file = dir.join(detect_agent::state::MODELS_FILE);
    let _ = writeln!(
        out,
        "\nML MODELS (saved in {}, hourly and at stop)",
        file.display()
    );
    let _ = writeln!(out, "  {:<24} {:<28} STATUS", "PROFILE", "BEHAVIOR");
    for m in models {
        let _ = writeln!(
            out,
            "  {:<24} {:<28} {}",
            m.profile,
            m.behavior,
            m.model.describe()
        );
    }
    out
}
