//! The `file` custom metric source against real files, and the built-ins against the
//! proc-builtins fixture tree (and the live host for cpu_usage): every type, every failure.
use std::path::{Path, PathBuf};

use crate::custom::{fixture, one, read};
use detect_agent::collect::custom::{
    self, Builtin, CpuTimes, CustomError, CustomState, CustomValue, MetricSpec, MetricType,
    ParseError, Source,
};

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
