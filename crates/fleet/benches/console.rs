//! scripts/bench-console: how fast the web console's pages are on a large store. Runs
//! `detect-fleet run` (with `[http]`) on the database `BENCH_CONSOLE_DB` (filled by the script)
//! and a headless Chromium; loads each page `RUNS` times (default 5) from a blank tab and prints
//! the time until its content is drawn (median and worst) and its slowest API call.
//! Numbers only; nothing is asserted.

use std::time::Duration;

use detect_testkit::broker::Broker;
use detect_testkit::certs::Pki;
use detect_testkit::chromium::Chromium;
use detect_testkit::eventually;
use detect_testkit::fleet::Fleet;
use serde_json::json;

/// The pages and the condition that says each is drawn.
const PAGES: &[(&str, &str, &str)] = &[
    (
        "alarms (25 newest active)",
        "#/alarms",
        "document.querySelector('#alarms table, #alarms .empty')",
    ),
    (
        "history (25 events, 14 days)",
        "#/history",
        "document.querySelector('#history table, #history .empty')",
    ),
    (
        "things (25)",
        "#/things",
        "document.querySelector('#things table, #things .empty')",
    ),
    (
        "profile",
        "#/profile/gateway-baseline",
        "document.querySelector('#targets table, #targets .empty')",
    ),
    (
        "thing, 14-day chart",
        "#/thing/THING",
        "document.querySelector('#facts .card') && document.querySelector('.chart-box') \
         && !document.querySelector('.chart-box .loading')",
    ),
];

fn main() {
    let Ok(db) = std::env::var("BENCH_CONSOLE_DB") else {
        eprintln!("bench console: run it through scripts/bench-console (BENCH_CONSOLE_DB unset)");
        return;
    };
    let thing = std::env::var("BENCH_CONSOLE_THING").unwrap_or_else(|_| "thing-000042".into());
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let profile = json!({
        "securityProfileName": "gateway-baseline",
        "behaviors": [{"name": "few-listeners", "metric": "aws:num-listening-tcp-ports",
            "criteria": {"comparisonOperator": "less-than", "value": {"count": 3}}}]
    });
    let mut fleet = Fleet::configure(
        work.path(),
        &pki,
        &broker,
        &[profile],
        &[("gateway-baseline", "all-things")],
        1,
    );
    let text = std::fs::read_to_string(&fleet.config).unwrap();
    let own = format!(
        "database = {:?}",
        work.path().join("fleet.db").display().to_string()
    );
    std::fs::write(
        &fleet.config,
        text.replace(&own, &format!("database = {db:?}")),
    )
    .unwrap();
    runtime.block_on(fleet.start_subscribed());
    let up = runtime.block_on(eventually(Duration::from_secs(30), || {
        fleet.http_addr().is_some()
    }));
    assert!(up, "no HTTP listener:\n{}", fleet.log());
    let base = format!("http://{}/", fleet.http_addr().unwrap());
    let mut page = Chromium::start();
    println!(
        "page                          median ms  worst ms  slowest API call (ms, of the median run)"
    );
    for (name, hash, done) in PAGES {
        let url = format!("{base}{}", hash.replace("THING", &thing));
        let mut times = Vec::new();
        for _ in 0..runs {
            page.navigate("about:blank");
            page.wait_for("location.href === 'about:blank'", Duration::from_secs(10));
            page.navigate(&url);
            page.wait_for(
                &format!("location.href === {url:?} && document.readyState !== 'loading'"),
                Duration::from_secs(30),
            );
            // Milliseconds from the navigation's start until `done` holds (polled every 5 ms).
            let ms = page.eval(&format!(
                "new Promise(ok => {{ const f = () => ({done}) ? ok(performance.now()) : setTimeout(f, 5); f(); }})"
            ));
            let api = page.eval(
                "performance.getEntriesByType('resource').filter(e => e.name.includes('/api/v1/'))\
                 .map(e => [e.duration, e.name.split('/api/v1')[1].split('?')[0]])\
                 .sort((a, b) => b[0] - a[0])[0] || [0, '']",
            );
            times.push((ms.as_f64().unwrap_or(f64::NAN), api));
        }
        times.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (median, api) = &times[times.len() / 2];
        let worst = times.last().map_or(f64::NAN, |t| t.0);
        println!(
            "{name:<30} {median:>8.0} {worst:>9.0}  {:.0} {}",
            api[0].as_f64().unwrap_or(0.0),
            api[1].as_str().unwrap_or("")
        );
    }
}
