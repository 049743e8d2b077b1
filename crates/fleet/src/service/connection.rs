//! The MQTT connections of `run`: options from `[broker]` (files read again for each
//! attempt), and the task that drives one connection's event loop, forwarding what the
//! service needs and reconnecting with backoff. Decides nothing about reports.

use std::time::Duration;

use link::{Backoff, ClientCert, Login, MqttSettings, client_config, read_password};
use protocol::MAX_PUBLISH_BYTES;
use rumqttc::{Event, EventLoop, MqttOptions, TlsConfiguration, Transport};
use tokio::sync::mpsc;

use crate::config::Config;

/// Largest incoming packet read: reports above `MAX_PUBLISH_BYTES` are read and rejected, but a
/// packet above this limit breaks the connection (rumqttc) and the broker would redeliver it
/// forever; docs/fleet.md tells to set the broker's own limit (mosquitto `message_size_limit`)
/// below it.
const MAX_INCOMING_PACKET: usize = 16 * 1024 * 1024;

/// The options for a connection attempt as `client_id`; `persistent` keeps the session
/// (clean_session = false) and acknowledges incoming publishes by hand.
pub fn options(
    config: &Config,
    client_id: &str,
    persistent: bool,
    inflight: u16,
) -> Result<MqttOptions, String> {
    let b = &config.broker;
    let mut o = MqttOptions::new(client_id, b.endpoint.clone(), b.port);
    o.set_keep_alive(Duration::from_secs(30))
        // Cluster mode: a clean session with a shared subscription (a dead instance's session
        // would take its share) or an instance named `{hostname}-{pid}` (each run would leave
        // a session behind); acknowledgements stay manual.
        .set_clean_session(!persistent || config.cluster.clean_session())
        .set_manual_acks(persistent)
        .set_inflight(inflight)
        .set_max_packet_size(MAX_INCOMING_PACKET, MAX_PUBLISH_BYTES * 2);
    if let (Some(user), Some(file)) = (&b.username, &b.password_file) {
        let password = read_password(file).map_err(|e| e.to_string())?;
        o.set_credentials(user.clone(), password.expose());
    }
    if let Some(ca) = &b.ca_file {
        let settings = MqttSettings {
            endpoint: b.endpoint.clone(),
            port: b.port,
            ca_file: ca.clone(),
            client_cert: match (&b.cert_file, &b.key_file) {
                (Some(c), Some(k)) => Some(ClientCert {
                    cert_file: c.clone(),
                    key_file: k.clone(),
                }),
                _ => None,
            },
            login: match (&b.username, &b.password_file) {
                (Some(u), Some(p)) => Some(Login {
                    username: u.clone(),
                    password_file: p.clone(),
                }),
                _ => None,
            },
            tls_server_name: b.tls_server_name.clone(),
            client_id: client_id.to_string(),
            thing_name: client_id.to_string(),
            format_segment: "json".into(),
            keep_alive_secs: 30,
        };
        let tls = client_config(&settings).map_err(|e| e.to_string())?;
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    }
    Ok(o)
}

/// What a connection driver passes on.
#[derive(Debug)]
pub enum Polled {
    Event(Event),
    /// The connection broke; requests not yet sent were dropped.
    Lost,
}

/// Drives `eventloop` until `to` is closed: every event goes to `to`, a broken connection is
/// retried with backoff (jitter, 30 s cap) and fresh options. The channel is unbounded, but
/// what flows through it is bounded by MQTT flow control: the broker sends at most its
/// `max_inflight_messages` unacknowledged reports, and our own publishes are capped by the
/// client's inflight limit.
pub async fn drive(
    mut eventloop: EventLoop,
    config: Config,
    client_id: String,
    persistent: bool,
    inflight: u16,
    to: mpsc::UnboundedSender<Polled>,
) {
    let mut backoff = Backoff::new(
        Duration::from_millis(200),
        Duration::from_secs(30),
        link::random::seed(),
    );
    loop {
        match eventloop.poll().await {
            Ok(event) => {
                backoff.reset();
                if to.send(Polled::Event(event)).is_err() {
                    return;
                }
            }
            Err(e) => {
                // Dropped, not replayed: unacknowledged reports come again from the broker,
                // unsent alerts from the store.
                eventloop.pending.clear();
                if to.send(Polled::Lost).is_err() {
                    return;
                }
                let delay = backoff.next_delay();
                tracing::warn!(client_id = %client_id, error = %e, retry_in_ms = delay.as_millis() as u64, "broker connection lost");
                tokio::time::sleep(delay).await;
                match options(&config, &client_id, persistent, inflight) {
                    Ok(o) => eventloop.mqtt_options = o,
                    Err(e) => {
                        tracing::warn!(error = %e, "broker setup failed; keeping the previous one")
                    }
                }
            }
        }
    }
}
