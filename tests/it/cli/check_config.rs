//! End-to-end tests of `detect-agent check-config`: real config files and rcgen certificates,
//! one finding per line naming its key or file, exit status from errors only (not warnings).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

const BIN: &str = env!("CARGO_BIN_EXE_detect-agent");
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// A throwaway PKI: a CA and client identities written as PEM files into one directory.
struct Pki {
    dir: tempfile::TempDir,
    ca: PathBuf,
    /// EC P-256 client certificate and its key.
    cert: PathBuf,
    key: PathBuf,
    /// Another EC P-256 key and an Ed25519 key: neither matches `cert`.
    other_ec_key: PathBuf,
    ed25519_key: PathBuf,
    /// Valid 2020-01-01 .. 2021-01-01.
    expired_cert: PathBuf,
    expired_key: PathBuf,
    /// Expires in about ten days (inside the 30-day warning window).
    expiring_cert: PathBuf,
    expiring_key: PathBuf,
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn client_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p
}

/// (year, month, day) `days` from today in UTC, from date(1).
fn ymd_in(days: i64) -> (i32, u8, u8) {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("{days} days"), "+%Y %m %d"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut f = text.split_whitespace();
    let y = f.next().unwrap().parse().unwrap();
    let m = f.next().unwrap().parse().unwrap();
    let d = f.next().unwrap().parse().unwrap();
    (y, m, d)
}

impl Pki {
    fn generate() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "check-config test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

        let key = KeyPair::generate().unwrap();
        let cert = client_params("thing-ok").signed_by(&key, &ca).unwrap();

        let expired_key = KeyPair::generate().unwrap();
        let mut p = client_params("thing-expired");
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let expired = p.signed_by(&expired_key, &ca).unwrap();

        let (y0, m0, d0) = ymd_in(-1);
        let (y1, m1, d1) = ymd_in(10);
        let expiring_key = KeyPair::generate().unwrap();
        let mut p = client_params("thing-expiring");
        p.not_before = rcgen::date_time_ymd(y0, m0, d0);
        p.not_after = rcgen::date_time_ymd(y1, m1, d1);
        let expiring = p.signed_by(&expiring_key, &ca).unwrap();

        let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        Pki {
            ca: write(d, "ca.crt", &ca.pem()),
            cert: write(d, "thing.crt", &cert.pem()),
            key: write(d, "thing.key", &key.serialize_pem()),
            other_ec_key: write(
                d,
                "other-ec.key",
                &KeyPair::generate().unwrap().serialize_pem(),
            ),
            ed25519_key: write(d, "ed25519.key", &ed.serialize_pem()),
            expired_cert: write(d, "expired.crt", &expired.pem()),
            expired_key: write(d, "expired.key", &expired_key.serialize_pem()),
            expiring_cert: write(d, "expiring.crt", &expiring.pem()),
            expiring_key: write(d, "expiring.key", &expiring_key.serialize_pem()),
            dir,
        }
    }
}

/// The parts of a config file that tests vary.
struct Cfg<'a> {
    thing: &'a str,
    ca: &'a Path,
    cert: &'a Path,
    key: &'a Path,
    /// Extra lines appended to the `[report]` table.
    report: &'a str,
}

impl<'a> Cfg<'a> {
    fn good(pki: &'a Pki) -> Cfg<'a> {
        Cfg {
            thing: "thing-ok",
            ca: &pki.ca,
            cert: &pki.cert,
            key: &pki.key,
            report: "interval_secs = 300\n",
        }
    }

    fn toml(&self, state_dir: &Path) -> String {
        // TOML basic strings: escape the thing name so control characters survive as \uXXXX.
        let thing: String = self
            .thing
            .chars()
            .map(|c| match c {
                '"' | '\\' => format!("\\{c}"),
                c if c.is_control() => format!("\\u{:04X}", c as u32),
                c => c.to_string(),
            })
            .collect();
        format!(
            "thing_name = \"{thing}\"\n\n[mqtt]\nendpoint = \"127.0.0.1\"\nport = 8883\n\
             ca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}\n\n[report]\n{}\n[state]\ndir = {:?}\n",
            self.ca, self.cert, self.key, self.report, state_dir
        )
    }
}

/// What one `check-config` run printed.
struct Checked {
    out: Output,
    config: PathBuf,
    lines: Vec<String>,
}

impl Checked {
    fn ok(&self) -> bool {
        self.out.status.success()
    }

    fn dump(&self) -> String {
        format!(
            "{:?}\nstdout:\n{}\nstderr:\n{}",
            self.out.status,
            self.lines.join("\n"),
            String::from_utf8_lossy(&self.out.stderr)
        )
    }

    fn with_prefix(&self, prefix: &str) -> Vec<&String> {
        self.lines
            .iter()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }

    /// The one line starting with `prefix` that contains every needle.
    fn line(&self, prefix: &str, needles: &[&str]) -> &str {
        let hits: Vec<&String> = self
            .with_prefix(prefix)
            .into_iter()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .collect();
        assert_eq!(
            hits.len(),
            1,
            "one {prefix} line with {needles:?}\n{}",
            self.dump()
        );
        hits[0]
    }

    fn summary(&self) -> &str {
        self.lines.last().map(String::as_str).unwrap_or("")
    }
}

/// Runs `check-config --config FILE` (killed after `RUN_LIMIT`).
fn check_file(config: &Path) -> Checked {
    check_file_env(config, &[])
}

/// `check_file` with extra environment variables.
fn check_file_env(config: &Path, env: &[(&str, &Path)]) -> Checked {
    let mut cmd = Command::new(BIN);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .args(["check-config", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + RUN_LIMIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("check-config {} did not finish", config.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The output is a few lines: it fits in the pipe buffers, so reading after exit is safe.
    let out = child.wait_with_output().unwrap();
    let lines = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    Checked {
        out,
        config: config.to_path_buf(),
        lines,
    }
}

/// Writes `text` as a config file in `dir` and checks it.
fn check_text(dir: &Path, text: &str) -> Checked {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    check_file(&path)
}

fn check(pki: &Pki, cfg: &Cfg) -> Checked {
    let state = pki.dir.path().join("state");
    check_text(pki.dir.path(), &cfg.toml(&state))
}

fn assert_failed(c: &Checked, errors: usize) {
    assert!(!c.ok(), "exit status should be non-zero\n{}", c.dump());
    assert_eq!(c.with_prefix("error:").len(), errors, "{}", c.dump());
    assert_eq!(
        c.summary(),
        format!("{}: {errors} error(s)", c.config.display()),
        "{}",
        c.dump()
    );
}

fn assert_passed(c: &Checked) {
    assert!(c.ok(), "exit status should be zero\n{}", c.dump());
    assert!(c.with_prefix("error:").is_empty(), "{}", c.dump());
    assert_eq!(
        c.summary(),
        format!("{}: ok", c.config.display()),
        "{}",
        c.dump()
    );
}

#[test]
fn good_config_is_ok() {
    let pki = Pki::generate();
    let c = check(&pki, &Cfg::good(&pki));
    assert_passed(&c);
    assert_eq!(c.lines.len(), 1, "{}", c.dump());
    assert!(c.out.stderr.is_empty(), "{}", c.dump());
}

#[test]
fn unknown_key_is_named() {
    let pki = Pki::generate();
    let cfg = Cfg {
        report: "interval_sec = 300\n",
        ..Cfg::good(&pki)
    };
    let c = check(&pki, &cfg);
    assert_failed(&c, 1);
    let path = c.config.display().to_string();
    c.line("error:", &["unknown key report.interval_sec", &path]);
    // The rest of the file is still checked: the error, the summary, nothing else.
    assert_eq!(c.lines.len(), 2, "{}", c.dump());
}

#[test]
fn every_unknown_key_gets_its_own_line() {
    let pki = Pki::generate();
    let state = pki.dir.path().join("state");
    let text = format!(
        "thingname = \"x\"\n{}\n[colect]\nforce_procnet = true\n",
        Cfg {
            report: "interval_sec = 300\nfromat = \"json\"\n",
            ..Cfg::good(&pki)
        }
        .toml(&state)
        .replace("port = 8883", "port = 8883\nusername_ = \"u\"")
    );
    let c = check_text(pki.dir.path(), &text);
    assert_failed(&c, 5);
    for key in [
        "thingname",
        "mqtt.username_",
        "report.interval_sec",
        "report.fromat",
        "colect",
    ] {
        c.line("error:", &[&format!("unknown key {key}")]);
    }
}

/// A good config whose `[mqtt]` login lines are `login` (no cert_file/key_file of its own).
fn with_login(pki: &Pki, login: &str, report: &str) -> String {
    format!(
        "thing_name = \"thing-ok\"\n[mqtt]\nendpoint = \"127.0.0.1\"\nca_file = {:?}\n{login}\n\
         [report]\n{report}\n[state]\ndir = {:?}\n",
        pki.ca,
        pki.dir.path().join("state")
    )
}

/// A password file with `mode`, in the PKI directory.
fn password_file(pki: &Pki, name: &str, content: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = write(pki.dir.path(), name, content);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn a_password_login_without_a_certificate_is_ok() {
    let pki = Pki::generate();
    let pw = password_file(&pki, "pw", "s3cret\n", 0o600);
    let c = check_text(
        pki.dir.path(),
        &with_login(
            &pki,
            &format!("username = \"thing-ok\"\npassword_file = {pw:?}"),
            "",
        ),
    );
    assert_passed(&c);
    assert_eq!(c.lines.len(), 1, "{}", c.dump());
    // With a certificate as well.
    let both = format!(
        "username = \"thing-ok\"\npassword_file = {pw:?}\ncert_file = {:?}\nkey_file = {:?}",
        pki.cert, pki.key
    );
    assert_passed(&check_text(pki.dir.path(), &with_login(&pki, &both, "")));
}

#[test]
fn half_a_login_is_an_error() {
    let pki = Pki::generate();
    let pw = password_file(&pki, "pw", "s3cret\n", 0o600);
    for (login, needles) in [
        (
            "username = \"u\"".to_string(),
            ["mqtt.username", "mqtt.password_file"],
        ),
        (
            format!("password_file = {pw:?}"),
            ["mqtt.password_file", "mqtt.username"],
        ),
        (
            format!("cert_file = {:?}", pki.cert),
            ["mqtt.cert_file", "mqtt.key_file"],
        ),
        (
            format!("key_file = {:?}", pki.key),
            ["mqtt.key_file", "mqtt.cert_file"],
        ),
        (String::new(), ["no login", "username and password_file"]),
    ] {
        let c = check_text(pki.dir.path(), &with_login(&pki, &login, ""));
        assert_failed(&c, 1);
        c.line("error:", &needles);
    }
}

#[test]
fn an_empty_or_missing_password_file_is_an_error_naming_it() {
    let pki = Pki::generate();
    let empty = password_file(&pki, "empty-pw", "\n", 0o600);
    let missing = pki.dir.path().join("no-such-pw");
    for (path, needle) in [(&empty, "empty"), (&missing, "cannot read")] {
        let login = format!("username = \"u\"\npassword_file = {path:?}");
        let c = check_text(pki.dir.path(), &with_login(&pki, &login, ""));
        assert_failed(&c, 1);
        c.line("error:", &[&path.display().to_string(), needle]);
    }
}

#[test]
fn a_world_readable_password_file_is_a_warning_that_never_shows_the_password() {
    let pki = Pki::generate();
    let pw = password_file(&pki, "open-pw", "hunter2\n", 0o644);
    let login = format!("username = \"u\"\npassword_file = {pw:?}");
    let c = check_text(pki.dir.path(), &with_login(&pki, &login, ""));
    assert_passed(&c);
    c.line("warning:", &[&pw.display().to_string(), "world-readable"]);
    assert!(!c.dump().contains("hunter2"), "{}", c.dump());
}

#[test]
fn a_verdict_timeout_not_well_below_the_interval_is_a_warning() {
    let pki = Pki::generate();
    let cfg = Cfg {
        report: "interval_secs = 300\nverdict_timeout_secs = 1\n",
        ..Cfg::good(&pki)
    };
    assert_eq!(check(&pki, &cfg).lines.len(), 1);
    let cfg = Cfg {
        report: "interval_secs = 2\nverdict_timeout_secs = 10\n",
        ..Cfg::good(&pki)
    };
    let c = check(&pki, &cfg);
    assert_passed(&c);
    c.line(
        "warning:",
        &[
            "report.verdict_timeout_secs = 10",
            "interval_secs = 2",
            "at most half",
        ],
    );
}

#[test]
fn a_thing_name_with_a_dot_warns_about_nats_and_rabbitmq() {
    let pki = Pki::generate();
    let cfg = Cfg {
        thing: "gw.01",
        ..Cfg::good(&pki)
    };
    let c = check(&pki, &cfg);
    assert_passed(&c);
    c.line("warning:", &["thing_name", "'.' breaks NATS", "RabbitMQ"]);
}

#[test]
fn missing_config_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let c = check_file(&dir.path().join("absent.toml"));
    assert!(!c.ok(), "{}", c.dump());
    c.line("error:", &["absent.toml"]);
}

#[test]
fn missing_certificate_file_is_named() {
    let pki = Pki::generate();
    let missing = pki.dir.path().join("no-such-cert.pem");
    let cfg = Cfg {
        cert: &missing,
        ..Cfg::good(&pki)
    };
    let c = check(&pki, &cfg);
    assert_failed(&c, 1);
    c.line("error:", &[&missing.display().to_string()]);
}

#[test]
fn key_not_matching_certificate_is_an_error() {
    let pki = Pki::generate();
    for key in [&pki.other_ec_key, &pki.ed25519_key] {
        let cfg = Cfg {
            key,
            ..Cfg::good(&pki)
        };
        let c = check(&pki, &cfg);
        assert_failed(&c, 1);
        c.line(
            "error:",
            &[
                &key.display().to_string(),
                "does not match",
                &pki.cert.display().to_string(),
            ],
        );
    }
}

#[test]
fn expired_certificate_is_an_error() {
    let pki = Pki::generate();
    let cfg = Cfg {
        cert: &pki.expired_cert,
        key: &pki.expired_key,
        ..Cfg::good(&pki)
    };
    let c = check(&pki, &cfg);
    assert_failed(&c, 1);
    c.line(
        "error:",
        &[
            &pki.expired_cert.display().to_string(),
            "expired",
            "2021-01-01",
        ],
    );
}

#[test]
fn certificate_expiring_soon_is_a_warning() {
    let pki = Pki::generate();
    let cfg = Cfg {
        cert: &pki.expiring_cert,
        key: &pki.expiring_key,
        ..Cfg::good(&pki)
    };
    let c = check(&pki, &cfg);
    assert_passed(&c);
    c.line(
        "warning:",
        &[&pki.expiring_cert.display().to_string(), "expires"],
    );
}

#[test]
fn short_interval_is_a_warning_only() {
    let pki = Pki::generate();
    let cfg = Cfg {
        report: "interval_secs = 2\nverdict_timeout_secs = 1\n",
        ..Cfg::good(&pki)
    };
    let c = check(&pki, &cfg);
    assert_passed(&c);
    c.line("warning:", &["report.interval_secs", "2", "300"]);
    assert_eq!(c.lines.len(), 2, "{}", c.dump());
}

#[test]
fn control_character_in_thing_name_is_an_error() {
    let pki = Pki::generate();
    let cfg = Cfg {
        thing: "thing\u{7}one",
        ..Cfg::good(&pki)
    };
    let c = check(&pki, &cfg);
    assert_failed(&c, 1);
    c.line("error:", &["thing_name", "control character"]);
}

#[test]
fn several_problems_give_one_line_each() {
    let pki = Pki::generate();
    let missing_ca = pki.dir.path().join("no-such-ca.pem");
    let missing_cert = pki.dir.path().join("no-such-cert.pem");
    let cfg = Cfg {
        thing: "bad\u{1b}name",
        ca: &missing_ca,
        cert: &missing_cert,
        key: &pki.key,
        report: "interval_secs = 10\nverdict_timeout_secs = 5\n",
    };
    let c = check(&pki, &cfg);
    assert_failed(&c, 3);
    c.line("error:", &["thing_name", "control character"]);
    c.line("error:", &[&missing_ca.display().to_string()]);
    c.line("error:", &[&missing_cert.display().to_string()]);
    c.line("warning:", &["report.interval_secs"]);
    // Three errors, one warning, the summary: nothing else, nothing split over lines.
    assert_eq!(c.lines.len(), 5, "{}", c.dump());
}

#[test]
fn missing_mqtt_and_thing_name_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let c = check_text(dir.path(), &format!("[state]\ndir = {state:?}\n"));
    assert_failed(&c, 2);
    c.line("error:", &["thing_name", "missing"]);
    c.line("error:", &["[mqtt]", "missing"]);
}

/// `Cfg::good` with `[detect] profiles` from tests/fixtures/check-config-profiles/.
fn check_profiles(pki: &Pki, profiles: &[&str]) -> Checked {
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/check-config-profiles");
    let list: Vec<String> = profiles
        .iter()
        .map(|p| format!("{:?}", fixtures.join(p).display().to_string()))
        .collect();
    let state = pki.dir.path().join("state");
    let text = format!(
        "{}\n[detect]\nprofiles = [{}]\n",
        Cfg::good(pki).toml(&state),
        list.join(", ")
    );
    check_text(pki.dir.path(), &text)
}

/// A good config plus `extra` (`[[custom_metrics]]` tables) appended.
fn check_custom(pki: &Pki, extra: &str) -> Checked {
    let state = pki.dir.path().join("state");
    let text = format!("{}\n{extra}", Cfg::good(pki).toml(&state));
    check_text(pki.dir.path(), &text)
}

#[test]
fn each_profile_problem_is_one_line_naming_file_behavior_and_field() {
    let pki = Pki::generate();
    let c = check_profiles(&pki, &["bad.json", "missing.json"]);
    assert_failed(&c, 4);
    c.line(
        "error:",
        &[
            "bad.json",
            "behavior ports-as-count",
            "criteria.comparisonOperator",
        ],
    );
    c.line(
        "error:",
        &["bad.json", "behavior ports-as-count", "criteria.value"],
    );
    c.line(
        "error:",
        &[
            "bad.json",
            "behavior too-many-datapoints",
            "consecutiveDatapointsToAlarm",
        ],
    );
    c.line("error:", &["missing.json", "cannot read"]);
}

#[test]
fn a_behavior_not_evaluated_on_the_device_is_a_warning_only() {
    let pki = Pki::generate();
    let c = check_profiles(&pki, &["cloud-side.json"]);
    assert_passed(&c);
    c.line(
        "warning:",
        &[
            "cloud-side.json",
            "behavior auth-failures",
            "aws:num-authorization-failures",
        ],
    );
    // The warning and the summary; the evaluated behavior (no-telnet) gives no line.
    assert_eq!(c.lines.len(), 2, "{}", c.dump());
}

#[test]
fn the_shipped_profile_passes() {
    let pki = Pki::generate();
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config/profiles/baseline.json");
    let c = check_profiles(&pki, &[shipped]);
    assert_passed(&c);
}

#[test]
fn custom_metrics_of_every_source_are_ok() {
    let pki = Pki::generate();
    let file = write(pki.dir.path(), "capacity", "87\n");
    let extra = format!(
        r#"
[[custom_metrics]]
name = "kernel_modules"
type = "string-list"
builtin = "kernel_modules"

[[custom_metrics]]
name = "battery_pct"
type = "number"
command = ["/bin/echo", "87"]
timeout_secs = 60

[[custom_metrics]]
name = "capacity"
type = "number"
file = {file:?}
"#
    );
    assert_passed(&check_custom(&pki, &extra));
}

#[test]
fn every_custom_metric_error_is_one_line_naming_the_metric_and_the_key() {
    let pki = Pki::generate();
    let not_exec = write(pki.dir.path(), "not-exec.sh", "echo 1\n");
    let missing = pki.dir.path().join("missing");
    let extra = format!(
        r#"
[[custom_metrics]]
name = "aws:cpu"
type = "number"
builtin = "cpu_usage"

[[custom_metrics]]
name = "twice"
type = "number"
builtin = "cpu_usage"

[[custom_metrics]]
name = "twice"
type = "number"
builtin = "process_count"

[[custom_metrics]]
name = "two_sources"
type = "number"
builtin = "cpu_usage"
file = "/proc/loadavg"

[[custom_metrics]]
name = "no_source"
type = "number"

[[custom_metrics]]
name = "unknown_builtin"
type = "number"
builtin = "battery"

[[custom_metrics]]
name = "mismatch"
type = "number"
builtin = "kernel_modules"

[[custom_metrics]]
name = "bad_type"
type = "ip-list"
file = "/proc/loadavg"

[[custom_metrics]]
name = "relative"
type = "number"
command = ["battery"]

[[custom_metrics]]
name = "not_exec"
type = "number"
command = [{not_exec:?}]

[[custom_metrics]]
name = "slow"
type = "number"
command = ["/bin/echo", "1"]
timeout_secs = 61

[[custom_metrics]]
name = "file_timeout"
type = "number"
file = "/proc/loadavg"
timeout_secs = 5

[[custom_metrics]]
name = "unreadable"
type = "number"
file = {missing:?}
"#
    );
    let c = check_custom(&pki, &extra);
    for (metric, key, needle) in [
        ("\"aws:cpu\"", "name:", "aws:"),
        ("\"twice\"", "name:", "already used by custom_metrics[1]"),
        ("\"two_sources\"", "builtin/file:", "exactly one source"),
        ("\"no_source\"", "builtin:", "one source is required"),
        (
            "\"unknown_builtin\"",
            "builtin:",
            "\"battery\" is not a built-in",
        ),
        ("\"mismatch\"", "type:", "string-list"),
        ("\"bad_type\"", "type:", "\"ip-list\""),
        ("\"relative\"", "command:", "not an absolute path"),
        ("\"not_exec\"", "command:", "not executable"),
        ("\"slow\"", "timeout_secs:", "61"),
        ("\"file_timeout\"", "timeout_secs:", "command source only"),
        ("\"unreadable\"", "file:", "cannot read"),
    ] {
        c.line("error:", &[metric, key, needle]);
    }
    assert_failed(&c, 12);
}

#[test]
fn the_daemon_refuses_to_start_on_a_bad_custom_metric_naming_the_metric_and_the_key() {
    let pki = Pki::generate();
    let state = pki.dir.path().join("state");
    let text = format!(
        "{}\n[[custom_metrics]]\nname = \"battery\"\ntype = \"number\"\ncommand = [\"battery\"]\n",
        Cfg::good(&pki).toml(&state)
    );
    let path = write(pki.dir.path(), "config.toml", &text);
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&path)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0]
            .contains("custom_metrics[0] \"battery\": command: battery is not an absolute path"),
        "{stderr}"
    );
}

#[test]
fn a_credential_key_file_is_checked_at_the_units_load_credential_source() {
    // The install steps of docs/operations.md: key_file names the credential, which exists
    // only while the service runs; check-config (run by root before the first start) reads
    // the unit's source.
    let pki = Pki::generate();
    let units = tempfile::tempdir().unwrap();
    let unit = "detect-agent-check-test.service";
    write(
        units.path(),
        unit,
        &format!(
            "[Service]\nLoadCredential=device.key:{}\n",
            pki.key.display()
        ),
    );
    let credential = PathBuf::from(format!("/run/credentials/{unit}/device.key"));
    let cfg = Cfg {
        key: &credential,
        ..Cfg::good(&pki)
    };
    let path = write(
        pki.dir.path(),
        "config.toml",
        &cfg.toml(&pki.dir.path().join("state")),
    );
    let c = check_file_env(&path, &[("SYSTEMD_UNIT_PATH", units.path())]);
    assert_passed(&c);
    c.line(
        "note: key_file:",
        &[
            credential.to_str().unwrap(),
            "LoadCredential=",
            pki.key.to_str().unwrap(),
        ],
    );

    // A unit that does not load that credential: an error naming the key and the unit file.
    write(
        units.path(),
        unit,
        "[Service]\nLoadCredential=other.key:/x\n",
    );
    let c = check_file_env(&path, &[("SYSTEMD_UNIT_PATH", units.path())]);
    assert!(!c.ok(), "{}", c.dump());
    c.line("error: key_file:", &["LoadCredential=device.key", unit]);
}
