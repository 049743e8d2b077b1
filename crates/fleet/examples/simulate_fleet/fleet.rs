//! The simulated fleet's devices (kinds, scale, daily and weekly rhythm) and what happens to
//! them (labelled benign bursts, injected attacks), drawn from one seed. No I/O.

use super::rng::Rng;

pub const STEP_MS: u64 = 300_000;
const DAY_STEPS: u64 = 288;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Camera,
    Gateway,
    Plug,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Camera, Kind::Gateway, Kind::Plug];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Camera => "camera",
            Kind::Gateway => "gateway",
            Kind::Plug => "plug",
        }
    }

    /// (bytes out, bytes in) per 300 s at the daily peak, before the device's own scale;
    /// average packet size; listening TCP ports; usual established connections.
    pub fn shape(self) -> (f64, f64, f64, &'static [u16], u32) {
        match self {
            Kind::Camera => (1_500_000.0, 60_000.0, 1_100.0, &[80, 554], 2),
            Kind::Gateway => (60_000.0, 25_000.0, 300.0, &[22, 1883], 8),
            Kind::Plug => (900.0, 600.0, 120.0, &[80], 1),
        }
    }

    /// Activity in [0.1, 1] at `hour` (local, fractional) of a `weekend` day or not.
    pub fn rhythm(self, hour: f64, weekend: bool) -> f64 {
        let bell = |centre: f64, width: f64| {
            let d = (hour - centre).abs().min(24.0 - (hour - centre).abs());
            (-(d * d) / (2.0 * width * width)).exp()
        };
        match self {
            // Homes: evenings, more at weekends.
            Kind::Camera => 0.25 + 0.75 * bell(19.0, 3.5) * if weekend { 1.0 } else { 0.8 },
            // A building's sensors: office hours on weekdays.
            Kind::Gateway => 0.3 + 0.7 * bell(13.0, 3.0) * if weekend { 0.2 } else { 1.0 },
            Kind::Plug => 0.1 + 0.9 * (bell(7.5, 1.0) + bell(20.0, 2.0)).min(1.0),
        }
    }
}

pub struct Device {
    pub name: String,
    pub kind: Kind,
    pub scale: f64,
    /// Hours added to UTC for its rhythm (homes in a few time zones).
    pub tz_hours: f64,
    /// Its reports' offset in the 300 s interval (agents spread their reports).
    pub offset_ms: u64,
    pub rng: Rng,
}

/// A span of steps [start, end) on one device.
#[derive(Clone, Debug)]
pub struct Span {
    pub device: usize,
    pub kind: &'static str,
    pub start: u64,
    pub end: u64,
    /// Bytes (or connections, or ports) added per step, by kind.
    pub size: f64,
}

pub const ATTACKS: [&str; 5] = [
    "port_scan",
    "ddos",
    "exfiltration",
    "c2_heartbeat",
    "new_listener",
];

pub fn devices(seed: u64, n: usize) -> Vec<Device> {
    let mut r = Rng::new(seed ^ 0xdead_beef);
    (0..n)
        .map(|i| {
            let kind = Kind::ALL[i % 3];
            Device {
                name: format!("{}-{:03}", kind.name(), i),
                kind,
                scale: r.lognormal(0.0, 0.5),
                tz_hours: [0.0, 1.0, 2.0, -5.0][r.below(4) as usize],
                offset_ms: r.below(STEP_MS),
                rng: Rng::new(seed.wrapping_mul(0x9e37_79b9).wrapping_add(i as u64 + 1)),
            }
        })
        .collect()
}

/// Benign bursts: per device backups/uploads (about one in four days, Pareto sizes) and one
/// firmware rollout per kind (every device of the kind within six hours of one day).
pub fn bursts(seed: u64, devices: &[Device], steps: u64) -> Vec<Span> {
    let mut r = Rng::new(seed ^ 0xb0b);
    let mut out = Vec::new();
    let rollout = |r: &mut Rng| r.below(steps / DAY_STEPS - 8) * DAY_STEPS + 8 * DAY_STEPS;
    let days: Vec<u64> = Kind::ALL.iter().map(|_| rollout(&mut r)).collect();
    for (i, d) in devices.iter().enumerate() {
        let (out_peak, in_peak, ..) = d.kind.shape();
        let day = days[Kind::ALL.iter().position(|k| *k == d.kind).unwrap_or(0)];
        let start = day + r.below(72);
        let firmware = in_peak.max(2_000.0) * 40.0 * r.pareto(1.5);
        out.push(Span {
            device: i,
            kind: "firmware",
            start,
            end: start + 1 + r.below(3),
            size: firmware,
        });
        let mut t = (r.exponential(4.0) * DAY_STEPS as f64) as u64;
        while t < steps {
            let len = 1 + r.below(6);
            let size = out_peak * d.scale * 4.0 * r.pareto(1.2);
            out.push(Span {
                device: i,
                kind: "backup",
                start: t,
                end: (t + len).min(steps),
                size,
            });
            t += len + (r.exponential(4.0) * DAY_STEPS as f64) as u64;
        }
    }
    out
}

/// One attack on about three devices in four, kinds in turn, one in five in days 1–6.
pub fn attacks(seed: u64, devices: &[Device], steps: u64) -> Vec<Span> {
    let mut r = Rng::new(seed ^ 0xa77ac);
    let mut out = Vec::new();
    let mut k = r.below(5) as usize;
    for i in 0..devices.len() {
        if r.uniform() > 0.75 {
            continue;
        }
        let kind = ATTACKS[k % 5];
        k += 1;
        let first_week = r.uniform() < 0.2;
        let earliest = if first_week { DAY_STEPS } else { 7 * DAY_STEPS };
        let latest = if first_week {
            6 * DAY_STEPS
        } else {
            steps - 3 * DAY_STEPS
        };
        let start = earliest + r.below(latest - earliest);
        let (len, size) = match kind {
            // Mirai: 160 SYN/s of 40 bytes, 1–6 h; brute-force sessions.
            "port_scan" => (12 + r.below(61), 0.5 + r.uniform()),
            // 10–30 MB in 5–30 min.
            "ddos" => {
                let len = 1 + r.below(6);
                (len, (10e6 + 20e6 * r.uniform()) / len as f64)
            }
            // 3× the device's own bytes out for 6 h.
            "exfiltration" => (72, 3.0),
            // +2.6 KB per 5 min to one C&C address for 2 days.
            "c2_heartbeat" => (576, 2_600.0),
            // A new listening TCP port (Mirai's 48101, or a rebound telnet) for 6 h–2 days.
            _ => (
                72 + r.below(505),
                [48101.0, 23.0, 2323.0][r.below(3) as usize],
            ),
        };
        out.push(Span {
            device: i,
            kind,
            start,
            end: (start + len).min(steps),
            size,
        });
    }
    out
}
