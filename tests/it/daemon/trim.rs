//! `detect-agent run` gives its start-up code back (src/daemon/trim.rs): after the first cycle
//! on a connection, once, and again after a reconnect. Real binary, real mosquitto.
use std::time::Duration;

use detect_testkit::agent::{Setup, config, spawn};
use detect_testkit::{Broker, Pki, eventually};

const GIVEN_BACK: &str = "start-up code pages given back";

#[tokio::test]
async fn start_up_code_is_paged_out_after_the_first_cycle_of_each_connection() {
    let pki = Pki::generate();
    let mut broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let cfg = config(&Setup {
        dir: work.path(),
        port: broker.port,
        ca: &pki.ca,
        id: &pki.client_rsa,
        format: "json",
        interval: 1,
        extra: "",
    });
    let agent = spawn(&cfg, &[("RUST_LOG", "detect_agent=debug")]);
    let given_back = || agent.log().matches(GIVEN_BACK).count();
    assert!(
        eventually(Duration::from_secs(20), || given_back() == 1).await,
        "no page-out after the first cycle; log:\n{}",
        agent.log()
    );
    // Not every cycle: the connection is the same.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(given_back(), 1, "log:\n{}", agent.log());

    broker.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.start_again();
    assert!(
        eventually(Duration::from_secs(60), || given_back() == 2).await,
        "no page-out after the reconnect; log:\n{}",
        agent.log()
    );
    let (status, _) = agent.stop().await;
    assert!(status.success(), "{status}");
}
