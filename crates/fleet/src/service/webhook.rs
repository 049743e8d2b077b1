//! Webhook alerts (issue #9 item 6): the store's unsent, unsuppressed events POSTed as JSON
//! (the agent's event format) to `[alerts] webhook_url`, oldest first, each retried with
//! backoff (jitter, 5 min cap) until a 2xx answer marks it sent. The store is the durable
//! queue: a restart resumes where it stopped.

use std::sync::Arc;
use std::time::Duration;

use link::Backoff;
use tokio::sync::Notify;

use super::RunError;
use crate::store::{Outbox, Sink};

const BATCH: usize = 100;
const POLL_EVERY: Duration = Duration::from_secs(1);
/// One POST may take this long (connect, TLS, answer).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(
    url: String,
    mut store: Box<dyn Outbox + Send>,
    wake: Arc<Notify>,
    lead: super::Lead,
) -> Result<(), RunError> {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(REQUEST_TIMEOUT))
        .http_status_as_error(false)
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let mut backoff = Backoff::new(
        Duration::from_secs(1),
        Duration::from_secs(300),
        link::random::seed(),
    );
    loop {
        // Cluster mode: only the instance that leads sends (see `Lead`).
        let batch = if lead() {
            store.pending(Sink::Webhook, BATCH)?
        } else {
            Vec::new()
        };
        'batch: for u in batch {
            let body = u.payload;
            loop {
                let (agent, url, body) = (agent.clone(), url.clone(), body.clone());
                let sent = tokio::task::spawn_blocking(move || {
                    agent
                        .post(&url)
                        .header("content-type", "application/json")
                        .send(&body[..])
                        .map(|r| r.status().as_u16())
                })
                .await;
                let outcome = match sent {
                    Ok(Ok(status)) if (200..300).contains(&status) => Ok(status),
                    Ok(Ok(status)) => Err(format!("HTTP status {status}")),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match outcome {
                    Ok(status) => {
                        backoff.reset();
                        store.ack(Sink::Webhook, u.position)?;
                        crate::metrics::global().alert("webhook", Ok(1));
                        tracing::debug!(violation_id = %u.event.violation_id, status, "webhook alert sent");
                        break;
                    }
                    Err(error) => {
                        let delay = backoff.next_delay();
                        crate::metrics::global().alert("webhook", Err(()));
                        tracing::warn!(violation_id = %u.event.violation_id, %error, retry_in_ms = delay.as_millis() as u64, "webhook alert not accepted; retrying");
                        tokio::time::sleep(delay).await;
                        if delay >= Duration::from_secs(300) {
                            break 'batch; // re-read the queue now and then
                        }
                    }
                }
            }
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(POLL_EVERY) => {}
        }
    }
}
