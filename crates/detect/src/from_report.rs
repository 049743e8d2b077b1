//! A device report as an observation: the datapoint of each `aws:` device-side metric
//! (detect-rules §3.1) and custom metric (§3.2) in one report. Judges nothing.

use super::metrics::{CustomKind, Datapoint, Kind, MetricRef, Source, traffic};
use super::observation::Observation;
/// IPv4-mapped IPv6 addresses are matched and shown as IPv4 (§3.1 notes).
use protocol::model::unmap_ip as unmap;
use protocol::{CustomValue, NetworkStats, Report};

/// `datapoint` is `None` when the report lacks the section or custom metric (§4.6). Traffic
/// metrics give this report's delta. A custom metric whose reported type differs from the
/// profile's gives none.
impl Observation for Report {
    fn id(&self) -> u64 {
        self.header.report_id
    }

    fn datapoint(&self, metric: &MetricRef) -> Option<Datapoint> {
        match metric {
            MetricRef::Aws(spec) => extract_aws(spec.source, self),
            MetricRef::Custom { name, kind } => {
                extract_custom(*kind, self.custom_metrics.get(name)?)
            }
            MetricRef::Cloud(_) => None,
        }
    }

    /// `metrics.network_stats` must be the traffic since the previous *sample* (issue #8
    /// item 2): a delta that rolls an outage's unsettled traffic into one report would fake a
    /// spike.
    fn traffic(&self) -> Option<NetworkStats> {
        self.metrics.network_stats
    }

    fn missing(&self, metric: &MetricRef) -> String {
        match metric {
            MetricRef::Aws(spec) if spec.kind == Kind::Traffic => {
                "no network_stats in this sample (a delta needs two samples: dump --delta)".into()
            }
            MetricRef::Aws(spec) => format!("the report has no section for {}", spec.name),
            MetricRef::Custom { name, kind } => {
                format!(
                    "no custom metric {name:?} of type {} in the report",
                    kind.name()
                )
            }
            MetricRef::Cloud(c) => format!(
                "{} is cloud-side: the broker measures it, not the report",
                c.metric.name()
            ),
        }
    }
}

fn extract_aws(source: Source, report: &Report) -> Option<Datapoint> {
    let m = &report.metrics;
    let missing = &m.missing;
    let stats = || m.network_stats.as_ref();
    Some(match source {
        // `total` wins over the list length: lists may be sampled (§3.1 notes); a decoded report
        // without `total` has it filled from the list (report::decode).
        Source::TcpPortCount if !missing.listening_tcp_ports => {
            Datapoint::Count(m.listening_tcp_ports.total)
        }
        Source::UdpPortCount if !missing.listening_udp_ports => {
            Datapoint::Count(m.listening_udp_ports.total)
        }
        Source::EstablishedCount if !missing.tcp_connections => {
            Datapoint::Count(m.established.total)
        }
        // Interface ignored, duplicates collapse (§3.1).
        Source::TcpPorts if !missing.listening_tcp_ports => {
            Datapoint::Ports(sorted(m.listening_tcp_ports.ports.iter().map(|p| p.port)))
        }
        Source::UdpPorts if !missing.listening_udp_ports => {
            Datapoint::Ports(sorted(m.listening_udp_ports.ports.iter().map(|p| p.port)))
        }
        // Addresses of the listed connections, port dropped, IPv4-mapped read as IPv4.
        Source::DestinationIps if !missing.tcp_connections => Datapoint::Addresses(sorted(
            m.established
                .connections
                .iter()
                .map(|c| unmap(c.remote.ip())),
        )),
        _ => Datapoint::Count(traffic(source, stats()?)?),
    })
}

fn extract_custom(kind: CustomKind, value: &CustomValue) -> Option<Datapoint> {
    Some(match (kind, value) {
        (CustomKind::Number, CustomValue::Number(x)) => Datapoint::Number(*x),
        (CustomKind::NumberList, CustomValue::NumberList(xs)) => {
            let mut xs = xs.clone();
            xs.sort_by(f64::total_cmp);
            xs.dedup();
            Datapoint::Numbers(xs)
        }
        (CustomKind::StringList, CustomValue::StringList(xs)) => {
            Datapoint::Strings(sorted(xs.iter().cloned()))
        }
        (CustomKind::IpAddressList, CustomValue::IpList(ips)) => {
            Datapoint::Addresses(sorted(ips.iter().map(|ip| unmap(*ip))))
        }
        _ => return None,
    })
}

fn sorted<T: Ord>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut v: Vec<T> = items.collect();
    v.sort_unstable();
    v.dedup();
    v
}
