//! The alarm rules in-process (fake broker, paused clock): an event raised during an outage
//! is delivered once after it, and a restart keeps the alarm state and the queued events.
//! The same meanings as tests/it/daemon/detect.rs, without a broker or real waits.

use serde_json::Value;

use super::rig::{Rig, cycle};
use crate::publish::ConnState;

const REPORT: &str = "interval_secs = 60\nverdict_timeout_secs = 10";

const NO_TELNET: &str = r#"{"securityProfileName": "p", "behaviors": [{"name": "no-telnet",
    "metric": "aws:listening-tcp-ports",
    "criteria": {"comparisonOperator": "not-in-port-set", "value": {"ports": [23]}}}]}"#;

fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["violationEventType"].as_str().unwrap_or("?"))
        .collect()
}

/// What `serve` does when the connection state changes: deliver the queued events at once.
async fn on_reconnect(agent: &mut super::cycle::Agent) {
    let ready = matches!(*agent.publisher.state().borrow(), ConnState::Ready { .. });
    if ready && agent.alarms_queued() > 0 {
        agent.deliver_alarms().await;
    }
}

#[tokio::test(start_paused = true)]
async fn an_alarm_raised_while_the_broker_is_down_arrives_once_after_it_is_back() {
    let rig = Rig::new(REPORT).with_profile(NO_TELNET);
    let mut agent = rig.agent();
    cycle(&mut agent, rig.interval()).await;
    rig.broker.up(false);
    rig.telnet(true);
    cycle(&mut agent, rig.interval()).await;
    assert!(rig.broker.alarms().is_empty());
    assert_eq!(agent.alarms_queued(), 1);
    assert!(rig.state_file("outbox.jsonl").contains("in-alarm"));
    assert!(
        agent
            .status(&ConnState::Connecting { attempt: 1 })
            .ends_with("(1 alarm events queued)")
    );
    // Back: delivered as soon as the connection is, not at the next slot.
    rig.broker.up(true);
    on_reconnect(&mut agent).await;
    assert_eq!(kinds(&rig.broker.alarms()), ["in-alarm"]);
    assert_eq!(agent.alarms_queued(), 0);
    // Never again: the next cycles (still in alarm) send nothing more.
    for _ in 0..3 {
        cycle(&mut agent, rig.interval()).await;
        on_reconnect(&mut agent).await;
    }
    assert_eq!(rig.broker.alarms().len(), 1);
    assert_eq!(rig.broker.alarms()[0]["thingName"], "gw-1");
    assert!(rig.state_file("outbox.jsonl").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_restart_neither_repeats_the_alarm_nor_loses_its_clear() {
    let rig = Rig::new(REPORT).with_profile(NO_TELNET);
    rig.telnet(true);
    let mut agent = rig.agent();
    cycle(&mut agent, rig.interval()).await;
    assert_eq!(kinds(&rig.broker.alarms()), ["in-alarm"]);
    agent.save_state();
    drop(agent);
    let id = rig.broker.alarms()[0]["violationId"].clone();
    assert!(rig.state_file("alarms.json").contains(id.as_str().unwrap()));

    let mut agent = rig.agent();
    assert!(
        agent
            .status(&ConnState::Ready { verdicts: true })
            .ends_with("active alarms: 1")
    );
    cycle(&mut agent, rig.interval()).await;
    assert_eq!(
        rig.broker.alarms().len(),
        1,
        "the restart repeated the in-alarm"
    );
    rig.telnet(false);
    cycle(&mut agent, rig.interval()).await;
    let alarms = rig.broker.alarms();
    assert_eq!(kinds(&alarms), ["in-alarm", "alarm-cleared"]);
    assert_eq!(alarms[1]["violationId"], id);
    let status = agent.status(&ConnState::Ready { verdicts: true });
    assert!(status.ends_with("active alarms: 0"), "{status}");
    agent.save_state();
    assert!(rig.state_file("outbox.jsonl").is_empty());
}

#[tokio::test(start_paused = true)]
async fn events_queued_before_a_restart_go_out_once_the_new_agent_is_connected() {
    let rig = Rig::new(REPORT).with_profile(NO_TELNET);
    rig.broker.up(false);
    rig.telnet(true);
    let mut agent = rig.agent();
    cycle(&mut agent, rig.interval()).await;
    assert_eq!(agent.alarms_queued(), 1);
    agent.save_state();
    drop(agent);

    let mut agent = rig.agent();
    assert_eq!(agent.alarms_queued(), 1, "the outbox survives the restart");
    rig.broker.up(true);
    on_reconnect(&mut agent).await;
    cycle(&mut agent, rig.interval()).await;
    assert_eq!(kinds(&rig.broker.alarms()), ["in-alarm"]);
}

#[tokio::test(start_paused = true)]
async fn alarms_go_out_while_the_backend_rejects_every_report() {
    let rig = Rig::new(REPORT).with_profile(NO_TELNET);
    rig.broker
        .script(&[super::fake_broker::Reply::Reject("Throttled"); 3]);
    rig.telnet(true);
    let mut agent = rig.agent();
    cycle(&mut agent, rig.interval()).await;
    rig.telnet(false);
    cycle(&mut agent, rig.interval()).await;
    assert_eq!(kinds(&rig.broker.alarms()), ["in-alarm", "alarm-cleared"]);
}
