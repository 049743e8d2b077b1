//! `detect-fleet models` (issue #19 item 3): a status per ML behavior like AWS's
//! `GetBehaviorModelTrainingSummaries`, summed over the per-thing models in the stored records.

use std::collections::BTreeMap;

use detect::learn::calibrate::Peers;
use detect::learn::{Model, persist};
use detect::{EngineState, Profile};

/// A model with no datapoint for this long is stale (`EXPIRED`, docs/fleet.md).
pub const EXPIRY_MS: u64 = 30 * 86_400_000;

/// One ML behavior's status across the things its profile watches.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub security_profile_name: String,
    pub behavior_name: String,
    pub metric: String,
    /// `PENDING_BUILD`, `ACTIVE` or `EXPIRED`.
    pub model_status: &'static str,
    /// 0–100: the mean over the watched things of each one's first day collected.
    pub datapoints_collection_percentage: u64,
    /// Epoch ms of the newest datapoint learned by an active model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_model_refresh_date: Option<u64>,
    /// Things with an active model that learned within `EXPIRY_MS`.
    pub things_active: usize,
    /// Things the profile watches that reported (their records hold its engine state).
    pub things_total: usize,
    /// Enough active models (`learn::group::MIN_PEERS`) for group thresholds: a new thing
    /// judges with them on its first day (docs/ml.md, group calibration).
    pub group_calibrated: bool,
    /// The group also compares each thing with its peers: at least 8 active models, no
    /// small minority of them standing out (`learn::peers`, docs/ml.md#peer-comparison).
    pub peer_comparison: bool,
}

/// Totals for one behavior while the records are scanned.
#[derive(Default)]
struct Tally {
    total: usize,
    active: usize,
    percent_sum: u64,
    any_model: bool,
    any_fresh: bool,
    refresh: Option<u64>,
    /// Active models, fresh or not (what group calibration counts).
    active_any: usize,
    /// Their all-hours centres (what the peer comparison compares).
    centres: Vec<i64>,
}

impl Tally {
    fn add(&mut self, model: Option<&Model>, now_ms: u64) {
        self.total += 1;
        let Some(m) = model else { return };
        self.any_model = true;
        let fresh = now_ms.saturating_sub(m.last_ms) <= EXPIRY_MS;
        self.any_fresh |= fresh;
        self.percent_sum += (u64::from(m.seen) * 100 / m.per_day()).min(100);
        if m.active() {
            self.active_any += 1;
            self.centres.push(i64::from(m.all.m));
            self.refresh = self.refresh.max(Some(m.last_ms));
            self.active += usize::from(fresh);
        }
    }

    fn status(&self) -> &'static str {
        if self.active > 0 {
            "ACTIVE"
        } else if self.any_model && !self.any_fresh {
            "EXPIRED"
        } else {
            "PENDING_BUILD"
        }
    }
}

/// True for a behavior whose criteria are `mlDetectionConfig` (detect-rules §5).
pub fn is_ml(json: &serde_json::Value) -> bool {
    json.pointer("/criteria/mlDetectionConfig").is_some()
}

/// The status of every ML behavior of `profiles`, from the engine states of `records` (thing
/// name, state per profile name), at `now_ms`. A model that does not decode counts as none
/// and is logged with its thing.
pub fn summaries<'a>(
    profiles: &[Profile],
    records: impl IntoIterator<Item = (&'a str, &'a BTreeMap<String, EngineState>)>,
    now_ms: u64,
) -> Vec<Summary> {
    let mut tallies: BTreeMap<(&str, &str), Tally> = BTreeMap::new();
    for p in profiles {
        for b in p.behaviors.iter().filter(|b| is_ml(&b.json)) {
            tallies.insert((&p.name, &b.name), Tally::default());
        }
    }
    for (thing, states) in records {
        for (profile, state) in states {
            let decoded: BTreeMap<&str, Model> = state
                .models
                .iter()
                .filter(|m| &m.profile == profile)
                .filter_map(|m| match persist::from_hex(&m.model) {
                    Ok(model) => Some((m.behavior.as_str(), model)),
                    Err(e) => {
                        tracing::warn!(thing, profile = %profile, behavior = %m.behavior, "stored model unreadable: {e}");
                        None
                    }
                })
                .collect();
            for ((_, behavior), tally) in tallies
                .range_mut((profile.as_str(), "")..)
                .take_while(|((p, _), _)| *p == profile.as_str())
            {
                tally.add(decoded.get(behavior), now_ms);
            }
        }
    }
    let mut out = Vec::new();
    for p in profiles {
        for b in p.behaviors.iter().filter(|b| is_ml(&b.json)) {
            let t = &tallies[&(p.name.as_str(), b.name.as_str())];
            out.push(Summary {
                security_profile_name: p.name.clone(),
                behavior_name: b.name.clone(),
                metric: b.metric.clone(),
                model_status: t.status(),
                datapoints_collection_percentage: t.percent_sum / t.total.max(1) as u64,
                last_model_refresh_date: t.refresh,
                things_active: t.active,
                things_total: t.total,
                group_calibrated: t.active_any >= detect::learn::group::MIN_PEERS,
                peer_comparison: Peers::from_centres(t.centres.clone()).is_some(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use detect::SavedModel;
    use detect::learn::Unit;
    use serde_json::json;

    use super::*;

    const T0: u64 = 1_800_000_000_000;

    fn profile() -> Profile {
        let doc = json!({"securityProfileName": "ml", "behaviors": [
            {"name": "out", "metric": "aws:all-bytes-out",
             "criteria": {"mlDetectionConfig": {"confidenceLevel": "MEDIUM"}}},
            {"name": "no-8080", "metric": "aws:listening-tcp-ports",
             "criteria": {"comparisonOperator": "not-in-port-set",
                          "value": {"ports": [8080]}}}]});
        detect::profile::parse(&doc.to_string(), Path::new("ml.json"))
            .unwrap()
            .0
    }

    /// A record's states holding one model of `n` datapoints at 300 s (none for `None`).
    fn states(n: Option<u64>) -> BTreeMap<String, EngineState> {
        let mut state = EngineState::default();
        if let Some(n) = n {
            let mut m = Model::default();
            for i in 0..n {
                m.observe(T0 + i * 300_000, 5_000, Unit::Bytes);
            }
            state.models.push(SavedModel {
                profile: "ml".into(),
                behavior: "out".into(),
                metric: "aws:all-bytes-out".into(),
                model: persist::to_hex(&m).into(),
            });
        }
        BTreeMap::from([("ml".to_string(), state)])
    }

    #[test]
    fn pending_until_a_thing_has_a_day_then_active_then_expired_after_30_silent_days() {
        let p = [profile()];
        let (a, b, c) = (states(Some(288)), states(Some(144)), states(None));
        let last = T0 + 287 * 300_000;
        let all = [("a", &a), ("b", &b), ("c", &c)];
        let s = summaries(&p, all, last);
        assert_eq!(s.len(), 1, "only the ML behavior: {s:?}");
        let s = &s[0];
        assert_eq!(
            (s.model_status, s.things_active, s.things_total),
            ("ACTIVE", 1, 3)
        );
        assert_eq!(s.datapoints_collection_percentage, 50); // (100 + 50 + 0) / 3
        assert_eq!(s.last_model_refresh_date, Some(last));

        let s = &summaries(&p, [("b", &b), ("c", &c)], last)[0];
        assert_eq!((s.model_status, s.things_active), ("PENDING_BUILD", 0));
        assert_eq!(s.datapoints_collection_percentage, 25);
        assert_eq!(s.last_model_refresh_date, None);

        let later = last + EXPIRY_MS + 1;
        let s = &summaries(&p, all, later)[0];
        assert_eq!((s.model_status, s.things_active), ("EXPIRED", 0));
        assert_eq!(s.last_model_refresh_date, Some(last));
        assert!(!s.group_calibrated, "one active model of three needed");
        let json = serde_json::to_value(s).unwrap();
        assert_eq!(json["securityProfileName"], "ml");
        assert_eq!(json["modelStatus"], "EXPIRED");
        assert_eq!(json["datapointsCollectionPercentage"], 50);
        let three = [("a", &a), ("d", &a), ("e", &a), ("b", &b)];
        let s = &summaries(&p, three, last)[0];
        assert!(s.group_calibrated && !s.peer_comparison, "{s:?}");
        let names = ["a", "d", "e", "f", "g", "h", "i", "j"];
        let eight: Vec<_> = names.iter().map(|n| (*n, &a)).collect();
        assert!(summaries(&p, eight, last)[0].peer_comparison);
    }

    #[test]
    fn an_unreadable_model_counts_as_none_and_nothing_panics() {
        let p = [profile()];
        let mut bad = states(Some(288));
        bad.get_mut("ml").unwrap().models[0].model = "zz".into();
        let s = &summaries(&p, [("a", &bad)], T0)[0];
        assert_eq!(
            (s.model_status, s.things_active, s.things_total),
            ("PENDING_BUILD", 0, 1)
        );
    }
}
