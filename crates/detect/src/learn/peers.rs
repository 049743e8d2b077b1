//! Peer comparison (docs/ml.md, issue #19 item 3): a device whose own baseline is far above its
//! group's catches what its own model cannot, an attack present since it enrolled. Integers only.

use super::bucket::SPREAD_FLOOR;
use super::calibrate::{Confidence, Peers};
use super::explain::{Basis, Finding, FindingKind};
use super::fixed::{exp2m1, log2p1};
use super::model::{Model, Unit, WINDOW, hours};

/// Active peers needed before a group compares its devices with each other.
pub const MIN_PEERS: usize = 8;
/// 1.4826 in Q16: a median absolute deviation to a standard deviation.
const MAD_TO_SD: i64 = 97_163;

/// Spreads above the peers' centre per level.
fn spreads(c: Confidence) -> i64 {
    [3, 4, 5][c as usize]
}

/// The least ratio to the peers' usual per level: 8×, 12×, 20× (as `log2p1(ratio − 1)`).
fn ratio(c: Confidence) -> u64 {
    [8, 12, 20][c as usize]
}

impl Peers {
    /// From the active models among `models`: `None` under `MIN_PEERS` of them, or when the
    /// group is not one population, more than one in fifty (at least one) of them being
    /// beyond LOW's limit themselves (say cameras and plugs under one profile).
    pub fn calibrate(models: &[&Model]) -> Option<Peers> {
        let active = models.iter().filter(|m| m.active());
        Peers::from_centres(active.map(|m| i64::from(m.all.m)).collect())
    }

    /// `calibrate` from the active models' all-hours centres (`Model::all`).
    pub fn from_centres(mut centres: Vec<i64>) -> Option<Peers> {
        let n = centres.len();
        if n < MIN_PEERS {
            return None;
        }
        let centre = median(&mut centres);
        let mut dev: Vec<i64> = centres.iter().map(|c| (c - centre).abs()).collect();
        let spread = ((median(&mut dev) * MAD_TO_SD) >> 16).max(SPREAD_FLOOR);
        let limit =
            Confidence::ALL.map(|c| centre + (spreads(c) * spread).max(log2p1(ratio(c) - 1)));
        let beyond = centres.iter().filter(|&&c| c > limit[0]).count();
        if beyond > (n / 50).max(1) {
            return None;
        }
        Some(Peers {
            count: n as u32,
            centre,
            spread,
            limit,
        })
    }

    /// The highest level at which `model` (its last `WINDOW` datapoints in, before learning
    /// the latest) stands out from its peers, by more than `unit`'s floor as values too.
    pub fn judge(&self, model: &Model, unit: Unit) -> Option<Finding> {
        if usize::from(model.ring_len) < WINDOW {
            return None;
        }
        let hour: i64 = model.ring.iter().map(|s| i64::from(s.y)).sum::<i64>() / WINDOW as i64;
        let level = hour.min(i64::from(model.all.m));
        let (value, usual) = (exp2m1(level), exp2m1(self.centre));
        if value.saturating_sub(usual) <= unit.floor() {
            return None;
        }
        let c = Confidence::ALL
            .into_iter()
            .rev()
            .find(|c| level > self.limit[*c as usize])?;
        let in_spreads = |q: i64| ((q - self.centre) << 16) / self.spread;
        Some(Finding {
            kind: FindingKind::Peer,
            level: c,
            value,
            usual,
            score: in_spreads(level),
            threshold: in_spreads(self.limit[c as usize]),
            hour_of_week: hours(model.last_ms).0 as u8,
            basis: Basis::AllHours,
            days: (u64::from(model.seen) / model.per_day()) as u32,
            peers: self.count,
        })
    }
}

/// The lower median (sorts `v`, not empty).
fn median(v: &mut [i64]) -> i64 {
    v.sort_unstable();
    v[(v.len() - 1) / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_767_225_600_000;
    const STEP: u64 = 300_000;

    /// `days` of a device around `scale` bytes (±6 % jitter), from `start` datapoints on.
    fn device(days: u64, scale: u64, seed: u64) -> Model {
        let mut m = Model::default();
        for i in 0..days * 288 {
            let x = scale + scale * ((i * 7 + seed * 13) % 13) / 100;
            m.observe(T0 + i * STEP, x, Unit::Bytes);
        }
        m
    }

    /// Per-device scales of a homogeneous group: log-normal with σ 0.5 (ln), e^(±0.5·z).
    const SCALES: [u64; 12] = [
        30_000, 18_200, 49_500, 24_000, 37_500, 21_000, 43_000, 27_000, 33_000, 15_000, 60_000,
        30_500,
    ];

    fn group(extra: &[Model]) -> Vec<Model> {
        let mut v: Vec<Model> = (0..12).map(|i| device(2, SCALES[i], i as u64)).collect();
        v.extend_from_slice(extra);
        v
    }

    fn peers(models: &[Model]) -> Option<Peers> {
        Peers::calibrate(&models.iter().collect::<Vec<_>>())
    }

    #[test]
    fn a_device_40x_its_peers_alarms_high_and_one_at_3x_or_at_the_high_end_does_not() {
        let p = peers(&group(&[])).unwrap();
        for (i, &s) in SCALES.iter().enumerate() {
            assert_eq!(p.judge(&device(2, s, i as u64), Unit::Bytes), None, "{s}");
        }
        assert_eq!(p.judge(&device(2, 90_000, 1), Unit::Bytes), None, "3×");
        let f = p.judge(&device(2, 1_200_000, 1), Unit::Bytes).unwrap();
        assert_eq!(
            (f.kind, f.level, f.peers),
            (FindingKind::Peer, Confidence::High, 12)
        );
        let why = f.explain("aws:all-bytes-out");
        assert_eq!(
            why,
            "aws:all-bytes-out usual 1 270 993 is 40× the usual of its 12 peers (≈ 31 774; peer \
             comparison of this device's baseline and last hour, 2 days; 11.2 peer spreads > \
             HIGH 9.1)"
        );
        // Ten times its peers: LOW and MEDIUM (12×) apart.
        let f = p.judge(&device(2, 330_000, 1), Unit::Bytes).unwrap();
        assert_eq!(f.level, Confidence::Low);
        // Under an hour of datapoints: nothing yet.
        assert_eq!(p.judge(&device(0, 1, 1), Unit::Bytes), None);
    }

    #[test]
    fn the_compromised_device_among_the_peers_does_not_hide_itself() {
        let bad = device(2, 1_200_000, 5);
        let p = peers(&group(std::slice::from_ref(&bad))).unwrap();
        assert_eq!(p.count, 13);
        assert_eq!(p.judge(&bad, Unit::Bytes).unwrap().level, Confidence::High);
    }

    #[test]
    fn a_group_of_two_populations_or_too_few_peers_compares_nothing() {
        // Cameras among plugs: a fifth of the group 100× the rest.
        let cameras: Vec<Model> = (0..3).map(|i| device(2, 3_000_000, i)).collect();
        assert_eq!(peers(&group(&cameras)), None);
        let few: Vec<Model> = (0..7).map(|i| device(2, SCALES[i], i as u64)).collect();
        assert_eq!(peers(&few), None);
        // Pending models do not count.
        let mut pending = group(&[]);
        pending.truncate(7);
        pending.push(device(0, 30_000, 1));
        assert_eq!(peers(&pending), None);
    }

    #[test]
    fn a_device_back_in_line_for_an_hour_stops_alarming() {
        let p = peers(&group(&[])).unwrap();
        let mut m = device(2, 1_200_000, 1);
        let end = T0 + 2 * 288 * STEP;
        assert!(p.judge(&m, Unit::Bytes).is_some());
        for i in 0..12 {
            m.observe(end + i * STEP, 30_000, Unit::Bytes);
        }
        assert_eq!(p.judge(&m, Unit::Bytes), None);
    }
}
