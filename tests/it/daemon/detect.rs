//! Detect on the device, end to end: the real agent with a security profile that forbids one
//! listening TCP port, a real mosquitto, the strict backend and a test client subscribed to
//! the alarm topic. Alarms must arrive within two intervals, survive broker outages, restarts
//! and rejected reports, and be invalidated when their profile goes away.
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use detect_testkit::agent::{
    Agent, COUNT_LOOPBACK, Setup, accepted_for, config, loopback_traffic, set_verdict_timeout,
    spawn,
};
use detect_testkit::alarms::{ALARM_FILTER, Alarms};
use detect_testkit::notify::NotifySocket;
use detect_testkit::{Backend, Broker, Mode, Pki, eventually};
use serde_json::Value;

const INTERVAL: u64 = 2;
const TOPIC: &str = "detect-agent/thing-ec/alarms";

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A profile (CreateSecurityProfile body with its name) that forbids listening on `port`.
fn forbid_port(port: u16) -> Value {
    serde_json::json!({
        "securityProfileName": "test-forbidden-port",
        "behaviors": [{
            "name": "no-forbidden-listener",
            "metric": "aws:listening-tcp-ports",
            "criteria": {"comparisonOperator": "not-in-port-set", "value": {"ports": [port]}}
        }]
    })
}

/// At most `SPIKE` bytes out per datapoint.
fn limit_bytes_out() -> Value {
    serde_json::json!({
        "securityProfileName": "test-bytes-out",
        "behaviors": [{
            "name": "bytes-out-spike",
            "metric": "aws:all-bytes-out",
            "criteria": {"comparisonOperator": "less-than-equals", "value": {"count": SPIKE}}
        }]
    })
}

/// Far above what other processes on this machine may send over loopback in one sample (lo is
/// shared; other test binaries send up to ~70 MB in a burst).
const SPIKE: u64 = 200_000_000;

struct World {
    /// Keeps the certificates' directory alive.
    _pki: Pki,
    broker: Broker,
    backend: Backend,
    alarms: Alarms,
    work: tempfile::TempDir,
    port: u16,
    config: PathBuf,
}

impl World {
    /// The forbidden-port profile.
    async fn start() -> World {
        World::start_with(forbid_port, "").await
    }

    /// A world whose profile (file `profile.json`) is `profile(port)`; `extra` goes into the
    /// agent's config before `[detect]`.
    async fn start_with(profile: fn(u16) -> Value, extra: &str) -> World {
        let pki = Pki::generate();
        let broker = Broker::start(&pki);
        let backend = Backend::start(&pki, broker.port).await;
        let alarms = Alarms::start(&pki, broker.port, ALARM_FILTER).await;
        let work = tempfile::tempdir().unwrap();
        let port = free_port();
        let path = work.path().join("profile.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&profile(port)).unwrap()).unwrap();
        let extra = format!(
            "{extra}[detect]\nprofiles = [{:?}]\n",
            path.display().to_string()
        );
        let config = config(&Setup {
            dir: work.path(),
            port: broker.port,
            ca: &pki.ca,
            id: &pki.client_ec,
            format: "json",
            interval: INTERVAL,
            extra: &extra,
        });
        World {
            _pki: pki,
            broker,
            backend,
            alarms,
            work,
            port,
            config,
        }
    }

    /// Starts the agent and waits until it has reported once (it is connected).
    async fn agent(&self) -> Agent {
        self.agent_with(&[]).await
    }

    async fn agent_with(&self, env: &[(&str, &str)]) -> Agent {
        let agent = spawn(&self.config, env);
        let before = self.backend.received().len();
        let reported = eventually(Duration::from_secs(30), || {
            self.backend.received().len() > before
        })
        .await;
        assert!(reported, "no report from the agent; {}", agent.log());
        agent
    }

    fn listen(&self) -> TcpListener {
        TcpListener::bind(("127.0.0.1", self.port)).unwrap()
    }

    /// Waits up to `limit` for `n` events of `kind`; all events of that kind.
    async fn wait_for(&self, kind: &str, n: usize, limit: Duration) -> Vec<Value> {
        eventually(limit, || self.alarms.of_type(kind).len() >= n).await;
        self.alarms.of_type(kind)
    }

    fn state(&self, name: &str) -> String {
        std::fs::read_to_string(self.work.path().join("state").join(name)).unwrap_or_default()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn intervals(n: u64) -> Duration {
    Duration::from_secs(INTERVAL * n)
}

fn assert_event(e: &Value, kind: &str, port: u16) {
    assert_eq!(e["violationEventType"], kind, "{e}");
    assert_eq!(e["thingName"], "thing-ec", "{e}");
    assert_eq!(e["securityProfileName"], "test-forbidden-port", "{e}");
    assert_eq!(e["behavior"]["name"], "no-forbidden-listener", "{e}");
    let id = e["violationId"].as_str().unwrap();
    assert!(
        id.len() == 32 && id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
        "{e}"
    );
    if kind == "alarm-invalidated" {
        assert!(e.get("metricValue").is_none(), "{e}");
        return;
    }
    // The datapoint's time is its report id (epoch ms).
    assert_eq!(e["violationEventTime"], e["reportId"], "{e}");
    let ports = e["metricValue"]["ports"].as_array().unwrap();
    assert_eq!(
        ports.contains(&Value::from(port)),
        kind == "in-alarm",
        "{e}"
    );
}

#[tokio::test]
async fn a_forbidden_listening_port_raises_in_alarm_within_two_intervals_and_a_restart_neither_repeats_it_nor_loses_the_clear()
 {
    let w = World::start().await;
    let agent = w.agent().await;
    assert!(w.alarms.received().is_empty(), "{:?}", w.alarms.received());

    let listener = w.listen();
    let opened = Instant::now();
    let raised = w.wait_for("in-alarm", 1, Duration::from_secs(30)).await;
    let took = opened.elapsed();
    assert_eq!(raised.len(), 1, "{}", agent.log());
    assert!(took <= intervals(2), "in-alarm took {took:?}");
    assert_event(&raised[0], "in-alarm", w.port);
    assert_eq!(w.alarms.received()[0].0, TOPIC);
    let id = raised[0]["violationId"].clone();
    let log = agent.log();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("alarm event")
            && l.contains("event=\"in-alarm\"")
            && l.contains(&format!("violation_id={}", id.as_str().unwrap()))
            && l.contains("profile=test-forbidden-port")
            && l.contains("behavior=\"no-forbidden-listener\"")
            && l.contains("report_id=")),
        "{log}"
    );

    // Still violating over more samples, and across a restart: no second in-alarm.
    tokio::time::sleep(intervals(2)).await;
    let (status, _) = agent.stop().await;
    assert!(status.success());
    assert!(w.state("alarms.json").contains(id.as_str().unwrap()));
    let notify = NotifySocket::bind(w.work.path());
    let agent = w
        .agent_with(&[("NOTIFY_SOCKET", notify.path.to_str().unwrap())])
        .await;
    tokio::time::sleep(intervals(2)).await;
    assert_eq!(w.alarms.of_type("in-alarm").len(), 1, "{}", agent.log());
    let status = notify.last_status().unwrap_or_default();
    assert!(status.ends_with("; active alarms: 1"), "{status}");

    // Closing the port clears the alarm the first run raised, with its id.
    drop(listener);
    let closed = Instant::now();
    let cleared = w
        .wait_for("alarm-cleared", 1, Duration::from_secs(30))
        .await;
    assert!(closed.elapsed() <= intervals(2), "{:?}", closed.elapsed());
    assert_eq!(cleared.len(), 1, "{}", agent.log());
    assert_event(&cleared[0], "alarm-cleared", w.port);
    assert_eq!(cleared[0]["violationId"], id);
    let cleared_status = eventually(intervals(2), || {
        notify
            .last_status()
            .is_some_and(|s| s.ends_with("; active alarms: 0"))
    })
    .await;
    assert!(cleared_status, "{:?}", notify.messages());
    let (status, _) = agent.stop().await;
    assert!(status.success());
    assert!(
        w.state("outbox.jsonl").is_empty(),
        "{}",
        w.state("outbox.jsonl")
    );
    assert_eq!(w.alarms.received().len(), 2, "{:?}", w.alarms.received());
}

#[tokio::test]
async fn an_alarm_raised_while_the_broker_is_down_arrives_once_after_it_is_back() {
    let mut w = World::start().await;
    let agent = w.agent().await;
    w.broker.stop();
    let down = now_ms();
    let listener = w.listen();
    // Raised and queued while the broker is away.
    let queued = eventually(intervals(4), || {
        w.state("outbox.jsonl").contains("in-alarm")
    })
    .await;
    assert!(queued, "{}", agent.log());
    let seen = w.alarms.subscriptions();
    w.broker.start_again();
    w.alarms.wait_subscribed(seen).await;
    let got = w.wait_for("in-alarm", 1, Duration::from_secs(40)).await;
    assert_eq!(got.len(), 1, "{}", agent.log());
    assert_event(&got[0], "in-alarm", w.port);
    let raised_at = got[0]["violationEventTime"].as_u64().unwrap();
    assert!(raised_at >= down, "{raised_at} before the outage at {down}");
    // Once: nothing more comes while the port stays open.
    tokio::time::sleep(intervals(3)).await;
    assert_eq!(w.alarms.received().len(), 1, "{:?}", w.alarms.received());
    assert!(w.state("outbox.jsonl").is_empty());
    drop(listener);
    let (status, _) = agent.stop().await;
    assert!(status.success());
}

#[tokio::test]
async fn alarms_go_out_while_the_backend_rejects_every_report() {
    let w = World::start().await;
    w.backend.set_mode(Mode::throttled(true));
    let agent = w.agent().await;
    let _listener = w.listen();
    let got = w.wait_for("in-alarm", 1, intervals(3)).await;
    assert_eq!(got.len(), 1, "{}", agent.log());
    assert_event(&got[0], "in-alarm", w.port);
    assert!(accepted_for(&w.backend.received(), "thing-ec").is_empty());
    let (status, _) = agent.stop().await;
    assert!(status.success());
}

#[tokio::test]
async fn a_reload_without_the_profile_invalidates_its_alarm_and_an_invalid_profile_is_refused() {
    let w = World::start().await;
    let mut agent = w.agent().await;
    let _listener = w.listen();
    let raised = w.wait_for("in-alarm", 1, Duration::from_secs(30)).await;
    assert_eq!(raised.len(), 1, "{}", agent.log());

    // A broken profile on SIGHUP: refused, the old one stays, nothing is invalidated.
    let profile = w.work.path().join("profile.json");
    let good = std::fs::read_to_string(&profile).unwrap();
    std::fs::write(&profile, good.replace("not-in-port-set", "in-cidr-set")).unwrap();
    agent.signal(libc::SIGHUP);
    let refused = eventually(Duration::from_secs(10), || {
        agent.log().contains("new configuration refused")
    })
    .await;
    assert!(refused, "{}", agent.log());
    let line = agent
        .log()
        .lines()
        .find(|l| l.contains("new configuration refused"))
        .unwrap()
        .to_string();
    assert!(line.contains("profile.json"), "{line}");
    assert!(line.contains("no-forbidden-listener"), "{line}");
    tokio::time::sleep(intervals(2)).await;
    assert!(agent.alive());
    assert!(w.alarms.of_type("alarm-invalidated").is_empty());

    // The profile removed from the config: its active alarm is invalidated, with its id.
    std::fs::write(&profile, good).unwrap();
    let text = std::fs::read_to_string(&w.config).unwrap();
    let cut = text.find("[detect]").unwrap();
    std::fs::write(&w.config, &text[..cut]).unwrap();
    agent.signal(libc::SIGHUP);
    let gone = w
        .wait_for("alarm-invalidated", 1, Duration::from_secs(30))
        .await;
    assert_eq!(gone.len(), 1, "{}", agent.log());
    assert_event(&gone[0], "alarm-invalidated", w.port);
    assert_eq!(gone[0]["violationId"], raised[0]["violationId"]);
    let (status, _) = agent.stop().await;
    assert!(status.success());

    // At start, an invalid profile stops the agent with one line naming file and behavior.
    std::fs::write(
        &profile,
        "{\"securityProfileName\": \"x\", \"behaviors\": [{\"name\": \"b\"}]}",
    )
    .unwrap();
    let text = format!(
        "{}[detect]\nprofiles = [{:?}]\n",
        &text[..cut],
        profile.display().to_string()
    );
    std::fs::write(&w.config, text).unwrap();
    let mut agent = spawn(&w.config, &[]);
    let status = loop {
        if let Some(s) = agent.child.try_wait().unwrap() {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(1), "{}", agent.log());
    let log = agent.log();
    let last = log.lines().last().unwrap_or_default();
    assert!(last.starts_with("detect-agent: error: "), "{log}");
    assert!(
        last.contains("profile.json") && last.contains("behavior b"),
        "{log}"
    );
}

#[tokio::test]
async fn traffic_rolled_into_one_report_by_a_broker_outage_does_not_fake_a_spike() {
    let mut w = World::start_with(|_| limit_bytes_out(), COUNT_LOOPBACK).await;
    // Cycles that wait 1 s for the broker keep a sample every interval during the outage.
    set_verdict_timeout(&w.config, 1);
    let agent = w.agent().await;
    // Reports with network_stats flow: the counter baselines exist.
    let bytes_out = |r: &detect_testkit::Received| {
        r.value
            .as_ref()?
            .pointer("/metrics/network_stats/bytes_out")?
            .as_u64()
    };
    let flowing = eventually(Duration::from_secs(20), || {
        accepted_for(&w.backend.received(), "thing-ec")
            .iter()
            .any(|r| bytes_out(r).is_some())
    })
    .await;
    assert!(flowing, "{}", agent.log());
    let before = detect_testkit::agent::last_report_id(&w.backend);

    // Broker away for eight intervals at SPIKE/10 per second: a fifth of the limit per
    // sample, 1.6 times it in all.
    w.broker.stop();
    let until = Instant::now() + intervals(8);
    while Instant::now() < until {
        let tick = Instant::now();
        loopback_traffic(SPIKE as usize / 20).await;
        tokio::time::sleep(Duration::from_millis(500).saturating_sub(tick.elapsed())).await;
    }
    let (seen_backend, seen_alarms) = (w.backend.subscriptions(), w.alarms.subscriptions());
    w.broker.start_again();
    w.backend.wait_subscribed(seen_backend).await;
    w.alarms.wait_subscribed(seen_alarms).await;

    // The first accepted report after the outage carries all of it...
    let rolled = eventually(Duration::from_secs(40), || {
        accepted_for(&w.backend.received(), "thing-ec")
            .iter()
            .any(|r| r.report_id > Some(before) && bytes_out(r) > Some(SPIKE))
    })
    .await;
    assert!(
        rolled,
        "no report carried the outage's traffic; {}",
        agent.log()
    );
    // ...but no datapoint was a spike.
    tokio::time::sleep(intervals(2)).await;
    assert!(
        w.alarms.received().is_empty(),
        "{:?}\n{}",
        w.alarms.received(),
        agent.log()
    );

    // A real spike in one sample does alarm, with the bytes of that sample.
    loopback_traffic(3 * SPIKE as usize).await;
    let got = w.wait_for("in-alarm", 1, intervals(3)).await;
    assert_eq!(got.len(), 1, "{}", agent.log());
    assert!(
        got[0]["metricValue"]["count"].as_u64() > Some(SPIKE),
        "{}",
        got[0]
    );
    let (status, _) = agent.stop().await;
    assert!(status.success());
}

#[tokio::test]
async fn alarm_events_queued_before_a_restart_go_out_as_soon_as_the_agent_is_connected() {
    let w = World::start().await;
    // A long interval: the first slot may be a minute away; the queue must not wait for it.
    let text = std::fs::read_to_string(&w.config).unwrap();
    let slow = format!("interval_secs = {INTERVAL}\n");
    assert!(text.contains(&slow), "{text}");
    std::fs::write(&w.config, text.replace(&slow, "interval_secs = 60\n")).unwrap();
    let state = w.work.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let event = serde_json::json!({"violationEventType": "in-alarm", "violationId": "left-over"});
    let line = serde_json::json!({"topic": TOPIC, "payload": event.to_string()});
    std::fs::write(state.join("outbox.jsonl"), format!("{line}\n")).unwrap();

    let started = Instant::now();
    let agent = spawn(&w.config, &[]);
    let got = w.wait_for("in-alarm", 1, Duration::from_secs(30)).await;
    assert_eq!(got, [event], "{}", agent.log());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}; {}",
        started.elapsed(),
        agent.log()
    );
    assert!(
        eventually(Duration::from_secs(5), || w
            .state("outbox.jsonl")
            .is_empty())
        .await
    );
    let (status, _) = agent.stop().await;
    assert!(status.success());
}
