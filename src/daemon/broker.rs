//! What the daemon needs of the MQTT session: its connection state, one report published
//! and settled by its verdict, a plain send, late verdicts. `Publisher` is the real one.
//!
//! The seam lets the cycle and alarm rules run in-process against a scripted broker under
//! tokio's paused clock (the `*_tests.rs` beside this file). Generic, never `dyn`: the agent
//! binary has one implementation, so it compiles to the same calls as before.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

use crate::publish::{ConnState, NotSent, Outcome, Publisher, Status, Topics};

pub(crate) trait Broker {
    /// Watch the connection state (`Publisher::state`).
    fn state(&self) -> watch::Receiver<ConnState>;
    /// The topics of this thing (`Publisher::topics`).
    fn topics(&self) -> &Topics;
    /// Verdicts that came after their report's wait, oldest first, each once.
    fn late_verdicts(&self) -> Vec<(u64, Status)>;
    /// One report, waiting at most `wait` for the connection, the PUBACK and the verdict.
    fn publish(
        &self,
        report_id: u64,
        payload: Vec<u8>,
        wait: Duration,
    ) -> impl Future<Output = Outcome>;
    /// A plain QoS-1 send (alarm events), waiting at most `wait` for the PUBACK.
    fn send(
        &self,
        topic: &str,
        payload: Vec<u8>,
        wait: Duration,
    ) -> impl Future<Output = Result<(), NotSent>>;
}

impl Broker for Publisher {
    fn state(&self) -> watch::Receiver<ConnState> {
        Publisher::state(self)
    }

    fn topics(&self) -> &Topics {
        Publisher::topics(self)
    }

    fn late_verdicts(&self) -> Vec<(u64, Status)> {
        Publisher::late_verdicts(self)
    }

    fn publish(
        &self,
        report_id: u64,
        payload: Vec<u8>,
        wait: Duration,
    ) -> impl Future<Output = Outcome> {
        Publisher::publish(self, report_id, payload, wait)
    }

    fn send(
        &self,
        topic: &str,
        payload: Vec<u8>,
        wait: Duration,
    ) -> impl Future<Output = Result<(), NotSent>> {
        Publisher::send(self, topic, payload, wait)
    }
}
