//! `detect-fleet check-config` says, per profile, what detect-fleet evaluates and what it does
//! not (issue #17 item 5), in its own terms rather than the agent's "on the device".
use detect_testkit::broker::Broker;
use detect_testkit::certs::Pki;
use detect_testkit::fleet::Fleet;
use serde_json::json;

#[test]
fn check_config_says_what_the_fleet_evaluates_and_what_it_does_not() {
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let nothing = json!({
        "securityProfileName": "cloud-only",
        "behaviors": [
            {"name": "msgs", "metric": "aws:num-messages-sent",
             "criteria": {"comparisonOperator": "greater-than", "value": {"count": 10}, "durationSeconds": 300}},
            {"name": "kept", "metric": "aws:num-listening-tcp-ports"}
        ]
    });
    let some = json!({
        "securityProfileName": "mixed",
        "behaviors": [
            {"name": "p90", "metric": "aws:num-established-tcp-connections",
             "criteria": {"comparisonOperator": "greater-than", "durationSeconds": 300,
                          "statisticalThreshold": {"statistic": "p90"}}},
            {"name": "auth", "metric": "aws:num-authorization-failures",
             "criteria": {"comparisonOperator": "greater-than", "value": {"count": 5}, "durationSeconds": 300}}
        ]
    });
    let fleet = Fleet::configure(
        work.path(),
        &pki,
        &broker,
        &[nothing, some],
        &[("cloud-only", "all-things"), ("mixed", "all-things")],
        1,
    );
    let (ok, out, err) = fleet.cli(&["check-config"]);
    assert!(ok, "{out}{err}");
    let all = format!("{out}{err}");
    assert!(!all.contains("on the device"), "{all}");
    assert!(
        out.contains("warning: profile cloud-only: detect-fleet evaluates none of its 2 behaviors"),
        "{out}"
    );
    assert!(
        out.contains("behavior msgs: not evaluated by detect-fleet: aws:num-messages-sent is a cloud-side metric"),
        "{out}"
    );
    assert!(
        out.contains("behavior kept: not evaluated by detect-fleet: no criteria"),
        "{out}"
    );
    assert!(
        out.contains("profile mixed: detect-fleet evaluates p90\n"),
        "{out}"
    );
    assert!(
        out.contains("behavior auth: not evaluated by detect-fleet"),
        "{out}"
    );
}

/// The shipped config/profiles/fleet-cloud.json: each of its behaviors is named as not fed when
/// `[broker] source = "none"`; with the plugin and the shipped `own-reports` dimension, all are
/// evaluated.
#[test]
fn check_config_warns_for_each_behavior_of_the_shipped_cloud_profile_that_source_none_cannot_feed()
{
    let pki = Pki::generate();
    let broker = Broker::start(&pki);
    let work = tempfile::tempdir().unwrap();
    let text = include_str!("../../../../config/profiles/fleet-cloud.json");
    let profile: serde_json::Value = serde_json::from_str(text).unwrap();
    let behaviors: Vec<String> = profile["behaviors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(behaviors.len(), 9, "{profile}");
    let with_source = |dir: &std::path::Path, source: &str, dimension: &str| {
        std::fs::create_dir_all(dir).unwrap();
        let attach = [("fleet-cloud", "all-things")];
        let fleet = Fleet::configure(
            dir,
            &pki,
            &broker,
            std::slice::from_ref(&profile),
            &attach,
            1,
        );
        let text = std::fs::read_to_string(&fleet.config).unwrap();
        let id = "client_id = \"detect-fleet-test\"\n";
        let text = text.replacen(id, &format!("{id}source = {source:?}\n"), 1) + dimension;
        std::fs::write(&fleet.config, text).unwrap();
        fleet
    };
    let none = with_source(&work.path().join("none"), "none", "");
    let (ok, out, err) = none.cli(&["check-config"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(
            "warning: profile fleet-cloud: detect-fleet evaluates none of its 9 behaviors"
        ),
        "{out}"
    );
    for b in &behaviors {
        let warned = format!("behavior {b}: not evaluated by detect-fleet: ");
        let line = out.lines().find(|l| l.contains(&warned));
        assert!(
            line.is_some_and(|l| l.contains("[broker] source = \"none\" does not feed")),
            "{b}: {out}"
        );
    }
    let dimension = "[[dimension]]\nname = \"own-reports\"\ntype = \"TOPIC_FILTER\"\n\
                     values = [\"$aws/things/${iot:ClientId}/defender/metrics/+\"]\n";
    let plugin = with_source(&work.path().join("plugin"), "mosquitto-plugin", dimension);
    let (ok, out, err) = plugin.cli(&["check-config"]);
    assert!(ok, "{out}{err}");
    assert!(!out.contains("not evaluated"), "{out}");
    assert!(
        out.contains(&format!(
            "profile fleet-cloud: detect-fleet evaluates {}\n",
            behaviors.join(", ")
        )),
        "{out}"
    );
}
