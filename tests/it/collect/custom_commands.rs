//! The `command` custom metric source against real scripts written by each test: every
//! type, no shell, minimal environment, stdin, timeouts that kill the whole group, bad output.
use std::path::Path;
use std::time::{Duration, Instant};

use crate::custom::{all_dead, hung_with_pids, one, read};

use detect_agent::collect::custom::{CustomError, CustomValue, MetricSpec, MetricType, Source};

/// A shell script in `dir`, run as `/bin/sh script` (no exec of a file just written, which
/// can fail with ETXTBSY while another test thread forks).
fn script(dir: &Path, name: &str, body: &str) -> Vec<String> {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    vec!["/bin/sh".to_string(), path.display().to_string()]
}

fn command(name: &str, kind: MetricType, argv: Vec<String>, timeout_secs: u64) -> MetricSpec {
    MetricSpec {
        name: name.to_string(),
        kind,
        source: Source::Command {
            argv,
            timeout: Duration::from_secs(timeout_secs),
        },
    }
}

#[test]
fn a_command_gives_each_of_the_four_types() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let specs = [
        command(
            "battery",
            MetricType::Number,
            script(d, "n.sh", "echo 87.5\n"),
            5,
        ),
        command(
            "cores",
            MetricType::NumberList,
            script(d, "nl.sh", "printf '[12, 40, 7.5, -3]'\n"),
            5,
        ),
        command(
            "fw_modules",
            MetricType::StringList,
            script(d, "sl.sh", "echo net\necho\necho 'ota v2'\n"),
            5,
        ),
        command(
            "peers",
            MetricType::IpAddressList,
            script(d, "ip.sh", "echo 198.51.100.2; echo 2001:db8::9\n"),
            5,
        ),
    ];
    let got: Vec<CustomValue> = read(&specs).into_iter().map(|r| r.value.unwrap()).collect();
    assert_eq!(
        got,
        [
            CustomValue::Number(87.5),
            CustomValue::NumberList(vec![12.0, 40.0, 7.5, -3.0]),
            CustomValue::StringList(vec!["net".into(), "ota_v2".into()]),
            CustomValue::IpList(vec![
                "198.51.100.2".parse().unwrap(),
                "2001:db8::9".parse().unwrap()
            ]),
        ]
    );
}

#[test]
fn a_command_runs_directly_with_its_arguments_and_a_minimal_environment() {
    // argv[0] is exec'd directly: /usr/bin/env prints exactly the environment it got.
    let env = one(command(
        "env",
        MetricType::StringList,
        vec!["/usr/bin/env".into()],
        5,
    ))
    .unwrap();
    assert_eq!(
        env,
        CustomValue::StringList(vec!["PATH_/usr/sbin:/usr/bin:/sbin:/bin".into()])
    );
    let args = one(command(
        "args",
        MetricType::StringList,
        vec!["/bin/echo".into(), "a;b".into(), "$HOME".into()],
        5,
    ))
    .unwrap();
    // No shell: `;` and `$HOME` arrive as plain characters (then cleaned).
    assert_eq!(args, CustomValue::StringList(vec!["a_b__HOME".into()]));
}

#[test]
fn a_command_reads_dev_null_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    // `cat` would hang on an inherited stdin; on /dev/null it ends at once with no items.
    let got = one(command(
        "stdin",
        MetricType::StringList,
        script(dir.path(), "cat.sh", "cat\n"),
        5,
    ));
    assert_eq!(got.unwrap(), CustomValue::StringList(vec![]));
}

#[test]
fn a_hung_command_and_its_child_are_killed_at_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let body = hung_with_pids(&pids);
    let start = Instant::now();
    let got = one(command(
        "hung",
        MetricType::Number,
        script(dir.path(), "hung.sh", &body),
        1,
    ));
    let took = start.elapsed();
    assert!(
        matches!(got, Err(CustomError::Timeout(t)) if t == Duration::from_secs(1)),
        "{got:?}"
    );
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    all_dead(&pids).unwrap();
}

#[test]
fn a_background_child_left_by_a_finished_command_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let pid = dir.path().join("pid");
    let body = format!(
        "sleep 1000 >/dev/null 2>&1 &\necho $! > {p}\necho 3\n",
        p = pid.display()
    );
    let got = one(command(
        "leaver",
        MetricType::Number,
        script(dir.path(), "leave.sh", &body),
        5,
    ));
    assert_eq!(got.unwrap(), CustomValue::Number(3.0));
    all_dead(&pid).unwrap();
}

#[test]
fn commands_run_concurrently_each_under_its_own_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let slow = |n: &str| command(n, MetricType::Number, script(d, n, "sleep 1\necho 1\n"), 5);
    let specs = [
        slow("a"),
        slow("b"),
        slow("c"),
        command("hung", MetricType::Number, script(d, "h", "sleep 60\n"), 2),
    ];
    let start = Instant::now();
    let got = read(&specs);
    let took = start.elapsed();
    for r in &got[..3] {
        assert_eq!(r.value.as_ref().unwrap(), &CustomValue::Number(1.0));
    }
    assert!(matches!(got[3].value, Err(CustomError::Timeout(_))));
    // Run one after the other they would take 5 s; together, the hung one's 2 s.
    assert!(took < Duration::from_millis(4_000), "{took:?}");
}

#[test]
fn a_command_that_exits_non_zero_fails_with_its_status_and_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let got = one(command(
        "fails",
        MetricType::Number,
        script(
            dir.path(),
            "f.sh",
            "echo 5\necho 'no battery' >&2\nexit 3\n",
        ),
        5,
    ));
    let err = got.unwrap_err();
    assert!(matches!(err, CustomError::Exit { .. }), "{err:?}");
    assert_eq!(err.to_string(), "exited with status 3 (stderr: no battery)");
}

#[test]
fn output_that_does_not_parse_fails_the_metric() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = [
        (MetricType::Number, "echo 87%\n"),
        (MetricType::Number, "echo NaN\n"),
        (MetricType::Number, "echo 1234567890.1234567\n"),
        (MetricType::Number, "echo 1; echo 2\n"),
        (MetricType::NumberList, "echo '[1, \"x\"]'\n"),
        (MetricType::IpAddressList, "echo 10.0.0.0/8\n"),
        (MetricType::StringList, "echo '[\"a\"'\n"),
    ];
    for (i, (kind, body)) in cases.into_iter().enumerate() {
        let got = one(command("bad", kind, script(d, &format!("{i}.sh"), body), 5));
        assert!(matches!(got, Err(CustomError::Parse(_))), "{body}: {got:?}");
    }
}

#[test]
fn output_over_64_kib_fails_the_metric() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Exactly the cap is fine; one byte more is not (and an endless writer is stopped).
    let exact = "head -c 65535 /dev/zero | tr '\\0' 'a'; echo\n";
    let over = "head -c 65536 /dev/zero | tr '\\0' 'a'; echo\n";
    let endless = "yes 1\n";
    let ok = one(command(
        "exact",
        MetricType::StringList,
        script(d, "e.sh", exact),
        5,
    ));
    assert!(matches!(ok, Ok(CustomValue::StringList(ref v)) if v[0].len() == 65535));
    for (name, body) in [("over", over), ("endless", endless)] {
        let got = one(command(
            name,
            MetricType::StringList,
            script(d, name, body),
            5,
        ));
        assert!(matches!(got, Err(CustomError::TooLarge)), "{name}: {got:?}");
    }
}

#[test]
fn a_command_that_cannot_start_fails_the_metric() {
    let got = one(command(
        "missing",
        MetricType::Number,
        vec!["/nonexistent/battery".into()],
        5,
    ));
    assert!(matches!(got, Err(CustomError::Spawn { .. })), "{got:?}");
}
