//! Custom metric sources against real commands (scripts written by each test), real files
//! and the proc-builtins fixture tree: every type, every source, every failure.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use detect_agent::collect::custom::{
    self, Builtin, CpuTimes, CustomError, CustomState, CustomValue, MetricSpec, MetricType,
    ParseError, Reading, Source,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

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

fn read(specs: &[MetricSpec]) -> Vec<Reading> {
    custom::read_all(
        specs,
        &fixture("proc-builtins"),
        &mut CustomState::default(),
    )
}

fn one(spec: MetricSpec) -> Result<CustomValue, CustomError> {
    read(&[spec]).remove(0).value
}

/// True when `pid` is gone or a zombie (killed, waiting for a reaper that may be us).
fn dead(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

fn wait_dead(pid: &str) -> bool {
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if dead(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
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
    let body = format!(
        "sleep 1000 &\necho $! > {p}.tmp\necho $$ >> {p}.tmp\nmv {p}.tmp {p}\nwait\n",
        p = pids.display()
    );
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
    let pids = std::fs::read_to_string(&pids).unwrap();
    for pid in pids.split_whitespace() {
        assert!(wait_dead(pid), "process {pid} survived the timeout");
    }
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
    let pid = std::fs::read_to_string(&pid).unwrap();
    assert!(wait_dead(pid.trim()), "background child {pid} survived");
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

#[test]
fn a_file_gives_each_of_the_four_types_and_is_read_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = |name: &str, kind, text: &str| {
        let path = d.join(name);
        std::fs::write(&path, text).unwrap();
        MetricSpec {
            name: name.into(),
            kind,
            source: Source::File(path),
        }
    };
    let specs = [
        file("capacity", MetricType::Number, "87\n"),
        file("temps", MetricType::NumberList, "41.5\n42\n"),
        file("fw", MetricType::StringList, "[\"1.2.3\", \"boot-a\"]"),
        file("peers", MetricType::IpAddressList, "::1\n"),
    ];
    let got: Vec<CustomValue> = read(&specs).into_iter().map(|r| r.value.unwrap()).collect();
    assert_eq!(got[0], CustomValue::Number(87.0));
    assert_eq!(got[1], CustomValue::NumberList(vec![41.5, 42.0]));
    assert_eq!(
        got[2],
        CustomValue::StringList(vec!["1.2.3".into(), "boot-a".into()])
    );
    assert_eq!(got[3], CustomValue::IpList(vec!["::1".parse().unwrap()]));
    std::fs::write(d.join("capacity"), "12\n").unwrap();
    assert_eq!(
        read(&specs[..1]).remove(0).value.unwrap(),
        CustomValue::Number(12.0)
    );
}

#[test]
fn a_file_that_is_missing_too_large_or_bad_fails_the_metric() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = |path: PathBuf, kind| MetricSpec {
        name: "f".into(),
        kind,
        source: Source::File(path),
    };
    let got = one(spec(d.join("missing"), MetricType::Number));
    assert!(matches!(got, Err(CustomError::Read { .. })), "{got:?}");
    // A FIFO would block an ordinary open: refused at once instead.
    let fifo = d.join("fifo");
    let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
    let got = one(spec(fifo, MetricType::Number));
    assert!(
        matches!(&got, Err(e @ CustomError::Read { .. }) if e.to_string().contains("not a regular file")),
        "{got:?}"
    );
    std::fs::write(d.join("big"), vec![b'a'; 64 * 1024 + 1]).unwrap();
    let got = one(spec(d.join("big"), MetricType::StringList));
    assert!(matches!(got, Err(CustomError::TooLarge)), "{got:?}");
    std::fs::write(d.join("bad"), "on\n").unwrap();
    let got = one(spec(d.join("bad"), MetricType::Number));
    assert!(
        matches!(got, Err(CustomError::Parse(ParseError::NotNumber(_)))),
        "{got:?}"
    );
}

fn builtin(b: Builtin) -> MetricSpec {
    MetricSpec {
        name: b.name().into(),
        kind: b.metric_type(),
        source: Source::Builtin(b),
    }
}

#[test]
fn builtins_read_the_fixture_tree() {
    let root = fixture("proc-builtins");
    let mut state = CustomState {
        cpu: Some(CpuTimes {
            busy: 4_000,
            total: 18_000,
        }),
    };
    let specs: Vec<MetricSpec> = Builtin::ALL.into_iter().map(builtin).collect();
    let got: Vec<CustomValue> = custom::read_all(&specs, &root, &mut state)
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect();
    assert_eq!(
        got,
        [
            // (4500 - 4000) busy of (20000 - 18000) ticks.
            CustomValue::Number(25.0),
            // (2000000 - 500000) / 2000000.
            CustomValue::Number(75.0),
            // /proc/1, /proc/42, /proc/1337; not self-not-a-pid.
            CustomValue::Number(3.0),
            CustomValue::StringList(vec![
                "bridge".into(),
                "diamorphine".into(),
                "nf_tables".into(),
                "xt_conntrack".into()
            ]),
            CustomValue::Number(12288.0),
        ]
    );
    // The newest /proc/stat reading is kept for the next sample.
    assert_eq!(
        state.cpu,
        Some(CpuTimes {
            busy: 4_500,
            total: 20_000
        })
    );
}

#[test]
fn cpu_usage_without_a_previous_sample_needs_time_to_pass() {
    // The fixture's counters never move: the two readings taken apart give no interval.
    let mut state = CustomState::default();
    let got = custom::read_all(
        &[builtin(Builtin::CpuUsage)],
        &fixture("proc-builtins"),
        &mut state,
    );
    assert!(
        matches!(got[0].value, Err(CustomError::Parse(_))),
        "{:?}",
        got[0].value
    );
    assert!(state.cpu.is_some());
}

#[test]
fn cpu_usage_on_the_live_host_is_a_percentage() {
    let mut state = CustomState::default();
    let got = custom::read_all(&[builtin(Builtin::CpuUsage)], Path::new("/"), &mut state);
    match &got[0].value {
        Ok(CustomValue::Number(p)) => assert!((0.0..=100.0).contains(p), "{p}"),
        // A host so idle that no tick passed in 250 ms is possible only in theory.
        other => panic!("{other:?}"),
    }
}

#[test]
fn builtins_fail_one_by_one_when_their_files_are_missing() {
    // proc-fallback has /proc/net but none of the files the built-ins read, and no /proc/1
    // (as under hidepid): process_count refuses to count only what it can see.
    let specs: Vec<MetricSpec> = [
        Builtin::MemoryUsedPercent,
        Builtin::ProcessCount,
        Builtin::KernelModules,
        Builtin::KernelTainted,
        Builtin::CpuUsage,
    ]
    .into_iter()
    .map(builtin)
    .collect();
    let got = custom::read_all(
        &specs,
        &fixture("proc-fallback"),
        &mut CustomState::default(),
    );
    for r in &got {
        assert!(
            matches!(r.value, Err(CustomError::Read { .. })),
            "{}: {:?}",
            r.name,
            r.value
        );
    }
    assert_eq!(got[0].source, "builtin memory_used_percent");
}
