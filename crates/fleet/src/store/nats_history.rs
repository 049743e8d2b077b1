//! The cluster store's metric history (issue #21): not kept yet. `ListMetricValues` answers
//! an empty list on `[store] kind = "nats"` (docs/fleet.md says so); commits drop the points.

use super::{HistoryPoint, MetricHistory, Nats, Side, StoreError};

impl MetricHistory for Nats {
    fn history(
        &mut self,
        _thing: &str,
        _side: Side,
        _from_ms: u64,
        _to_ms: u64,
        _limit: usize,
    ) -> Result<Vec<HistoryPoint>, StoreError> {
        Ok(Vec::new())
    }

    fn prune_history(&mut self, _before_ms: u64) -> Result<usize, StoreError> {
        Ok(0)
    }
}
