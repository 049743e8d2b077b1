//! The memory store's metric history and event log (issue #21): a map by (thing, side, time)
//! and the outbox listed by time.

use super::super::{EventLog, EventQuery, HistoryPoint, Listed, MetricHistory, Side, StoreError};
use super::Memory;

impl MetricHistory for Memory {
    fn history(
        &mut self,
        thing: &str,
        side: Side,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Vec<HistoryPoint>, StoreError> {
        if from_ms >= to_ms {
            return Ok(Vec::new());
        }
        let (from, to) = (
            (thing.to_string(), side, from_ms),
            (thing.to_string(), side, to_ms),
        );
        Ok(self
            .inner()
            .history
            .range(from..to)
            .take(limit)
            .map(|((_, side, time_ms), data)| HistoryPoint {
                side: *side,
                time_ms: *time_ms,
                data: data.clone(),
            })
            .collect())
    }

    fn prune_history(&mut self, before_ms: u64) -> Result<usize, StoreError> {
        let mut inner = self.inner();
        let before = inner.history.len();
        inner.history.retain(|(_, _, t), _| *t >= before_ms);
        Ok(before - inner.history.len())
    }
}

impl EventLog for Memory {
    fn events(&mut self, q: &EventQuery) -> Result<Vec<Listed>, StoreError> {
        let inner = self.inner();
        let mut list: Vec<Listed> = inner
            .outbox
            .iter()
            .filter(|x| {
                let e = &x.recorded.event;
                let key = (e.violation_event_time, x.position);
                (q.start_ms..q.end_ms).contains(&e.violation_event_time)
                    && q.after.is_none_or(|a| key > a)
                    && q.thing.as_ref().is_none_or(|t| *t == e.thing_name)
                    && q.profile
                        .as_ref()
                        .is_none_or(|p| *p == e.security_profile_name)
            })
            .map(|x| {
                let v = inner.violations.get(&x.recorded.event.violation_id);
                Listed {
                    position: x.position,
                    event: x.recorded.event.clone(),
                    suppressed: x.recorded.suppressed,
                    verification_state: v
                        .map_or("UNKNOWN".into(), |v| v.verification_state.clone()),
                    verification_state_description: v
                        .and_then(|v| v.verification_state_description.clone()),
                }
            })
            .collect();
        list.sort_by_key(|l| (l.event.violation_event_time, l.position));
        list.truncate(q.limit);
        Ok(list)
    }
}
