//! `kill -9` of detect-fleet in the middle of a load run: the persistent session keeps the
//! unacknowledged reports in the broker, the restarted service stores every report exactly
//! once, and every thing's alarm is raised (and notified) once.
use std::time::Duration;

use detect_testkit::alarms::Alarms;
use detect_testkit::backend::tls;
use detect_testkit::eventually;
use detect_testkit::fleet::{forbid_port, single};
use rumqttc::{AsyncClient, MqttOptions, QoS, Transport};
use serde_json::json;

const THINGS: u64 = 100;
const ROUNDS: u64 = 6;

fn count(db: &std::path::Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn kill_9_during_a_load_run_stores_every_report_once_and_repeats_no_alarm() {
    // Every report lists port 22: each thing's first accepted report raises its alarm.
    let (pki, broker, work, mut fleet) =
        single(&[forbid_port("no-ssh", 22)], &[("no-ssh", "all-things")]);
    fleet.start_subscribed().await;
    let alarms = Alarms::start(&pki, broker.port, "detect-fleet/alarms/+").await;

    let mut o = MqttOptions::new("load", "127.0.0.1", broker.port);
    o.set_transport(Transport::tls_with_config(tls(&pki, &pki.client_rsa)))
        .set_keep_alive(Duration::from_secs(5));
    let (c, mut el) = AsyncClient::new(o, 1000);
    tokio::spawn(async move {
        loop {
            if el.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    for round in 0..ROUNDS {
        for t in 0..THINGS {
            let r = json!({
                "header": {"report_id": 1000 + round, "version": "1.0"},
                "metrics": {"listening_tcp_ports": {"ports": [{"port": 22}], "total": 1}}
            });
            let topic = format!("$aws/things/load-{t:03}/defender/metrics/json");
            c.publish(
                topic,
                QoS::AtLeastOnce,
                false,
                serde_json::to_vec(&r).unwrap(),
            )
            .await
            .unwrap();
        }
        if round == 2 {
            // Mid-run: some of this round is stored, some only in the broker.
            tokio::time::sleep(Duration::from_millis(150)).await;
            fleet.kill9();
            tokio::time::sleep(Duration::from_millis(500)).await;
            fleet.start();
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let db = work.path().join("fleet.db");
    let all = (THINGS * ROUNDS) as i64;
    let stored = eventually(Duration::from_secs(60), || {
        count(&db, "SELECT count(*) FROM reports") >= all
    })
    .await;
    assert!(
        stored,
        "{} of {all} reports stored\n{}",
        count(&db, "SELECT count(*) FROM reports"),
        fleet.log()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&db, "SELECT count(*) FROM reports"), all);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM (SELECT thing FROM reports GROUP BY thing HAVING count(*) = 6)"
        ),
        THINGS as i64
    );
    // One alarm episode per thing, each notified once.
    assert_eq!(count(&db, "SELECT count(*) FROM violations"), THINGS as i64);
    assert_eq!(
        count(&db, "SELECT count(DISTINCT thing) FROM violations"),
        THINGS as i64
    );
    let notified = eventually(Duration::from_secs(20), || {
        alarms.of_type("in-alarm").len() >= THINGS as usize
    })
    .await;
    assert!(
        notified,
        "{} in-alarm received",
        alarms.of_type("in-alarm").len()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = alarms.of_type("in-alarm");
    let ids: std::collections::BTreeSet<_> =
        got.iter().map(|e| e["violationId"].to_string()).collect();
    assert_eq!(ids.len(), THINGS as usize);
    assert_eq!(got.len(), THINGS as usize, "a notification was sent twice");
    assert_eq!(count(&db, "SELECT count(*) FROM events WHERE sent = 0"), 0);
    assert!(
        fleet.log().contains("session_present=true"),
        "{}",
        fleet.log()
    );
}
