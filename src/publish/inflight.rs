//! Owns what the session task shares with the publisher: the message in flight (waiting for
//! its PUBACK and verdict) and the bounded list of verdicts that came late.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::verdict::{Status, Verdict};

/// The message waiting for its PUBACK and, for a report, its verdict.
pub(super) struct InFlight {
    /// `None` for a plain send (an alarm): no verdict belongs to it.
    pub(super) report_id: Option<u64>,
    pub(super) pkid: Option<u16>,
    pub(super) puback: Option<oneshot::Sender<()>>,
    pub(super) verdict: Option<oneshot::Sender<Verdict>>,
}

/// Late verdicts kept for the daemon to collect: a few slots' worth, oldest dropped first.
const MAX_LATE: usize = 8;

#[derive(Default)]
pub(super) struct Shared {
    inflight: Mutex<Option<InFlight>>,
    /// Verdicts (report id, status) that came after their report stopped waiting.
    late: Mutex<VecDeque<(u64, Status)>>,
}

impl Shared {
    pub(super) fn slot(&self) -> MutexGuard<'_, Option<InFlight>> {
        // A poisoned lock only means a panic elsewhere; the slot is still consistent.
        self.inflight.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn late(&self) -> MutexGuard<'_, VecDeque<(u64, Status)>> {
        self.late.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a verdict that came after its report stopped waiting: bounded, the oldest
    /// dropped and logged (the daemon collects them every slot: only a stalled one loses any).
    pub(super) fn keep_late(&self, report_id: Option<u64>, status: Status) {
        if let Some(id) = report_id {
            let mut late = self.late();
            if late.len() == MAX_LATE
                && let Some((dropped, _)) = late.pop_front()
            {
                tracing::warn!(
                    report_id = dropped,
                    kept = MAX_LATE,
                    "late verdict dropped: too many not yet collected"
                );
            }
            late.push_back((id, status));
        }
    }

    /// Takes the late verdicts collected so far, oldest first.
    pub(super) fn take_late(&self) -> Vec<(u64, Status)> {
        self.late().drain(..).collect()
    }
}
