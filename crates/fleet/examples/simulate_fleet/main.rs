//! A seeded fleet simulator for `scripts/bench-ml` (issue #19 item 5): writes Device Defender
//! reports as `detect-fleet replay` JSON lines, a metric series (CSV) and the ground truth (JSON).
//!
//! `cargo run --release -p detect-fleet --example simulate_fleet -- --seed 1 --out r.jsonl
//! --truth truth.json --series series.csv [--devices 60] [--days 42]`; `--out -` is stdout.
//! Reports use short keys; `network_stats` are per-interval deltas (protocol doc §1.4).

mod fleet;
mod rng;

use std::fmt::Write as _;
use std::io::Write;

use anyhow::{Context, bail};
use fleet::{Device, Kind, STEP_MS, Span};

/// Monday 2026-01-05 00:00 UTC.
const T0_MS: u64 = 1_767_571_200_000;

struct Args {
    seed: u64,
    devices: usize,
    days: u64,
    out: String,
    truth: String,
    series: String,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        seed: 1,
        devices: 60,
        days: 42,
        out: "-".into(),
        truth: String::new(),
        series: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .with_context(|| format!("{flag}: a value is needed"))?;
        let number = |v: &str| {
            v.parse::<u64>()
                .with_context(|| format!("{flag} {v:?}: not a number"))
        };
        match flag.as_str() {
            "--seed" => a.seed = number(&value)?,
            "--devices" => a.devices = number(&value)? as usize,
            "--days" => a.days = number(&value)?,
            "--out" => a.out = value,
            "--truth" => a.truth = value,
            "--series" => a.series = value,
            _ => {
                bail!("unknown flag {flag:?} (--seed, --devices, --days, --out, --truth, --series)")
            }
        }
    }
    if a.truth.is_empty() || a.series.is_empty() || a.devices < 3 || a.days < 10 {
        bail!("--truth FILE and --series FILE are needed; --devices ≥ 3, --days ≥ 10");
    }
    Ok(a)
}

/// One report's numbers.
#[derive(Default)]
struct Sample {
    bo: f64,
    bi: f64,
    po: f64,
    pi: f64,
    conns: Vec<String>,
    ports: Vec<u16>,
}

fn sample(d: &mut Device, step: u64, spans: &[&Span]) -> Sample {
    let (out_peak, in_peak, packet, ports, usual) = d.kind.shape();
    let secs = step * STEP_MS / 1000 + d.offset_ms / 1000;
    let local = secs as f64 / 3600.0 + d.tz_hours;
    let hour = local.rem_euclid(24.0);
    let weekend = (local.div_euclid(24.0) as i64).rem_euclid(7) >= 5;
    let act = d.kind.rhythm(hour, weekend);
    let r = &mut d.rng;
    let usual_out = out_peak * d.scale * act;
    let mut s = Sample {
        bo: usual_out * r.lognormal(0.0, 0.35),
        bi: in_peak * d.scale * act.sqrt() * r.lognormal(0.0, 0.35),
        ports: ports.to_vec(),
        ..Sample::default()
    };
    let extra = if d.kind == Kind::Gateway {
        r.below(5) as u32
    } else {
        u32::from(r.uniform() < 0.1)
    };
    for c in 0..usual.saturating_sub(2) + extra {
        s.conns.push(format!("10.0.1.{}:{}", 10 + c, 40000 + c));
    }
    s.conns.push("198.51.100.7:8883".into());
    let (mut po_extra, mut pi_extra) = (0.0, 0.0);
    for span in spans {
        let x = span.size;
        match span.kind {
            "firmware" => {
                s.bi += x;
                pi_extra += x / 1400.0;
                s.conns.push("198.51.100.20:443".into());
            }
            "backup" => {
                s.bo += x;
                po_extra += x / 1400.0;
                s.conns.push("198.51.100.30:443".into());
            }
            "port_scan" => {
                s.bo += 1.92e6 * x * r.lognormal(0.0, 0.1);
                po_extra += 48_000.0 * x;
                s.bi += 192_000.0 * x;
                pi_extra += 4_800.0 * x;
                for k in 0..10 + r.below(50) {
                    s.conns.push(format!("100.64.{}.{}:23", r.below(250), k));
                }
            }
            "ddos" => {
                s.bo += x * r.lognormal(0.0, 0.1);
                po_extra += x / 120.0;
            }
            "exfiltration" => {
                s.bo += (x - 1.0) * usual_out;
                po_extra += (x - 1.0) * usual_out / 1400.0;
                s.conns.push("203.0.113.9:443".into());
            }
            "c2_heartbeat" => {
                s.bo += x * r.lognormal(0.0, 0.2);
                s.bi += 1_500.0;
                po_extra += 20.0;
                pi_extra += 15.0;
                s.conns.push("203.0.113.66:6667".into());
            }
            _ => s.ports.push(x as u16),
        }
    }
    s.po = (s.bo / packet).max(2.0) * r.lognormal(0.0, 0.1) + po_extra;
    s.pi = (s.bi / packet).max(2.0) * r.lognormal(0.0, 0.1) + pi_extra;
    s
}

fn line(d: &Device, id: u64, s: &Sample, first: bool) -> String {
    let mut o = format!("{{\"thing\":\"{}\",", d.name);
    if first {
        let _ = write!(o, "\"groups\":[\"{}\"],", d.kind.name());
    }
    let ports: Vec<String> = s.ports.iter().map(|p| format!("{{\"pt\":{p}}}")).collect();
    let udp = if d.kind == Kind::Gateway {
        "{\"pt\":5683}"
    } else {
        ""
    };
    let conns: Vec<String> = s
        .conns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{{\"rad\":\"{c}\",\"lp\":{}}}", 50000 + i))
        .collect();
    let _ = write!(
        o,
        "\"report\":{{\"hed\":{{\"rid\":{id},\"v\":\"1.0\"}},\"met\":{{\"tp\":{{\"pts\":[{}],\"t\":{}}},\"up\":{{\"pts\":[{udp}],\"t\":{}}},\"ns\":{{\"bi\":{},\"bo\":{},\"pi\":{},\"po\":{}}},\"tc\":{{\"ec\":{{\"cs\":[{}],\"t\":{}}}}}}}}}}}",
        ports.join(","),
        ports.len(),
        usize::from(!udp.is_empty()),
        s.bi.round() as u64,
        s.bo.round() as u64,
        s.pi.round() as u64,
        s.po.round() as u64,
        conns.join(","),
        conns.len()
    );
    o
}

fn span_json(devices: &[Device], s: &Span) -> serde_json::Value {
    let d = &devices[s.device];
    let at = |step: u64| T0_MS + step * STEP_MS + d.offset_ms;
    serde_json::json!({"thing": d.name, "kind": s.kind, "start_ms": at(s.start), "end_ms": at(s.end), "size": s.size})
}

fn main() -> anyhow::Result<()> {
    let a = args()?;
    let steps = a.days * 288;
    let mut devices = fleet::devices(a.seed, a.devices);
    let bursts = fleet::bursts(a.seed, &devices, steps);
    let attacks = fleet::attacks(a.seed, &devices, steps);
    let mut order: Vec<usize> = (0..devices.len()).collect();
    order.sort_by_key(|i| devices[*i].offset_ms);
    let mut out: Box<dyn Write> = match a.out.as_str() {
        "-" => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        p => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("--out {p}"))?,
        )),
    };
    let mut series = std::io::BufWriter::new(
        std::fs::File::create(&a.series).with_context(|| format!("--series {}", a.series))?,
    );
    writeln!(
        series,
        "device,step,bytes_out,bytes_in,packets_out,packets_in,tcp_ports,connections"
    )?;
    for step in 0..steps {
        for &i in &order {
            let active: Vec<&Span> = bursts
                .iter()
                .chain(&attacks)
                .filter(|s| s.device == i && (s.start..s.end).contains(&step))
                .collect();
            let d = &mut devices[i];
            let s = sample(d, step, &active);
            let id = T0_MS + step * STEP_MS + d.offset_ms;
            writeln!(out, "{}", line(d, id, &s, step == 0)).context("writing reports")?;
            writeln!(
                series,
                "{i},{step},{},{},{},{},{},{}",
                s.bo.round(),
                s.bi.round(),
                s.po.round(),
                s.pi.round(),
                s.ports.len(),
                s.conns.len()
            )?;
        }
    }
    out.flush().context("writing reports")?;
    series.flush()?;
    let truth = serde_json::json!({
        "seed": a.seed, "start_ms": T0_MS, "step_ms": STEP_MS, "steps": steps,
        "devices": devices.iter().map(|d| serde_json::json!({"thing": d.name, "kind": d.kind.name(), "offset_ms": d.offset_ms})).collect::<Vec<_>>(),
        "attacks": attacks.iter().map(|s| span_json(&devices, s)).collect::<Vec<_>>(),
        "bursts": bursts.iter().map(|s| span_json(&devices, s)).collect::<Vec<_>>(),
    });
    std::fs::write(&a.truth, serde_json::to_vec_pretty(&truth)?)
        .with_context(|| format!("--truth {}", a.truth))?;
    Ok(())
}
