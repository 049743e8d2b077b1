//! The web console in a real headless Chromium (Debian's `chromium`, DevTools protocol): an
//! alarm raised by published reports is on the alarms page, the thing page charts the metric
//! with the behavior's threshold, and a verification clicked in the page is stored.

use std::path::PathBuf;
use std::time::Duration;

use detect_testkit::backend::tls;
use detect_testkit::chromium::Chromium;
use detect_testkit::eventually;
use detect_testkit::fleet::{Fleet, single};
use rumqttc::{AsyncClient, MqttOptions, QoS, Transport};
use serde_json::{Value, json};

const THING: &str = "console-gw-1";
const TOKEN: &str = "console-test-token-0123456789";
const METRIC: &str = "aws:num-listening-tcp-ports";

/// Where screenshots go: target/artefacts/console/ (kept after the run).
fn artefacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("artefacts/console");
    std::fs::create_dir_all(&dir).unwrap();
    dir.canonicalize().unwrap()
}

fn profile() -> Value {
    json!({
        "securityProfileName": "gateway-baseline",
        "behaviors": [{
            "name": "few-listeners",
            "metric": METRIC,
            "criteria": {"comparisonOperator": "less-than", "value": {"count": 3},
                         "consecutiveDatapointsToAlarm": 1, "consecutiveDatapointsToClear": 1}
        }]
    })
}

/// A report listening on `ports` (its count is the charted metric).
fn report(id: u64, ports: &[u16]) -> Vec<u8> {
    let list: Vec<Value> = ports.iter().map(|p| json!({"port": p})).collect();
    serde_json::to_vec(&json!({
        "header": {"report_id": id, "version": "1.0"},
        "metrics": {
            "listening_tcp_ports": {"ports": list, "total": ports.len()},
            "tcp_connections": {"established_connections": {
                "connections": [{"remote_addr": "192.0.2.7:443", "local_port": 50100}], "total": 1}}
        }
    }))
    .unwrap()
}

/// Clicks the element `selector` with the mouse (its centre), as a user would.
fn click(page: &mut Chromium, selector: &str) {
    let at = page.eval(&format!(
        "(() => {{ const e = document.querySelector({selector:?}); if (!e) return null; \
         e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
         return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
    ));
    let (Some(x), Some(y)) = (at[0].as_f64(), at[1].as_f64()) else {
        panic!("{selector}: not on the page ({at})");
    };
    for kind in ["mousePressed", "mouseReleased"] {
        page.call(
            "Input.dispatchMouseEvent",
            json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
        );
    }
}

/// Clears the page's status line, clicks `selector`, and returns what the line says next.
fn click_and_read(page: &mut Chromium, selector: &str) -> String {
    page.eval("DC.show(''); true");
    click(page, selector);
    let text = page.wait_for(
        "document.getElementById('message').hidden ? '' : document.getElementById('message').textContent",
        Duration::from_secs(15),
    );
    text.as_str().unwrap_or("").to_string()
}

fn stored_state(fleet: &Fleet) -> Vec<String> {
    fleet
        .violations(&["--thing", THING])
        .iter()
        .map(|v| v["verificationState"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_the_alarm_charts_the_threshold_and_stores_a_clicked_verification() {
    let (pki, broker, _work, mut fleet) =
        single(&[profile()], &[("gateway-baseline", "all-things")]);
    fleet.set_token(TOKEN);
    fleet.start_subscribed().await;

    let mut o = MqttOptions::new("console-device", "127.0.0.1", broker.port);
    o.set_transport(Transport::tls_with_config(tls(&pki, &pki.client_ec)));
    let (c, mut el) = AsyncClient::new(o, 10);
    tokio::spawn(async move {
        loop {
            if el.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    // 1, 2, then 4 and 5 listeners: the third report raises the alarm (less-than 3).
    let topic = format!("$aws/things/{THING}/defender/metrics/json");
    for (id, ports) in [
        (1, &[22][..]),
        (2, &[22, 80]),
        (3, &[22, 80, 443, 8080]),
        (4, &[22, 80, 443, 8080, 9000]),
    ] {
        c.publish(&topic, QoS::AtLeastOnce, false, report(id, ports))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1300)).await;
    }
    let up = eventually(Duration::from_secs(10), || fleet.http_addr().is_some()).await;
    assert!(up, "no HTTP listener:\n{}", fleet.log());
    let base = format!("http://{}/", fleet.http_addr().unwrap());
    let dir = artefacts();
    let result = tokio::task::spawn_blocking(move || drive(&base, &dir)).await;
    let violation_id = match result {
        Ok(id) => id,
        Err(e) => panic!("{e}\n{}", fleet.log()),
    };
    let states = stored_state(&fleet);
    assert_eq!(states, ["TRUE_POSITIVE"], "{violation_id}: {states:?}");
    let stored = fleet.violations(&["--thing", THING]);
    assert_eq!(stored[0]["violationId"], json!(violation_id));
}

/// The browser's part (blocking): returns the violation id verified in the page.
fn drive(base: &str, dir: &std::path::Path) -> String {
    let mut page = Chromium::start();
    page.navigate(&format!("{base}#/alarms"));
    // Re-reads the list every 2 s until the alarm shows (the fleet judges asynchronously).
    let row = page.wait_for(
        &format!(
            "(() => {{ const r = [...document.querySelectorAll('#alarms tbody tr')]\
             .find(r => r.textContent.includes({THING:?})); \
             if (r) return r.getAttribute('data-violation'); \
             if (window.DC && (!window.lastRoute || Date.now() - window.lastRoute > 2000)) \
             {{ window.lastRoute = Date.now(); DC.route(); }} return null; }})()"
        ),
        Duration::from_secs(45),
    );
    let Some(id) = row.as_str().map(str::to_string) else {
        panic!("the alarm never showed on the alarms page:\n{}", page.log());
    };
    let cells = page.eval(&format!(
        "[...document.querySelector('tr[data-violation={id:?}]').cells].map(c => c.textContent)"
    ));
    assert_eq!(cells[0], "gateway-baseline", "{cells}");
    assert_eq!(cells[1], "few-listeners", "{cells}");
    assert_eq!(cells[2], THING, "{cells}");
    assert!(
        cells[4].as_str().unwrap_or("").starts_with('4'),
        "value: {cells}"
    );
    assert!(
        cells[5].as_str().unwrap_or("").starts_with("UNKNOWN"),
        "{cells}"
    );
    let shot = dir.join("alarms.png");
    page.screenshot(&shot);
    println!("screenshot: {}", shot.display());

    // No token: the page refuses before asking. A wrong token: the API's 401 is shown.
    let button = format!("tr[data-violation={id:?}] button[data-state=TRUE_POSITIVE]");
    let said = click_and_read(&mut page, &button);
    assert!(said.contains("need the bearer token"), "{said}");
    page.eval("document.getElementById('token').value = 'not-the-token'; document.getElementById('token-form').requestSubmit(); true");
    let said = click_and_read(&mut page, &button);
    assert!(
        said.contains("Unauthorized") || said.contains("401") || said.contains("Forbidden"),
        "{said}"
    );
    page.eval(&format!("document.getElementById('token').value = {TOKEN:?}; document.getElementById('token-form').requestSubmit(); true"));
    let done = click_and_read(&mut page, &button);
    assert!(done.contains("marked TRUE_POSITIVE"), "{done}");
    let label = page.eval(&format!(
        "document.querySelector('tr[data-violation={id:?}] .state').textContent"
    ));
    assert_eq!(label, "TRUE_POSITIVE");
    assert_eq!(page.eval("document.cookie"), "", "the console set a cookie");

    // The thing page: the metric's chart with the threshold line at 3 and the alarm shaded.
    page.navigate(&format!("{base}#/thing/{THING}?span=300"));
    let chart = format!("document.querySelector('.chart-box[data-metric={METRIC:?}] svg.chart')");
    let drawn = page.wait_for(
        &format!("{chart} && {chart}.querySelectorAll('polyline.series').length"),
        Duration::from_secs(30),
    );
    assert_eq!(drawn, 1, "no series drawn:\n{}", page.log());
    let threshold = page.eval(&format!(
        "[...{chart}.querySelectorAll('line.threshold')].map(l => l.getAttribute('data-value'))"
    ));
    assert_eq!(threshold, json!(["3"]));
    let points = page.eval(&format!(
        "{chart}.querySelector('polyline.series').getAttribute('points').split(' ').length"
    ));
    assert!(points.as_u64().is_some_and(|n| n >= 3), "{points}");
    let shaded = page.eval(&format!(
        "{chart}.querySelectorAll('rect.alarm-period').length"
    ));
    assert_eq!(shaded, 1, "the alarm period is not shaded");
    let ports = page.wait_for(
        "document.getElementById('ports') && document.getElementById('ports').textContent",
        Duration::from_secs(10),
    );
    assert!(
        ports.as_str().is_some_and(|p| p.contains("9000")),
        "{ports}"
    );
    let shot = dir.join("thing.png");
    page.screenshot(&shot);
    println!("screenshot: {}", shot.display());

    page.navigate(&format!("{base}#/history"));
    page.wait_for(
        "document.querySelectorAll('#history tbody tr').length",
        Duration::from_secs(15),
    );
    let shot = dir.join("history.png");
    page.screenshot(&shot);
    println!("screenshot: {}", shot.display());
    page.navigate(&format!("{base}#/profile/gateway-baseline"));
    page.wait_for(
        "document.querySelectorAll('#targets tbody tr').length",
        Duration::from_secs(15),
    );
    let shot = dir.join("profile.png");
    page.screenshot(&shot);
    println!("screenshot: {}", shot.display());
    id
}
