//! detect-fleet end to end with ten real `detect-agent run` processes, a real mosquitto with
//! mutual TLS and real traffic: a statistical threshold (p90 of `aws:all-bytes-out`,
//! detect-rules §4.8) flags the one device whose traffic is far above the nine others.
//!
//! Each agent counts its own veth interface (detect_testkit::veths, root only), so the ten
//! devices report different traffic although they share one host. `[fleet]
//! duration_override_secs = 12` makes the profile's `durationSeconds: 300` a 12 s window
//! (docs/fleet.md, config/fleet.toml), so two windows pass in well under a minute.
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use detect_testkit::now_ms;

use detect_agent::daemon::schedule::offset_ms;
use detect_testkit::alarms::Alarms;
use detect_testkit::eventually;
use detect_testkit::fleet::single;
use detect_testkit::fleet_agent as agent;
use detect_testkit::veths::{self, Veths};

const DEVICES: usize = 10;
/// The device whose traffic is far above the others'.
const OUTLIER: usize = 6;
const WINDOW_MS: u64 = 12_000;
const INTERVAL_SECS: u64 = 2;
/// Bytes each normal device sends per 50 ms tick; the outlier sends 20 times as much.
const NORMAL_TICK: usize = 1_000;
const OUTLIER_TICK: usize = 20_000;

/// Ten thing names whose report slots (the agent's `k * interval + offset`) fall at least
/// 300 ms away from every even second, hence from every window boundary (multiples of
/// 12 s): which window a report lands in does not depend on its delivery latency.
fn thing_names() -> Vec<String> {
    let interval = Duration::from_secs(INTERVAL_SECS);
    (0..)
        .map(|n| format!("stat-dev-{n}"))
        .filter(|name| (300..=1700).contains(&offset_ms(name, interval)))
        .take(DEVICES)
        .collect()
}

fn profile() -> serde_json::Value {
    serde_json::json!({
        "securityProfileName": "fleet-traffic",
        "behaviors": [{
            "name": "bytes-out-p90",
            "metric": "aws:all-bytes-out",
            "criteria": {
                "comparisonOperator": "less-than-equals",
                "statisticalThreshold": {"statistic": "p90"},
                "durationSeconds": 300
            }
        }]
    })
}

#[tokio::test]
async fn a_statistical_threshold_flags_the_one_device_of_ten_whose_traffic_is_far_above_the_others()
{
    let Some(net) = Veths::create(DEVICES) else {
        return;
    };
    net.enter();
    let (pki, broker, work, mut fleet) =
        single(&[profile()], &[("fleet-traffic", "group:fleet10")]);
    fleet.set_fleet_key(&format!("duration_override_secs = {}", WINDOW_MS / 1000));
    let (ok, out, err) = fleet.cli(&["check-config"]);
    assert!(
        ok && out.contains("duration_override_secs = 12"),
        "{out}{err}"
    );
    fleet.start_subscribed().await;
    let alarms = Alarms::start(&pki, broker.port, "detect-fleet/alarms/+").await;
    let accepted = Alarms::start(
        &pki,
        broker.port,
        "$aws/things/+/defender/metrics/+/accepted",
    )
    .await;

    // Traffic: every 50 ms each device's interface sends its share; the normal devices
    // stop at `normals_until` (epoch ms), the outlier never.
    let stop = Arc::new(AtomicBool::new(false));
    let normals_until = Arc::new(AtomicU64::new(u64::MAX));
    let traffic = {
        let (stop, normals_until) = (stop.clone(), normals_until.clone());
        std::thread::spawn(move || {
            let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
            while !stop.load(Ordering::Relaxed) {
                let normal = now_ms() < normals_until.load(Ordering::Relaxed);
                for i in 0..DEVICES {
                    let bytes = match (i == OUTLIER, normal) {
                        (true, _) => OUTLIER_TICK,
                        (false, true) => NORMAL_TICK,
                        (false, false) => 0,
                    };
                    veths::send(&socket, i, bytes);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    let names = thing_names();
    let agents: Vec<agent::Agent> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let collect = format!(
                "[collect]\ninclude_interfaces = [\"{}\"]\nexclude_interfaces = []\n",
                Veths::interface(i)
            );
            agent::spawn(
                work.path(),
                name,
                broker.port,
                &pki.ca,
                &pki.client_ec,
                "json",
                INTERVAL_SECS,
                &collect,
            )
        })
        .collect();
    let all_reporting = eventually(Duration::from_secs(40), || {
        let got = accepted.received();
        names
            .iter()
            .all(|n| got.iter().any(|(t, _)| t.contains(&format!("/{n}/"))))
    })
    .await;
    assert!(
        all_reporting,
        "{:?}\n{}\n{}",
        accepted.received(),
        fleet.log(),
        agents[0].log()
    );

    // The ten things join the group the profile is attached to just after a window starts
    // (the service reads the registry every 2 s): that window, `first`, is the first with
    // samples, so nothing is evaluated in it (no previous window, no threshold).
    let mut first = (now_ms() / WINDOW_MS + 1) * WINDOW_MS;
    if first - now_ms() < 500 {
        first += WINDOW_MS;
    }
    tokio::time::sleep(Duration::from_millis(
        (first + 200).saturating_sub(now_ms()),
    ))
    .await;
    for name in &names {
        let (ok, _, err) = fleet.cli(&["things", "add", name, "--group", "fleet10"]);
        assert!(ok, "{err}");
    }
    // p90 of ten devices (nearest rank 9) is the busiest normal device's own sum in `first`.
    // With steady traffic that device would sit exactly on the threshold in the next window
    // and one packet more or less would decide. So the normal devices go quiet one report
    // interval before `first` ends: every normal datapoint after it is then a sum over a
    // subset of the device's own reports of `first` (plus zeros), never above the threshold,
    // while the outlier keeps sending 20 times as much as a normal device did.
    let second = first + WINDOW_MS;
    normals_until.store(second - INTERVAL_SECS * 1000, Ordering::Relaxed);

    let outlier = &names[OUTLIER];
    let raised = eventually(Duration::from_secs(30), || {
        !alarms.of_type("in-alarm").is_empty()
    })
    .await;
    assert!(raised, "{}\n{}", fleet.log(), agents[OUTLIER].log());
    let e = alarms.of_type("in-alarm").remove(0);
    assert_eq!(e["thingName"], outlier.as_str(), "{e}");
    assert_eq!(e["securityProfileName"], "fleet-traffic", "{e}");
    assert_eq!(e["behavior"]["name"], "bytes-out-p90", "{e}");
    // The event shows the profile's behavior as written (durationSeconds 300, statistic).
    assert_eq!(e["behavior"]["criteria"]["durationSeconds"], 300, "{e}");
    assert!(now_ms() >= second, "in-alarm before the second window: {e}");
    let value = e["metricValue"]["count"].as_u64().unwrap();
    // At least four 2 s intervals of the outlier's 20 000 bytes per 50 ms tick.
    assert!(value > 1_000_000, "{e}");

    // Three more reports of every device in the second window (and into the third, where
    // the normal devices' zeros are the population): never an alarm for a normal device.
    tokio::time::sleep(Duration::from_millis(
        (second + 8_000).saturating_sub(now_ms()),
    ))
    .await;
    stop.store(true, Ordering::Relaxed);
    traffic.join().unwrap();
    let all = alarms.received();
    assert!(
        all.iter()
            .all(|(t, v)| *t == format!("detect-fleet/alarms/{outlier}")
                && v["thingName"] == outlier.as_str()),
        "{all:?}\n{}",
        fleet.log()
    );
    assert_eq!(alarms.of_type("in-alarm").len(), 1, "{all:?}");
    let active = fleet.violations(&["--active"]);
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0]["thingName"], outlier.as_str());
    // The threshold came from all ten devices: the log names it, below the outlier's value.
    let log = fleet.log();
    assert!(
        log.lines()
            .any(|l| l.contains("statistical threshold") && l.contains("threshold=Some(")),
        "{log}"
    );
    drop(agents);
}
