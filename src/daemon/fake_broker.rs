//! The in-process tests' MQTT session (`broker::Session` under cfg(test)): scripted replies,
//! a connection state the test sets, a record of what went out. The agent around it: `rig`.
//! No socket, no broker process: the waits are tokio's, so a paused clock runs them at once.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::time::{Instant, sleep, timeout};

use crate::publish::{
    Backoff, ConnState, MqttSettings, NotSent, Outcome, PublishError, Status, Topics,
};

/// What the backend does with the next report.
#[derive(Debug, Clone, Copy)]
pub(super) enum Reply {
    Accept,
    Reject(&'static str),
    /// PUBACK, then no verdict within the wait.
    Silent,
    /// PUBACK, no verdict within the wait, an "accepted" just after it.
    AcceptLate,
    /// The same with a "rejected".
    RejectLate,
}

/// One report as it reached the broker.
#[derive(Debug, Clone)]
pub(super) struct Received {
    pub(super) report: Value,
    /// The wait the agent gave it, and how long it took.
    pub(super) wait: Duration,
    pub(super) took: Duration,
}

impl Received {
    pub(super) fn bytes_in(&self) -> Option<u64> {
        self.report["metrics"]["network_stats"]["bytes_in"].as_u64()
    }
}

#[derive(Default)]
struct Inner {
    replies: VecDeque<Reply>,
    reports: Vec<Received>,
    alarms: Vec<Value>,
    late: Vec<(u64, Status)>,
}

#[derive(Clone)]
pub(super) struct FakeBroker {
    inner: Arc<Mutex<Inner>>,
    state: Arc<watch::Sender<ConnState>>,
    topics: Topics,
}

impl FakeBroker {
    pub(super) fn new(thing: &str) -> FakeBroker {
        let (state, _) = watch::channel(ConnState::Ready { verdicts: true });
        FakeBroker {
            inner: Arc::default(),
            state: Arc::new(state),
            topics: Topics::new(thing, "json"),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The broker goes away (`false`) or comes back (`true`).
    pub(super) fn up(&self, up: bool) {
        self.state.send_replace(if up {
            ConnState::Ready { verdicts: true }
        } else {
            ConnState::Connecting { attempt: 1 }
        });
    }

    /// The replies to the next reports, in order (then `Accept`).
    pub(super) fn script(&self, replies: &[Reply]) {
        self.inner().replies.extend(replies);
    }

    pub(super) fn reports(&self) -> Vec<Received> {
        self.inner().reports.clone()
    }

    /// The alarm events the broker acknowledged, in order.
    pub(super) fn alarms(&self) -> Vec<Value> {
        self.inner().alarms.clone()
    }

    /// Waits at most `wait` for a ready connection.
    async fn connected(&self, wait: Duration) -> bool {
        let mut state = self.state.subscribe();
        let ready = state.wait_for(|s| matches!(s, ConnState::Ready { .. }));
        matches!(timeout(wait, ready).await, Ok(Ok(_)))
    }
}

/// The methods of `Publisher` the daemon calls, with their signatures.
impl FakeBroker {
    /// A fresh broker, up, every report accepted (`Rig::agent` swaps in the rig's own).
    pub(crate) fn start(
        settings: MqttSettings,
        _backoff: Backoff,
        _state_dir: &Path,
    ) -> Result<FakeBroker, PublishError> {
        let mut fake = FakeBroker::new(&settings.thing_name);
        fake.topics = Topics::new(&settings.thing_name, &settings.format_segment);
        Ok(fake)
    }

    pub(crate) fn state(&self) -> watch::Receiver<ConnState> {
        self.state.subscribe()
    }

    pub(crate) fn topics(&self) -> &Topics {
        &self.topics
    }

    pub(crate) fn late_verdicts(&self) -> Vec<(u64, Status)> {
        std::mem::take(&mut self.inner().late)
    }

    pub(crate) async fn shutdown(self, _within: Duration) {}

    pub(crate) async fn publish(
        &self,
        report_id: u64,
        payload: Vec<u8>,
        wait: Duration,
    ) -> Outcome {
        let start = Instant::now();
        if !self.connected(wait).await {
            return Outcome::NotDelivered("not connected".into());
        }
        let reply = self.inner().replies.pop_front().unwrap_or(Reply::Accept);
        let outcome = match reply {
            Reply::Accept => Outcome::Accepted,
            Reply::Reject(code) => Outcome::Rejected {
                code: code.into(),
                message: None,
            },
            Reply::Silent | Reply::AcceptLate | Reply::RejectLate => {
                sleep(wait.saturating_sub(start.elapsed())).await;
                Outcome::Acked
            }
        };
        let mut inner = self.inner();
        match reply {
            Reply::AcceptLate => inner.late.push((report_id, Status::Accepted)),
            Reply::RejectLate => inner.late.push((report_id, Status::Rejected)),
            _ => {}
        }
        inner.reports.push(Received {
            report: serde_json::from_slice(&payload).unwrap_or_default(),
            wait,
            took: start.elapsed(),
        });
        outcome
    }

    pub(crate) async fn send(
        &self,
        _topic: &str,
        payload: Vec<u8>,
        wait: Duration,
    ) -> Result<(), NotSent> {
        if !self.connected(wait).await {
            return Err(NotSent("not connected".into()));
        }
        let event = serde_json::from_slice(&payload).unwrap_or_default();
        self.inner().alarms.push(event);
        Ok(())
    }
}
