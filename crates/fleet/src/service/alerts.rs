//! The alert sender (issue #9 item 6): its own MQTT connection publishing the store's unsent,
//! unsuppressed events one at a time at QoS 1 to `[alerts] mqtt_topic`, each marked sent on
//! its PUBACK. At most one alert is in flight, so a PUBACK always names the alert just sent.
//! A break or restart resends the unacknowledged one (the store still has it unsent), with
//! the same bytes: a consumer that saw it already recognises it by (violationId,
//! violationEventType), unique per transition.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Incoming, QoS};
use tokio::sync::{Notify, mpsc};

use super::RunError;
use super::connection::{Polled, drive, options};
use crate::config::Config;
use crate::store::{Outbox, Sink, StoreError};

/// Unsent alerts read from the store at once.
const BATCH: usize = 200;
/// Looks at the store at least this often (also woken by the service after each event).
const POLL_EVERY: Duration = Duration::from_millis(500);
/// A PUBACK not seen in this time: the alert is sent again after a reconnect.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(
    config: Config,
    mut store: Box<dyn Outbox + Send>,
    wake: Arc<Notify>,
    lead: super::Lead,
) -> Result<(), RunError> {
    let client_id = config.broker.alerts_client_id();
    let opts = options(&config, &client_id, false, 1).map_err(RunError::Setup)?;
    let (client, eventloop) = AsyncClient::new(opts, 16);
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(drive(eventloop, config.clone(), client_id, false, 1, tx));
    let mut connected = false;
    loop {
        // Cluster mode: only the instance that leads sends (see `Lead`).
        if connected && lead() {
            match send_all(&config, store.as_mut(), &client, &mut rx).await {
                Ok(still) => connected = still,
                // Cluster mode rides out an unreachable store (a nats-server election).
                Err(e @ StoreError::Backend { .. }) if config.cluster.enabled => {
                    tracing::warn!(error = %e, "alerts: store unreachable, tried again shortly");
                }
                Err(e) => return Err(e.into()),
            }
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(POLL_EVERY) => {}
            got = rx.recv() => match got {
                Some(Polled::Event(Event::Incoming(Incoming::ConnAck(_)))) => connected = true,
                Some(Polled::Lost) => connected = false,
                Some(_) => {}
                None => return Ok(()),
            },
        }
    }
}

/// Sends every unsent alert, one PUBACK at a time; false when the connection broke.
async fn send_all(
    config: &Config,
    store: &mut (dyn Outbox + Send),
    client: &AsyncClient,
    rx: &mut mpsc::UnboundedReceiver<Polled>,
) -> Result<bool, StoreError> {
    loop {
        let batch = store.pending(Sink::Mqtt, BATCH)?;
        if batch.is_empty() {
            return Ok(true);
        }
        for u in batch {
            let topic = config
                .alerts
                .mqtt_topic
                .replace("{thing}", &u.event.thing_name);
            if client
                .publish(topic, QoS::AtLeastOnce, false, u.payload.clone())
                .await
                .is_err()
            {
                crate::metrics::global().alert("mqtt", Err(()));
                return Ok(false);
            }
            let acked = tokio::time::timeout(ACK_TIMEOUT, async {
                loop {
                    match rx.recv().await {
                        Some(Polled::Event(Event::Incoming(Incoming::PubAck(_)))) => return true,
                        Some(Polled::Lost) | None => return false,
                        Some(_) => {}
                    }
                }
            })
            .await;
            match acked {
                Ok(true) => {}
                Ok(false) => {
                    crate::metrics::global().alert("mqtt", Err(()));
                    return Ok(false);
                }
                Err(_) => {
                    crate::metrics::global().alert("mqtt", Err(()));
                    tracing::warn!(violation_id = %u.event.violation_id, "alert not acknowledged in time; sent again");
                    return Ok(true);
                }
            }
            store.ack(Sink::Mqtt, u.position)?;
            crate::metrics::global().alert("mqtt", Ok(1));
            tracing::debug!(violation_id = %u.event.violation_id, event = u.event.violation_event_type.name(), "alert sent");
        }
    }
}
