//! Issue #11 item 8: a `report_id` file at the 2^53−1 cap is damage, not the end of all
//! reports. The real binary against a real mosquitto with mutual TLS and the test backend.
use std::time::Duration;

use detect_testkit::agent::{Setup, accepted_for, config, spawn};
use detect_testkit::{Backend, Broker, Pki, eventually};

const CAP: u64 = (1 << 53) - 1;

#[tokio::test]
async fn an_id_file_at_the_cap_is_logged_as_damage_and_reports_go_on_below_it() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let backend = Backend::start(&pki, broker.port).await;
    let work = tempfile::tempdir().unwrap();
    let state = work.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("report_id"), format!("{CAP}\n")).unwrap();
    let cfg = config(&Setup {
        dir: work.path(),
        port: broker.port,
        ca: &pki.ca,
        id: &pki.client_ec,
        format: "json",
        interval: 2,
        extra: "",
    });
    let agent = spawn(&cfg, &[]);
    let ok = eventually(Duration::from_secs(30), || {
        accepted_for(&backend.received(), &pki.client_ec.name).len() >= 2
    })
    .await;
    let log = agent.log();
    let (status, _) = agent.stop().await;
    assert!(ok, "no two accepted reports; {log}");
    assert!(status.success(), "exit {status:?}");
    assert!(
        log.contains("damaged report id file") && log.contains("2^53-1 cap"),
        "{log}"
    );
    let got = backend.received();
    let ids: Vec<u64> = accepted_for(&got, &pki.client_ec.name)
        .iter()
        .map(|r| r.report_id.unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(ids.iter().all(|id| *id < CAP), "{ids:?}");
    let stored: u64 = std::fs::read_to_string(state.join("report_id"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The agent may have handed out one more id than the backend saw before it stopped.
    assert!(
        ids.last().is_some_and(|last| stored >= *last) && stored < CAP,
        "{stored}"
    );
}
