//! What outlives one agent: the settled counter baseline and whether a backend ever answered
//! (one record in the state directory), and what a reload hands over in memory.

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
}

/// The record kept in the state directory: the baseline and whether a backend ever answered
/// (`backend = "auto"`). A `baseline.json` of an older version reads as one, never answered.
#[derive(serde::Deserialize)]
struct Saved {
    #[serde(flatten)]
    baseline: Baseline,
    #[serde(default)]
    backend_answers: bool,
}

#[derive(serde::Serialize)]
struct SavedRef<'a> {
    #[serde(flatten)]
    baseline: &'a Baseline,
    backend_answers: bool,
}

/// The baseline, the unsettled reports and the backend fact a new agent starts from: what a
/// reload carried, else (a restart) what the disk holds.
pub(super) fn resume(state: &mut State, carried: Option<Carried>) -> (Baseline, Unsettled, bool) {
    if let Some(c) = carried {
        state.keep_above(c.last_id);
        return (c.baseline, c.unsettled, c.answering);
    }
    match state.load_baseline::<Saved>() {
        Ok(saved) => saved
            .map(|s| (s.baseline, Unsettled::default(), s.backend_answers))
            .unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %e, "counter baseline unreadable; starting a fresh one");
            Default::default()
        }
    }
}

/// Persists the baseline and the backend fact in one record (`State::save_baseline`).
pub(super) fn save(state: &State, baseline: &Baseline, answering: bool) {
    let saved = SavedRef {
        baseline,
        backend_answers: answering,
    };
    if let Err(e) = state.save_baseline(&saved) {
        tracing::warn!(error = %e, "cannot persist the counter baseline");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_round_trips_and_an_old_baseline_json_reads_as_never_answered() {
        let dir = tempfile::tempdir().unwrap();
        let counters = [("eth0".to_string(), crate::collect::Counters::default())].into();
        let base = Baseline::new(Some("boot"), &counters);
        std::fs::write(
            dir.path().join("baseline.json"),
            serde_json::to_vec(&base).unwrap(),
        )
        .unwrap();
        let mut state = State::open(dir.path()).unwrap();
        let (b, _, answering) = resume(&mut state, None);
        assert_eq!((b, answering), (base.clone(), false));
        save(&state, &base, true);
        let (b, _, answering) = resume(&mut state, None);
        assert_eq!((b, answering), (base, true));
    }
}
