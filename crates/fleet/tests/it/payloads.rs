//! Reports as other agents write them, through mosquitto to detect-fleet: `null` in optional
//! fields (AWS's Python agent) is read as absent and the rest of the report evaluated; a
//! report_id the store cannot hold exactly is refused and costs the thing nothing.

use detect_testkit::broker::Broker;
use detect_testkit::certs::Pki;
use detect_testkit::fleet::Fleet;
use serde_json::{Value, json};

use super::answers::{cbor, client, rejected, send};

/// Forbids remote addresses in 10.0.0.0/8 (`aws:destination-ip-addresses`).
fn forbid_private_dest() -> Value {
    json!({"securityProfileName": "no-private-dest", "behaviors": [{
        "name": "no-private-dest", "metric": "aws:destination-ip-addresses",
        "criteria": {"comparisonOperator": "not-in-cidr-set", "value": {"cidrs": ["10.0.0.0/8"]}}}]})
}

/// The report AWS's Python agent sends on a dual-stack server (`::`, V6ONLY=0): every IPv4
/// client's local address is no interface's, so its `local_interface` is `null`.
fn dual_stack(id: u64, forbidden: &str) -> Value {
    json!({"header": {"report_id": id, "version": "1.0"},
        "metrics": {
            "listening_tcp_ports": {"ports": [{"port": 8080, "interface": null}], "total": 1},
            "listening_udp_ports": {"ports": [], "total": 0},
            "tcp_connections": {"established_connections": {"connections": [
                {"remote_addr": "192.0.2.10:50000", "local_port": 8080, "local_interface": null},
                {"remote_addr": forbidden, "local_port": 41000, "local_interface": "eth0"}],
                "total": 2}}}})
}

#[tokio::test]
async fn a_dual_stack_report_with_null_local_interfaces_is_accepted_and_evaluated() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let profile = forbid_private_dest();
    let attach = [("no-private-dest", "all-things")];
    let mut fleet = Fleet::configure(work.path(), &pki, &broker, &[profile], &attach, 1);
    fleet.start_subscribed().await;
    let (c, got) = client(&pki, broker.port).await;
    let json_bytes = serde_json::to_vec(&dual_stack(1796551004, "10.1.2.3:445")).unwrap();
    let (topic, v) = send(&c, &got, "py-json", "json", json_bytes).await;
    assert_eq!(
        topic, "$aws/things/py-json/defender/metrics/json/accepted",
        "{v}"
    );
    let cbor_bytes = cbor(&dual_stack(1796551004, "10.9.9.9:22"));
    assert!(cbor_bytes.contains(&0xf6), "CBOR null");
    let (topic, v) = send(&c, &got, "py-cbor", "cbor", cbor_bytes).await;
    assert_eq!(
        topic, "$aws/things/py-cbor/defender/metrics/cbor/accepted",
        "{v}"
    );
    for (thing, ip) in [("py-json", "10.1.2.3"), ("py-cbor", "10.9.9.9")] {
        let v = fleet.violations(&["--active", "--thing", thing]);
        assert_eq!(v.len(), 1, "{v:?}\n{}", fleet.log());
        let cidrs = &v[0]["lastViolationValue"]["cidrs"];
        assert_eq!(cidrs, &json!([ip, "192.0.2.10"]), "{}", v[0]);
    }
}

#[tokio::test]
async fn report_ids_from_2_pow_63_are_refused_and_the_things_next_report_is_evaluated() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let profile = forbid_private_dest();
    let attach = [("no-private-dest", "all-things")];
    let mut fleet = Fleet::configure(work.path(), &pki, &broker, &[profile], &attach, 1);
    fleet.start_subscribed().await;
    let (c, got) = client(&pki, broker.port).await;
    // Two ids a signed 64-bit column cannot hold: once stored as i64::MAX, they made every
    // later report of the thing a redelivery or "not greater than the last accepted".
    for id in [1u64 << 63, (1u64 << 63) + 1] {
        let bytes = serde_json::to_vec(&dual_stack(id, "198.51.100.1:443")).unwrap();
        let a = send(&c, &got, "big-id", "json", bytes).await;
        rejected(&a, "InvalidPayload", "big-id", "json");
        let message = a.1["statusDetails"]["ErrorMessage"].as_str().unwrap();
        assert!(
            message.contains(&format!("report_id: {id} is above")),
            "{message}"
        );
    }
    let bytes = serde_json::to_vec(&dual_stack(1796551004, "10.1.2.3:445")).unwrap();
    let (topic, v) = send(&c, &got, "big-id", "json", bytes).await;
    assert_eq!(
        topic, "$aws/things/big-id/defender/metrics/json/accepted",
        "{v}"
    );
    assert_eq!(v["reportId"], 1796551004);
    let v = fleet.violations(&["--active", "--thing", "big-id"]);
    assert_eq!(v.len(), 1, "{v:?}\n{}", fleet.log());
    let (_, things, _) = fleet.cli(&["things", "list"]);
    let row = things.lines().find(|l| l.starts_with("big-id ")).unwrap();
    assert!(row.contains(" 1796551004 "), "{things}");
}
