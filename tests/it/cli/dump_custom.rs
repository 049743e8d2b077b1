//! End-to-end tests of `dump` with `[[custom_metrics]]`: the table's CUSTOM METRICS section
//! (values and errors) and the exact payload in all four encodings, decoded independently.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::custom::{file, script, table};

const BIN: &str = env!("CARGO_BIN_EXE_detect-agent");
/// A dump with these metrics takes about a second; this only bounds a hung child.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// A config in `dir` with one metric of every type and source, and one that fails.
fn config(dir: &Path) -> PathBuf {
    let text = [
        "thing_name = \"dump-custom\"\n".to_string(),
        table("process_count", "number", "builtin = \"process_count\""),
        table("battery_pct", "number", &file(dir, "battery", "87.5\n")),
        table(
            "fw_modules",
            "string-list",
            &(script(dir, "modules.sh", "echo net\necho ota\n") + "\ntimeout_secs = 10"),
        ),
        table(
            "temps",
            "number-list",
            &file(dir, "temps", "[41.5, 42, -3]\n"),
        ),
        table(
            "peers",
            "ip-address-list",
            &file(dir, "peers", "198.51.100.2\n2001:db8::9\n"),
        ),
        table(
            "broken",
            "number",
            &script(dir, "failing.sh", "echo 'sensor offline' >&2\nexit 2\n"),
        ),
    ]
    .concat();
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `dump ARGS` with stdout/stderr in files (no pipe to fill), killed after RUN_LIMIT.
fn dump(dir: &Path, args: &[&str]) -> (Vec<u8>, String) {
    let (out, err) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = Command::new(BIN)
        .arg("dump")
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("dump {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert!(status.success(), "dump {args:?}: {status:?}\n{stderr}");
    (std::fs::read(&out).unwrap(), stderr)
}

#[test]
fn the_table_shows_every_custom_metric_with_its_type_value_or_error_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let (out, _) = dump(
        dir.path(),
        &["--config", cfg.to_str().unwrap(), "--format", "table"],
    );
    let text = String::from_utf8(out).unwrap();
    let section = text
        .split_once("CUSTOM METRICS (6)")
        .unwrap_or_else(|| panic!("no CUSTOM METRICS section:\n{text}"))
        .1;
    let row = |name: &str| -> &str {
        section
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{section}"))
    };
    let words = |name: &str| -> Vec<&str> { row(name).split_whitespace().collect() };
    let count = words("process_count");
    assert_eq!(count[1], "number");
    assert!(count[2].parse::<u64>().unwrap() > 0, "{count:?}");
    assert_eq!(&count[3..], ["builtin", "process_count"]);
    assert_eq!(words("battery_pct")[..3], ["battery_pct", "number", "87.5"]);
    assert!(row("fw_modules").contains("string-list"));
    assert!(row("fw_modules").contains("[2] net,ota"));
    assert!(row("fw_modules").contains("command /bin/sh "));
    assert!(row("temps").contains("[3] 41.5,42,-3"));
    assert!(row("peers").contains("[2] 198.51.100.2,2001:db8::9"));
    let broken = row("broken");
    assert!(
        broken.contains("error: exited with status 2 (stderr: sensor offline)"),
        "{broken}"
    );
}

/// The custom metrics of a payload as JSON, whatever the encoding.
fn custom_of(bytes: &[u8], format: &str) -> serde_json::Value {
    let v: serde_json::Value = if format.starts_with("cbor") {
        let c: ciborium::Value = ciborium::from_reader(bytes).unwrap();
        serde_json::to_value(&c).unwrap()
    } else {
        serde_json::from_slice(bytes).unwrap()
    };
    let (key, other) = if format.ends_with("-short") {
        ("cmet", "custom_metrics")
    } else {
        ("custom_metrics", "cmet")
    };
    assert!(v.get(other).is_none(), "{format}: mixed spellings");
    v[key].clone()
}

#[test]
fn payload_dumps_carry_the_custom_metrics_in_all_four_encodings() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    for format in ["json", "json-short", "cbor", "cbor-short"] {
        let (out, stderr) = dump(
            dir.path(),
            &["--config", cfg.to_str().unwrap(), "--format", format],
        );
        let c = custom_of(&out, format);
        let names: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
        // Sorted by name; the failing metric is left out of the payload.
        assert_eq!(
            names,
            [
                "battery_pct",
                "fw_modules",
                "peers",
                "process_count",
                "temps"
            ],
            "{format}"
        );
        assert_eq!(
            c["battery_pct"],
            serde_json::json!([{"number": 87.5}]),
            "{format}"
        );
        assert_eq!(
            c["fw_modules"],
            serde_json::json!([{"string_list": ["net", "ota"]}]),
            "{format}"
        );
        assert_eq!(
            c["peers"],
            serde_json::json!([{"ip_list": ["198.51.100.2", "2001:db8::9"]}]),
            "{format}"
        );
        assert_eq!(
            c["temps"],
            serde_json::json!([{"number_list": [41.5, 42.0, -3.0]}]),
            "{format}"
        );
        assert!(c["process_count"][0]["number"].as_f64().unwrap() >= 1.0);
        // ... with one warning naming it and why.
        let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("broken")).collect();
        assert_eq!(warnings.len(), 1, "{format}: {stderr}");
        assert!(warnings[0].contains("exited with status 2"), "{stderr}");
    }
}

#[test]
fn a_bad_custom_metric_fails_dump_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, table("x", "number", "builtin = \"kernel_modules\"")).unwrap();
    let out = Command::new(BIN)
        .args(["dump", "--format", "json", "--config"])
        .arg(&cfg)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("custom_metrics[0] \"x\": type:"), "{err}");
}
