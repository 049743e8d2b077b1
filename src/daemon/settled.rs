//! What outlives one agent: the settled counter baseline, the report whose sample it is, and
//! whether a backend ever answered (one record in the state directory), and what a reload
//! hands over in memory.

use super::verdicts::Unsettled;
use crate::report::Baseline;
use crate::state::State;

/// What a reload carries from one agent to the next (`Agent::carry`): the in-memory truth,
/// which the disk may lack when it took no writes (issue #11 item 4).
pub(super) struct Carried {
    pub(super) baseline: Baseline,
    pub(super) unsettled: Unsettled,
    pub(super) answering: bool,
    pub(super) last_id: Option<u64>,
    pub(super) sample_id: Option<u64>,
}

/// Where a new agent starts from.
#[derive(Default)]
pub(super) struct Resumed {
    pub(super) baseline: Baseline,
    pub(super) unsettled: Unsettled,
    pub(super) answering: bool,
    /// The report whose sample's counters `baseline` holds (it settled), when known.
    pub(super) sample_id: Option<u64>,
}

/// The record kept in the state directory: the baseline and whether a backend ever answered
/// (`backend = "auto"`). A `baseline.json` of an older version reads as one, never answered.
#[derive(serde::Deserialize)]
struct Saved {
    #[serde(flatten)]
    baseline: Baseline,
    #[serde(default)]
    backend_answers: bool,
    #[serde(default)]
    sample_id: Option<u64>,
}

#[derive(serde::Serialize)]
struct SavedRef<'a> {
    #[serde(flatten)]
    baseline: &'a Baseline,
    backend_answers: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    sample_id: Option<u64>,
}

/// The baseline, the unsettled reports and the backend fact a new agent starts from: what a
/// reload carried, else (a restart) what the disk holds.
pub(super) fn resume(state: &mut State, carried: Option<Carried>) -> Resumed {
    if let Some(c) = carried {
        state.keep_above(c.last_id);
        return Resumed {
            baseline: c.baseline,
            unsettled: c.unsettled,
            answering: c.answering,
            sample_id: c.sample_id,
        };
    }
    match state.load_baseline::<Saved>() {
        Ok(saved) => saved
            .map(|s| Resumed {
                baseline: s.baseline,
                answering: s.backend_answers,
                sample_id: s.sample_id,
                ..Resumed::default()
            })
            .unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %e, "counter baseline unreadable; starting a fresh one");
            Default::default()
        }
    }
}

/// Persists the baseline, the report whose sample it is and the backend fact in one record
/// (`State::save_baseline`).
pub(super) fn save(state: &State, baseline: &Baseline, answering: bool, sample_id: Option<u64>) {
    let saved = SavedRef {
        baseline,
        backend_answers: answering,
        sample_id,
    };
    if let Err(e) = state.save_baseline(&saved) {
        tracing::warn!(error = %e, "cannot persist the counter baseline");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_round_trips_and_an_old_baseline_json_reads_as_never_answered_no_sample() {
        let dir = tempfile::tempdir().unwrap();
        let counters = [("eth0".to_string(), crate::collect::Counters::default())].into();
        let base = Baseline::new(Some("boot"), &counters);
        std::fs::write(
            dir.path().join("baseline.json"),
            serde_json::to_vec(&base).unwrap(),
        )
        .unwrap();
        let mut state = State::open(dir.path()).unwrap();
        let r = resume(&mut state, None);
        assert_eq!(
            (r.baseline, r.answering, r.sample_id),
            (base.clone(), false, None)
        );
        save(&state, &base, true, Some(7));
        let r = resume(&mut state, None);
        assert_eq!(
            (r.baseline, r.answering, r.sample_id),
            (base, true, Some(7))
        );
    }
}
